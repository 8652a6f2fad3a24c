"""CCL/DCL candidates and hold-and-ramp, with expected values worked out by hand from config.toml."""
import pytest

import config
from bms.limits import (Governor, Limit, charge_candidates, discharge_candidates, govern, lowest,
                        toward_high_limit, toward_low_limit)
from bms.reading import read
from bms.snapshot import BatterySnapshot

CFG = config.load()   # max CCL 100 A, max DCL 120 A, taper floor 10 %, SoC tapers 90 % / 15 %


def reading(voltage_v=52.0, current_a=0.0, soc_pct=50.0, temperature_c=20.0, cell_min_v=None, cell_max_v=None):
    result, problem = read(BatterySnapshot(voltage_v, current_a, soc_pct, temperature_c, 0.0, cell_min_v, cell_max_v), 16)
    assert problem == ""
    return result


def charge_limit(active=frozenset(), **values):
    return lowest(charge_candidates(reading(**values), active, CFG))


def discharge_limit(active=frozenset(), **values):
    return lowest(discharge_candidates(reading(**values), active, CFG))


def test_taper_shapes():
    assert [toward_high_limit(v, 90, 100) for v in (80, 90, 95, 100, 101)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert [toward_low_limit(v, 15, 0) for v in (20, 15, 7.5, 0, -1)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert [toward_high_limit(v, 100, 100) for v in (99.9, 100)] == [1.0, 0.0]   # no band: a step


def test_an_unlimited_battery_gets_the_configured_maximum():
    assert charge_limit() == Limit(100.0, "configured maximum")
    assert discharge_limit() == Limit(120.0, "configured maximum")


def test_soc_taper_near_full_and_empty():
    # 95 % is half way from 90 % to 100 %: 10 % + 90 % x 0.5 = 55 % of 100 A
    assert charge_limit(soc_pct=95.0) == Limit(pytest.approx(55.0), "SoC 95.0 % taper")
    assert charge_limit(soc_pct=100.0).current_a == pytest.approx(10.0)
    # 7.5 % is half way from 15 % to 0 %: 55 % of 120 A
    assert discharge_limit(soc_pct=7.5).current_a == pytest.approx(66.0)
    assert discharge_limit(soc_pct=0.0).current_a == pytest.approx(12.0)


def test_cell_voltage_taper_uses_the_highest_cell_or_the_pack_average():
    # 3.60 V is half way from 3.55 V to 3.65 V
    limit = charge_limit(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.60)
    assert limit.current_a == pytest.approx(50.0) and "highest cell 3.600 V" in limit.reason
    limit = charge_limit(voltage_v=16 * 3.60)
    assert limit.current_a == pytest.approx(50.0) and "pack average 3.600 V" in limit.reason
    # the lowest cell at 2.95 V is half way from 3.10 V to 2.80 V
    limit = discharge_limit(voltage_v=51.0, cell_min_v=2.95, cell_max_v=3.25)
    assert limit.current_a == pytest.approx(60.0) and "lowest cell 2.950 V" in limit.reason


def test_temperature_derating_per_direction():
    # charge: 0..50 degC with a 10 degC band; discharge: -20..55 degC
    assert charge_limit(temperature_c=5.0) == Limit(pytest.approx(50.0), "temperature 5.0 degC taper")
    assert charge_limit(temperature_c=47.5).current_a == pytest.approx(25.0)
    assert charge_limit(temperature_c=-1.0).current_a == 0.0
    assert discharge_limit(temperature_c=5.0).current_a == 120.0
    assert discharge_limit(temperature_c=-15.0).current_a == pytest.approx(60.0)


def test_no_temperature_sensor_means_no_temperature_candidate():
    reasons = [limit.reason for limit in charge_candidates(reading(temperature_c=None), frozenset(), CFG)]
    assert not any("temperature" in reason for reason in reasons)


def test_a_cut_wins_and_names_its_condition():
    assert charge_limit(active=frozenset({"over_voltage"})) == Limit(0.0, "cut by over_voltage")
    assert charge_limit(active=frozenset({"charge_too_cold"}), temperature_c=-1.0) == Limit(0.0, "cut by charge_too_cold")
    assert discharge_limit(active=frozenset({"under_voltage"})) == Limit(0.0, "cut by under_voltage")
    # a discharge cut leaves charging alone and the other way round
    assert charge_limit(active=frozenset({"under_voltage"})).current_a == 100.0
    assert discharge_limit(active=frozenset({"over_voltage"})).current_a == 120.0


def test_lowest_keeps_the_earliest_of_equals():
    assert lowest([Limit(5.0, "a"), Limit(3.0, "b"), Limit(3.0, "c")]) == Limit(3.0, "b")


LIMITS = CFG.limits   # hold 30 s, ramp 5 A/s


def test_govern_follows_reductions_at_once_then_holds_then_ramps():
    governor, out = govern(None, Limit(100.0, "max"), 1.0, LIMITS)
    assert out == Limit(100.0, "max")
    governor, out = govern(governor, Limit(0.0, "cut"), 1.0, LIMITS)
    assert out == Limit(0.0, "cut") and governor == Governor(0.0, 30.0)
    for _ in range(29):                                   # 29 s of the 30 s hold
        governor, out = govern(governor, Limit(100.0, "max"), 1.0, LIMITS)
        assert out.current_a == 0.0 and out.reason.startswith("recovery hold")
    governor, out = govern(governor, Limit(100.0, "max"), 3.0, LIMITS)   # 1 s hold left, then 2 s at 5 A/s
    assert out.current_a == pytest.approx(10.0) and out.reason.startswith("recovery ramp to 100.0 A")
    for _ in range(17):
        governor, out = govern(governor, Limit(100.0, "max"), 1.0, LIMITS)
    assert out.current_a == pytest.approx(95.0)
    governor, out = govern(governor, Limit(100.0, "max"), 1.0, LIMITS)
    assert out == Limit(100.0, "max") and governor == Governor(100.0, 0.0)


def test_govern_restarts_the_hold_on_every_reduction():
    governor = Governor(50.0, 5.0)
    governor, out = govern(governor, Limit(40.0, "lower"), 1.0, LIMITS)
    assert governor.hold_left_s == 30.0 and out.current_a == 40.0


def test_govern_never_gives_more_than_the_target():
    governor = Governor(0.0, 0.0)
    for target in (10.0, 200.0, 3.0, 3.0, 500.0):
        governor, out = govern(governor, Limit(target, "t"), 100.0, LIMITS)
        assert out.current_a <= target
