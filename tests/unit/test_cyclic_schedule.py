"""The shared schedule: each ID is due once per cycle, spread evenly, continued by whoever sends."""
from hypothesis import given, settings, strategies as st

from canbus.cyclic import Schedule


@settings(max_examples=300, deadline=None)
@given(t0=st.floats(0, 1e6), after=st.floats(0, 1e6), cycle=st.floats(0.2, 10), n=st.integers(1, 12),
       data=st.data())
def test_next_due_is_the_first_due_time_after(t0, after, cycle, n, data):
    index = data.draw(st.integers(0, n - 1))
    schedule = Schedule(t0, cycle, tuple(range(0x351, 0x351 + n)))
    due = schedule.next_due(index, after)
    assert after < due <= after + cycle + 1e-6
    phase = (due - t0 - index * cycle / n) / cycle
    assert abs(phase - round(phase)) < 1e-6


def test_ids_are_spread_evenly_over_the_cycle():
    schedule = Schedule(100.0, 1.0, (0x351, 0x355, 0x356, 0x359))
    assert [round(schedule.next_due(i, 100.0) - 100.0, 6) for i in range(4)] == [1.0, 0.25, 0.5, 0.75]


def test_round_trip_through_shared_memory_form():
    schedule = Schedule(5.5, 1.0, (0x351, 0x355))
    assert Schedule.from_dict(schedule.as_dict()) == schedule
    assert Schedule.from_dict(None) is None


@settings(max_examples=500, deadline=None)
@given(t0=st.floats(0, 1000), cycle=st.floats(0.2, 10), n=st.integers(1, 12), now=st.floats(1000, 2000),
       silences=st.lists(st.floats(0, 3), min_size=12, max_size=12), paced=st.booleans())
def test_a_resumed_schedule_covers_every_id_and_a_paced_one_keeps_its_spacing(t0, cycle, n, now, silences, paced):
    """Each ID was sent up to ``now - silence * cycle``. Unpaced: the phase stays and the overdue
    IDs are those with an unsent due time. Paced: nothing is caught up out of the cadence; the
    first frames come after ``now``, at least a spacing after the last frame sent, within one
    cycle, and no ID waits more than a cycle plus the time from the oldest unsent due time to
    the first frame."""
    schedule = Schedule(t0, cycle, tuple(range(0x351, 0x351 + n)))
    sent_until = [now - silence * cycle for silence in silences[:n]]
    resumed, overdue, begin = schedule.resume(sent_until, now, paced)
    unsent = [schedule.next_due(i, until) for i, until in enumerate(sent_until)]
    slack = 1e-6 * cycle
    if not paced or not [due for due in unsent if due <= now]:
        assert resumed == schedule and begin == now
        assert overdue == [i for i in range(n) if unsent[i] <= now]
        return
    assert overdue == [] and resumed.cycle_s == cycle
    first = [resumed.next_due(i, begin) for i in range(n)]
    last_sent = max(due - cycle for due in unsent)
    start = min(first)
    assert start >= now - slack and start >= last_sent + schedule.spacing_s - slack
    assert max(first) < start + cycle
    for i in range(n):
        assert first[i] - (unsent[i] - cycle) <= cycle + (start - min(unsent)) + slack
