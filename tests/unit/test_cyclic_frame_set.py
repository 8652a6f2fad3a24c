"""Taking over a cadence: every due time since the previous sender's last frame is covered once,
the phase is kept (or, for an inverter that wants the spacing, shifted without crowding), and
the wire record lets whoever takes over next continue exactly, whatever step the sender died at."""
import threading
import time

import can
import pytest
from can.interfaces.socketcan import SocketcanBus

from canbus.cyclic import CyclicFrameSet, Schedule, known_sent_until
from protocol import profiles, sma
from protocol.frame import Frame
from protocol.profile import Profile

IDS = (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E)


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class FakeTask:
    def __init__(self, bus, frame_id, period):
        self.bus, self.frame_id, self.period = bus, frame_id, period
        self.started, self.stopped = bus.clock(), None

    def stop(self):
        self.stopped = self.bus.clock()

    def modify_data(self, message):
        pass


class FakeBus(SocketcanBus):
    """SocketCAN on a fake clock, logging every step in order: one-shot sends and periodic tasks,
    whose first frame the kernel sends within the call that sets the task up."""

    def __init__(self, clock, log):     # no socket
        self.clock, self.log = clock, log
        self._is_shutdown = True

    def send(self, msg, timeout=None):
        self.log.append(("send", self.clock(), msg.arbitration_id))

    def set_filters(self, filters=None):
        self.log.append(("filters", self.clock(), [f["can_id"] for f in filters or []]))

    def recv(self, timeout=None):     # the tasks' frames are not modelled here (see test_cyclic_lease.py)
        return None

    def send_periodic(self, msg, period, duration=None):
        task = FakeTask(self, msg.arbitration_id, period)
        self.log.append(("task", self.clock(), task))
        return task


class StalledBus(can.BusABC):
    """A bus whose sends wait until ``go`` is set: a python-can task thread that has not sent yet."""

    def __init__(self):
        self.go = threading.Event()
        self.sent = []
        self._is_shutdown = True

    def send(self, msg, timeout=None):
        self.go.wait()
        self.sent.append(msg.arbitration_id)


def frames(ids=IDS):
    return [Frame(i, b"\x00") for i in ids]


def frame_times(log, until):
    """(time, id) of every frame the logged steps put on the bus up to ``until``."""
    sent = []
    for step in log:
        if step[0] == "send" and step[1] <= until:
            sent.append((step[1], step[2]))
        elif step[0] == "task":
            task = step[2]
            t = task.started
            while t <= min(until, task.stopped if task.stopped is not None else until):
                sent.append((t, task.frame_id))
                t += task.period
    return sent


def previous_frames(schedule, sent_until, since):
    """The frames of a previous sender that sent each ID's due times up to ``sent_until``."""
    result = []
    for index, frame_id in enumerate(schedule.ids):
        due = schedule.next_due(index, since)
        while due <= sent_until[index] + 1e-9:
            result.append((due, frame_id))
            due += schedule.cycle_s
    return result


def largest_gap_and_spacing(sent, ids):
    gaps = []
    for frame_id in ids:
        times = sorted(t for t, i in sent if i == frame_id)
        gaps += [b - a for a, b in zip(times, times[1:])]
    everything = sorted(t for t, _ in sent)
    return max(gaps), min(b - a for a, b in zip(everything, everything[1:]))


def start_logged(clock, schedule, sent_until, paced, log):
    """Start a sender that beats (logs its heartbeat) at the end of every wait, as bms_tx does;
    every change of its wire record is logged with its schedule."""
    def wait(seconds):
        clock.t += seconds
        log.append(("beat", clock.t))
        return False

    sender = CyclicFrameSet(FakeBus(clock, log), schedule, paced=paced, clock=clock,
                            on_change=lambda: log.append(("record", clock.t, sender.wire, sender.schedule)))
    log.append(("beat", clock.t))
    assert sender.start(frames(schedule.ids), sent_until, wait)
    return sender


