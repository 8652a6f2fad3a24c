"""canbus/responder.py on python-can's virtual bus: polls answered at once from the current report,
nothing answered while another sender holds the bus, nothing at all once stopped."""
import errno
import time

import can
import pytest

import config
from canbus.bus import to_frame, to_message
from canbus.responder import PollResponder
from protocol import profiles
from protocol.frame import Frame
from tests.unit.test_protocol_hv import hv_report

CHANNEL = "hv-responder-test"


class Log:
    def __init__(self):
        self.lines = []

    def warning(self, *args):
        self.lines.append(args[0] % args[1:])

    error = warning


@pytest.fixture
def wire():
    inverter = can.Bus(interface="virtual", channel=CHANNEL)
    battery = can.Bus(interface="virtual", channel=CHANNEL)
    yield inverter, battery
    inverter.shutdown()


def heard(bus, wait_s=0.3):
    frames, deadline = [], time.monotonic() + wait_s
    while time.monotonic() < deadline:
        msg = bus.recv(0.05)
        if msg is not None:
            frames.append(to_frame(msg))
    return frames


def poll(byte0=0):
    return to_message(Frame(0x4200, bytes([byte0]) + bytes(7), True))


def test_a_poll_is_answered_at_once_from_the_report_of_the_moment(wire):
    inverter, battery = wire
    current = {"report": hv_report()}
    holds = {"bus": True}
    profile = profiles.get("pylon_hv")
    responder = PollResponder(config.load(), profile, lambda: current["report"], Log(),
                              may_answer=lambda: holds["bus"], bus=battery)
    try:
        inverter.send(poll(0))
        replies = heard(inverter)
        assert replies == profile.answer(Frame(0x4200, bytes(8), True), current["report"])
        current["report"] = hv_report(charge_current_a=12.5)
        inverter.send(poll(0))
        limits = [f for f in heard(inverter) if f.arbitration_id == 0x4220][0]
        assert profile.decode(limits).fields["charge_current_a"] == 12.5
        holds["bus"] = False            # the failsafe (or bms_tx) holds it: silent
        inverter.send(poll(0))
        assert heard(inverter) == []
        stats = responder.stats()
        assert stats["answered"] == 2 and stats["requests"] == {"ensemble": 3}
        assert 0 < stats["max_latency_s"] < 0.1
    finally:
        started = time.monotonic()
        responder.stop()
        assert time.monotonic() - started < 0.1      # the next sender may answer the next poll at once
    holds["bus"] = True
    inverter.send(poll(0))
    assert heard(inverter) == []          # stopped: never a late answer


def test_a_frame_too_short_is_logged_and_not_answered(wire):
    inverter, battery = wire
    log = Log()
    responder = PollResponder(config.load(), profiles.get("pylon_hv"), hv_report, log, bus=battery)
    try:
        inverter.send(can.Message(arbitration_id=0x4200, data=b"", is_extended_id=True))
        assert heard(inverter) == [] and "0x4200" in log.lines[0]
    finally:
        responder.stop()


class QueueFullOnce(can.BusABC):
    """A bus whose TX queue is full (ENOBUFS, as SocketCAN reports it) for the first ``full`` sends."""

    def __init__(self, full):
        self.full = full
        self.sent = []
        super().__init__(channel="queue-full")

    def send(self, msg, timeout=None):
        if self.full:
            self.full -= 1
            raise can.CanOperationError("Failed to transmit: No buffer space available", errno.ENOBUFS)
        self.sent.append(to_frame(msg))

    def _recv_internal(self, timeout):
        time.sleep(min(timeout or 0.01, 0.01))
        return None, False


def test_a_full_tx_queue_paces_the_burst_instead_of_losing_it():
    bus = QueueFullOnce(full=3)
    profile = profiles.get("deye_hv")      # the longest burst: 11 frames
    responder = PollResponder(config.load(), profile, hv_report, Log(), bus=bus)
    try:
        responder.on_message_received(poll(0))
        assert bus.sent == profile.answer(Frame(0x4200, bytes(8), True), hv_report())
        assert responder.stats()["send_failures"] == 0
    finally:
        responder.stop()
