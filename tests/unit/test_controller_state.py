"""The CAN controller's state and counters: parsed from the kernel's rtnetlink answer, read at a
low cadence by the link monitor, never fatal.

The recorded material (tests/unit/data/can_link/) is one moment of an emulated SJA1000 (can0 in
the VM's sja1000 tier): the kernel's raw answer and `ip -json -details -statistics link show`'s
reading of it, so iproute2 is the oracle of the parse. States the emulated controller cannot
reach (ERROR-PASSIVE, BUS-OFF) are built in the kernel's layout (linux/can/netlink.h).
"""
import json
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

import config
from canbus import controller_state
from canbus.bus import QueueWaitingSocketcanBus
from canbus.controller_state import DEVICE_STATS, NotACanController, parse_link_message, read_controller
from health import check
from health.status import format_controller
from tests.unit.test_health_check import healthy_status
from workers import link as link_module
from workers.link import CONTROLLER_READ_EVERY_S, LinkMonitor

RECORDED = Path(__file__).parent / "data" / "can_link"
CFG = config.load()


def attribute(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def link_message(kind=b"can", state=None, berr=None, restart_ms=None, xstats=None, name=b"can0") -> bytes:
    """An RTM_NEWLINK message as the kernel builds it for a link of ``kind``."""
    data = b""
    if state is not None:
        data += attribute(4, struct.pack("=I", state))
    if restart_ms is not None:
        data += attribute(6, struct.pack("=I", restart_ms))
    if berr is not None:
        data += attribute(8, struct.pack("=HH", *berr))
    info = attribute(1, kind + b"\0") + attribute(0x8000 | 2, data)         # IFLA_INFO_DATA, nested flag
    if xstats is not None:
        info += attribute(3, struct.pack("=6I", *xstats))
    body = struct.pack("=BxHiII", 0, 280, 3, 0, 0) + attribute(3, name + b"\0") + attribute(0x8000 | 18, info)
    return struct.pack("=IHHII", 16 + len(body), 16, 0, 1, 0) + body


def recorded(channel):
    return (bytes.fromhex((RECORDED / ("%s.netlink.hex" % channel)).read_text()),
            json.loads((RECORDED / ("%s.ip.json" % channel)).read_text()))


def test_a_recorded_kernel_answer_reads_as_iproute2_read_it():
    message, shown = recorded("can0")
    data, xstats = shown["linkinfo"]["info_data"], shown["linkinfo"]["info_xstats"]
    expected = {"state": data["state"], "berr_counter": data["berr_counter"], "restart_ms": data["restart_ms"]}
    expected.update((name, xstats[name]) for name in DEVICE_STATS)
    assert parse_link_message(message) == expected
    assert expected["state"] == "ERROR-ACTIVE" and expected["restart_ms"] == 1000


@pytest.mark.parametrize("state, name", [(0, "ERROR-ACTIVE"), (1, "ERROR-WARNING"), (2, "ERROR-PASSIVE"),
                                         (3, "BUS-OFF"), (4, "STOPPED"), (5, "SLEEPING"), (9, "UNKNOWN-9")])
def test_every_controller_state_is_named_as_iproute2_names_it(state, name):
    assert parse_link_message(link_message(state=state))["state"] == name


def test_error_counters_in_the_kernels_order():
    controller = parse_link_message(link_message(state=3, berr=(256, 12), restart_ms=100, xstats=(7, 3, 2, 1, 5, 1)))
    assert controller == {"state": "BUS-OFF", "berr_counter": {"tx": 256, "rx": 12}, "restart_ms": 100,
                          "bus_error": 7, "error_warning": 3, "error_passive": 2, "bus_off": 1,
                          "arbitration_lost": 5, "restarts": 1}


def test_a_driver_without_error_counters_leaves_them_unknown():
    controller = parse_link_message(link_message(state=0))
    assert controller["berr_counter"] is None and controller["restarts"] is None and controller["restart_ms"] is None


def test_a_virtual_interface_is_no_controller():
    with pytest.raises(NotACanController, match="vcan0 is a vcan link"):
        parse_link_message(link_message(kind=b"vcan", name=b"vcan0"))
    assert read_controller("lo") is None        # a live answer of this machine's kernel


def test_the_kernels_refusal_and_a_broken_message_are_errors_that_say_what():
    refusal = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -19) + bytes(16)
    with pytest.raises(OSError, match="No such device"):
        parse_link_message(refusal)
    with pytest.raises(OSError):
        read_controller("nosuchcan9")
    with pytest.raises(ValueError, match="at least"):
        parse_link_message(b"\0" * 8)
    broken = bytearray(link_message(state=0))
    broken[32:34] = struct.pack("=H", 2000)     # the first attribute claims more than the message holds
    with pytest.raises(ValueError, match="runs past"):
        parse_link_message(bytes(broken))


