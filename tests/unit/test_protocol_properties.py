"""Properties over each field's whole range: decode(encode(x)) == x within the resolution,
out-of-range values clamp (never wrap) and never so that a limit loosens, and NaN/None never
reaches a frame.

The field tables below are written from the vendor documents (type, resolution, range), not
taken from the code.
"""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import profiles
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

S16_01 = (-3276.8, 3276.7)        # s16 in 0.1 units
S16_01_SMA = (-3276.7, 3276.7)    # 0x8000 is "invalid" for SMA (and Victron's temperature)

# (frame id, decoded key, report attribute, resolution, low, high)
PYLON = [
    (0x351, "charge_voltage_v", "charge_voltage_v", 0.1, 0, 6553.5),
    (0x351, "charge_current_a", "charge_current_a", 0.1, 0, 3276.7),  # limits are not negative
    (0x351, "discharge_current_a", "discharge_current_a", 0.1, 0, 3276.7),  # sent positive
    (0x351, "discharge_voltage_v", "discharge_voltage_v", 0.1, 0, 6553.5),
    (0x355, "soc_pct", "soc_pct", 1, 0, 100),
    (0x355, "soh_pct", "soh_pct", 1, 0, 100),
    (0x356, "voltage_v", "voltage_v", 0.01, -327.68, 327.67),
    (0x356, "current_a", "current_a", 0.1) + S16_01,
    (0x356, "temperature_c", "temperature_c", 0.1) + S16_01,
    (0x359, "modules", "modules", 1, 0, 255),
]
SOLARK = [entry for entry in PYLON if entry[1] != "voltage_v"] + [
    (0x356, "voltage_v", "voltage_v", 0.1) + S16_01,
    (0x379, "capacity_ah", "capacity_ah", 1, 0, 65535)]
LUXPOWER = [entry for entry in PYLON if entry[1] != "temperature_c"] + [
    (0x355, "cell_max_v", "cell_max_v", 0.001, 0, 65.535),
    (0x355, "cell_min_v", "cell_min_v", 0.001, 0, 65.535),
    (0x356, "temperature_max_c", "temperature_max_c", 0.1) + S16_01,
    (0x356, "temperature_min_c", "temperature_min_c", 0.1) + S16_01,
    (0x359, "capacity_ah", "capacity_ah", 1, 0, 65535),
    (0x35C, "cycle_count", "cycle_count", 1, 0, 65535)]
VICTRON = [entry for entry in PYLON if entry[1] != "temperature_c"] + [
    (0x356, "temperature_c", "temperature_c", 0.1) + S16_01_SMA,
    (0x355, "soc_hires_pct", "soc_pct", 0.01, 0, 100),
    (0x35F, "capacity_ah", "capacity_ah", 1, 0, 65534)]
SMA = [  # [SMA-TI] §5.3 ranges; 0xFFFF / 0x8000 are "invalid"
    (0x351, "charge_voltage_v", "charge_voltage_v", 0.1, 41, 63),
    (0x351, "charge_current_a", "charge_current_a", 0.1, 0, 1200),
    (0x351, "discharge_current_a", "discharge_current_a", 0.1, 0, 1200),
    (0x351, "discharge_voltage_v", "discharge_voltage_v", 0.1, 41, 48),
    (0x355, "soc_pct", "soc_pct", 1, 0, 100),
    (0x355, "soh_pct", "soh_pct", 1, 0, 100),
    (0x355, "soc_hires_pct", "soc_pct", 0.01, 0, 100),
    (0x356, "voltage_v", "voltage_v", 0.01, -327.67, 327.67),
    (0x356, "current_a", "current_a", 0.1) + S16_01_SMA,
    (0x356, "temperature_c", "temperature_c", 0.1) + S16_01_SMA,
    (0x35F, "capacity_ah", "capacity_ah", 1, 0, 65534)]
TABLES = {"pylon": PYLON, "deye": PYLON, "solark": SOLARK, "luxpower": LUXPOWER, "victron": VICTRON, "sma_si": SMA}
# Every broadcast profile is checked here (the polled ones in test_protocol_hv.py): a new one
# without its table fails test_every_broadcast_profile_has_a_field_table by name.
BROADCAST = [name for name in profiles.names() if profiles.get(name).transport == "broadcast"]

INTEGER_ATTRIBUTES = {"modules", "cycle_count"}


