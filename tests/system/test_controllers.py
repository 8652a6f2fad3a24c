"""What a real CAN controller adds to vcan: bit timing, a TX queue, counters, error states.

Runs in the sja1000 tier only (tests/system/vm.py --tier sja1000): four emulated Kvaser
PCICAN cards (SJA1000 controllers under Debian's kvaser_pci/sja1000 drivers) on one emulated
bus, each brought up by the installer's own service/can_link.py.

What QEMU 7.2's SJA1000 model cannot produce: it completes every transmission at once,
acknowledged or not (a controller alone on its bus is never short of an ACK), and models no
bit errors, no error counters, no ERROR-WARNING, ERROR-PASSIVE or BUS-OFF and so no restart-ms
recovery; its bit timing is accepted but not enforced (no bus load limit, and controllers at
different bit rates still hear each other), and its TX queue never fills (no ENOBUFS). Those
states stay untested here. The tests check that the daemon's status reports the controller's
state and counters exactly as the kernel has them (``ip -details -statistics link``), in
whatever state the model leaves it (ERROR-ACTIVE, STOPPED while down), so a real controller's
ERROR-PASSIVE or BUS-OFF reaches the status by the same path; the parsing of those states is
unit-tested (tests/unit/test_controller_state.py).
"""
import json
import os
import re
import signal
import subprocess
import time

import config
from canbus.controller_state import DEVICE_STATS, request_link_message
from health.status import format_status
from service import can_link
from tests.system import can_utils
from tests.system.test_daemon import PERIOD, PYLON_IDS, daemon, intervals  # noqa: F401 (daemon: a fixture)
from protocol.frame import Frame

DEVICE_QUEUE = 10     # the smallest txqueuelen of the adapters users have (gs_usb, MCP2515)


def link_details(channel):
    return subprocess.run(["ip", "-details", "-statistics", "link", "show", "dev", channel], check=True,
                          stdout=subprocess.PIPE, universal_newlines=True).stdout


