import os, subprocess, time, signal
from tests.multiproc.daemon import Daemon

def test_debug(artifacts_dir, vcan_channel):
    d = Daemon(artifacts_dir, can={"interface": "socketcan", "channel": vcan_channel},
               simulation={"inverter": False}).start()
    try:
        d.wait_sending()
        p = subprocess.Popen(["candump", "-L", vcan_channel], stdout=subprocess.PIPE, universal_newlines=True)
        time.sleep(3)
        p.terminate()
        out = p.communicate()[0]
        print("CANDUMP", out[:2000])
        for name in os.listdir("/proc/net/can-bcm"):
            print("BCM", name, open("/proc/net/can-bcm/" + name).read())
        print(open("/sys/class/net/%s/statistics/tx_packets" % vcan_channel).read())
        print(subprocess.run(["ip", "-d", "link", "show", vcan_channel], stdout=subprocess.PIPE, universal_newlines=True).stdout)
    finally:
        d.stop(signal.SIGTERM)
    print(d.log()[-3000:])
    assert False