@pytest.mark.parametrize("paced", [False, True])
@pytest.mark.parametrize("stopped_ago", [0.05, 0.5, 0.95, 1.3])
def test_a_sender_killed_at_any_step_of_its_start_or_stop_is_continued_without_a_late_id(paced, stopped_ago):
    """The previous sender stopped ``stopped_ago`` cycles ago; the new one is killed after each
    step of its start (one-shot sends, heartbeats, task creations, wire records) and of its stop.
    A taker that starts at once from the last wire record and heartbeat leaves no ID without a
    frame for more than a cycle plus the previous silence, and keeps a paced profile's spacing
    (but for a death between a task's first frame and its record: that frame goes twice)."""
    cycle = 1.2
    clock = FakeClock()
    schedule = Schedule(clock.t - 10 * cycle + 0.03, cycle, IDS)
    previous_until = [clock.t - stopped_ago * cycle] * len(IDS)
    log = []
    sender = start_logged(clock, schedule, previous_until, paced, log)
    clock.t += 0.37
    sender.stop()
    first = previous_frames(schedule, previous_until, clock.t - 20 * cycle)
    for death in range(len(log)):
        died_at = log[death][1]
        beats = [step[1] for step in log[:death + 1] if step[0] == "beat"]
        records = [step for step in log[:death + 1] if step[0] == "record"]
        if records:
            _, _, wire, on_schedule = records[-1]
            until = known_sent_until(wire, beats[-1])
        else:           # it died before its first record: the previous sender's record stands
            on_schedule, until = schedule, previous_until
        sent = first + frame_times(log[:death + 1], died_at)
        taker_log = []
        taker_clock = FakeClock(died_at)
        start_logged(taker_clock, on_schedule, until, paced, taker_log)
        taker_clock.t += 2 * cycle
        sent += frame_times(taker_log, taker_clock.t)
        gap, spacing = largest_gap_and_spacing(sent, IDS)
        step = "killed after step %d (%s at %.3f)" % (death, log[death][0], died_at - clock.t)
        assert gap <= cycle * (1 + stopped_ago) + cycle / len(IDS) + 1e-6, step
        if paced and log[death][0] != "task":   # killed between a first frame and its record: sent twice
            assert spacing >= cycle / len(IDS) - 1e-6, step


def test_overdue_ids_are_sent_once_and_every_task_starts_on_its_phase():
    cycle = 0.4
    clock = FakeClock()
    schedule = Schedule(clock.t - 10 * cycle + 0.05, cycle, IDS[:4])     # ID i due at t0 + i * 0.1 + k * 0.4
    silent_since = clock.t - 0.25                                        # the previous sender stopped then
    log = []
    start_logged(clock, schedule, [silent_since] * 4, False, log)
    once = {i for kind, _, i in (s for s in log if s[0] == "send")}
    assert once == {IDS[i] for i in range(4) if schedule.next_due(i, silent_since) <= 1000.0} and once
    periodic = {s[2].frame_id: s[1] for s in log if s[0] == "task"}
    assert set(periodic) == set(IDS[:4])
    for index, frame_id in enumerate(IDS[:4]):
        assert periodic[frame_id] == pytest.approx(schedule.next_due(index, 1000.0))


def test_a_paced_profile_never_gets_two_frames_closer_than_its_spacing_at_a_catch_up():
    """The SMA Sunny Island wants 200 ms between any two frames: overdue IDs are not sent
    back-to-back, the cadence shifts by less than a cycle instead."""
    si = profiles.get("sma_si")
    assert si.min_frame_spacing_s == 0.2
    clock = FakeClock()
    ids = si.frame_ids
    schedule = Schedule(clock.t - 3.05, si.cycle_s, ids)
    until = [clock.t - 0.7] * len(ids)                  # four IDs overdue
    log = []
    start_logged(clock, schedule, until, True, log)
    clock.t += 2 * si.cycle_s
    sent = previous_frames(schedule, until, until[0] - 2 * si.cycle_s) + frame_times(log, clock.t)
    gap, spacing = largest_gap_and_spacing(sent, ids)
    assert spacing >= si.min_frame_spacing_s - 1e-9
    assert gap <= si.cycle_s + 0.7 + 1e-9
    assert not [s for s in log if s[0] == "send"], "nothing is sent out of the cadence"


