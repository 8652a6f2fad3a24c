"""degrade(): the one stale-data policy, shared by the engine and the failsafe."""
import math

import pytest

import config
from bms.stale import degrade
from protocol.report import BatteryReport

CFG = config.load()   # hold 10 s, stale 30 s, safe discharge 20 A

REPORT = BatteryReport(
    charge_voltage_v=55.2, charge_current_a=80.0, discharge_current_a=100.0, discharge_voltage_v=48.0,
    soc_pct=70.0, soh_pct=100.0, voltage_v=53.4, current_a=25.0, temperature_c=21.0,
    charge_enable=True, discharge_enable=True, force_charge_1=True, force_charge_2=True, full_charge=True,
    alarm=frozenset({"high_temperature"}), modules=2, capacity_ah=280.0, cell_min_v=3.30, cell_max_v=3.35)


def test_within_the_hold_time_the_report_stands():
    assert degrade(REPORT, 0.0, CFG) is REPORT
    assert degrade(REPORT, 10.0, CFG) is REPORT


def test_between_hold_and_stale_the_currents_ramp_down():
    half = degrade(REPORT, 20.0, CFG)
    assert half.charge_current_a == pytest.approx(40.0)
    assert half.discharge_current_a == pytest.approx(60.0)        # half way from 100 A to 20 A
    assert half.charge_voltage_v == 55.2 and half.charge_enable and half.force_charge_1


def test_stale_disables_charging_limits_discharge_and_raises_the_alarm():
    stale = degrade(REPORT, 30.0, CFG)
    assert (stale.charge_current_a, stale.charge_enable) == (0.0, False)
    assert (stale.discharge_current_a, stale.discharge_enable) == (20.0, True)
    assert not (stale.force_charge_1 or stale.force_charge_2 or stale.full_charge)
    assert stale.alarm == {"high_temperature", "internal_comm_fail"}
    assert stale.protection == frozenset()
    # measured values and the voltages are left as they were: never a placeholder
    unchanged = ("charge_voltage_v", "discharge_voltage_v", "soc_pct", "soh_pct", "voltage_v", "current_a",
                 "temperature_c", "modules", "capacity_ah", "cell_min_v", "cell_max_v")
    assert all(getattr(stale, name) == getattr(REPORT, name) for name in unchanged)
    assert degrade(REPORT, 1e9, CFG) == stale


def test_no_safe_discharge_means_everything_off_as_a_system_error():
    cfg = CFG.replace(stale={"safe_discharge_current_a": 0.0})
    stale = degrade(REPORT, 31.0, cfg)
    assert (stale.discharge_current_a, stale.discharge_enable) == (0.0, False)
    assert "system_error" in stale.protection


def test_a_lower_discharge_limit_is_kept():
    low = REPORT._replace(discharge_current_a=5.0)
    assert degrade(low, 20.0, CFG).discharge_current_a == 5.0
    assert degrade(low, 40.0, CFG).discharge_current_a == 5.0


def test_hold_equal_to_stale_is_a_step():
    cfg = CFG.replace(stale={"hold_s": 30.0})
    assert degrade(REPORT, 30.0, cfg) is REPORT
    assert degrade(REPORT, 30.001, cfg).charge_current_a == 0.0


@pytest.mark.parametrize("age", [-1.0, math.nan, math.inf, None, "5"])
def test_an_impossible_age_is_an_error(age):
    with pytest.raises(ValueError, match="age_s"):
        degrade(REPORT, age, CFG)
