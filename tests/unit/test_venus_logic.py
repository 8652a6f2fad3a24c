"""The Venus side's decisions without a bus: energy flows and counters, DVCC limits, vebus state,
alarms, Sunny Island AC paths, runtime settings, value wrapping."""
import json
import math

import dbus
import pytest
from hypothesis import given, settings, strategies as st

import config
from protocol import profiles
from venus import dvcc, energy, settings as venus_settings, vebus
from venus.busitem import INVALID, coerce, default_text, unwrap, wrap
from workers.dbus_publisher import setting_overrides

CFG = config.load()
POWER = st.floats(min_value=-20000, max_value=20000, allow_nan=False)


# ---- energy flows: checked against the energy balance of the AC input and output ------------

@settings(max_examples=200, deadline=None)
@given(POWER, POWER)
def test_flows_balance_the_ac_input_and_output(ac_in_w, ac_out_w):
    flows = energy.split_flows(ac_in_w, ac_out_w)
    assert all(watts >= 0 for watts in flows.values())
    assert set(flows) <= set(energy.FLOWS)
    into_input = flows["AcIn1ToAcOut"] + flows["AcIn1ToInverter"] - flows["AcOutToAcIn1"] - flows["InverterToAcIn1"]
    out_of_output = (flows["AcIn1ToAcOut"] + flows["InverterToAcOut"] - flows["AcOutToAcIn1"]
                     - flows["OutToInverter"])
    assert into_input == pytest.approx(ac_in_w, abs=1e-6)
    assert out_of_output == pytest.approx(ac_out_w, abs=1e-6)
    # power is never routed both ways through the same pair
    assert min(flows["AcIn1ToAcOut"], flows["AcOutToAcIn1"]) == 0
    assert min(flows["AcIn1ToInverter"], flows["InverterToAcIn1"]) == 0
    assert min(flows["InverterToAcOut"], flows["OutToInverter"]) == 0


@pytest.mark.parametrize("ac_in_w, ac_out_w, expected", [
    (1000.0, 3000.0, {"AcIn1ToAcOut": 1000.0, "InverterToAcOut": 2000.0}),       # grid helps the inverter
    (3000.0, 1000.0, {"AcIn1ToAcOut": 1000.0, "AcIn1ToInverter": 2000.0}),       # grid charges the battery
    (-500.0, 1000.0, {"InverterToAcOut": 1000.0, "InverterToAcIn1": 500.0}),     # battery feeds loads and grid
    (-500.0, -2000.0, {"AcOutToAcIn1": 500.0, "OutToInverter": 1500.0}),         # output PV: grid and battery
    (0.0, -800.0, {"OutToInverter": 800.0}),                                      # off-grid output PV charges
])
def test_flow_examples(ac_in_w, ac_out_w, expected):
    flows = {name: watts for name, watts in energy.split_flows(ac_in_w, ac_out_w).items() if watts}
    assert flows == expected


def test_counters_publish_only_what_was_persisted(tmp_path):
    path = str(tmp_path / "energy.json")
    counters = energy.EnergyCounters(path)
    assert set(counters.values()) == {"/Energy/" + name for name in energy.FLOWS}
    assert all(value is None for value in counters.values().values())      # never measured: invalid
    counters.add({"InverterToAcOut": 3600.0}, 1000.0)                       # 3.6 MJ = 1 kWh
    assert counters.values()["/Energy/InverterToAcOut"] is None             # not on disk yet
    assert counters.save()
    assert counters.values()["/Energy/InverterToAcOut"] == pytest.approx(1.0)
    assert json.load(open(path))["kwh"]["InverterToAcOut"] == pytest.approx(1.0)
    assert not counters.save()                                              # nothing new: no write
    again = energy.EnergyCounters(path)
    assert again.values()["/Energy/InverterToAcOut"] == pytest.approx(1.0)
    assert again.values()["/Energy/AcIn1ToAcOut"] is None


def test_unreadable_counter_file_is_kept_aside(tmp_path):
    path = tmp_path / "energy.json"
    path.write_text("{not json")
    counters = energy.EnergyCounters(str(path))
    assert all(value is None for value in counters.values().values())
    assert (tmp_path / "energy.json.unreadable").read_text() == "{not json"


def test_counter_file_entries_that_are_not_counts_are_dropped(tmp_path):
    path = tmp_path / "energy.json"
    path.write_text(json.dumps({"kwh": {"InverterToAcOut": 2.5, "AcIn1ToAcOut": -1, "GridToDc": 9.0,
                                        "OutToInverter": "x", "AcIn1ToInverter": True}}))
    values = energy.EnergyCounters(str(path)).values()
    assert values["/Energy/InverterToAcOut"] == 2.5
    assert values["/Energy/AcIn1ToAcOut"] is None and values["/Energy/OutToInverter"] is None
    assert values["/Energy/AcIn1ToInverter"] is None and "/Energy/GridToDc" not in values