def number(low, high, integer=False):
    """Mostly inside the field's range, often far outside it."""
    span = high - low
    if integer:
        return st.integers(int(low - 2 * span), int(high + 2 * span))
    return st.one_of(st.floats(low, high), st.floats(low - 2 * span, high + 2 * span),
                     st.floats(allow_nan=False, allow_infinity=False))


def report_for(table):
    """A strategy of reports whose numbers cover the table's fields and a valid rest."""
    values = {attribute: number(low, high, attribute in INTEGER_ATTRIBUTES)
              for _, _, attribute, _, low, high in table}
    defaults = dict(charge_voltage_v=st.just(50.0), charge_current_a=st.just(0.0),
                    discharge_current_a=st.just(0.0), discharge_voltage_v=st.just(45.0), soc_pct=st.just(50.0),
                    soh_pct=st.just(100.0), voltage_v=st.just(50.0), current_a=st.just(0.0),
                    temperature_c=st.just(20.0), force_charge_1=st.just(False), force_charge_2=st.just(False),
                    full_charge=st.just(False), protection=st.just(frozenset()), alarm=st.just(frozenset()),
                    modules=st.just(1), capacity_ah=st.none(), cell_min_v=st.none(), cell_max_v=st.none(),
                    temperature_min_c=st.none(), temperature_max_c=st.none(), cycle_count=st.none())
    defaults.update(values)
    return st.builds(BatteryReport, charge_enable=st.booleans(), discharge_enable=st.booleans(), **defaults)


def decoded_frames(profile, battery):
    return {frame.arbitration_id: profile.decode(frame).fields for frame in profile.encode(battery)}


def range_of(table, attribute):
    return [(low, high) for _, key, _, _, low, high in table if key == attribute][0]


def check_numbers(name, battery):
    fields = decoded_frames(profiles.get(name), battery)
    # raising a CVL or lowering a DVL to the field's range would loosen it: charging (discharging) stops instead
    stopped = set()
    if battery.charge_voltage_v < range_of(TABLES[name], "charge_voltage_v")[0]:
        stopped.add("charge_current_a")
    if battery.discharge_voltage_v > range_of(TABLES[name], "discharge_voltage_v")[1]:
        stopped.add("discharge_current_a")
    for frame_id, key, attribute, resolution, low, high in TABLES[name]:
        expected = 0.0 if attribute in stopped else min(max(getattr(battery, attribute), low), high)
        assert math.isclose(fields[frame_id][key], expected, abs_tol=resolution / 2 * (1 + 1e-9)), \
            (hex(frame_id), key, getattr(battery, attribute), fields[frame_id][key])


def test_every_broadcast_profile_has_a_field_table():
    assert sorted(TABLES) == BROADCAST


@pytest.mark.parametrize("name", BROADCAST)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_numbers_round_trip_and_clamp(name, data):
    check_numbers(name, data.draw(report_for(TABLES[name])))


LIMIT_VALUES = st.one_of(st.floats(-100, 100), st.floats(allow_nan=False, allow_infinity=False))


@pytest.mark.parametrize("name", BROADCAST)
@settings(max_examples=100, deadline=None)
@given(cvl=LIMIT_VALUES, ccl=LIMIT_VALUES, dcl=LIMIT_VALUES, dvl=LIMIT_VALUES)
def test_no_limit_on_the_wire_is_looser_than_the_report(name, cvl, ccl, dcl, dvl):
    """A CVL, CCL or DCL is never sent higher and a DVL never lower than decided, unless the
    current it bounds is sent as 0 (charging / discharging stopped)."""
    battery = BatteryReport(cvl, ccl, dcl, dvl, 50.0, 100.0, 50.0, 0.0, 20.0, True, True)
    limits = decoded_frames(profiles.get(name), battery)[0x351]
    rounding = 0.05 + 1e-9
    assert limits["charge_current_a"] <= max(ccl, 0.0) + rounding
    assert limits["discharge_current_a"] <= max(dcl, 0.0) + rounding
    assert limits["charge_voltage_v"] <= cvl + rounding or limits["charge_current_a"] == 0.0
    assert limits["discharge_voltage_v"] >= dvl - rounding or limits["discharge_current_a"] == 0.0


