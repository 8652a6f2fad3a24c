"""The engine as the workers and the failsafe call it: BmsEngine(cfg, state).step(snapshot, now)."""
import math

import pytest

import config
from bms.engine import BmsEngine, Decision
from bms.snapshot import BatterySnapshot
from bms.stale import degrade
from protocol.report import BatteryReport

CFG = config.load()   # hold 10 s, stale 30 s, safe discharge 20 A, recovery hold 30 s and 5 A/s


def snap(voltage_v=52.0, current_a=10.0, soc_pct=60.0, temperature_c=20.0, age_s=0.0, cell_min_v=None, cell_max_v=None):
    return BatterySnapshot(voltage_v, current_a, soc_pct, temperature_c, age_s, cell_min_v, cell_max_v)


def test_nothing_is_decided_before_real_data():
    engine = BmsEngine(CFG)
    assert engine.step(None, 0.0) is None
    assert engine.step(snap(voltage_v=None), 1.0) is None
    assert engine.step(snap(soc_pct=math.nan), 2.0) is None
    assert isinstance(engine.step(snap(), 3.0), Decision)


def test_a_fresh_decision_fills_the_report_from_data_and_configuration():
    engine = BmsEngine(CFG.replace(battery={"modules": 3, "soh_pct": 95.0}))
    decision = engine.step(snap(cell_min_v=3.24, cell_max_v=3.27), 0.0)
    report = decision.report
    assert isinstance(report, BatteryReport)
    assert (decision.phase, decision.freshness) == ("bulk", "fresh")
    assert set(decision.reasons) == {"charge_current", "discharge_current", "charge_voltage"}
    assert (report.charge_voltage_v, report.charge_current_a, report.discharge_current_a) == (55.2, 100.0, 120.0)
    assert report.discharge_voltage_v == 48.0
    assert (report.charge_enable, report.discharge_enable) == (True, True)
    assert (report.modules, report.soh_pct, report.capacity_ah) == (3, 95.0, 280.0)
    assert (report.voltage_v, report.current_a, report.soc_pct, report.temperature_c) == (52.0, 10.0, 60.0, 20.0)
    assert (report.cell_min_v, report.cell_max_v) == (3.24, 3.27)
    assert (report.temperature_min_c, report.temperature_max_c) == (20.0, 20.0)
    assert report.protection == frozenset() and report.alarm == frozenset()
    assert not (report.force_charge_1 or report.force_charge_2 or report.full_charge)


def test_soc_is_capped_until_absorption_has_ended():
    engine = BmsEngine(CFG)
    assert engine.step(snap(voltage_v=54.0, soc_pct=99.5), 0.0).report.soc_pct == 98.0
    engine = BmsEngine(CFG)
    t = 0.0
    decision = engine.step(snap(voltage_v=55.1, current_a=2.0, soc_pct=99.5), t)
    while decision.phase != "float":
        t += 10.0
        decision = engine.step(snap(voltage_v=55.1, current_a=2.0, soc_pct=99.5), t)
    assert decision.report.soc_pct == 99.5


def test_old_data_is_held_then_degraded_by_the_shared_policy():
    engine = BmsEngine(CFG)
    fresh = engine.step(snap(age_s=0.0), 100.0).report
    for age in (5.0, 15.0, 25.0, 30.0, 45.0):
        decision = engine.step(snap(age_s=age), 100.0 + age)
        assert decision.report == degrade(fresh, age, CFG)
        expected = "fresh" if age <= 10 else "hold" if age < 30 else "stale"
        assert decision.freshness == expected
    assert decision.report.charge_current_a == 0.0 and not decision.report.charge_enable
    assert decision.report.discharge_current_a == 20.0
    assert "internal_comm_fail" in decision.report.alarm
    assert decision.reasons["charge_current"] == "stale: battery data 45 s old"


def test_missing_values_after_data_count_as_aging_data_and_are_named():
    engine = BmsEngine(CFG)
    engine.step(snap(), 0.0)
    decision = engine.step(snap(voltage_v=None), 40.0)
    assert decision.freshness == "stale"
    assert decision.reasons["charge_current"] == "stale: battery data 40 s old (voltage_v missing)"
    decision = engine.step(None, 45.0)
    assert decision.reasons["discharge_current"] == "stale: battery data 45 s old (no battery data)"


def test_limits_come_back_by_hold_and_ramp_after_stale_data():
    engine = BmsEngine(CFG)
    engine.step(snap(), 0.0)
    for t in range(1, 80):
        engine.step(snap(age_s=float(t)), float(t))          # CCL 0 from 30 s on
    ccl = []
    for t in range(80, 150):
        decision = engine.step(snap(), float(t))
        assert decision.freshness == "fresh"
        ccl.append(decision.report.charge_current_a)
    assert ccl[:30] == [0.0] * 30                              # the hold starts with fresh data at t=80
    assert ccl[30] == 5.0                                      # then the 5 A/s ramp
    assert all(b - a <= 5.0 + 1e-9 for a, b in zip(ccl, ccl[1:]))
    assert ccl[-1] == 100.0


