"""A full SocketCAN TX queue (ENOBUFS) delays a send, is counted, and loses nothing.

SocketCAN refuses a frame at once when the interface's queue is full (txqueuelen 10 on gs_usb,
MCP2515), where python-can's plain bus raises: the whole frame set was then taken down and
reopened a cycle later. QEMU's SJA1000 never fills its queue (tests/system/test_controllers.py),
so the kernel's answer is played here by the socket call python-can makes.
"""
import errno
import socket

import can
import pytest

from canbus import bus as bus_module
from canbus.bus import QUEUE_FULL_WAIT_S, QueueWaitingSocketcanBus


class Answers:
    """``_send_once`` answering each call with the next errno (None: the frame is queued)."""

    def __init__(self, *errnos):
        self.errnos, self.sent = list(errnos), []

    def __call__(self, data, channel=None):
        code = self.errnos.pop(0) if self.errnos else None
        if code is not None:
            raise can.CanOperationError("Failed to transmit: %s" % errno.errorcode[code], code)
        self.sent.append(data)
        return len(data)


@pytest.fixture
def bus():
    """The bus without a CAN socket (this machine's kernel may have none): a writable socket
    stands in for select(), the answers for the kernel."""
    instance = QueueWaitingSocketcanBus.__new__(QueueWaitingSocketcanBus)
    instance.socket, peer = socket.socketpair()
    yield instance
    instance.socket.close()
    peer.close()


MESSAGE = can.Message(arbitration_id=0x351, data=bytes(8), is_extended_id=False)


def test_a_full_queue_is_waited_for_and_counted(bus):
    bus._send_once = answers = Answers(errno.ENOBUFS, errno.ENOBUFS)
    before = QueueWaitingSocketcanBus.queue_full
    bus.send(MESSAGE)
    assert len(answers.sent) == 1 and QueueWaitingSocketcanBus.queue_full - before == 2


def test_a_queue_that_stays_full_fails_after_the_wait(bus, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(bus_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(bus_module.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    bus._send_once = answers = Answers(*[errno.ENOBUFS] * 10000)
    with pytest.raises(can.CanOperationError) as raised:
        bus.send(MESSAGE)
    assert raised.value.error_code == errno.ENOBUFS and not answers.sent
    assert clock[0] - 1000.0 == pytest.approx(QUEUE_FULL_WAIT_S, abs=0.002)


@pytest.mark.parametrize("code", [errno.ENETDOWN, errno.ENXIO])
def test_other_errors_are_not_waited_for(bus, code):
    bus._send_once = Answers(code)
    before = QueueWaitingSocketcanBus.queue_full
    with pytest.raises(can.CanOperationError) as raised:
        bus.send(MESSAGE)
    assert raised.value.error_code == code and QueueWaitingSocketcanBus.queue_full == before