# ---- DVCC limits --------------------------------------------------------------------------

def _written(**values):
    paths = {field: path for path, field in dvcc.LIMITS.items()}
    paths["user_charge_current_a"] = dvcc.USER_CHARGE_CURRENT
    return {paths[name]: value for name, value in values.items()}


def test_limits_expire_when_not_rewritten():
    written = _written(max_charge_current_a=(42.0, 100.0), max_charge_voltage_v=(55.0, 95.0))
    slot = dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, now=150.0, timeout_s=52.0)
    assert slot["max_charge_current_a"] == 42.0 and slot["max_charge_voltage_v"] is None
    assert slot["max_discharge_current_a"] is None and slot["battery_low_voltage_v"] is None
    never = dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, now=1e9, timeout_s=0)
    assert never["max_charge_voltage_v"] == 55.0


def test_user_charge_current_bounds_the_dvcc_one_unless_unlimited():
    written = _written(max_charge_current_a=(42.0, 0.0), user_charge_current_a=(30.0, 0.0))
    assert dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, 1.0, 60.0)["max_charge_current_a"] == 30.0
    written = _written(user_charge_current_a=(dvcc.UNLIMITED_A, 0.0))
    assert dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, 1.0, 60.0)["max_charge_current_a"] is None
    written = _written(user_charge_current_a=(12.0, 0.0))
    assert dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, 59.0, 60.0)["max_charge_current_a"] == 12.0


def test_the_users_charge_limit_expires_like_the_dvcc_limits():
    """systemcalc rewrites it every 3 s while it applies; DVCC off or systemcalc gone, it must end."""
    written = _written(user_charge_current_a=(12.0, 0.0), max_charge_current_a=(42.0, 0.0))
    slot = dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, 61.0, 60.0)
    assert slot["max_charge_current_a"] is None and slot[dvcc.USER_CHARGE_FIELD] is None
    assert dvcc.expired(written, 61.0, 60.0) == sorted([dvcc.USER_CHARGE_CURRENT,
                                                        "/BatteryOperationalLimits/MaxChargeCurrent"])
    # invalid and the user's "unlimited" limit nothing, so they never expire
    written = _written(user_charge_current_a=(dvcc.UNLIMITED_A, 0.0), max_charge_voltage_v=(None, 0.0))
    assert dvcc.expired(written, 1e9, 60.0) == []


def test_the_status_section_shows_the_limits_in_force_their_age_and_what_expired():
    written = _written(max_charge_current_a=(42.0, 100.0), user_charge_current_a=(dvcc.UNLIMITED_A, 90.0))
    slot = dvcc.dvcc_slot(written, dvcc.MODE_ON, {}, now=110.0, timeout_s=60.0)
    slot.update(written={path: value for path, (value, _) in written.items()},
                written_at={path: at for path, (_, at) in written.items()},
                expired=["max_charge_voltage_v"])
    section = dvcc.status(slot, now=112.5)
    assert section["limits"]["max_charge_current_a"] == 42.0 and section["limits"]["max_charge_voltage_v"] is None
    assert section["age_s"] == {"max_charge_current_a": 12.5}          # "unlimited" has no age
    assert section["expired"] == ["max_charge_voltage_v"] and section["mode"] == dvcc.MODE_ON
    assert dvcc.status(None, 1.0)["limits"]["max_charge_current_a"] is None     # before the first slot


@pytest.mark.parametrize("mode, charge, discharge", [
    (dvcc.MODE_ON, 42.0, 80.0), (dvcc.MODE_CHARGER_ONLY, 42.0, 0.0),
    (dvcc.MODE_INVERTER_ONLY, 0.0, 80.0), (dvcc.MODE_OFF, 0.0, 0.0)])
def test_mode_is_carried_out_as_charge_and_discharge_permission(mode, charge, discharge):
    written = _written(max_charge_current_a=(42.0, 0.0), max_discharge_current_a=(80.0, 0.0))
    slot = dvcc.dvcc_slot(written, mode, {"charge.float_voltage_v": 53.4}, 1.0, 60.0)
    assert (slot["max_charge_current_a"], slot["max_discharge_current_a"]) == (charge, discharge)
    assert slot["mode"] == mode and slot["settings"] == {"charge.float_voltage_v": 53.4}


