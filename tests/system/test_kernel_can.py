"""The SocketCAN primitives the daemon is built on, on a real kernel, seen by can-utils.

python-can sends and filters; candump (kernel timestamps) and cansend/cangen are the
independent side. Timing tolerances allow for the VM running without KVM.
"""
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Dict, List

import can

from canbus.bus import to_frame, to_message
from protocol.frame import Frame
from tests.system import can_utils

# A Pylontech-like frame set: six IDs sent one after another, each every second.
FRAME_SET = [
    Frame(0x351, bytes.fromhex("14022C01F401C201")),
    Frame(0x355, bytes.fromhex("1A006400")),
    Frame(0x356, bytes.fromhex("4E13020004010000")),
    Frame(0x359, bytes.fromhex("0000000000000000")),
    Frame(0x35C, bytes.fromhex("C0")),
    Frame(0x35E, bytes.fromhex("50594C4F4E202020")),
]
CYCLE_S = 1.0
KERNEL_JITTER_S = 0.05  # timers fire a few ms late in the VM without KVM, more on a busy host


def receive_all(bus: can.BusABC, quiet_s: float) -> List[Frame]:
    """Everything the bus receives until it has been quiet for quiet_s."""
    frames = []
    message = bus.recv(timeout=quiet_s)
    while message is not None:
        frames.append(to_frame(message))
        message = bus.recv(timeout=quiet_s)
    return frames


def wait_for_traffic(channel: str, frames: int, timeout_s: float) -> None:
    """Wait until the interface has sent this many more frames (someone else is sending)."""
    counter = Path("/sys/class/net/%s/statistics/tx_packets" % channel)
    start = int(counter.read_text())
    deadline = time.monotonic() + timeout_s
    while int(counter.read_text()) - start < frames:
        assert time.monotonic() < deadline, "no traffic on %s within %s s" % (channel, timeout_s)
        time.sleep(0.01)


def times_by_id(captured: List[can_utils.CapturedFrame]) -> Dict[int, List[float]]:
    times = {}  # type: Dict[int, List[float]]
    for entry in captured:
        times.setdefault(entry.frame.arbitration_id, []).append(entry.timestamp)
    return times


