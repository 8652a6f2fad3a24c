"""The charge phase state machine and the CVL ramp, step by step against config.toml's numbers."""
import pytest

import config
from bms.phases import advance, elapse, force_charge_latch, full_charge_due, ramp_voltage, target_voltage
from bms.reading import read
from bms.snapshot import BatterySnapshot
from bms.state import ChargeState

CFG = config.load()
C = CFG.charge   # absorption 55.2 V, float 53.6 V, tolerance 0.2 V, tail 14 A for 120 s, absorption max 3600 s,
                 # rebulk 85 % / 52.8 V for 30 s, full charge every 14 days, force charge 10 % -> 30 %
DAY = 86400.0


def reading(voltage_v=54.0, current_a=0.0, soc_pct=90.0, cell_min_v=None, cell_max_v=None):
    result, _ = read(BatterySnapshot(voltage_v, current_a, soc_pct, 20.0, 0.0, cell_min_v, cell_max_v), 16)
    return result


def drive(state, value, seconds, dt=10.0):
    """Feed the same reading every dt seconds; the phases seen after each step."""
    phases = []
    for _ in range(int(seconds / dt)):
        state = advance(state, value, dt, C)
        phases.append(state.phase)
    return state, phases


def test_bulk_enters_absorption_within_the_tolerance_of_the_charge_voltage():
    state = ChargeState()
    assert advance(state, reading(voltage_v=54.9), 0.0, C).phase == "bulk"
    assert advance(state, reading(voltage_v=55.0), 0.0, C).phase == "absorption"


def test_tail_current_held_for_tail_time_ends_absorption_as_a_full_charge():
    state = ChargeState(phase="absorption", since_full_charge_s=5 * DAY, last_full_charge_t=1.7e9)
    state, phases = drive(state, reading(voltage_v=55.1, current_a=10.0, soc_pct=99.0), 130.0)
    # held 0 s at the first step, 120 s at the 13th
    assert phases[:12] == ["absorption"] * 12 and phases[12] == "float"
    assert (state.since_full_charge_s, state.last_full_charge_t) == (0.0, None)   # dated by elapse()


def test_a_synchronised_monitor_counts_as_full_below_the_charge_voltage():
    below = reading(voltage_v=54.6, current_a=3.0, soc_pct=99.9)          # the inverter holds it at 54.6 V
    state, phases = drive(ChargeState(), below, 3600.0)
    assert set(phases) == {"bulk"}
    synchronised = below._replace(soc_pct=100.0)
    state, phases = drive(state, synchronised, 140.0)
    assert phases[0] == "absorption" and phases[13] == "float"            # tail from the 2nd step, 120 s
    state, phases = drive(ChargeState(phase="absorption"), synchronised._replace(current_a=30.0), 3600.0)
    assert phases[-1] == "float" and phases[-2] == "absorption"           # absorption_max_s at 100 %


def test_tail_needs_the_voltage_and_balanced_cells():
    state = ChargeState(phase="absorption")
    _, phases = drive(state, reading(voltage_v=54.5, current_a=5.0), 600.0)        # a cloud, not a full battery
    assert set(phases) == {"absorption"}
    unbalanced = reading(voltage_v=55.1, current_a=5.0, cell_min_v=3.42, cell_max_v=3.47)
    state, phases = drive(state, unbalanced, 3590.0)
    assert set(phases) == {"absorption"}
    state, phases = drive(state, unbalanced, 10.0)                                 # absorption_max_s reached
    assert phases == ["float"]


def test_absorption_time_counts_only_at_the_voltage():
    state = ChargeState(phase="absorption")
    state, _ = drive(state, reading(voltage_v=55.1, current_a=40.0), 100.0)
    state, _ = drive(state, reading(voltage_v=54.0, current_a=40.0), 100.0)
    assert state.absorption_s == pytest.approx(100.0)


def test_rebulk_needs_the_condition_held_for_the_confirmation_time():
    state = ChargeState(phase="float")
    state, phases = drive(state, reading(voltage_v=52.5, soc_pct=90.0), 20.0)       # a load spike: 20 s
    assert phases == ["float", "float"]
    state, _ = drive(state, reading(voltage_v=53.0, soc_pct=90.0), 10.0)            # recovered: resets
    assert state.rebulk_s is None
    state, phases = drive(state, reading(voltage_v=53.0, soc_pct=80.0), 40.0)       # SoC low for 30 s
    assert phases == ["float", "float", "float", "bulk"]


