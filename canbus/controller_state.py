"""A CAN controller's state and error counters, as the kernel keeps them.

What ``ip -details -statistics link show dev can0`` prints as ``can state ERROR-ACTIVE
(berr-counter tx 0 rx 0) restart-ms 1000`` and ``re-started bus-errors arbit-lost error-warn
error-pass bus-off``, read over rtnetlink in pure Python: no process is started (a fork of a
worker costs a Cerbo more than the read), and no iproute2 with JSON output is needed on the
device. ``parse_link_message`` is pure, so recorded kernel answers test it.
"""
import os
import socket
import struct
from typing import Dict, Optional

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 2
IFLA_IFNAME, IFLA_LINKINFO = 3, 18
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_XSTATS = 1, 2, 3
IFLA_CAN_STATE, IFLA_CAN_RESTART_MS, IFLA_CAN_BERR_COUNTER = 4, 6, 8
NLA_TYPE_MASK = 0x3FFF      # without the nested / byte-order flags

_NLMSGHDR = struct.Struct("=IHHII")         # length, type, flags, sequence, port
_IFINFOMSG = struct.Struct("=BxHiII")       # family, device type, index, flags, change mask
_RTATTR = struct.Struct("=HH")              # length, type

# enum can_state (linux/can/netlink.h), spelt as iproute2 prints it.
CAN_STATES = ("ERROR-ACTIVE", "ERROR-WARNING", "ERROR-PASSIVE", "BUS-OFF", "STOPPED", "SLEEPING")
# struct can_device_stats (IFLA_INFO_XSTATS of a can device), in its order, named as iproute2's JSON names them.
DEVICE_STATS = ("bus_error", "error_warning", "error_passive", "bus_off", "arbitration_lost", "restarts")


class NotACanController(Exception):
    """The interface exists but is no CAN controller (vcan, slcan without bit timing...)."""


def _attributes(data: bytes) -> Dict[int, bytes]:
    """Netlink attributes (type -> payload) of one level, each padded to 4 bytes."""
    found = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > len(data):
            raise ValueError("a netlink attribute of length %d at offset %d runs past its message of %d bytes"
                             % (length, offset, len(data)))
        found[kind & NLA_TYPE_MASK] = data[offset + _RTATTR.size:offset + length]
        offset += (length + 3) & ~3
    return found


def parse_link_message(message: bytes) -> dict:
    """One RTM_NEWLINK message (from its netlink header on) of a CAN interface: its controller
    state, error counters and restart delay. Raises NotACanController for any other link,
    ValueError for a message that is not a well-formed link message."""
    if len(message) < _NLMSGHDR.size + _IFINFOMSG.size:
        raise ValueError("a link message needs at least %d bytes, got %d" % (_NLMSGHDR.size + _IFINFOMSG.size,
                                                                              len(message)))
    length, kind, _, _, _ = _NLMSGHDR.unpack_from(message)
    if kind == NLMSG_ERROR:
        code = struct.unpack_from("=i", message, _NLMSGHDR.size)[0]
        raise OSError(-code, "the kernel refused the link request: %s" % os.strerror(-code))
    if kind != RTM_NEWLINK:
        raise ValueError("netlink message type %d is no link message (RTM_NEWLINK, %d)" % (kind, RTM_NEWLINK))
    link = _attributes(message[_NLMSGHDR.size + _IFINFOMSG.size:length])
    info = _attributes(link.get(IFLA_LINKINFO, b""))
    kind_name = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode(errors="replace")
    name = link.get(IFLA_IFNAME, b"?").rstrip(b"\0").decode(errors="replace")
    if kind_name != "can":
        raise NotACanController("%s is a %s link, not a CAN controller" % (name, kind_name or "plain"))
    data = _attributes(info.get(IFLA_INFO_DATA, b""))
    controller = {"state": None, "berr_counter": None, "restart_ms": None}
    if IFLA_CAN_STATE in data:
        state = struct.unpack_from("=I", data[IFLA_CAN_STATE])[0]
        controller["state"] = CAN_STATES[state] if state < len(CAN_STATES) else "UNKNOWN-%d" % state
    if IFLA_CAN_BERR_COUNTER in data:      # only where the driver can read its error counters
        tx, rx = struct.unpack_from("=HH", data[IFLA_CAN_BERR_COUNTER])
        controller["berr_counter"] = {"tx": tx, "rx": rx}
    if IFLA_CAN_RESTART_MS in data:
        controller["restart_ms"] = struct.unpack_from("=I", data[IFLA_CAN_RESTART_MS])[0]
    xstats = info.get(IFLA_INFO_XSTATS)
    if xstats is not None and len(xstats) >= 4 * len(DEVICE_STATS):
        controller.update(zip(DEVICE_STATS, struct.unpack_from("=%dI" % len(DEVICE_STATS), xstats)))
    else:
        controller.update(dict.fromkeys(DEVICE_STATS))
    return controller


def request_link_message(channel: str, timeout_s: float = 0.2) -> bytes:
    """The kernel's RTM_NEWLINK answer about ``channel`` (the kernel answers within the request,
    so ``timeout_s`` only bounds a kernel that does not)."""
    name = channel.encode() + b"\0"
    attribute = _RTATTR.pack(_RTATTR.size + len(name), IFLA_IFNAME) + name
    attribute += b"\0" * (-len(attribute) % 4)
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attribute
    request = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(request, (0, 0))
        return sock.recv(65536)


def read_controller(channel: str) -> Optional[dict]:
    """``channel``'s controller state and counters; None for an interface that is no CAN
    controller (vcan). Raises OSError or ValueError when the kernel cannot tell."""
    try:
        return parse_link_message(request_link_message(channel))
    except NotACanController:
        return None
