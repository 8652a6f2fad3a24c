"""Simulated days, closed loop: the engine's limits drive the inverter, whose current moves the battery.

Every scenario also checks the invariants that must hold at every step (check_every_step).
"""
import math
from typing import Callable, List, Tuple

import pytest

import config
from bms.phases import TRANSITIONS
from simulation.battery import BatteryModel
from simulation.closed_loop import ClosedLoop, Sample
from simulation.inverter import InverterModel
from simulation.profiles import Profile, cloudy_pv, constant, daily_temperature, sunny_pv

CFG = config.load()
HOUR = 3600.0


def simulate(start_h: float, hours: float, soc_pct: float, pv: Profile, ambient: Profile, battery_c: float = 20.0,
             dt_s: float = 10.0, monitor_online: Callable[[float], bool] = lambda t: True) -> Tuple[ClosedLoop, List[Sample]]:
    loop = ClosedLoop(CFG, BatteryModel(280.0, 16, soc_pct, battery_c), InverterModel(pv, constant(800.0)),
                      ambient, start_s=start_h * HOUR)
    samples = [loop.step(dt_s, monitor_online(loop.t_s)) for _ in range(int(hours * HOUR / dt_s))]
    check_every_step(samples)
    return loop, samples


def check_every_step(samples: List[Sample]) -> None:
    previous = None
    for sample in samples:
        decision = sample.decision
        assert decision is not None, "the battery reports from the start"
        report = decision.report
        assert all(math.isfinite(v) for v in report if isinstance(v, float))
        # the inverter model obeys, so the battery never carries more than allowed
        assert sample.current_a <= report.charge_current_a + 1e-9
        assert -sample.current_a <= report.discharge_current_a + 1e-9
        assert report.charge_enable or sample.current_a <= 0
        assert report.charge_voltage_v <= CFG.charge.full_charge_voltage_v
        if previous is not None:
            dt = sample.t_s - previous.t_s
            assert report.charge_voltage_v >= previous.decision.report.charge_voltage_v - CFG.charge.float_ramp_v_per_s * dt - 1e-9
            assert decision.phase == previous.decision.phase or (previous.decision.phase, decision.phase) in TRANSITIONS
        previous = sample


def phase_runs(samples: List[Sample]) -> List[str]:
    runs = []
    for sample in samples:
        if not runs or runs[-1] != sample.decision.phase:
            runs.append(sample.decision.phase)
    return runs


def test_sunny_day_charges_through_absorption_into_float_and_rebulks_at_night():
    _, samples = simulate(6.0, 24.0, 60.0, sunny_pv(4000.0), constant(20.0))
    assert phase_runs(samples) == ["bulk", "absorption", "float", "bulk"]
    first_float = next(s for s in samples if s.decision.phase == "float")
    assert first_float.decision.reasons["charge_voltage"] == "float: ramping down to 53.60 V"
    assert 9 * HOUR < first_float.t_s < 14 * HOUR
    # the float CVL is reached by the ramp: 1.6 V at 1 mV/s takes 1600 s
    reached = next(s for s in samples if s.decision.phase == "float" and s.decision.report.charge_voltage_v == 53.6)
    assert reached.t_s - first_float.t_s == pytest.approx(1600.0, abs=20.0)
    # rebulk in the evening only after SoC stayed below 85 % for 30 s
    rebulk = next(s for s in samples if s.t_s > first_float.t_s and s.decision.phase == "bulk")
    assert rebulk.snapshot.soc_pct < 85.0 and rebulk.t_s > 18 * HOUR
    # a healthy day: no warning, no protection, the highest cell stays below the taper
    assert all(not (s.decision.report.alarm or s.decision.report.protection) for s in samples)
    assert max(s.snapshot.cell_max_v for s in samples) < CFG.limits.charge_taper_cell_v
    assert samples[-1].decision.report.charge_current_a == CFG.limits.max_charge_current_a


def test_cloudy_day_absorption_survives_the_clouds_and_counts_only_time_at_voltage():
    loop, samples = simulate(6.0, 12.0, 80.0, cloudy_pv(9000.0), constant(20.0))
    assert phase_runs(samples) == ["bulk", "absorption", "float"]
    at_voltage = CFG.charge.absorption_voltage_v - CFG.charge.voltage_tolerance_v
    absorption = [s for s in samples if s.decision.phase == "absorption"]
    dips = [i for i, s in enumerate(absorption) if s.snapshot.voltage_v < at_voltage - 0.3]
    assert dips and dips[0] < len(absorption) - 1, "a cloud pulled the voltage down and absorption went on"
    # it ended on the tail criterion: at the voltage with a small current for tail_time_s
    tail_steps = int(CFG.charge.tail_time_s / 10.0)
    assert all(s.snapshot.voltage_v >= at_voltage and s.snapshot.current_a <= CFG.charge.tail_current_a
               for s in absorption[-tail_steps:])
    # the absorption time counted only the steps at the voltage, not the clouds
    steps_at_voltage = sum(1 for s in absorption[1:] if s.snapshot.voltage_v >= at_voltage)
    assert loop.engine.state.absorption_s == pytest.approx(10.0 * steps_at_voltage, abs=10.0)
    assert loop.engine.state.absorption_s < absorption[-1].t_s - absorption[0].t_s