@pytest.mark.parametrize("path, value, valid", [
    ("/BatteryOperationalLimits/MaxChargeVoltage", 55.2, True),
    ("/BatteryOperationalLimits/MaxChargeVoltage", None, True),
    ("/BatteryOperationalLimits/MaxChargeVoltage", 1000.5, False),
    ("/BatteryOperationalLimits/MaxChargeCurrent", -0.1, False),
    ("/BatteryOperationalLimits/MaxChargeCurrent", float("nan"), False),
    ("/BatteryOperationalLimits/MaxChargeCurrent", True, False),
    ("/Dc/0/MaxChargeCurrent", 10000, True),
    ("/Dc/0/MaxChargeCurrent", 10000.5, False),
])
def test_valid_limits(path, value, valid):
    assert dvcc.valid_limit(path, value) is valid


@pytest.mark.parametrize("kind, written, stored", [
    (float, dbus.Boolean(True), None), (int, dbus.Boolean(False), None),        # booleans are no numbers
    (int, dbus.Double(3.9), None), (int, dbus.Double(float("inf")), None), (int, dbus.Double(float("nan")), None),
    (int, dbus.Double(3.0), 3), (int, dbus.Int32(4), 4), (int, dbus.String("3"), None),
    (float, dbus.Int32(42), 42.0), (float, dbus.Double(55.2), 55.2), (float, dbus.String("1"), None),
    (str, dbus.Int32(5), None), (str, dbus.String("Shed"), "Shed"),
])
def test_written_values_are_taken_only_as_their_type(kind, written, stored):
    if stored is None:
        with pytest.raises(ValueError):
            coerce(kind, unwrap(written))
    else:
        value = coerce(kind, unwrap(written))
        assert value == stored and type(value) is kind


def test_a_negative_zero_limit_is_stored_as_zero_and_invalid_passes_to_the_check():
    assert math.copysign(1.0, coerce(float, unwrap(dbus.Double(-0.0)))) == 1.0
    assert coerce(float, unwrap(dbus.Array([], signature="i"))) is None


@pytest.mark.parametrize("value, valid", [(1, True), (4, True), (True, False), (0, False), (3.0, False), (None, False)])
def test_valid_mode(value, valid):
    assert dvcc.valid_mode(value) is valid


# ---- vebus state, alarms, Sunny Island AC ------------------------------------------------

REPORT = {"protection": [], "alarm": []}


@pytest.mark.parametrize("link, frames, current_a, fields, state", [
    ("down", {"report": REPORT, "phase": "bulk"}, 5.0, {}, 0),
    ("up", {}, 5.0, {}, None),                                             # nothing decided yet
    ("up", {"report": REPORT, "phase": "bulk"}, 5.0, {}, 3),
    ("unknown", {"report": REPORT, "phase": "absorption"}, 0.5, {}, 4),
    ("up", {"report": REPORT, "phase": "float"}, -0.5, {}, 5),             # within the dead band
    ("up", {"report": REPORT, "phase": "float"}, -20.0, {}, 9),            # inverting
    ("up", {"report": REPORT, "phase": "float"}, None, {}, 5),
    ("up", {"report": {"protection": ["system_error"], "alarm": []}, "phase": "bulk"}, 5.0, {}, 2),
    ("up", {"report": REPORT, "phase": "bulk"}, 5.0, {"operating_state": 4}, 2),
])
def test_vebus_state(link, frames, current_a, fields, state):
    assert vebus.vebus_state(link, frames, current_a, fields) == state


def test_alarm_levels():
    assert set(vebus.alarm_levels(None).values()) == {None}
    levels = vebus.alarm_levels({"protection": ["under_voltage"], "alarm": ["high_voltage", "low_voltage"]})
    assert levels == {"/Alarms/LowBattery": 2, "/Alarms/HighDcVoltage": 1, "/Alarms/HighDcCurrent": 0}
    levels = vebus.alarm_levels({"protection": [], "alarm": ["discharge_high_current"]})
    assert levels["/Alarms/HighDcCurrent"] == 1


def test_sunny_island_ac_single_phase():
    values = vebus.sunny_island_ac({
        "ac_in_power_w": 1200.0, "ac_in_l1_power_w": 1200.0, "ac_in_l2_power_w": 0.0, "ac_out_power_w": 3100.0,
        "ac_out_l1_voltage_v": 230.1, "ac_out_l2_voltage_v": 0.0, "ac_out_frequency_hz": 50.01,
        "ac_in_l1_voltage_v": 229.0, "ac_in_frequency_hz": 49.98, "ac_in_relay_closed": True,
        "ac_in_voltage_valid": True})
    assert values["/Ac/NumberOfPhases"] == 1 and values["/Ac/NumberOfAcInputs"] == 1
    assert values["/Ac/Out/L1/P"] == 3100.0 and values["/Ac/Out/P"] == 3100.0
    assert values["/Ac/Out/L1/V"] == 230.1 and values["/Ac/Out/L1/F"] == 50.01
    assert values["/Ac/ActiveIn/L1/P"] == 1200.0 and values["/Ac/ActiveIn/L1/V"] == 229.0
    assert values["/Ac/ActiveIn/Connected"] == 1 and values["/Ac/ActiveIn/ActiveInput"] == 0
    assert values["/Ac/State/AcIn1Available"] == 1
    assert values["/Ac/Out/L2/V"] is None and values["/Ac/ActiveIn/L2/P"] is None   # no second phase


