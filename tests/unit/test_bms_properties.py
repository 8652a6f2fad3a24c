"""Invariants of the engine and of degrade() over random snapshot sequences (hypothesis)."""
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

import config
from bms.engine import BmsEngine
from bms.phases import TRANSITIONS
from bms.snapshot import BatterySnapshot
from bms.stale import degrade
from bms.state import ChargeState
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

DEFAULT = config.load()
# Short timers and a narrow stale window make every transition reachable in a short sequence.
QUICK = DEFAULT.replace(
    charge={"tail_time_s": 0.0, "rebulk_confirm_s": 0.0, "rebulk_soc_pct": 30.0, "rebulk_voltage_v": 49.0,
            "absorption_max_s": 60.0, "full_charge_interval_days": 0.01,
            "full_charge_voltage_v": 55.6, "balanced_cell_spread_v": 1.0},
    limits={"max_charge_current_a": 40.0, "recovery_hold_s": 0.0},
    stale={"hold_s": 5.0, "stale_s": 10.0, "safe_discharge_current_a": 0.0})
CONFIGS = st.sampled_from([DEFAULT, QUICK])

CHARGE_PROTECTIONS = {"over_voltage", "over_temperature", "under_temperature", "charge_over_current", "system_error"}

def mostly(usual, rare, one_in: int):
    """``rare`` about once in ``one_in`` draws, ``usual`` otherwise."""
    return st.integers(1, one_in).flatmap(lambda k: rare if k == 1 else usual)


snapshots = st.builds(
    BatterySnapshot,
    voltage_v=st.floats(44.0, 60.0),
    current_a=st.floats(-250.0, 250.0),
    soc_pct=st.floats(0.0, 100.0),
    temperature_c=mostly(st.floats(-30.0, 70.0), st.none(), 5),
    age_s=mostly(st.just(0.0), st.floats(0.0, 100.0), 4),
    cell_min_v=mostly(st.floats(3.0, 3.5), st.floats(2.6, 3.5) | st.none(), 3),
    cell_max_v=mostly(st.floats(3.2, 3.6), st.floats(3.2, 3.8) | st.none(), 3))
# No data, or a monitor reporting NaN / nothing for a value.
glitches = st.none() | snapshots.flatmap(lambda s: st.sampled_from(
    [s._replace(voltage_v=None), s._replace(current_a=math.nan), s._replace(soc_pct=None)]))
steps = st.lists(st.tuples(st.floats(0.0, 120.0), mostly(snapshots, glitches, 8)), min_size=1, max_size=60)


def floats_of(report: BatteryReport):
    return [value for value in report if isinstance(value, float)]


@settings(max_examples=150, deadline=None, database=None)
@given(cfg=CONFIGS, sequence=steps)
def test_engine_invariants(cfg, sequence):
    engine = BmsEngine(cfg)
    now, previous = 1.7e9, None
    for dt, snapshot in sequence:
        now += dt
        decision = engine.step(snapshot, now)
        if decision is None:
            assert previous is None, "once decided, the engine never falls silent"
            continue
        report = decision.report
        assert all(math.isfinite(value) for value in floats_of(report))
        assert 0.0 <= report.charge_current_a <= cfg.limits.max_charge_current_a
        assert 0.0 <= report.discharge_current_a <= cfg.limits.max_discharge_current_a
        assert cfg.charge.float_voltage_v <= report.charge_voltage_v <= cfg.charge.full_charge_voltage_v
        assert report.charge_enable == (report.charge_current_a > 0)
        assert report.discharge_enable == (report.discharge_current_a > 0)
        if report.protection & CHARGE_PROTECTIONS or decision.freshness == "stale":
            assert report.charge_current_a == 0.0 and not report.charge_enable
        if decision.freshness == "stale":
            assert report.discharge_current_a <= cfg.stale.safe_discharge_current_a
            assert "internal_comm_fail" in report.alarm
        if report.force_charge_1 or report.force_charge_2 or report.full_charge:
            assert report.charge_enable
        assert report.protection <= set(PROTECTIONS) and report.alarm <= set(ALARMS)
        assert set(decision.reasons) == {"charge_current", "discharge_current", "charge_voltage"}
        if previous is not None:
            old = previous.report
            assert report.charge_voltage_v >= old.charge_voltage_v - cfg.charge.float_ramp_v_per_s * dt - 1e-9
            assert decision.phase == previous.phase or (previous.phase, decision.phase) in TRANSITIONS
        previous = decision


