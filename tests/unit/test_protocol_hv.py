"""Pylon HV (protocol/pylon_hv.py and the *_hv profiles) against independent oracles.

Oracles: the reference payloads and the EEV capture of PYLON_HV.md §5, and a re-derivation of
each field from the field table (§3.2) with ``struct``, written here without the codec's parts.
"""
import struct
import time

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import profiles
from protocol.frame import Frame
from protocol.pylon_hv import HvSettings, PollSession, PylonHvProfile
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

HV_NAMES = [name for name in profiles.names() if profiles.get(name).transport == "polled"]


def hv_report(**changes) -> BatteryReport:
    values = dict(charge_voltage_v=270.0, charge_current_a=105.0, discharge_current_a=105.0,
                  discharge_voltage_v=202.5, soc_pct=46, soh_pct=100, voltage_v=246.9, current_a=0.0,
                  temperature_c=18.1, charge_enable=True, discharge_enable=True, modules=5, capacity_ah=50,
                  cell_min_v=3.290, cell_max_v=3.295, temperature_min_c=12.2, temperature_max_c=15.0)
    values.update(changes)
    return BatteryReport(**values)


def frames_by_id(frames):
    return {frame.arbitration_id: frame.data for frame in frames}


def poll(byte0: int) -> Frame:
    return Frame(0x4200, bytes([byte0]) + bytes(7), True)


def test_the_compatibility_list_variants_are_hv_profiles():
    assert {"deye_hv", "hoymiles_hv", "pylon_hv", "sofar_hv", "solxpow_hv"} <= set(HV_NAMES)


# --- reference payloads (PYLON_HV.md §5, BE defaults decoded little endian; EEV capture) --------

@pytest.mark.parametrize("name", HV_NAMES)
def test_reference_payloads_decode_to_the_stated_values(name):
    profile = profiles.get(name)
    base = profile.settings.address

    def decode(frame_id, payload):
        decoded = profile.decode(Frame(frame_id + base, bytes.fromhex(payload), True))
        return decoded.fields

    if profile.settings.current_offset:
        assert decode(0x4210, "A5 09 30 75 9D 04 2E 64") == {
            "voltage_v": 246.9, "current_a": 0.0, "temperature_c": 18.1, "soc_pct": 46, "soh_pct": 100}
        limits = decode(0x4220, "8C 0A E9 07 4A 79 4A 79")
        assert limits["charge_voltage_v"] == 270.0 and limits["discharge_voltage_v"] == 202.5
        assert limits["charge_current_a"] == 105.0
        # 31050 is +105 A in the positive form and -105 A (not a limit) in the negative one (§6 C2)
        assert limits["discharge_current_a"] == (-105.0 if profile.settings.discharge_limit_negative else 105.0)
    assert decode(0x4230, "DF 0C DA 0C 03 00 06 00") == {"cell_max_v": 3.295, "cell_min_v": 3.290}
    assert decode(0x4240, "7E 04 62 04 11 00 03 00") == {"temperature_max_c": 15.0, "temperature_min_c": 12.2}
    status = decode(0x4250, "03 02 00 00 00 00 00 00")
    assert status["pile_state"] == 3 and status["alarm"] == status["protection"] == []
    assert decode(0x4270, "7E 04 62 04 05 00 01 00") == {
        "module_max_temperature_c": 15.0, "module_min_temperature_c": 12.2}
    assert decode(0x7320, "2D 00 03 0F 90 00 32 00") == {
        "cell_count": 45, "modules": 3, "cells_per_module": 15, "nominal_voltage_v": 144, "capacity_ah": 50}


def test_the_reference_stack_encodes_to_the_reference_payloads():
    """BE's captured 75-cell stack, sent with the positive discharge form BE's payload has."""
    frames = frames_by_id(profiles.get("hoymiles_hv").for_pack(75).encode(hv_report()))
    assert frames[0x4210] == bytes.fromhex("A5 09 30 75 9D 04 2E 64")
    assert frames[0x4220] == bytes.fromhex("8C 0A E9 07 4A 79 4A 79")
    assert frames[0x4230][:4] == bytes.fromhex("DF 0C DA 0C")
    assert frames[0x4240][:4] == bytes.fromhex("7E 04 62 04")
    assert frames[0x4270][:4] == bytes.fromhex("7E 04 62 04")
    assert frames[0x7310] == bytes.fromhex("01 00 02 01 01 02 00 00")