class Reads:
    """read_controller as the monitor calls it: counted, answering what the test says."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def __call__(self, channel):
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def monitor(tmp_path, monkeypatch, answer, interface="socketcan"):
    reads, clock = Reads(answer), SimpleNamespace(now=100.0)
    monkeypatch.setattr(link_module, "read_controller", reads)
    link = LinkMonitor(SimpleNamespace(can=SimpleNamespace(interface=interface, channel="can0")),
                       clock=lambda: clock.now)
    link._sys = str(tmp_path)
    (tmp_path / "operstate").write_text("up\n")
    return link, reads, clock


def test_the_controller_is_read_at_a_low_cadence_and_at_once_when_the_link_changes(tmp_path, monkeypatch):
    link, reads, clock = monitor(tmp_path, monkeypatch, {"state": "ERROR-ACTIVE"})
    assert link.read(True)["controller"] == {"state": "ERROR-ACTIVE"} and reads.calls == 1
    for _ in range(4):
        clock.now += 1.0
        assert link.read(True)["controller"] == {"state": "ERROR-ACTIVE"}
    assert reads.calls == 1, "bookkeeping: not every cycle"
    clock.now += CONTROLLER_READ_EVERY_S
    link.read(True)
    assert reads.calls == 2
    (tmp_path / "operstate").write_text("down\n")
    reads.answer = {"state": "STOPPED"}
    clock.now += 0.5
    shown = link.read(True)
    assert (shown["state"], shown["controller"], reads.calls) == ("down", {"state": "STOPPED"}, 3)


@pytest.mark.parametrize("failure", [OSError(19, "No such device"), ValueError("runs past"),
                                     struct.error("unpack requires a buffer of 4 bytes")])
def test_a_failed_read_is_unknown_never_fatal(tmp_path, monkeypatch, failure):
    link, reads, clock = monitor(tmp_path, monkeypatch, failure)
    shown = link.read(True)
    assert shown["controller"]["state"] == "unknown" and str(failure)[:20] in shown["controller"]["error"]
    assert shown["state"] == "up" and shown["link_downs"] == 0


def test_the_sends_that_waited_for_a_full_queue_are_in_the_link(tmp_path, monkeypatch):
    link, _, _ = monitor(tmp_path, monkeypatch, {"state": "ERROR-ACTIVE"})
    monkeypatch.setattr(QueueWaitingSocketcanBus, "queue_full", 3)
    assert link.read(True)["queue_full"] == 3


def test_no_controller_is_read_for_an_interface_other_than_socketcan(tmp_path, monkeypatch):
    link, reads, _ = monitor(tmp_path, monkeypatch, {"state": "ERROR-ACTIVE"}, interface="udp_multicast")
    assert "controller" not in link.read(True) and reads.calls == 0


def test_the_request_names_the_interface_and_asks_for_its_link(monkeypatch):
    sent = []

    class FakeSocket:
        def __init__(self, *args):
            assert args[:3] == (controller_state.socket.AF_NETLINK, controller_state.socket.SOCK_RAW, 0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def settimeout(self, seconds):
            assert 0 < seconds <= 1.0, "a bounded wait: the read must never hold the frames' loop"

        def sendto(self, data, address):
            sent.append(data)

        def recv(self, size):
            return link_message(state=2)

    monkeypatch.setattr(controller_state.socket, "socket", FakeSocket)
    assert read_controller("can1")["state"] == "ERROR-PASSIVE"
    length, kind, flags = struct.unpack_from("=IHH", sent[0])
    assert (length, kind, flags) == (len(sent[0]), 18, 1) and b"can1\0" in sent[0]


def controller(state, **counters):
    shown = {"state": state, "berr_counter": {"tx": 136, "rx": 0}, "restart_ms": 1000}
    shown.update(dict.fromkeys(DEVICE_STATS, 0), **counters)
    return shown


@pytest.mark.parametrize("state", ["BUS-OFF", "STOPPED"])
def test_a_controller_that_sends_nothing_makes_the_daemon_unhealthy(state):
    status = healthy_status(can={"state": "up", "channel": "can0", "controller": controller(state)})
    assert check.problems(status, CFG) == ["CAN controller can0 is %s: it sends nothing (restart-ms 1000)" % state]


@pytest.mark.parametrize("state", ["ERROR-WARNING", "ERROR-PASSIVE"])
def test_a_controller_with_bus_errors_is_a_warning(state):
    status = healthy_status(can={"state": "up", "channel": "can0", "controller": controller(state)})
    assert check.problems(status, CFG) == []
    assert check.warnings(status) == ["CAN controller can0 is %s: the bus has errors (wiring, termination, bit "
                                      "rate?)" % state]


@pytest.mark.parametrize("shown", [None, {"state": "ERROR-ACTIVE"}, {"state": "unknown", "error": "No such device"}])
def test_an_error_active_unknown_or_absent_controller_changes_nothing(shown):
    status = healthy_status(can={"state": "up", "channel": "can0", "controller": shown})
    assert check.problems(status, CFG) == [] and check.warnings(status) == []


def test_the_printed_status_words_the_controller_as_ip_link_does():
    assert format_controller(controller("ERROR-PASSIVE", bus_error=41, error_passive=1)) == (
        "ERROR-PASSIVE (berr-counter tx 136 rx 0) restart-ms 1000; re-started 0 bus-errors 41 arbit-lost 0 "
        "error-warn 0 error-pass 1 bus-off 0")
    assert format_controller({"state": "unknown", "error": "No such device"}) == "unknown (No such device)"