def assert_on_grid(stamps: List[float], cycle_s: float, tolerance_s: float, what: str) -> None:
    """Every timestamp within tolerance_s of one fixed grid of period cycle_s (so no drift)."""
    offsets = sorted(stamp - k * cycle_s for k, stamp in enumerate(stamps))
    anchor = offsets[len(offsets) // 2]
    worst = max(abs(offset - anchor) for offset in offsets)
    assert worst < tolerance_s, "%s: off its %s s grid by up to %.3f s: %s" % (
        what, cycle_s, worst, [round(b - a, 3) for a, b in zip(stamps, stamps[1:])])


def test_bcm_tasks_send_six_ids_evenly_spread_each_once_per_second(vcan_channel, candump):
    """One kernel periodic task per ID, started 1/6 s apart, as the daemon does.
    (python-can refuses one task for a list of different IDs: it cycles data of one ID.)"""
    step_s = CYCLE_S / len(FRAME_SET)
    recorder = candump()
    with can.Bus(interface="socketcan", channel=vcan_channel) as bus:
        tasks = []
        for frame in FRAME_SET:
            tasks.append(bus.send_periodic(to_message(frame), period=CYCLE_S))
            time.sleep(step_s)
        time.sleep(3 * CYCLE_S)
        for task in tasks:
            task.stop()
        stopped_at = time.time()
        time.sleep(0.5)
    captured = recorder.stop()

    assert recorder.dropped == 0
    assert [entry.frame for entry in captured[:len(FRAME_SET)]] == FRAME_SET
    sent_order = [entry.frame for entry in captured]
    assert sent_order == [FRAME_SET[i % len(FRAME_SET)] for i in range(len(sent_order))]
    assert len(captured) >= 4 * len(FRAME_SET) - 1
    for can_id, stamps in times_by_id(captured).items():
        assert_on_grid(stamps, CYCLE_S, KERNEL_JITTER_S, "ID %03X" % can_id)
    # The phases between IDs come from Python's sleeps, so only "evenly spread" is checked.
    assert_on_grid([entry.timestamp for entry in captured], step_s, step_s / 2, "the frame set")
    assert captured[-1].timestamp < stopped_at, "the kernel went on sending after stop()"


def _send_periodic_then_wait(channel: str, ready) -> None:
    """Child process: start a kernel periodic task, then block until killed."""
    bus = can.Bus(interface="socketcan", channel=channel)
    bus.send_periodic([to_message(FRAME_SET[0])], period=0.1)
    ready.set()
    signal.pause()


def test_bcm_keeps_sending_while_its_process_is_stopped_and_stops_when_it_dies(vcan_channel, candump):
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    sender = fork.Process(target=_send_periodic_then_wait, args=(vcan_channel, ready), daemon=True)
    sender.start()
    assert ready.wait(timeout=30), "the sender process did not start its periodic task"
    recorder = candump()
    os.kill(sender.pid, signal.SIGSTOP)
    stopped_at = time.time()
    time.sleep(1.0)
    os.kill(sender.pid, signal.SIGKILL)
    sender.join(timeout=10)
    killed_at = time.time()
    time.sleep(0.5)
    captured = recorder.stop()

    while_stopped = [e for e in captured if stopped_at + 0.1 < e.timestamp < killed_at - 0.1]
    assert len(while_stopped) >= 6, "the kernel stopped sending while the process was stopped"
    after_death = [e for e in captured if e.timestamp > killed_at]
    assert after_death == [], "frames went on after the sending process died: %s" % after_death


def test_kernel_filters_pass_only_wanted_ids_while_foreign_frames_flood(vcan_channel, candump):
    flood_count = 20000
    wanted = [Frame(0x305, bytes([i])) for i in range(10)] + [Frame(0x307, bytes([0x50, i])) for i in range(10)]
    filters = [{"can_id": 0x305, "can_mask": 0x7FF, "extended": False},
               {"can_id": 0x307, "can_mask": 0x7FF, "extended": False}]
    recorder = candump()
    with can.Bus(interface="socketcan", channel=vcan_channel, can_filters=filters) as receiver, \
            can.Bus(interface="socketcan", channel=vcan_channel) as sender:
        flood = can_utils.cangen(vcan_channel, ["-g", "0", "-p", "100", "-I", "7FF", "-L", "8",
                                                "-n", str(flood_count)])
        wait_for_traffic(vcan_channel, frames=flood_count // 10, timeout_s=30)
        for frame in wanted:
            sender.send(to_message(frame))
            time.sleep(0.005)
        assert flood.wait(timeout=120) == 0, flood.stderr.read()
        received = receive_all(receiver, quiet_s=0.5)
    captured = recorder.stop()

    flood_at = [i for i, entry in enumerate(captured) if entry.frame.arbitration_id == 0x7FF]
    wanted_at = [i for i, entry in enumerate(captured) if entry.frame in wanted]
    assert len(flood_at) + recorder.dropped == flood_count, "cangen did not flood the bus"
    assert len(wanted_at) == len(wanted) and flood_at[0] < wanted_at[0] < wanted_at[-1] < flood_at[-1], (
        "the wanted frames were not sent while the flood went on")
    assert received == wanted


def test_frames_from_cansend_reach_python_can(vcan_channel, cansend):
    frames = [Frame(0x100 + length, bytes(range(0xA0, 0xA0 + length))) for length in range(9)]
    frames.append(Frame(0x7FF, b"\xff" * 8))
    with can.Bus(interface="socketcan", channel=vcan_channel) as receiver:
        for frame in frames:
            cansend(frame)
        received = receive_all(receiver, quiet_s=0.5)
    assert received == frames


def test_29_bit_ids_round_trip_and_filter_apart_from_11_bit_ids(vcan_channel, candump, cansend):
    extended = Frame(0x18FF50E5, bytes.fromhex("0102030405060708"), is_extended_id=True)
    same_low_bits_standard = Frame(0x0E5, bytes.fromhex("0102"))
    neighbour = Frame(0x18FF50E6, b"\x00", is_extended_id=True)
    only_extended = [{"can_id": extended.arbitration_id, "can_mask": 0x1FFFFFFF, "extended": True}]
    recorder = candump()
    with can.Bus(interface="socketcan", channel=vcan_channel, can_filters=only_extended) as receiver, \
            can.Bus(interface="socketcan", channel=vcan_channel) as sender:
        sender.send(to_message(extended))
        cansend(same_low_bits_standard)
        cansend(neighbour)
        cansend(extended)
        received = receive_all(receiver, quiet_s=0.5)
    captured = recorder.stop()

    assert [entry.frame for entry in captured] == [extended, same_low_bits_standard, neighbour, extended]
    assert received == [extended, extended]


def test_loopback_off_hides_only_a_sockets_own_frames(vcan_channel):
    """What ``receive_own_messages=False`` means for the daemon: a socket does not read what
    it sent itself, but every other socket on the machine does, including frames sent by
    the kernel's periodic tasks. So can_rx must filter out our own IDs by kernel filter."""
    own = Frame(0x351, b"\x01")
    with can.Bus(interface="socketcan", channel=vcan_channel, receive_own_messages=False) as sender, \
            can.Bus(interface="socketcan", channel=vcan_channel) as other:
        sender.send(to_message(own))
        task = sender.send_periodic([to_message(FRAME_SET[1])], period=0.1)
        time.sleep(0.35)
        task.stop()
        seen_by_sender = receive_all(sender, quiet_s=0.3)
        seen_by_other = receive_all(other, quiet_s=0.3)
    assert own in seen_by_other and FRAME_SET[1] in seen_by_other
    assert own not in seen_by_sender
    assert FRAME_SET[1] in seen_by_sender, "periodic frames come from another (BCM) socket"