def test_the_eev_geometry_is_encoded_byte_for_byte():
    report = hv_report(modules=3, capacity_ah=50)
    frames = frames_by_id(profiles.get("pylon_hv").for_pack(45).encode(report))
    assert frames[0x7320] == bytes.fromhex("2D 00 03 0F 90 00 32 00")


# --- encoder vs a re-derivation from the field table (§3.2) for each variant --------------------

def derived_4220(report, settings: HvSettings) -> bytes:
    order = ">" if settings.big_endian else "<"
    bias = 30000 if settings.current_offset else 0
    charge = bias + round(report.charge_current_a * 10)
    discharge = bias + (-1 if settings.discharge_limit_negative else 1) * round(report.discharge_current_a * 10)
    code = "H" if settings.current_offset else "h"
    return struct.pack(order + "HH" + code + code, round(report.charge_voltage_v * 10),
                       round(report.discharge_voltage_v * 10), charge, discharge)


def derived_4210(report, settings: HvSettings) -> bytes:
    order = ">" if settings.big_endian else "<"
    bias = 30000 if settings.current_offset else 0
    return struct.pack(order + "H" + ("H" if settings.current_offset else "h") + "HBB",
                       round(report.voltage_v * 10), bias + round(report.current_a * 10),
                       1000 + round(report.temperature_c * 10), round(report.soc_pct), round(report.soh_pct))


VARIANTS = [HvSettings(), HvSettings(discharge_limit_negative=False), HvSettings(big_endian=True),
            HvSettings(current_offset=False, discharge_limit_negative=False), HvSettings(address=7)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: repr(v))
@settings(max_examples=40, deadline=None)
@given(charge_a=st.floats(0, 2000), discharge_a=st.floats(0, 2000), current_a=st.floats(-2000, 2000),
       voltage_v=st.floats(0, 1000), temperature_c=st.floats(-40, 90), soc=st.integers(0, 100))
def test_each_variant_encodes_as_the_field_table_says(variant, charge_a, discharge_a, current_a, voltage_v,
                                                      temperature_c, soc):
    report = hv_report(charge_current_a=round(charge_a, 1), discharge_current_a=round(discharge_a, 1),
                       current_a=round(current_a, 1), voltage_v=round(voltage_v, 1),
                       temperature_c=round(temperature_c, 1), soc_pct=soc)
    frames = frames_by_id(PylonHvProfile("variant", variant).encode(report))
    assert frames[0x4220 + variant.address] == derived_4220(report, variant)
    assert frames[0x4210 + variant.address] == derived_4210(report, variant)


def test_big_endian_leaves_the_geometry_little_endian_as_the_peers_do():
    big = frames_by_id(PylonHvProfile("big", HvSettings(big_endian=True)).for_pack(45).encode(hv_report(modules=3)))
    assert big[0x7320][:2] == bytes.fromhex("2D 00")
    assert big[0x4210][:2] == bytes.fromhex("09 A5")


def test_sofar_answers_on_address_one_and_accepts_both_control_forms():
    profile = profiles.get("sofar_hv")
    assert [f.arbitration_id for f in profile.answer(poll(0), hv_report())] == [
        0x4211, 0x4221, 0x4231, 0x4241, 0x4251, 0x4261, 0x4271, 0x4281, 0x4291]
    assert profile.request_kind(Frame(0x8200, b"\x55" + bytes(7), True)) == "sleep"
    assert profile.request_kind(Frame(0x8201, b"\x55" + bytes(7), True)) == "sleep"
    assert profile.answer(Frame(0x8241, b"\xaa" + bytes(7), True), hv_report()) == [
        Frame(0x8251, bytes(8), True)]


def test_manufacturer_names_fill_both_frames_and_deye_also_the_ensemble_pair():
    frames = frames_by_id(profiles.get("pylon_hv").encode(hv_report()))
    assert frames[0x7330] == b"PYLONTEC" and frames[0x7340] == b"H" + bytes(7)
    deye = frames_by_id(profiles.get("deye_hv").encode(hv_report()))
    assert deye[0x42E0] == b"Deye" + bytes(4) and deye[0x7330] == b"Deye" + bytes(4)
    assert frames_by_id(profiles.get("solxpow_hv").encode(hv_report()))[0x7340] == b"XXXXXXXX"
    with pytest.raises(ValueError, match="1 to 16 printable ASCII"):
        profiles.get("pylon_hv").encode(hv_report(), "PYLONTECH-FORCE-H2")


# --- clamping: never wraps, never loosens ------------------------------------------------------

