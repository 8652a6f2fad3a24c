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