def test_sunny_island_ac_without_telemetry_is_invalid_not_zero():
    assert set(vebus.sunny_island_ac({}).values()) == {None}
    values = vebus.sunny_island_ac({"ac_in_relay_closed": False, "ac_out_l1_voltage_v": 230.0,
                                    "ac_out_l2_voltage_v": 231.0})
    assert values["/Ac/ActiveIn/ActiveInput"] == 240 and values["/Ac/ActiveIn/Connected"] == 0
    assert values["/Ac/NumberOfPhases"] == 2 and values["/Ac/Out/L1/P"] is None   # total only: not per line
    assert values["/Ac/State/AcIn1Available"] is None


def test_mode_is_adjustable_only_where_zero_limits_are_obeyed():
    """Deye LV ignores CCL/DCL = 0 (PYLON_CAN.md §6); every other profile, HV ones by their forbid marks, obeys."""
    fixed = [name for name in profiles.names() if not vebus.mode_adjustable(profiles.get(name))]
    assert fixed == ["deye"]


# ---- runtime settings ---------------------------------------------------------------------

def test_runtime_settings_carry_the_schema_range_and_the_config_default():
    entries = venus_settings.runtime_entries(CFG)
    by_path = {entry["path"]: entry for entry in entries}
    assert len(by_path) == len(entries) == len(venus_settings.runtime_keys())
    entry = by_path["/Settings/PylonVenus/charge/float_voltage_v"]
    assert isinstance(entry["default"], dbus.Double) and entry["default"] == CFG.charge.float_voltage_v
    b = CFG.battery     # a pack voltage: the configured pack's range, not the SCHEMA's 8 to 1000 V
    assert (entry["min"], entry["max"]) == (b.cell_count * b.cell_voltage_min_v, b.cell_count * b.cell_voltage_max_v)
    rule = config.SCHEMA["limits"]["max_charge_current_a"]
    current = by_path["/Settings/PylonVenus/limits/max_charge_current_a"]
    assert (current["min"], current["max"]) == (rule.low, rule.high)
    for key in venus_settings.runtime_keys():
        section, name = key.split(".", 1)
        assert section in ("charge", "limits", "battery")
        assert config.SCHEMA[section][name].kind in (int, float)
    # a key in force on Venus goes through the config check
    assert venus_settings.check_setting("charge.float_voltage_v", 53.4) == (53.4, None)
    value, problem = venus_settings.check_setting("charge.float_voltage_v", 1500.0)
    assert value is None and "charge.float_voltage_v" in problem and "8" in problem and "1000" in problem


def test_only_settings_that_differ_from_the_file_are_handed_to_bms_tx():
    values = {"charge.float_voltage_v": CFG.charge.float_voltage_v, "limits.max_charge_current_a": 55.0}
    assert setting_overrides(values, CFG) == {"limits.max_charge_current_a": 55.0}
    # every override is accepted by bms_tx's way of applying them
    CFG.replace(limits={"max_charge_current_a": 55.0})


# ---- BusItem value wrapping (VENUS.md §2.1) ---------------------------------------------------

@pytest.mark.parametrize("value, dbus_type", [
    (1.5, dbus.Double), (True, dbus.Boolean), (7, dbus.Int32), (2 ** 40, dbus.Int64), ("x", dbus.String)])
def test_wrap_types(value, dbus_type):
    wrapped = wrap(value)
    assert type(wrapped) is dbus_type and wrapped.variant_level == 1
    assert unwrap(wrapped) == value and type(unwrap(wrapped)) is type(value)


def test_invalid_is_an_empty_int32_array_and_an_empty_list_is_not():
    assert wrap(None) is INVALID and INVALID.signature == "i" and len(INVALID) == 0
    assert unwrap(dbus.Array([], signature="i")) is None
    assert wrap([]).signature == "u"
    assert default_text("/Dc/0/Voltage", None) == "---"
    assert default_text("/ProductId", 0xBA50) == "0xBA50"
    assert unwrap(wrap({"a": 1.0, "b": None})) == {"a": 1.0, "b": None}
    assert math.isnan(unwrap(dbus.Double(float("nan"))))