@pytest.mark.parametrize("name", HV_NAMES)
@settings(max_examples=60, deadline=None)
@given(charge_a=st.floats(-1e6, 1e6), discharge_a=st.floats(-1e6, 1e6), cvl=st.floats(-1e5, 1e5),
       dvl=st.floats(-1e5, 1e5))
def test_limits_clamp_toward_safe_and_never_wrap(name, charge_a, discharge_a, cvl, dvl):
    profile = profiles.get(name)
    report = hv_report(charge_current_a=charge_a, discharge_current_a=discharge_a, charge_voltage_v=cvl,
                       discharge_voltage_v=dvl)
    limits = profile.decode([f for f in profile.encode(report) if f.arbitration_id & 0xFFF0 == 0x4220][0]).fields
    # a CVL below 0 V or a DVL above the field's top cannot be sent: that direction stops instead
    charge_a = 0.0 if cvl < profile.sendable_range("charge_voltage_v")[0] else charge_a
    discharge_a = 0.0 if dvl > profile.sendable_range("discharge_voltage_v")[1] else discharge_a
    for key, asked in (("charge_current_a", charge_a), ("discharge_current_a", discharge_a)):
        low, high = profile.sendable_range(key)
        assert low == 0.0 and limits[key] >= 0
        assert limits[key] <= max(asked, 0) + 0.051      # never above what was decided (half a 0.1 A step)
        assert limits[key] == pytest.approx(min(max(asked, 0), high), abs=0.051)
    assert limits["charge_voltage_v"] <= max(cvl, 0) + 0.051
    assert limits["discharge_voltage_v"] >= min(dvl, 6553.5) - 0.051


@pytest.mark.parametrize("name", HV_NAMES)
@settings(max_examples=60, deadline=None)
@given(current_a=st.floats(-4000, 4000), temperature_c=st.floats(-150, 200), voltage_v=st.floats(-10, 7000))
def test_measurements_round_trip_within_resolution_or_clamp(name, current_a, temperature_c, voltage_v):
    profile = profiles.get(name)
    fields = profile.decode(profile.encode(hv_report(current_a=current_a, temperature_c=temperature_c,
                                                     voltage_v=voltage_v))[0]).fields
    low, high = profile.sendable_range("current_a")
    assert fields["current_a"] == pytest.approx(min(max(current_a, low), high), abs=0.051)
    low, high = profile.sendable_range("temperature_c")
    assert low == -100.0
    assert fields["temperature_c"] == pytest.approx(min(max(temperature_c, low), high), abs=0.051)
    assert fields["voltage_v"] == pytest.approx(min(max(voltage_v, 0), 6553.5), abs=0.051)


@pytest.mark.parametrize("name", HV_NAMES)
@settings(max_examples=40, deadline=None)
@given(protection=st.frozensets(st.sampled_from(PROTECTIONS)), alarm=st.frozensets(st.sampled_from(ALARMS)),
       charge_enable=st.booleans(), discharge_enable=st.booleans(), charge_a=st.sampled_from([0.0, 0.04, 0.06, 50]))
def test_flags_and_forbid_marks_round_trip(name, protection, alarm, charge_enable, discharge_enable, charge_a):
    profile = profiles.get(name)
    frames = profile.encode(hv_report(protection=protection, alarm=alarm, charge_enable=charge_enable,
                                      discharge_enable=discharge_enable, charge_current_a=charge_a))
    fields = {}
    for frame in frames:
        fields.update(profile.decode(frame).fields)
    assert set(fields["protection"]) == protection and set(fields["alarm"]) == alarm
    marks = frames_by_id(frames)[0x4280 + profile.settings.address]
    # 0xAA whenever a direction is not allowed, a zero limit included (Deye, Solis ignore 0 A)
    assert (marks[0] == 0xAA) == (not charge_enable or charge_a < 0.05)
    assert (marks[1] == 0xAA) == (not discharge_enable)


def test_temperature_falls_back_and_missing_cells_are_the_pack_average():
    report = hv_report(temperature_c=None, temperature_min_c=None, temperature_max_c=18.0, cell_min_v=None,
                       cell_max_v=None, voltage_v=240.0)
    frames = frames_by_id(profiles.get("pylon_hv").for_pack(75).encode(report))
    assert frames[0x4210][4:6] == (1180).to_bytes(2, "little")
    assert frames[0x4240][:4] == (1180).to_bytes(2, "little") * 2
    assert frames[0x4230][:4] == (3200).to_bytes(2, "little") * 2
    # an unknown pack: no average to send, the blank 0 of the peers instead of a guess
    assert frames_by_id(profiles.get("pylon_hv").encode(report))[0x4230][:4] == bytes(4)