def test_data_already_old_at_first_sight_is_decided_and_degraded_not_dropped():
    decision = BmsEngine(CFG).step(snap(age_s=100.0), 0.0)
    assert decision.freshness == "stale"
    assert decision.report.charge_current_a == 0.0 and decision.report.voltage_v == 52.0


def test_charge_requests_are_withdrawn_while_charging_is_not_allowed():
    engine = BmsEngine(CFG)
    cold = engine.step(snap(voltage_v=50.0, soc_pct=8.0, temperature_c=-3.0), 0.0).report
    assert cold.charge_current_a == 0.0 and not cold.charge_enable
    assert not (cold.force_charge_1 or cold.force_charge_2)
    assert "low_temperature" in cold.alarm
    warm = engine.step(snap(voltage_v=50.0, soc_pct=8.0, temperature_c=20.0), 100.0).report
    assert warm.charge_enable and warm.force_charge_1 and warm.force_charge_2


def test_full_charge_request_after_the_interval():
    engine = BmsEngine(CFG)
    assert not engine.step(snap(), 0.0).report.full_charge
    assert engine.step(snap(voltage_v=52.1, current_a=9.0), 14 * 86400.0).report.full_charge


def test_protection_cuts_and_flags():
    decision = BmsEngine(CFG).step(snap(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.70), 0.0)
    assert decision.report.charge_current_a == 0.0 and "over_voltage" in decision.report.protection
    assert decision.reasons["charge_current"] == "cut by over_voltage"


def test_a_clock_step_back_counts_as_no_time():
    engine = BmsEngine(CFG)
    engine.step(snap(voltage_v=55.1, current_a=5.0, soc_pct=99.0), 1000.0)
    engine.step(snap(voltage_v=55.1, current_a=5.0, soc_pct=99.0), 1010.0)
    engine.step(snap(voltage_v=55.1, current_a=5.0, soc_pct=99.0), 500.0)
    state = engine.state
    assert (state.phase, state.absorption_s, state.tail_s) == ("absorption", 10.0, 0.0)


@pytest.mark.parametrize("now", [math.nan, math.inf, None, "0", True])
def test_an_impossible_time_is_an_error(now):
    with pytest.raises(ValueError, match="now"):
        BmsEngine(CFG).step(snap(), now)


def test_wrong_types_are_errors():
    with pytest.raises(TypeError, match="BatterySnapshot"):
        BmsEngine(CFG).step((52.0, 1.0, 50.0, 20.0, 0.0), 0.0)
    with pytest.raises(TypeError, match="ChargeState"):
        BmsEngine(CFG, {"phase": "bulk"})
    with pytest.raises(ValueError, match="age_s"):
        BmsEngine(CFG).step(snap(age_s=-1.0), 0.0)


def test_reconfigure_lowers_at_once_and_raises_by_hold_and_ramp():
    engine = BmsEngine(CFG)
    engine.step(snap(), 0.0)
    engine.reconfigure(CFG.replace(limits={"max_charge_current_a": 40.0}))
    assert engine.step(snap(), 1.0).report.charge_current_a == 40.0
    engine.reconfigure(CFG)
    ccl = [engine.step(snap(), float(t)).report.charge_current_a for t in range(2, 50)]
    assert ccl[:30] == [40.0] * 30                            # held until t=31, 30 s after the cut at t=1
    assert ccl[30:32] == [45.0, 50.0] and ccl[-1] == 100.0    # then 5 A/s
    engine.reconfigure(CFG.replace(charge={"absorption_voltage_v": 54.0, "full_charge_voltage_v": 54.0}))
    assert engine.step(snap(), 60.0).report.charge_voltage_v == 54.0   # never above the new maximum


def test_without_a_temperature_sensor_the_configured_temperature_is_announced_and_encodable():
    from protocol import profiles
    engine = BmsEngine(CFG.replace(battery={"assumed_temperature_c": 18.0, "temperature_sensor": False}))
    report = engine.step(snap(temperature_c=None), 0.0).report
    assert report.temperature_c is None and report.temperature_max_c == 18.0   # "not available" where it exists
    for name in profiles.names():
        frames = profiles.get(name).encode(report)
        assert frames, name
    measured = BmsEngine(CFG).step(snap(temperature_c=31.5), 1.0).report
    assert measured.temperature_c == 31.5