reports = st.builds(
    BatteryReport,
    charge_voltage_v=st.floats(40.0, 60.0), charge_current_a=st.floats(0.0, 500.0),
    discharge_current_a=st.floats(0.0, 500.0), discharge_voltage_v=st.floats(40.0, 50.0),
    soc_pct=st.floats(0.0, 100.0), soh_pct=st.floats(0.0, 100.0), voltage_v=st.floats(40.0, 60.0),
    current_a=st.floats(-200.0, 200.0), temperature_c=st.one_of(st.none(), st.floats(-20.0, 60.0)),
    charge_enable=st.booleans(), discharge_enable=st.booleans(), force_charge_1=st.booleans(),
    force_charge_2=st.booleans(), full_charge=st.booleans(),
    protection=st.frozensets(st.sampled_from(PROTECTIONS)), alarm=st.frozensets(st.sampled_from(ALARMS)))


def no_more_permissive(tighter: BatteryReport, looser: BatteryReport) -> bool:
    def implies(a, b):
        return not a or b
    return (tighter.charge_current_a <= looser.charge_current_a
            and tighter.discharge_current_a <= looser.discharge_current_a
            and tighter.charge_voltage_v <= looser.charge_voltage_v
            and implies(tighter.charge_enable, looser.charge_enable)
            and implies(tighter.discharge_enable, looser.discharge_enable)
            and implies(tighter.force_charge_1, looser.force_charge_1)
            and implies(tighter.force_charge_2, looser.force_charge_2)
            and implies(tighter.full_charge, looser.full_charge)
            and tighter.protection >= looser.protection and tighter.alarm >= looser.alarm)


@settings(max_examples=200, deadline=None, database=None)
@given(cfg=CONFIGS, report=reports, ages=st.tuples(st.floats(0.0, 200.0), st.floats(0.0, 200.0)))
def test_degrade_is_never_more_permissive_and_monotone_in_age(cfg, report, ages):
    younger, older = sorted(ages)
    at_younger, at_older = degrade(report, younger, cfg), degrade(report, older, cfg)
    assert no_more_permissive(at_younger, report)
    assert no_more_permissive(at_older, at_younger)
    assert at_older.charge_voltage_v == report.charge_voltage_v
    if older >= cfg.stale.stale_s:
        assert at_older.charge_current_a == 0.0 and not at_older.charge_enable
        assert at_older.discharge_current_a <= cfg.stale.safe_discharge_current_a
        assert "internal_comm_fail" in at_older.alarm
    assert math.isfinite(at_older.charge_current_a) and math.isfinite(at_older.discharge_current_a)


def restarted(engine, cfg):
    """A new engine from the saved state, through JSON as shared memory and the file carry it."""
    return BmsEngine(cfg, ChargeState.from_dict(json.loads(json.dumps(engine.state.to_dict()))))


@settings(max_examples=150, deadline=None, database=None)
@given(cfg=st.sampled_from([DEFAULT, QUICK.replace(limits={"recovery_hold_s": 5.0})]),
       sequence=st.lists(st.tuples(st.floats(0.0, 60.0), mostly(snapshots, glitches, 8), st.booleans()),
                         min_size=1, max_size=60))
def test_limits_rise_only_along_the_ramp_and_protections_hold_across_restarts(cfg, sequence):
    engine = BmsEngine(cfg)
    now, previous = 1.7e9, None
    for dt, snapshot, restart in sequence:
        now += dt
        if restart:
            engine = restarted(engine, cfg)
        decision = engine.step(snapshot, now)
        if decision is None:
            continue
        report = decision.report
        if previous is not None:
            ramp = cfg.limits.recovery_ramp_a_per_s * dt + 1e-9
            assert report.charge_current_a <= previous.charge_current_a + ramp
            assert report.discharge_current_a <= previous.discharge_current_a + ramp
        assert report.protection >= engine.state.latches & {"over_voltage", "under_voltage"}
        previous = report
