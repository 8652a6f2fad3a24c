"""python-can's slcan interface against an emulated CANable with stock slcan firmware on a pty:
what the daemon could use it for, and why it must not (one serial port, several processes)."""
import time

import can
import pytest

import config
from tests.slcan_adapter import EmulatedSlcanAdapter


@pytest.fixture
def adapter():
    emulated = EmulatedSlcanAdapter()
    yield emulated
    emulated.close()


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_python_can_opens_at_the_bit_rate_sends_and_receives_both_id_lengths_and_closes(adapter):
    bus = can.Bus(interface="slcan", channel=adapter.path, bitrate=500000, sleep_after_open=0)
    try:
        wait_until(lambda: adapter.mode == "open")
        assert adapter.bitrate == 500000 and adapter.commands[:2] == ["C", "S6"] and adapter.errors == 0, adapter.commands
        bus.send(can.Message(arbitration_id=0x351, data=bytes.fromhex("1402e803e8030000"), is_extended_id=False))
        bus.send(can.Message(arbitration_id=0x18DAF110, data=b"\x01\x02", is_extended_id=True))
        wait_until(lambda: len(adapter.sent) == 2)
        assert [(f.arbitration_id, f.data, f.is_extended_id) for f in adapter.sent] == [
            (0x351, bytes.fromhex("1402e803e8030000"), False), (0x18DAF110, b"\x01\x02", True)]
        adapter.inject(0x305, bytes(8))
        adapter.inject(0x1ABCDEF0, b"\xff", is_extended_id=True)
        received = [bus.recv(2), bus.recv(2)]
        assert [(m.arbitration_id, bytes(m.data), m.is_extended_id) for m in received] == [
            (0x305, bytes(8), False), (0x1ABCDEF0, b"\xff", True)]
    finally:
        bus.shutdown()
    wait_until(lambda: adapter.mode is None)


def test_the_firmware_refuses_a_bit_rate_change_while_open_and_frames_while_closed(adapter):
    """What the README's "cannot change speed once up" means: S6 on an open channel is an error."""
    bus = can.Bus(interface="slcan", channel=adapter.path, bitrate=500000, sleep_after_open=0)
    try:
        wait_until(lambda: adapter.mode == "open")
        bus._write("S5")
        wait_until(lambda: adapter.errors == 1)
        assert adapter.bitrate == 500000
        bus.close()
        bus.send(can.Message(arbitration_id=0x351, data=b"\x00", is_extended_id=False))
        wait_until(lambda: adapter.errors == 2)
        assert adapter.sent == [] and not adapter.inject(0x305, bytes(8)), "closed: nothing crosses"
    finally:
        bus.shutdown()


def test_the_daemon_refuses_slcan_and_names_slcand_instead():
    """bms_tx, can_rx, the failsafe and the standby each open the bus: on one serial port each
    open resets the adapter and they split its input. slcand makes it a SocketCAN interface."""
    with pytest.raises(config.ConfigError) as error:
        config.load().replace(can={"interface": "slcan", "channel": "/dev/ttyACM0"})
    assert any("can.interface = 'slcan'" in problem and "slcand" in problem and "socketcan" in problem
               for problem in error.value.problems), error.value.problems