# --- the inverter's requests -------------------------------------------------------------------

@pytest.mark.parametrize("name", HV_NAMES)
def test_polls_are_answered_with_their_set_and_others_ignored_and_counted(name):
    profile = profiles.get(name)
    session = PollSession(profile)
    address = profile.settings.address
    ensemble = [0x4210 + address + 0x10 * i for i in range(9)]
    if profile.settings.name_in_ensemble:
        ensemble += [0x42E0 + address, 0x42F0 + address]
    equipment = [0x7310 + address + 0x10 * i for i in range(4 if profile.settings.name_frames else 2)]
    assert [f.arbitration_id for f in session.handle(poll(0), hv_report())] == ensemble
    assert [f.arbitration_id for f in session.handle(poll(2), hv_report())] == equipment
    assert all(f.is_extended_id and len(f.data) == 8 for f in session.handle(poll(2), hv_report()))
    assert session.handle(poll(1), hv_report()) == []
    assert session.handle(Frame(0x4200, bytes(8), False), hv_report()) == []     # 11-bit: not the poll
    assert session.handle(poll(0), None) == []           # no decision yet: silent, never invented
    assert session.counts == {"ensemble": 2, "equipment": 2, "ignored": 2}


@pytest.mark.parametrize("name", HV_NAMES)
def test_sleep_is_the_inverters_shutdown_command_kept_in_shared_memory_until_wake(name):
    """0x8200 0x55 (sleep: a battery opens its relay) decodes as the shutdown command that can_rx
    keeps in the inverter slot, across its restarts, until 0xAA (wake) or a link down; bms_tx then
    allows neither direction (bms/external.py), and the failsafe sends that decision."""
    import logging
    from workers.can_rx import InverterListener
    profile = profiles.get(name)
    sleep_id = 0x8200 + profile.settings.address
    assert profile.decode(Frame(sleep_id, b"\x55" + bytes(7), True)).fields["shutdown_requested"] is True
    assert profile.decode(Frame(sleep_id, b"\xaa" + bytes(7), True)).fields["shutdown_requested"] is False
    assert "shutdown_requested" not in profile.decode(Frame(sleep_id, b"\x01" + bytes(7), True)).fields
    log = logging.getLogger("test")
    listener = InverterListener(profile, log)

    def hear(byte0):
        listener.on_message_received(can.Message(arbitration_id=sleep_id, data=bytes([byte0]) + bytes(7),
                                                 is_extended_id=True, timestamp=time.time()))
        return listener.snapshot(10.0, time.monotonic(), time.monotonic())

    assert hear(0x55)["shutdown_requested"]
    restarted = InverterListener(profile, log, hear(0x01))       # a restarted can_rx keeps it
    assert restarted.snapshot(10.0, time.monotonic(), time.monotonic())["shutdown_requested"]
    assert not hear(0xAA)["shutdown_requested"]


def test_commands_never_loosen_and_the_mask_is_answered_will_not_act():
    profile = profiles.get("pylon_hv")
    session = PollSession(profile)
    protected = hv_report(charge_enable=False, charge_current_a=0.0, protection=frozenset({"over_voltage"}))
    # the relay command asks to close the relay in protection: counted, never obeyed
    assert session.handle(Frame(0x8210, b"\xaa\xaa" + bytes(6), True), protected) == []
    answer = frames_by_id(session.handle(poll(0), protected))
    assert answer[0x4280][0] == 0xAA and answer[0x4280][1] == 0x00
    assert answer == frames_by_id(profile.answer(poll(0), protected))
    assert session.handle(Frame(0x8240, b"\xaa" + bytes(7), True), protected) == [Frame(0x8250, bytes(8), True)]
    assert session.counts == {"relay": 1, "ensemble": 1, "mask": 1}


def test_a_too_short_request_is_a_decode_error_naming_the_id():
    from protocol import DecodeError
    with pytest.raises(DecodeError, match="0x4200"):
        profiles.get("pylon_hv").request_kind(Frame(0x4200, b"", True))


def test_an_address_beyond_fifteen_is_refused_by_name():
    with pytest.raises(ValueError, match="address 16 is not allowed: expected 0 to 15"):
        PylonHvProfile("bad", HvSettings(address=16))
