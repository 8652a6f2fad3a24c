"""A plain Raspberry Pi: no Venus OS, battery from VE.Direct. A stock Debian system bus refuses
the com.victronenergy.* names (why the publisher is not started there), and the daemon runs
without it, says why once, and sends frames from its own battery data."""
import os
import re
import subprocess
import time

import pytest

from sources.venus_presence import VENUS_OS_MARK
from tests.fakes.vedirect_device import VeDirectDevice
from tests.multiproc.daemon import Daemon

STOCK_SYSTEM_CONF = "/usr/share/dbus-1/system.conf"


@pytest.fixture
def stock_system_bus(tmp_path):
    """A dbus-daemon with Debian's own system.conf, only listening on a socket of the test's."""
    if not os.path.exists(STOCK_SYSTEM_CONF):
        pytest.skip("no %s (Debian's dbus-daemon package)" % STOCK_SYSTEM_CONF)
    with open(STOCK_SYSTEM_CONF) as handle:
        text = handle.read()
    socket_path = str(tmp_path / "system_bus_socket")
    for element in ("user", "pidfile", "servicehelper"):
        text = re.sub(r"<%s>[^<]*</%s>" % (element, element), "", text)
    text = text.replace("<fork/>", "").replace("<syslog/>", "")
    text = re.sub(r"<listen>[^<]*</listen>", "<listen>unix:path=%s</listen>" % socket_path, text)
    conf = tmp_path / "system.conf"
    conf.write_text(text)
    daemon = subprocess.Popen(["dbus-daemon", "--config-file=%s" % conf, "--nofork", "--print-address"],
                              stdout=subprocess.PIPE, universal_newlines=True)
    address = daemon.stdout.readline().strip()
    yield address
    daemon.terminate()
    daemon.wait(10)


def test_a_stock_debian_system_bus_refuses_the_victron_names(stock_system_bus):
    import dbus
    bus = dbus.bus.BusConnection(stock_system_bus)
    try:
        with pytest.raises(dbus.exceptions.DBusException, match="AccessDenied|not allowed to own"):
            bus.request_name("com.victronenergy.vebus.pylonvenus", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
    finally:
        bus.close()


@pytest.mark.skipif(os.path.isdir(VENUS_OS_MARK), reason="this machine has Venus OS")
def test_the_daemon_on_a_plain_pi_runs_without_the_publisher(tmp_path, stock_system_bus):
    link = str(tmp_path / "ttyVE")
    device = VeDirectDevice(link, period_s=0.5).plug()
    d = Daemon(tmp_path, battery={"source": "vedirect"}, vedirect={"port": link},
               simulation={"inverter": False}, inverter={"keepalive_timeout_s": 0.0})
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = stock_system_bus      # what the daemon would find, were it to look
    try:
        d.start()
        status = d.wait_sending(60)
        d.wait_for(lambda s: s["battery"]["voltage_v"] == 53.12, 20, "the VE.Direct data")
        time.sleep(3)
        status = d.status()
        assert set(status["workers"]) == {"can_rx", "bms_tx", "battery_reader", "web"}
        assert all(worker["restarts"] == 0 for worker in status["workers"].values())
        assert d.log().count("no Venus OS here") == 1
        assert d.command("check").returncode == 0, d.command("check").stdout
    finally:
        del os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
        d.stop()
        device.unplug()