@pytest.mark.parametrize("attribute, value, frame_id, offset, raw", [
    ("charge_current_a", 5000.0, 0x351, 2, 0x7FFF),    # not 50000 wrapped to a negative s16
    ("charge_current_a", -20.0, 0x351, 2, 0),
    ("charge_voltage_v", 7000.0, 0x351, 0, 0xFFFF),
    ("charge_voltage_v", -1.0, 0x351, 0, 0),
    ("voltage_v", 400.0, 0x356, 0, 0x7FFF),
    ("current_a", -5000.0, 0x356, 2, 0x8000),
    ("soc_pct", 150.0, 0x355, 0, 100),
    ("soc_pct", -5.0, 0x355, 0, 0),
    ("modules", 300, 0x359, 4, 255),
    ("charge_voltage_v", 1e300, 0x351, 0, 0xFFFF),
])
def test_out_of_range_values_clamp_and_never_wrap(attribute, value, frame_id, offset, raw):
    battery = BatteryReport(50.0, 10.0, 10.0, 45.0, 50.0, 100.0, 50.0, 0.0, 20.0, True, True)
    data = {f.arbitration_id: f.data for f in profiles.get("pylon").encode(battery._replace(**{attribute: value}))}
    width = 1 if attribute == "modules" else 2
    assert int.from_bytes(data[frame_id][offset:offset + width], "little") == raw


MANDATORY = ("charge_voltage_v", "charge_current_a", "discharge_current_a", "discharge_voltage_v", "soc_pct",
             "soh_pct", "voltage_v", "current_a", "modules")


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name, attribute", [(name, attribute) for name in BROADCAST for attribute in MANDATORY
                                             if any(entry[2] == attribute for entry in TABLES[name])])
def test_missing_mandatory_value_is_a_clear_error(name, attribute, missing):
    battery = BatteryReport(50.0, 10.0, 10.0, 45.0, 50.0, 100.0, 50.0, 0.0, 20.0, True, True)
    with pytest.raises(ValueError, match="%s.*not a finite number" % attribute):
        profiles.get(name).encode(battery._replace(**{attribute: missing}))


# "not available" encodings from the documents: (profile, attribute, frame id, bytes, expected)
NOT_AVAILABLE = [
    ("sma_si", "temperature_c", 0x356, slice(4, 6), b"\x00\x80"),    # [SMA-TI] §5.1 invalid signed
    ("sma_si", "capacity_ah", 0x35F, slice(4, 6), b"\xff\xff"),      # invalid unsigned
    ("victron", "temperature_c", 0x356, slice(4, 6), b"\x00\x80"),   # [MG] §1.4 invalid sn16
    ("victron", "capacity_ah", 0x35F, slice(4, 6), b"\xff\xff"),
    ("luxpower", "cell_max_v", 0x355, slice(4, 6), b"\x00\x00"),     # V1.2 blank bytes
    ("luxpower", "cell_min_v", 0x355, slice(6, 8), b"\x00\x00"),
    ("luxpower", "capacity_ah", 0x359, slice(5, 7), b"\x00\x00"),
    ("luxpower", "cycle_count", 0x35C, slice(2, 4), b"\x00\x00"),
    ("solark", "capacity_ah", 0x379, slice(0, 2), b"\x00\x00"),
]


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf")])
@pytest.mark.parametrize("name, attribute, frame_id, where, expected", NOT_AVAILABLE)
def test_missing_optional_value_gets_the_profiles_not_available_code(name, attribute, frame_id, where, expected,
                                                                     missing):
    battery = BatteryReport(50.0, 10.0, 10.0, 45.0, 50.0, 100.0, 50.0, 0.0, 20.0, True, True, capacity_ah=100,
                            cell_min_v=3.2, cell_max_v=3.3, cycle_count=7)
    frames = {f.arbitration_id: f.data for f in profiles.get(name).encode(battery._replace(**{attribute: missing}))}
    assert frames[frame_id][where] == expected


OPTIONAL = st.one_of(st.none(), st.just(float("nan")), st.just(float("inf")), st.floats(-100, 100))


