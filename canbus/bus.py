"""Open a python-can bus from ``[can]``; the only place that knows interface quirks."""
import errno
import struct
import threading
import time
from typing import List, Optional, Sequence, Tuple

import can
from can.interfaces.socketcan import SocketcanBus, constants, socketcan

from protocol.frame import Frame

QUEUE_FULL_WAIT_S = 0.05    # per frame: how long a full TX queue may delay it (a burst of ~200 frames)
QUEUE_FULL_RETRY_S = 0.001  # a full queue empties at about one frame per 0.25 ms at 500 kbit/s


class QueueWaitingSocketcanBus(SocketcanBus):
    """SocketCAN answers a full TX queue with ENOBUFS at once where other interfaces block, so a
    burst longer than the adapter's queue (txqueuelen 10 on gs_usb and MCP2515) would lose its
    tail, and the sender would take the bus for broken. A send waits for room instead, up to
    QUEUE_FULL_WAIT_S (or its own longer timeout); each full queue met is counted in
    ``queue_full``, this process's count over all its buses, which the status shows."""

    queue_full = 0

    def send(self, msg: can.Message, timeout: Optional[float] = None) -> None:
        deadline = time.monotonic() + max(timeout or 0.0, QUEUE_FULL_WAIT_S)
        while True:
            try:
                super().send(msg, timeout)
                return
            except can.CanOperationError as error:
                if error.error_code != errno.ENOBUFS or time.monotonic() >= deadline:
                    raise
                QueueWaitingSocketcanBus.queue_full += 1
            time.sleep(QUEUE_FULL_RETRY_S)


def open_bus(cfg, can_filters: Optional[List[dict]] = None, receive: bool = True) -> can.BusABC:
    """A bus on ``cfg.can``. On SocketCAN the filters are installed in the kernel.

    ``receive=False`` is for a socket that only sends: on SocketCAN it then takes no frames at
    all, so a busy bus does not fill a queue nobody reads. On SocketCAN a send waits for room in
    a full TX queue (QueueWaitingSocketcanBus).
    The bit rate of a SocketCAN interface belongs to the interface (``ip link set can0 type
    can bitrate 500000``, done by the installer); python-can cannot set it there.
    """
    if cfg.can.interface == "socketcan":
        bus = QueueWaitingSocketcanBus(channel=cfg.can.channel, can_filters=can_filters)
    else:
        kwargs = {"interface": cfg.can.interface, "channel": cfg.can.channel, "can_filters": can_filters}
        if cfg.can.interface == "udp_multicast":
            kwargs["port"] = cfg.can.udp_port
        else:
            kwargs["bitrate"] = cfg.can.bitrate
        bus = can.Bus(**kwargs)
    if not receive and cfg.can.interface == "socketcan":
        bus.socket.setsockopt(constants.SOL_CAN_RAW, constants.CAN_RAW_FILTER, b"")    # no filter: nothing
        bus.socket.setsockopt(constants.SOL_CAN_RAW, constants.CAN_RAW_ERR_FILTER, struct.pack("=I", 0))
    return bus


def kernel_cyclic(cfg) -> bool:
    """True where periodic frames are sent by the kernel (SocketCAN's broadcast manager),
    so they keep their cadence even while the sending process is stopped."""
    return cfg.can.interface == "socketcan"


class _ConfirmingSender:
    """The bus as a python-can task thread uses it: ``sent`` is set once a frame has gone out."""

    def __init__(self, bus: can.BusABC, sent: threading.Event):
        self._bus = bus
        self._sent = sent

    def send(self, message: can.Message, timeout: Optional[float] = None) -> None:
        self._bus.send(message, timeout)
        self._sent.set()


def kernel_periodic(bus: can.BusABC) -> bool:
    """True for a bus whose periodic tasks the kernel runs: they go on while the process is stopped."""
    return isinstance(bus, SocketcanBus)


def start_periodic(bus: can.BusABC, message: can.Message, period: float, send_lock: threading.Lock,
                   timeout: float, lease_frames: int = 0) -> Tuple[can.broadcastmanager.CyclicSendTaskABC,
                                                                    threading.Event]:
    """Start sending ``message`` every ``period`` s, and wait up to ``timeout`` s for its first frame.

    The event is set once the first frame has been handed to the bus: a task stopped (or a
    process killed) before that has sent nothing. SocketCAN's broadcast manager sends it within
    the call that sets the task up. Elsewhere a python-can task thread sends it a little later;
    that task is not the bus's own (``bus.shutdown()`` does not stop it: its owner does), and
    ``send_lock`` keeps the threads of one frame set from sending at once.

    ``lease_frames`` (kernel tasks only; 0: no limit): the kernel sends that many frames, the
    first one now, and then stops unless ``update_periodic`` renews the lease before.
    """
    first_sent = threading.Event()
    if kernel_periodic(bus):
        # python-can asks the kernel for int(duration / period) frames: half a period more is exact.
        task = bus.send_periodic(message, period, duration=(lease_frames + 0.5) * period if lease_frames else None)
        first_sent.set()
    else:
        task = can.broadcastmanager.ThreadBasedCyclicSendTask(_ConfirmingSender(bus, first_sent), send_lock,
                                                              message, period)
        first_sent.wait(timeout)
    return task, first_sent


def update_periodic(task: can.broadcastmanager.CyclicSendTaskABC, message: can.Message, lease_frames: int = 0,
                    interval: Optional[float] = None) -> None:
    """Send ``message``'s data from the task's next frame on, keeping its phase. A kernel task
    with ``lease_frames`` gets that many frames from its next one on (its lease is renewed); it
    must still be running: a lapsed lease is not restarted by this (the timer is left alone).

    ``interval`` (kernel tasks only): the time from its next frame to the one after, and on (the
    broadcast manager arms each frame's timer when the previous one fires, so its frames drift
    late by the timer's latency unless this is a little shorter than the period). The timer is
    never restarted (no STARTTIMER), so nothing is sent now and the running phase is kept."""
    if not isinstance(task, socketcan.CyclicSendTask) or not (lease_frames or interval):
        task.modify_data(message)
        return
    interval = task.period if interval is None else interval
    seconds = int(interval)
    timer = (seconds, int(round((interval - seconds) * 1e6)))
    # count frames at ival1, then none (a lease); without one, every frame at ival2
    ival1, ival2 = (timer, (0, 0)) if lease_frames else ((0, 0), timer)
    header = socketcan.build_bcm_header(constants.CAN_BCM_TX_SETUP, constants.SETTIMER | task.flags, lease_frames,
                                        ival1[0], ival1[1], ival2[0], ival2[1], task.task_id, 1)
    socketcan.send_bcm(task.bcm_socket, header + socketcan.build_can_frame(message))
    task.messages = (message,)


def receive_only(bus: can.BusABC, frames: Sequence[Frame]) -> None:
    """Let a bus receive only frames with these IDs (its own periodic frames, to time them)."""
    bus.set_filters([{"can_id": frame.arbitration_id, "can_mask": 0x1FFFFFFF if frame.is_extended_id else 0x7FF,
                      "extended": frame.is_extended_id} for frame in frames])


def to_message(frame: Frame) -> can.Message:
    return can.Message(arbitration_id=frame.arbitration_id, data=frame.data,
                       is_extended_id=frame.is_extended_id)


def to_frame(message: can.Message) -> Frame:
    return Frame(message.arbitration_id, bytes(message.data), message.is_extended_id)