def test_absorption_falls_back_to_bulk_after_a_deep_discharge():
    state = ChargeState(phase="absorption", absorption_s=500.0)
    state, phases = drive(state, reading(voltage_v=52.0, current_a=-50.0, soc_pct=80.0), 40.0)
    assert phases[-1] == "bulk" and state.absorption_s == 0.0


def test_force_charge_latch_has_hysteresis_and_sends_float_to_bulk():
    latched = False
    seen = []
    for soc in (50, 11, 10, 20, 29.9, 30, 20):
        latched = force_charge_latch(latched, soc, C)
        seen.append(latched)
    assert seen == [False, False, True, True, True, False, False]
    state = advance(ChargeState(phase="float"), reading(voltage_v=53.3, soc_pct=9.0), 0.0, C)
    assert state.phase == "bulk" and state.force_charge


def test_full_charge_due_after_the_interval_sends_float_to_bulk_and_raises_the_voltage():
    cfg = CFG.replace(charge={"full_charge_voltage_v": 56.0})
    state = ChargeState(phase="float", since_full_charge_s=14 * DAY - 1)
    assert not full_charge_due(state, cfg.charge)
    state = elapse(state, 1.0, None)
    assert full_charge_due(state, cfg.charge)
    state = advance(state, reading(voltage_v=53.5, soc_pct=99.0), 1.0, cfg.charge)
    assert state.phase == "bulk"
    assert target_voltage(state, cfg.charge) == 56.0
    assert target_voltage(state._replace(since_full_charge_s=0.0), cfg.charge) == 55.2
    never = CFG.replace(charge={"full_charge_interval_days": 0.0}).charge
    assert not full_charge_due(state._replace(since_full_charge_s=1000 * DAY), never)


def test_first_data_starts_the_full_charge_interval():
    state = elapse(ChargeState(), 0.0, 1.7e9)
    assert (state.since_full_charge_s, state.last_full_charge_t) == (0.0, 1.7e9)
    state = elapse(state, 60.0, 1.7e9 + 60.0)
    assert (state.since_full_charge_s, state.last_full_charge_t) == (60.0, 1.7e9)


@pytest.mark.parametrize("wall_step_s", [-30 * DAY, -3600.0, 3600.0, 30 * DAY])
def test_a_wall_clock_step_moves_the_date_shown_but_not_the_time_counted(wall_step_s):
    state = elapse(ChargeState(since_full_charge_s=DAY), 10.0, 1.7e9 + wall_step_s)
    assert state.since_full_charge_s == DAY + 10.0
    assert state.last_full_charge_t == 1.7e9 + wall_step_s - DAY - 10.0


def test_a_wall_clock_that_was_never_set_dates_nothing():
    state = elapse(ChargeState(), 0.0, 100.0)                         # no RTC, no NTP yet: 1970
    assert (state.since_full_charge_s, state.last_full_charge_t) == (0.0, None)
    state = elapse(state, 50.0, 150.0)
    assert (state.since_full_charge_s, state.last_full_charge_t) == (50.0, None)
    state = elapse(state, 10.0, 1.7e9)                                # NTP: dated from now on
    assert (state.since_full_charge_s, state.last_full_charge_t) == (60.0, 1.7e9 - 60.0)


@pytest.mark.parametrize("saved_t, since", [
    (1.7e9 - 3 * DAY, 3 * DAY),            # a state saved before since_full_charge_s was kept: continued
    (1.7e9 + DAY, 0.0),                    # in the future: refused, the interval starts now
    (1000.0, 0.0),                         # dated by a clock that was not set: refused
])
def test_a_saved_wall_clock_time_alone_is_taken_only_when_plausible(saved_t, since):
    state = elapse(ChargeState(last_full_charge_t=saved_t), 0.0, 1.7e9)
    assert state.since_full_charge_s == since and state.last_full_charge_t == 1.7e9 - since


def test_target_voltage_per_phase():
    assert target_voltage(ChargeState(phase="bulk", since_full_charge_s=0.0), C) == 55.2
    assert target_voltage(ChargeState(phase="absorption", since_full_charge_s=0.0), C) == 55.2
    assert target_voltage(ChargeState(phase="float", since_full_charge_s=0.0), C) == 53.6


def test_cvl_rises_at_once_and_falls_along_the_ramp():
    assert ramp_voltage(None, 53.6, 0.0, C) == 53.6
    assert ramp_voltage(53.6, 55.2, 1.0, C) == 55.2
    assert ramp_voltage(55.2, 53.6, 100.0, C) == pytest.approx(55.1)    # 1 mV/s
    assert ramp_voltage(55.2, 53.6, 10000.0, C) == 53.6
    assert ramp_voltage(58.0, 55.2, 0.0, C) == 55.2                      # never above the configured maximum
