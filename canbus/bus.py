"""Open a python-can bus from ``[can]``; the only place that knows interface quirks."""
import struct
from typing import List, Optional

import can
from can.interfaces.socketcan import constants

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


def to_message(frame: Frame) -> can.Message:
    return can.Message(arbitration_id=frame.arbitration_id, data=frame.data,
                       is_extended_id=frame.is_extended_id)


def to_frame(message: can.Message) -> Frame:
    return Frame(message.arbitration_id, bytes(message.data), message.is_extended_id)