def restarted(engine):
    """A new engine from what the previous one saved, through JSON as the slot and the file carry it."""
    from bms.state import ChargeState
    import json
    return BmsEngine(CFG, ChargeState.from_dict(json.loads(json.dumps(engine.state.to_dict()))))


def test_a_restart_keeps_an_over_voltage_latch_inside_its_hysteresis():
    engine = BmsEngine(CFG)
    engine.step(snap(voltage_v=55.0, cell_min_v=3.40, cell_max_v=3.70), 0.0)    # over 3.65 V: latched
    held = engine.step(snap(voltage_v=55.0, cell_min_v=3.40, cell_max_v=3.62), 1.0).report
    assert held.charge_current_a == 0.0 and "over_voltage" in held.protection   # clears only below 3.60 V
    after = restarted(engine).step(snap(voltage_v=55.0, cell_min_v=3.40, cell_max_v=3.62), 2.0)
    assert "over_voltage" in after.report.protection
    assert after.report.charge_current_a == 0.0 and not after.report.charge_enable


def test_a_restart_keeps_the_recovery_hold_and_ramp():
    engine = BmsEngine(CFG)
    engine.step(snap(), 0.0)
    engine.step(snap(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.70), 1.0)    # cut
    for t in range(2, 9):
        engine.step(snap(cell_min_v=3.25, cell_max_v=3.30), float(t))            # cleared at t=2: hold runs
    engine = restarted(engine)
    ccl = [engine.step(snap(cell_min_v=3.25, cell_max_v=3.30), float(t)).report.charge_current_a
           for t in range(9, 60)]
    assert ccl[:24] == [0.0] * 24          # the 23 s left of the hold that started at t=2, from the restart
    assert ccl[24:26] == [5.0, 10.0]       # then the 5 A/s ramp
    assert ccl[-1] == 100.0


def test_the_recovery_hold_starts_when_the_cause_clears_not_at_the_cut():
    engine = BmsEngine(CFG)
    engine.step(snap(), 0.0)
    for t in range(1, 61):                                                        # over-voltage for a minute
        cut = engine.step(snap(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.70), float(t))
        assert cut.report.charge_current_a == 0.0
    ccl = [engine.step(snap(cell_min_v=3.25, cell_max_v=3.30), float(t)).report.charge_current_a
           for t in range(61, 100)]
    assert ccl[:30] == [0.0] * 30          # held 30 s from the clearing at t=61
    assert ccl[30:32] == [5.0, 10.0]


def test_an_engine_that_starts_in_a_cut_holds_after_it():
    engine = BmsEngine(CFG)
    assert engine.step(snap(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.70), 0.0).report.charge_current_a == 0.0
    ccl = [engine.step(snap(cell_min_v=3.25, cell_max_v=3.30), float(t)).report.charge_current_a for t in range(1, 40)]
    assert ccl[:30] == [0.0] * 30 and ccl[30] == 5.0


def test_a_full_pack_idling_below_the_charge_voltage_ends_absorption_when_the_monitor_has_synchronised():
    from bms.replay import replay
    # The inverter's own setpoint holds the pack at 54.6 V, under 55.2 V - 0.2 V: it never counts as
    # at the charge voltage. The monitor synchronised (100 %) and the tail current is 2 A.
    trace = ["t,voltage_v,current_a,soc_pct,temperature_c"]
    trace += ["%d,%.2f,%.1f,100.0,20.0" % (t, 54.6 + t % 20 / 1000, 2.0 + t % 30 / 100) for t in range(0, 4 * 3600, 10)]
    rows = list(replay(trace, CFG))
    phases = [row["phase"] for row in rows]
    assert phases[0] == "absorption"
    first_float = phases.index("float")
    assert rows[first_float]["t"] == 10 + CFG.charge.tail_time_s      # tail held from t=10 for tail_time_s
    assert set(phases[first_float:]) == {"float"}
    assert rows[-1]["charge_voltage_v"] == CFG.charge.float_voltage_v


def test_a_restart_after_the_failsafe_lowered_the_limits_holds_from_what_it_sent():
    engine = BmsEngine(CFG)
    for t in range(0, 40):
        engine.step(snap(current_a=10.0 + t % 2), float(t))                     # CCL 100 A, DCL 120 A
    failsafe_sent = degrade(engine.step(snap(), 40.0).report, 35.0, CFG)       # bms_tx gone 35 s: stale frames
    assert failsafe_sent.charge_current_a == 0.0
    engine = restarted(engine)
    engine.resume_below(failsafe_sent)
    ccl = [engine.step(snap(current_a=10.0 + t % 2), float(t)).report.charge_current_a for t in range(80, 120)]
    assert ccl[:31] == [0.0] * 31 and ccl[31] == 5.0      # from 0 A by hold (the first step counts 0 s) and ramp