@pytest.mark.parametrize("name", BROADCAST)
@settings(max_examples=40, deadline=None)
@given(capacity=OPTIONAL, cell_min=OPTIONAL, cell_max=OPTIONAL, t_min=OPTIONAL, t_max=OPTIONAL,
       temperature=OPTIONAL, cycles=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_nan_and_none_never_reach_a_frame(name, capacity, cell_min, cell_max, t_min, t_max, temperature, cycles):
    battery = BatteryReport(50.0, 10.0, 10.0, 45.0, 50.0, 100.0, 50.0, 0.0, temperature, True, True,
                            capacity_ah=capacity, cell_min_v=cell_min, cell_max_v=cell_max,
                            temperature_min_c=t_min, temperature_max_c=t_max, cycle_count=cycles)
    profile = profiles.get(name)
    try:
        frames = profile.encode(battery)
    except ValueError as error:
        # only a profile without a "not available" temperature may refuse, and it says which
        assert "temperature" in str(error) and (temperature is None or not math.isfinite(temperature))
        assert profile.temperature_not_available is None
        return
    for frame in frames:
        for value in profile.decode(frame).fields.values():
            assert not (isinstance(value, float) and not math.isfinite(value))


ITEM_OF_PROTECTION = {"over_voltage": "high_voltage", "under_voltage": "low_voltage",
                      "over_temperature": "high_temperature", "under_temperature": "low_temperature",
                      "discharge_over_current": "high_current", "charge_over_current": "high_charge_current",
                      "system_error": "bms_internal"}
ITEM_OF_ALARM = {"high_voltage": "high_voltage", "low_voltage": "low_voltage", "high_temperature": "high_temperature",
                 "low_temperature": "low_temperature", "discharge_high_current": "high_current",
                 "charge_high_current": "high_charge_current", "internal_comm_fail": "bms_internal"}
SMA_ITEM_ORDER = ["general", "high_voltage", "low_voltage", "high_temperature", "low_temperature",
                  "high_temperature_charge", "low_temperature_charge", "high_current", "high_charge_current",
                  "contactor", "short_circuit", "bms_internal", "cell_imbalance"]

FLAGS = dict(protection=st.frozensets(st.sampled_from(PROTECTIONS)), alarm=st.frozensets(st.sampled_from(ALARMS)),
             charge_enable=st.booleans(), discharge_enable=st.booleans(), force_charge_1=st.booleans(),
             force_charge_2=st.booleans(), full_charge=st.booleans(),
             manufacturer=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=8)
             .map(str.rstrip).filter(bool))


PYLON_FLAG_FRAMES = [name for name in BROADCAST if {0x359, 0x35C, 0x35E} <= set(profiles.get(name).frame_ids)]


@pytest.mark.parametrize("name", PYLON_FLAG_FRAMES)
@settings(max_examples=100, deadline=None)
@given(**FLAGS)
def test_flags_requests_and_name_round_trip(name, protection, alarm, manufacturer, **requests):
    battery = BatteryReport(50.0, 10.0, 10.0, 45.0, 50.0, 100.0, 50.0, 0.0, 20.0, protection=protection, alarm=alarm,
                            **requests)
    profile = profiles.get(name)
    manufacturer = (profile.manufacturer_prefix + manufacturer)[:8].rstrip()    # Deye: "PYLON..." only
    fields = {f.arbitration_id: profile.decode(f).fields for f in profile.encode(battery, manufacturer)}
    assert fields[0x359]["protection"] == [flag for flag in PROTECTIONS if flag in protection]
    assert fields[0x359]["alarm"] == [flag for flag in ALARMS if flag in alarm]
    assert {key: fields[0x35C][key] for key in requests} == requests
    assert fields[0x35E]["manufacturer"] == manufacturer


def ordered(items):
    return [item for item in SMA_ITEM_ORDER if item in items]


@settings(max_examples=100, deadline=None)
@given(protection=FLAGS["protection"], alarm=FLAGS["alarm"])
def test_0x35a_raises_mapped_items_and_clears_the_others(protection, alarm):
    battery = BatteryReport(50.0, 10.0, 10.0, 45.0, 50.0, 100.0, 50.0, 0.0, 20.0, True, True,
                            protection=protection, alarm=alarm)
    sma = profiles.get("sma_si")
    fields = [sma.decode(f).fields for f in sma.encode(battery) if f.arbitration_id == 0x35A][0]
    alarms = {ITEM_OF_PROTECTION[flag] for flag in protection}
    warnings = {ITEM_OF_ALARM[flag] for flag in alarm}
    assert fields == {"alarms_raised": ordered(alarms),
                      "alarms_cleared": ordered(set(ITEM_OF_PROTECTION.values()) - alarms),
                      "warnings_raised": ordered(warnings),
                      "warnings_cleared": ordered(set(ITEM_OF_ALARM.values()) - warnings)}
    # Victron: the same, except that under-voltage protection is only a low-voltage warning
    victron = profiles.get("victron")
    fields = [victron.decode(f).fields for f in victron.encode(battery) if f.arbitration_id == 0x35A][0]
    alarms.discard("low_voltage")
    if "under_voltage" in protection:
        warnings.add("low_voltage")
    assert fields["alarms_raised"] == ordered(alarms)
    assert "low_voltage" not in fields["alarms_cleared"]
    assert fields["warnings_raised"] == ordered(warnings)