def ip_link(channel):
    """``ip -json -details -statistics link show dev channel``: iproute2's own reading of the kernel."""
    return json.loads(subprocess.run(["ip", "-json", "-details", "-statistics", "link", "show", "dev", channel],
                                     check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout)[0]


def controller_by_ip(link):
    """The controller as ``ip_link`` shows it, in the status's words."""
    data, xstats = link["linkinfo"]["info_data"], link["linkinfo"]["info_xstats"]
    shown = {"state": data["state"], "berr_counter": data.get("berr_counter"), "restart_ms": data.get("restart_ms")}
    shown.update((name, xstats[name]) for name in DEVICE_STATS)
    return shown


def record_link(channel, folder):
    """The kernel's raw answer and iproute2's JSON of one moment, kept as unit-test material."""
    (folder / ("%s.netlink.hex" % channel)).write_text(request_link_message(channel).hex())
    (folder / ("%s.ip.json" % channel)).write_text(json.dumps(ip_link(channel), indent=1))


def sysfs_counter(channel, name):
    with open("/sys/class/net/%s/statistics/%s" % (channel, name)) as handle:
        return int(handle.read())


def test_the_installer_brought_each_controller_up_as_on_a_device(vcan_channels):
    for channel in vcan_channels:
        details = link_details(channel)
        assert "can state ERROR-ACTIVE" in details and "restart-ms 1000" in details, details
        assert re.search(r"\bbitrate 500000\b", details) and re.search(r"\bqlen 100\b", details), details
        assert os.path.basename(os.readlink("/sys/class/net/%s/device/driver" % channel)) == "kvaser_pci"
        state = can_link.parse_link(details)
        assert not state.virtual and state.up and state.bitrate == 500000
        assert can_link.link_commands(channel, state, 500000) == [], "a second set-up changes nothing"


def test_a_frame_crosses_the_emulated_bus_to_every_other_controller(device_channel, inverter_channel,
                                                                      judge_channel, candump, cansend):
    recorders = [candump(device_channel), candump(judge_channel)]
    sent_at = time.time()
    cansend(Frame(0x305, bytes(8)))
    time.sleep(1)
    for recorder in recorders:
        captured = [c for c in recorder.stop() if c.frame.arbitration_id == 0x305]
        assert len(captured) == 1 and 0 <= captured[0].timestamp - sent_at < 1, captured


def test_with_the_smallest_tx_queue_a_failover_catch_up_is_sent_whole(daemon, candump, device_channel):  # noqa: F811
    """bms_tx killed: the failover sends the overdue IDs back to back (a burst of up to six
    frames) before its periodic tasks; with txqueuelen 10 none is refused (no ENOBUFS: no
    send failure, nothing dropped) and no ID misses its cadence."""
    subprocess.run(["ip", "link", "set", "dev", device_channel, "txqueuelen", str(DEVICE_QUEUE)], check=True)
    try:
        d = daemon()
        d.wait_sending()
        recorder = candump()
        time.sleep(2.5)
        dropped = sysfs_counter(device_channel, "tx_dropped")
        for _ in range(3):
            restarts = d.status()["workers"]["bms_tx"]["restarts"]
            os.kill(d.worker_pid("bms_tx"), signal.SIGKILL)
            d.wait_for(lambda s: s["workers"]["bms_tx"]["restarts"] > restarts, 10, "restart")
            d.wait_sending(30)
            time.sleep(1.5)
        captured = recorder.stop()
        status = d.status()
    finally:
        subprocess.run(["ip", "link", "set", "dev", device_channel, "txqueuelen", "100"], check=True)
    for frame_id in PYLON_IDS:
        assert max(intervals(captured, frame_id)) < 1.5 * PERIOD, hex(frame_id)
    assert status["can"]["errors"]["send_failures"] == 0
    assert sysfs_counter(device_channel, "tx_dropped") == dropped == status["can"]["errors"]["tx_dropped"]


def test_the_controller_stays_error_active_and_the_status_counts_what_the_interface_counts(
        daemon, device_channel, inverter_channel):  # noqa: F811
    """A flood from another controller: QEMU's model raises no error, so the state stays
    ERROR-ACTIVE with both error counters at 0 (see the module docstring), and a restart, which
    the kernel allows only in BUS-OFF, is refused. The daemon's counters are the interface's."""
    d = daemon(record=False)
    d.wait_sending()
    flood = can_utils.cangen(inverter_channel, ["-g", "1", "-I", "123", "-L", "8", "-n", "2000"])
    flood.wait(120)
    details = link_details(device_channel)
    assert "can state ERROR-ACTIVE (berr-counter tx 0 rx 0)" in details, details
    restart = subprocess.run(["ip", "link", "set", "dev", device_channel, "type", "can", "restart"],
                             stderr=subprocess.PIPE, universal_newlines=True)
    assert restart.returncode != 0, "restart is only for a controller in BUS-OFF"
    time.sleep(1.5)     # the status is written every 0.5 s from counters bms_tx reads each cycle
    errors = d.status()["can"]["errors"]
    assert (errors["tx"], errors["rx"], errors["tx_dropped"]) == tuple(
        sysfs_counter(device_channel, name) for name in ("tx_errors", "rx_errors", "tx_dropped"))


def test_the_status_shows_the_controller_state_and_counters_as_ip_link_shows_them(
        daemon, device_channel, vcan_channels, artifacts_dir):  # noqa: F811
    for channel in vcan_channels:
        record_link(channel, artifacts_dir)
    d = daemon(record=False)
    d.wait_sending()
    status = d.wait_for(lambda s: s["can"]["controller"] is not None, 10, "the controller in the status")
    expected = controller_by_ip(ip_link(device_channel))     # QEMU's model counts no error: nothing moves
    assert status["can"]["controller"] == expected
    assert expected["state"] == "ERROR-ACTIVE" and expected["berr_counter"] == {"tx": 0, "rx": 0}, expected
    text = format_status(status, config.load(d.config_path))
    assert "controller ERROR-ACTIVE (berr-counter tx 0 rx 0) restart-ms 1000; re-started 0 bus-errors 0" in text, text


def test_link_down_reads_stopped_and_up_reads_error_active_and_the_frames_resume(
        daemon, candump, device_channel):  # noqa: F811
    d = daemon(record=False)
    d.wait_sending()
    subprocess.run(["ip", "link", "set", device_channel, "down"], check=True)
    status = d.wait_for(lambda s: s["can"]["state"] == "down" and (s["can"]["controller"] or {}).get("state")
                        == "STOPPED", 10, "link down, controller STOPPED")
    assert status["can"]["controller"] == controller_by_ip(ip_link(device_channel))
    recorder = candump()
    subprocess.run(["ip", "link", "set", device_channel, "up"], check=True)
    up_at = time.time()
    status = d.wait_for(lambda s: s["can"]["state"] == "up" and s["can"]["controller"]["state"] == "ERROR-ACTIVE",
                        10, "link up, controller ERROR-ACTIVE")
    time.sleep(3)
    captured = recorder.stop()
    assert status["can"]["controller"] == controller_by_ip(ip_link(device_channel))
    for frame_id in PYLON_IDS:
        sent = [c.timestamp for c in captured if c.frame.arbitration_id == frame_id]
        assert sent and sent[0] - up_at < 2 * PERIOD, "0x%X resumed within two periods" % frame_id
    assert d.process.poll() is None and d.status()["workers"]["bms_tx"]["alive"]


def test_alone_on_its_bus_the_controller_state_is_reported_as_the_kernel_has_it(
        daemon, device_channel, vcan_channels):  # noqa: F811
    """Every other controller down: nobody acknowledges the daemon's frames. A real SJA1000 goes
    ERROR-PASSIVE (tx error counter 128) and its queue fills; QEMU's model completes the frames
    anyway and stays ERROR-ACTIVE (module docstring). Either way the status says what the kernel
    says, and the daemon keeps running."""
    others = [channel for channel in vcan_channels if channel != device_channel]
    d = daemon(record=False)
    d.wait_sending()
    sent_before = sysfs_counter(device_channel, "tx_packets")
    try:
        for channel in others:
            subprocess.run(["ip", "link", "set", channel, "down"], check=True)
        time.sleep(6 + 1)       # past the controller read's 5 s cadence
        status = d.status()
        expected = controller_by_ip(ip_link(device_channel))
    finally:
        for channel in others:
            subprocess.run(["ip", "link", "set", channel, "up"], check=True)
    sent = sysfs_counter(device_channel, "tx_packets") - sent_before
    print("alone on the bus: %s, %d frames sent" % (expected, sent))
    assert status["can"]["controller"] == expected
    assert d.process.poll() is None and status["workers"]["bms_tx"]["alive"]
