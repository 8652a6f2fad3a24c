"""Open a python-can bus from ``[can]``; the only place that knows interface quirks."""
import struct
import threading
from typing import List, Optional, Tuple

import can
from can.interfaces.socketcan import SocketcanBus, constants, socketcan

from protocol.frame import Frame


def open_bus(cfg, can_filters: Optional[List[dict]] = None, receive: bool = True) -> can.BusABC:
    """A bus on ``cfg.can``. On SocketCAN the filters are installed in the kernel.

    ``receive=False`` is for a socket that only sends: on SocketCAN it then takes no frames at
    all, so a busy bus does not fill a queue nobody reads.
    The bit rate of a SocketCAN interface belongs to the interface (``ip link set can0 type
    can bitrate 500000``, done by the installer); python-can cannot set it there.
    """
    kwargs = {"interface": cfg.can.interface, "channel": cfg.can.channel, "can_filters": can_filters}
    if cfg.can.interface == "udp_multicast":
        kwargs["port"] = cfg.can.udp_port
    elif cfg.can.interface != "socketcan":
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


def update_periodic(task: can.broadcastmanager.CyclicSendTaskABC, message: can.Message, lease_frames: int = 0) -> None:
    """Send ``message``'s data from the task's next frame on, keeping its phase. A kernel task
    with ``lease_frames`` gets that many frames from its next one on (its lease is renewed); it
    must still be running: a lapsed lease is not restarted by this (the timer is left alone)."""
    if not (lease_frames and isinstance(task, socketcan.CyclicSendTask)):
        task.modify_data(message)
        return
    seconds = int(task.period)
    header = socketcan.build_bcm_header(constants.CAN_BCM_TX_SETUP, constants.SETTIMER | task.flags, lease_frames,
                                        seconds, int(round((task.period - seconds) * 1e6)), 0, 0, task.task_id, 1)
    socketcan.send_bcm(task.bcm_socket, header + socketcan.build_can_frame(message))
    task.messages = (message,)


def to_message(frame: Frame) -> can.Message:
    return can.Message(arbitration_id=frame.arbitration_id, data=frame.data,
                       is_extended_id=frame.is_extended_id)


def to_frame(message: can.Message) -> Frame:
    return Frame(message.arbitration_id, bytes(message.data), message.is_extended_id)
