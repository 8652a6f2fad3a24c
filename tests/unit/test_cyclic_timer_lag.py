"""A periodic task starts when its sender wakes, a little after its due time, and the kernel
keeps that phase: each of its frames goes out that much after the due time. Stopped (a
hand-over) or killed between a due time and its late frame, that frame is not sent, so the
wire record must not count that due time as sent: the taker sends it (a duplicate at worst).

Seen in the VM under load: a failsafe released 1-7 ms before an ID's (late) frame, and bms_tx
then skipped that ID for a whole cycle (tests/system test_bms_tx_killed_or_hung_leaves_no_gap
and test_with_the_smallest_tx_queue_a_failover_catch_up_is_sent_whole).
"""
import pytest

from canbus.cyclic import CyclicFrameSet, Schedule, known_sent_until
from tests.unit.test_cyclic_frame_set import IDS, FakeBus, FakeClock, frame_times, frames

LATE = 0.007        # how long after each due time the sender wakes


def started_late(clock, log):
    schedule = Schedule(clock.t + 0.1, 1.0, IDS)

    def wait(seconds):
        clock.t += seconds + LATE
        return False

    sender = CyclicFrameSet(FakeBus(clock, log), schedule, clock=clock)
    assert sender.start(frames(), [clock.t] * len(IDS), wait)
    return sender


def unsent_due_times(schedule, sent_until, log, since, until):
    """Due times up to each ID's ``sent_until`` (after ``since``) that no frame went out for."""
    sent = frame_times(log, until)
    missing = []
    for index, frame_id in enumerate(schedule.ids):
        due = schedule.next_due(index, since)
        while due <= sent_until[index] + 1e-9:
            if not any(i == frame_id and due - 1e-9 <= t < due + schedule.spacing_s for t, i in sent):
                missing.append((hex(frame_id), round(due, 3)))
            due += schedule.cycle_s
    return missing


@pytest.mark.parametrize("after_due", [0.001, 0.004, 0.0069])
def test_stopped_between_a_due_time_and_its_late_frame_that_due_time_is_not_counted_sent(after_due):
    clock, log = FakeClock(), []
    sender = started_late(clock, log)
    started = clock.t
    due = sender.schedule.next_due(2, clock.t + 3)
    clock.t = due + after_due          # the ID's frame would go at due + LATE
    sender.stop()
    sent_until = known_sent_until(sender.wire)
    assert unsent_due_times(sender.schedule, sent_until, log, started, clock.t) == []


def test_killed_between_a_due_time_and_its_late_frame_that_due_time_is_not_counted_sent():
    """A supervisor that saw the sender alive up to ``alive_until`` (its last heartbeat, or the kill)."""
    clock, log = FakeClock(), []
    sender = started_late(clock, log)
    started = clock.t
    due = sender.schedule.next_due(4, clock.t + 3)
    wire = sender.wire
    clock.t = due + 0.003
    for step in log:        # killed now: the kernel deletes its tasks
        if step[0] == "task":
            step[2].stop()
    sent_until = known_sent_until(wire, alive_until=clock.t)
    assert unsent_due_times(sender.schedule, sent_until, log, started, clock.t) == []