def test_a_task_whose_first_frame_is_not_sent_yet_is_not_on_the_wire():
    """A task thread that has not sent yet when its process dies or stops it has sent nothing:
    the record leaves that ID to the taker."""
    bus = StalledBus()
    now = time.monotonic()
    schedule = Schedule(now + 0.01, 0.2, IDS[:2])
    sender = CyclicFrameSet(bus, schedule)
    try:
        assert sender.start(frames(IDS[:2]), [now] * 2, lambda s: time.sleep(s) or False)
        first_dues = [pytest.approx(now + 0.01), pytest.approx(now + 0.11)]
        assert sender.wire["on"] == [False, False]
        assert [schedule.next_due(i, until) for i, until in enumerate(known_sent_until(sender.wire, now + 3))] \
            == first_dues
    finally:
        sender.stop()
        bus.go.set()
    assert [schedule.next_due(i, until) for i, until in enumerate(known_sent_until(sender.wire, now + 3))] \
        == first_dues


def test_stop_records_up_to_when_each_id_was_sent():
    clock = FakeClock()
    schedule = Schedule(clock.t + 0.01, 1.0, IDS[:2])
    sender = start_logged(clock, schedule, [clock.t] * 2, False, [])
    assert sender.wire["on"] == [True, True]
    assert known_sent_until(sender.wire, 1003.0) == [1003.0, 1003.0]
    assert [schedule.next_due(i, until) for i, until in enumerate(known_sent_until(sender.wire))] == [
        pytest.approx(1001.01), pytest.approx(1001.51)], "without a heartbeat: sent up to the first frames"
    clock.t = 1002.2
    sender.stop()
    assert sender.wire == {"on": [False, False], "until": [1002.2, 1002.2], "lease_until": None, "lag": [0.0, 0.0]}
    assert known_sent_until(sender.wire, 1003.0) == [1002.2, 1002.2]


def test_an_abort_leaves_nothing_running():
    schedule = Schedule(time.monotonic(), 1.0, IDS[:2])
    sender = CyclicFrameSet(FakeBus(time.monotonic, []), schedule)
    assert not sender.start(frames(IDS[:2]), [time.monotonic()] * 2, lambda s: True)
    assert not sender.running


def test_on_python_can_every_first_frame_is_on_the_bus_when_start_returns():
    """python-can's thread-based tasks (the simulation's bus) send their first frame from a
    thread: start() waits for it, so a stop right after it loses nothing."""
    tx = can.Bus(interface="virtual", channel="first-frame", receive_own_messages=False)
    rx = can.Bus(interface="virtual", channel="first-frame")
    try:
        for _ in range(5):
            schedule = Schedule(time.monotonic(), 0.06, IDS[:3])
            sender = CyclicFrameSet(tx, schedule)
            assert sender.start(frames(IDS[:3]), [time.monotonic()] * 3, lambda s: time.sleep(s) or False)
            assert sender.wire["on"] == [True, True, True]
            sender.stop()
            seen = set()
            message = rx.recv(0.5)
            while message is not None:
                seen.add(message.arbitration_id)
                message = rx.recv(0.05)
            assert seen == set(IDS[:3])
    finally:
        tx.shutdown()
        rx.shutdown()


def test_every_profile_spreads_its_frames_at_least_its_minimum_spacing_apart():
    for name in profiles.names():
        profile = profiles.get(name)
        assert profile.cycle_s / len(profile.frame_ids) >= profile.min_frame_spacing_s * (1 - 1e-9), name
    with pytest.raises(ValueError, match="6 frames every 1.2 s are closer than its minimum spacing of 0.25 s"):
        Profile("too_fast", sma.FRAMES, (), (), cycle_s=1.2, min_frame_spacing_s=0.25)
