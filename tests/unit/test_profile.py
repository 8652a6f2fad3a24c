"""A profile module is the one place that knows its inverter: every module carries all the
attributes the rest of the bridge reads (config checks, the vebus service, the hot standby), so
adding an inverter is adding one file and a module that lacks one fails here by name."""
import importlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import inverter, profiles, pylon
from protocol.profile import BYTE_ORDERS, Profile
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

TRANSPORTS = ("broadcast", "polled")
TYPICAL = BatteryReport(charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0,
                        discharge_voltage_v=48.0, soc_pct=60.0, soh_pct=100.0, voltage_v=52.3, current_a=-12.5,
                        temperature_c=21.5, charge_enable=True, discharge_enable=True)


@pytest.mark.parametrize("name", profiles.names())
def test_every_profile_module_carries_what_the_rest_of_the_bridge_reads(name):
    profile = importlib.import_module("protocol.profiles." + name).PROFILE
    assert isinstance(profile, Profile) and profile.name == name
    assert isinstance(profile.product_name, str) and profile.product_name.strip(), \
        "profile %s has no product_name (what Venus shows as the inverter)" % name
    assert profile.transport in TRANSPORTS
    assert profile.byte_order in BYTE_ORDERS
    assert profile.bitrates and all(isinstance(rate, int) and rate > 0 for rate in profile.bitrates)
    assert isinstance(profile.ignores_zero_limits, bool) and isinstance(profile.ac_telemetry, bool)
    assert profile.cycle_s > 0 and profile.frame_ids and profile.default_manufacturer
    assert profile.temperature_not_available is None or isinstance(profile.temperature_not_available, int)
    for_pack = profile.for_pack(16)
    assert (for_pack.product_name, for_pack.transport, for_pack.byte_order) == (
        profile.product_name, profile.transport, profile.byte_order)


def test_the_quirks_are_where_the_documents_put_them():
    """PYLON_CAN.md §6: Deye LV ignores CCL/DCL = 0 (Deye HV is stopped by the 0x4280 forbid marks);
    only the Sunny Island broadcasts AC telemetry; SMA and Victron's 0x356 have a "not available"
    temperature (0x8000), Pylon and its variants none; Pylon HV speaks 500 or 250 kbit/s, LV 500."""
    quirks = {name: profiles.get(name) for name in profiles.names()}
    assert sorted(name for name, p in quirks.items() if p.ignores_zero_limits) == ["deye"]
    assert sorted(name for name, p in quirks.items() if p.ac_telemetry) == ["sma_si"]
    assert {name: p.temperature_not_available for name, p in quirks.items()
            if p.temperature_not_available is not None} == {"sma_si": 0x8000, "victron": 0x8000}
    assert {name: p.bitrates for name, p in quirks.items()} == {
        name: (500000, 250000) if p.transport == "polled" else (500000,) for name, p in quirks.items()}


def big_endian_pylon() -> Profile:
    return Profile("pylon_be", pylon.FRAMES, (inverter.KEEPALIVE,), [inverter.standard_filter(0x305)],
                   product_name="test", byte_order="big")


def test_a_big_endian_profile_sends_every_number_big_endian_and_reads_it_back():
    profile = big_endian_pylon()
    frames = {frame.arbitration_id: frame for frame in profile.encode(TYPICAL)}
    assert frames[0x351].data == struct.pack(">HhhH", 552, 1000, 1200, 480)
    assert frames[0x356].data == struct.pack(">hhh", 5230, -125, 215)
    assert frames[0x35E].data == b"PYLON   "          # text has no byte order
    assert profile.decode(frames[0x356]).fields == {"voltage_v": 52.3, "current_a": -12.5, "temperature_c": 21.5}
    assert profile.report_from_frames(list(frames.values())) == TYPICAL._replace(
        protection=frozenset(), alarm=frozenset())


def test_an_unknown_byte_order_is_refused_by_name():
    with pytest.raises(ValueError, match="byte_order = 'middle' is not allowed: expected little or big"):
        Profile("odd", pylon.FRAMES, (), [], byte_order="middle")


REPORTS = st.builds(
    BatteryReport, charge_voltage_v=st.floats(40, 64), charge_current_a=st.floats(0, 400),
    discharge_current_a=st.floats(0, 400), discharge_voltage_v=st.floats(40, 50), soc_pct=st.floats(0, 100),
    soh_pct=st.floats(0, 100), voltage_v=st.floats(40, 64), current_a=st.floats(-300, 300),
    temperature_c=st.one_of(st.none(), st.floats(-20, 60)), charge_enable=st.booleans(),
    discharge_enable=st.booleans(), force_charge_1=st.booleans(), force_charge_2=st.booleans(),
    full_charge=st.booleans(), protection=st.frozensets(st.sampled_from(PROTECTIONS)),
    alarm=st.frozensets(st.sampled_from(ALARMS)), modules=st.integers(1, 20),
    capacity_ah=st.one_of(st.none(), st.floats(1, 2000)), cell_min_v=st.one_of(st.none(), st.floats(2.5, 3.6)),
    cell_max_v=st.one_of(st.none(), st.floats(2.5, 3.7)),
    temperature_min_c=st.floats(-20, 60), temperature_max_c=st.floats(-20, 60),
    cycle_count=st.one_of(st.none(), st.integers(0, 9999)))


@pytest.mark.parametrize("name", profiles.names())
@settings(max_examples=60, deadline=None)
@given(report=REPORTS)
def test_each_profile_rebuilds_a_report_from_its_own_frames_that_encodes_to_them(name, report):
    profile = profiles.get(name)
    frames = profile.encode(report)
    assert profile.encode(profile.report_from_frames(frames)) == frames


def test_a_frame_set_without_0x359_gets_its_flags_from_the_alarm_items():
    si = profiles.get("sma_si")
    flagged = TYPICAL._replace(protection=frozenset({"over_voltage", "system_error"}),
                               alarm=frozenset({"low_temperature", "internal_comm_fail"}))
    rebuilt = si.report_from_frames(si.encode(flagged))
    assert (rebuilt.protection, rebuilt.alarm) == (flagged.protection, flagged.alarm)


def test_an_incomplete_frame_set_is_refused_naming_what_it_lacks():
    profile = profiles.get("pylon")
    with pytest.raises(ValueError, match="the frame set lacks charge_voltage_v, charge_current_a"):
        profile.report_from_frames(profile.encode(TYPICAL)[1:])
