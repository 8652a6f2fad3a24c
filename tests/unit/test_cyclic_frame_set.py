"""Taking over a cadence: every due time since `after` is covered once, the phase is kept."""
import time

from canbus.cyclic import CyclicFrameSet, Schedule
from protocol.frame import Frame


class RecordingBus:
    """Stands in for a python-can bus: records one-shot sends and periodic starts with times."""

    def __init__(self):
        self.events = []

    def send(self, msg):
        self.events.append(("send", msg.arbitration_id, time.monotonic()))

    def send_periodic(self, msg, period):
        self.events.append(("periodic", msg.arbitration_id, time.monotonic()))
        return type("Task", (), {"stop": lambda self: None, "modify_data": lambda self, m: None})()


def test_overdue_ids_are_sent_once_and_every_task_starts_on_its_phase():
    ids = (0x351, 0x355, 0x356, 0x359)
    frames = [Frame(i, b"\x00") for i in ids]
    now = time.monotonic()
    cycle = 0.4
    schedule = Schedule(now - 10 * cycle + 0.05, cycle, ids)      # ID i due at t0 + i * 0.1 + k * 0.4
    silent_since = now - 0.25                                      # the previous sender stopped then
    bus = RecordingBus()
    assert CyclicFrameSet(bus, schedule).start(frames, silent_since, lambda s: time.sleep(s) or False)
    once = {i for kind, i, _ in bus.events if kind == "send"}
    due_since = {ids[i] for i in range(4) if schedule.next_due(i, silent_since) <= now + 0.01}
    assert once == due_since and once, "exactly the IDs due since the silence were caught up"
    periodic = {i: t for kind, i, t in bus.events if kind == "periodic"}
    assert set(periodic) == set(ids)
    for index, frame_id in enumerate(ids):
        phase = (periodic[frame_id] - schedule.t0 - index * cycle / 4) % cycle
        assert min(phase, cycle - phase) < 0.03, (hex(frame_id), phase)


def test_an_abort_leaves_nothing_running():
    ids = (0x351, 0x355)
    schedule = Schedule(time.monotonic(), 1.0, ids)
    sender = CyclicFrameSet(RecordingBus(), schedule)
    assert not sender.start([Frame(i, b"") for i in ids], time.monotonic(), lambda s: True)
    assert not sender.running
