"""A CANable with stock slcan firmware, the way the README says to use it: attached by slcand
(the kernel's slcan driver), the daemon on the SocketCAN interface it makes.

The adapter is emulated on a pseudo-terminal (tests/slcan_adapter.py, the firmware's ASCII
protocol); python-can's own slcan interface is tested against it in
tests/unit/test_slcan_adapter.py, and refused for the daemon (one serial port, several processes).
"""
import subprocess
import threading
import time
from pathlib import Path

import pytest

from service import can_link
from tests.slcan_adapter import EmulatedSlcanAdapter
from tests.system.test_daemon import PERIOD, PYLON_IDS, daemon  # noqa: F401 (daemon: a fixture)

INTERFACE = "slcan0"


@pytest.fixture
def attached_adapter(artifacts_dir):
    adapter = EmulatedSlcanAdapter()
    slcand = subprocess.Popen(["slcand", "-o", "-c", "-s6", "-F", adapter.path, INTERFACE],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not Path("/sys/class/net", INTERFACE).exists():
            assert slcand.poll() is None and time.monotonic() < deadline, "slcand did not make %s" % INTERFACE
            time.sleep(0.1)
        subprocess.run(["ip", "link", "set", INTERFACE, "up"], check=True)
        details = subprocess.run(["ip", "-details", "link", "show", INTERFACE], stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout
        (artifacts_dir / "ip-details.txt").write_text(details)
        yield adapter, details
    finally:
        slcand.terminate()
        slcand.wait(10)
        adapter.close()


def test_slcand_opens_the_adapter_at_500k_and_the_daemon_sends_and_hears_through_it(attached_adapter,
                                                                                      daemon):  # noqa: F811
    adapter, details = attached_adapter
    assert adapter.commands[:3] == ["C", "S6", "O"] and adapter.bitrate == 500000 and adapter.mode == "open"
    assert can_link.parse_link(details).up
    d = daemon(can={"channel": INTERFACE}, record=False)
    d.wait_sending()
    stopping = threading.Event()

    def keep_alives():
        while not stopping.wait(PERIOD):
            adapter.inject(0x305, bytes(8))

    inverter = threading.Thread(target=keep_alives, daemon=True)
    inverter.start()
    try:
        status = d.wait_for(lambda s: s["inverter"]["link"] == "up", 10, "the link up on the adapter's 0x305")
        start = time.monotonic()
        time.sleep(4.5)
    finally:
        stopping.set()
        inverter.join()
    assert adapter.errors == 0, adapter.commands[-10:]
    for frame_id in PYLON_IDS:
        stamps = [f.t for f in adapter.sent if f.arbitration_id == frame_id and f.t >= start]
        assert len(stamps) >= 4 and max(b - a for a, b in zip(stamps, stamps[1:])) < 1.5 * PERIOD, (hex(frame_id), stamps)
    assert status["can"]["errors"]["send_failures"] == 0