def test_cloudy_day_without_enough_sun_stays_in_bulk_without_false_alarms():
    _, samples = simulate(6.0, 14.0, 60.0, cloudy_pv(4000.0), constant(20.0))
    assert phase_runs(samples) == ["bulk"]
    assert {s.decision.report.charge_voltage_v for s in samples} == {CFG.charge.absorption_voltage_v}
    assert all(s.decision.reasons["charge_current"] == "configured maximum" for s in samples)


def test_cold_morning_blocks_charging_below_freezing_and_derates_until_warm():
    _, samples = simulate(4.0, 14.0, 50.0, sunny_pv(4000.0), daily_temperature(-8.0, 12.0), battery_c=-5.0)
    hysteresis = CFG.limits.temperature_hysteresis_c
    cold = [s for s in samples if s.snapshot.temperature_c < 0.0]
    assert cold and all(s.current_a <= 0.0 and not s.decision.report.charge_enable for s in cold)
    assert all("low_temperature" in s.decision.report.alarm for s in cold)
    # charging resumes only once the battery is warmer than 0 degC + hysteresis
    first_charge = next(s for s in samples if s.decision.report.charge_enable)
    assert first_charge.snapshot.temperature_c > hysteresis
    assert any(s.current_a > 0 for s in samples if s.t_s > first_charge.t_s)
    # between 0 and 10 degC the charge limit follows the temperature taper: 100 A x T / 10 degC
    for s in samples:
        temperature = s.snapshot.temperature_c
        if 0.0 <= temperature < CFG.limits.temperature_taper_c:
            assert s.decision.report.charge_current_a <= 100.0 * temperature / 10.0 + 1e-6


def test_monitor_lost_for_ten_minutes_disables_charging_then_ramps_back():
    lost_from, lost_to = 11 * HOUR, 11 * HOUR + 600.0
    _, samples = simulate(10.5, 1.5, 60.0, sunny_pv(4000.0), constant(20.0), dt_s=2.0,
                       monitor_online=lambda t: not lost_from <= t < lost_to)
    lost = [s for s in samples if lost_from <= s.t_s < lost_to]
    ages = [s.snapshot.age_s for s in lost]
    assert ages[0] == 2.0 and ages[-1] == pytest.approx(600.0)     # the last reading was one step before
    for s in lost:
        expected = "fresh" if s.snapshot.age_s <= 10 else "hold" if s.snapshot.age_s < 30 else "stale"
        assert s.decision.freshness == expected
    stale = [s for s in lost if s.decision.freshness == "stale"]
    assert stale and all(s.decision.report.charge_current_a == 0.0 and not s.decision.report.charge_enable
                         and s.decision.report.discharge_current_a <= CFG.stale.safe_discharge_current_a
                         and "internal_comm_fail" in s.decision.report.alarm
                         and s.current_a <= 0.0 for s in stale)
    back = [s for s in samples if s.t_s >= lost_to]
    assert all(s.decision.freshness == "fresh" for s in back)
    ccl = [s.decision.report.charge_current_a for s in back]
    assert ccl[0] <= CFG.limits.recovery_ramp_a_per_s * 2.0
    assert all(b - a <= CFG.limits.recovery_ramp_a_per_s * 2.0 + 1e-9 for a, b in zip(ccl, ccl[1:]))
    assert ccl[-1] == CFG.limits.max_charge_current_a
    assert all("internal_comm_fail" not in s.decision.report.alarm for s in back)


def test_force_charge_at_low_soc_holds_until_the_recovery_soc():
    _, samples = simulate(20.0, 10.0, 14.0, sunny_pv(4000.0), constant(20.0))
    requested = [s.decision.report.force_charge_1 and s.decision.report.force_charge_2 for s in samples]
    start = requested.index(True)
    end = requested.index(False, start)
    assert samples[start].snapshot.soc_pct <= CFG.charge.force_charge_soc_pct
    assert samples[start - 1].snapshot.soc_pct > CFG.charge.force_charge_soc_pct
    assert samples[end].snapshot.soc_pct >= CFG.charge.force_charge_recover_soc_pct
    assert samples[end - 1].snapshot.soc_pct < CFG.charge.force_charge_recover_soc_pct
    # the inverter grid-charged at night, so the SoC rose throughout the request
    assert all(s.current_a > 0 for s in samples[start + 1:end])
    assert min(s.soc_pct for s in samples) > CFG.charge.force_charge_soc_pct - 0.5
