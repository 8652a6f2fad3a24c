"""Limits from outside the engine (DVCC/ESS, an inverter's shutdown) keep the report's invariants."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import config
from bms.external import ExternalVoltageRamp, apply_external_limits, consistent
from protocol.report import BatteryReport
from tests.unit.test_bms_properties import reports
from venus.dvcc import MODE_INVERTER_ONLY, MODE_ON, USER_CHARGE_CURRENT, dvcc_slot

REQUESTING = BatteryReport(
    charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0, discharge_voltage_v=48.0,
    soc_pct=8.0, soh_pct=100.0, voltage_v=50.0, current_a=5.0, temperature_c=20.0,
    charge_enable=True, discharge_enable=True, force_charge_1=True, force_charge_2=True, full_charge=True)


def dvcc(charge_v=None, charge_a=None, discharge_a=None):
    return {"max_charge_voltage_v": charge_v, "max_charge_current_a": charge_a,
            "max_discharge_current_a": discharge_a, "mode": 3, "settings": {}}


def requests(report):
    return (report.force_charge_1, report.force_charge_2, report.full_charge)


@pytest.mark.parametrize("written, mode", [
    ({"/BatteryOperationalLimits/MaxChargeCurrent": (0.0, 0.0)}, MODE_ON),     # DVCC
    ({USER_CHARGE_CURRENT: (0.0, 0.0)}, MODE_ON),                               # the user's charge limit
    ({}, MODE_INVERTER_ONLY),                                                   # /Mode "inverter only"
])
def test_a_charge_current_bound_of_zero_disables_charging_and_withdraws_the_requests(written, mode):
    slot = dvcc_slot(written, mode, {}, now=1.0, timeout_s=60.0)
    report = apply_external_limits(REQUESTING, slot, shutdown=False)
    assert report.charge_current_a == 0.0
    assert not report.charge_enable
    assert requests(report) == (False, False, False)     # a Deye charges on the requests despite CCL 0
    assert report.discharge_enable and report.discharge_current_a == 120.0


def test_a_discharge_bound_of_zero_disables_discharging():
    report = apply_external_limits(REQUESTING, dvcc(discharge_a=0.0), shutdown=False)
    assert report.discharge_current_a == 0.0 and not report.discharge_enable
    assert report.charge_enable and requests(report) == (True, True, True)


def test_the_inverters_shutdown_allows_nothing_and_requests_nothing():
    report = apply_external_limits(REQUESTING, None, shutdown=True)
    assert (report.charge_current_a, report.discharge_current_a) == (0.0, 0.0)
    assert not (report.charge_enable or report.discharge_enable)
    assert requests(report) == (False, False, False)


def test_bounds_above_the_decision_change_nothing():
    assert apply_external_limits(REQUESTING, dvcc(60.0, 200.0, 200.0), shutdown=False) == REQUESTING
    assert apply_external_limits(REQUESTING, None, shutdown=False) == REQUESTING


def test_a_positive_bound_lowers_the_value_and_keeps_the_permissions():
    report = apply_external_limits(REQUESTING, dvcc(54.0, 30.0, 50.0), shutdown=False)
    assert (report.charge_voltage_v, report.charge_current_a, report.discharge_current_a) == (54.0, 30.0, 50.0)
    assert report.charge_enable and report.discharge_enable and requests(report) == (True, True, True)


def test_consistent_derives_enables_from_the_currents_and_requests_from_charging():
    report = consistent(REQUESTING._replace(charge_current_a=0.0))
    assert not report.charge_enable and requests(report) == (False, False, False)
    report = consistent(REQUESTING._replace(charge_enable=False))
    assert report.charge_current_a == 100.0 and requests(report) == (False, False, False)
    assert not consistent(REQUESTING._replace(discharge_current_a=0.0)).discharge_enable
    assert consistent(REQUESTING) == REQUESTING


bound = st.none() | st.just(0.0) | st.floats(0.0, 600.0)
dvcc_slots = st.none() | st.builds(dvcc, bound, bound, bound)


def implies(a, b):
    return not a or b


@settings(max_examples=300, deadline=None, database=None)
@given(report=reports, slot=dvcc_slots, shutdown=st.booleans())
def test_a_bounded_report_is_never_more_permissive_and_keeps_the_invariants(report, slot, shutdown):
    unbounded = consistent(report)
    bounded = apply_external_limits(report, slot, shutdown)
    assert bounded.charge_current_a <= unbounded.charge_current_a
    assert bounded.discharge_current_a <= unbounded.discharge_current_a
    assert bounded.charge_voltage_v <= unbounded.charge_voltage_v
    for field in ("charge_enable", "discharge_enable", "force_charge_1", "force_charge_2", "full_charge"):
        assert implies(getattr(bounded, field), getattr(unbounded, field)), field
    assert implies(bounded.charge_enable, bounded.charge_current_a > 0)
    assert implies(bounded.discharge_enable, bounded.discharge_current_a > 0)
    assert implies(any(requests(bounded)), bounded.charge_enable)
    if shutdown:
        assert not (bounded.charge_enable or bounded.discharge_enable or any(requests(bounded)))
    for field, key in (("charge_voltage_v", "max_charge_voltage_v"), ("charge_current_a", "max_charge_current_a"),
                       ("discharge_current_a", "max_discharge_current_a")):
        limit = (slot or {}).get(key)
        if limit is not None:
            assert getattr(bounded, field) <= limit
    assert all(math.isfinite(value) for value in bounded[:3])
    assert (bounded.protection, bounded.alarm) == (report.protection, report.alarm)


@pytest.mark.parametrize("low_v, dvl", [
    (50.0, 50.0),          # DVCC's battery low voltage above ours: discharging stops sooner
    (46.0, 48.0),          # below ours: ours holds
    (55.2, 48.0),          # not below the CVL: no DVL could be sent with it, ours holds
    (None, 48.0),
])
def test_dvccs_battery_low_voltage_raises_the_dvl(low_v, dvl):
    slot = dict(dvcc(), battery_low_voltage_v=low_v)
    assert apply_external_limits(REQUESTING, slot, shutdown=False).discharge_voltage_v == dvl


def test_a_lower_dvcc_charge_voltage_goes_through_the_float_ramp():
    charge = config.load().charge
    rate = charge.float_ramp_v_per_s
    ramp = ExternalVoltageRamp()
    sent = [ramp.apply(REQUESTING, 55.2, 0.0, charge).charge_voltage_v]
    for t in range(1, 4):
        bounded = apply_external_limits(REQUESTING, dvcc(charge_v=53.0), shutdown=False)
        sent.append(ramp.apply(bounded, 55.2, float(t), charge).charge_voltage_v)
    assert sent == pytest.approx([55.2, 55.2 - rate, 55.2 - 2 * rate, 55.2 - 3 * rate])
    assert ramp.apply(bounded, 55.2, 1e6, charge).charge_voltage_v == 53.0        # arrives, never below
    # our own CVL dropping at once (a protection) is not delayed by the ramp of the external one
    assert ramp.apply(bounded._replace(charge_voltage_v=50.0), 50.0, 1e6 + 0.1, charge).charge_voltage_v == 50.0
    # and a DVCC CVL above ours changes nothing
    assert ExternalVoltageRamp().apply(REQUESTING, 55.2, 0.0, charge).charge_voltage_v == 55.2
