"""Profiles against byte vectors from real captures and the vendor documents.

Expected bytes come from outside the code: the captures of PYLON_CAN.md §2.7/§2.8, the
SMAVenusDriver frames quoted in PRIOR_ART.md, and frames packed with ``struct`` from the
byte tables of the Pylon, SMA, Sol-Ark and Luxpower documents (specs/*.txt).
"""
import re
import struct

import can
import pytest

import config
from protocol import DecodeError, profiles
from protocol.frame import Frame
from protocol.inverter import INVERTER_FIELDS
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

# US5000 x6, V1.2 firmware [setfire] (PYLON_CAN.md §2.8), with its decoded values.
US5000 = BatteryReport(charge_voltage_v=53.2, charge_current_a=480.0, discharge_current_a=480.0,
                       discharge_voltage_v=45.0, soc_pct=88, soh_pct=94, voltage_v=49.86, current_a=-27.0,
                       temperature_c=36.3, charge_enable=True, discharge_enable=True, modules=6)
US5000_FRAMES = [
    (0x351, "14 02 C0 12 C0 12 C2 01"),
    (0x355, "58 00 5E 00"),
    (0x356, "7A 13 F2 FE 6B 01"),
    (0x359, "00 00 00 00 06 50 4E"),
    (0x35C, "C0 00"),
    (0x35E, "50 59 4C 4F 4E 20 20 20"),
]


def report(**changes) -> BatteryReport:
    return US5000._replace(**changes)


def frames_of(profile_name: str, battery: BatteryReport, manufacturer: str = "") -> dict:
    return {frame.arbitration_id: frame.data for frame in profiles.get(profile_name).encode(battery, manufacturer)}


def decode(profile_name: str, frame_id: int, hex_data: str, extended: bool = False):
    return profiles.get(profile_name).decode(Frame(frame_id, bytes.fromhex(hex_data), extended))


# --- Pylon V1.2 -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["pylon", "deye"])
def test_pylon_frame_set_is_the_us5000_capture_byte_for_byte(name):
    frames = profiles.get(name).encode(US5000)
    assert [(f.arbitration_id, f.data, f.is_extended_id) for f in frames] == \
        [(frame_id, bytes.fromhex(data), False) for frame_id, data in US5000_FRAMES]


@pytest.mark.parametrize("frame_id, data, name, fields", [
    (0x351, "14 02 C0 12 C0 12 C2 01", "limits", {"charge_voltage_v": 53.2, "charge_current_a": 480.0,
                                                  "discharge_current_a": 480.0, "discharge_voltage_v": 45.0}),
    (0x355, "58 00 5E 00", "state_of_charge", {"soc_pct": 88, "soh_pct": 94}),
    (0x356, "7A 13 F2 FE 6B 01", "measurements", {"voltage_v": 49.86, "current_a": -27.0, "temperature_c": 36.3}),
    (0x359, "00 00 00 00 06 50 4E", "protection_alarm", {"protection": [], "alarm": [], "modules": 6}),
    (0x35C, "C0 00", "requests", {"charge_enable": True, "discharge_enable": True, "force_charge_1": False,
                                  "force_charge_2": False, "full_charge": False}),
    (0x35E, "50 59 4C 4F 4E 20 20 20", "manufacturer", {"manufacturer": "PYLON"}),
    # second US5000, a candump quoted in a public Python file (§2.8)
    (0x351, "14 02 B0 04 40 06 C2 01", "limits", {"charge_voltage_v": 53.2, "charge_current_a": 120.0,
                                                  "discharge_current_a": 160.0, "discharge_voltage_v": 45.0}),
    (0x356, "84 13 F1 FF 37 00", "measurements", {"voltage_v": 49.96, "current_a": -1.5, "temperature_c": 5.5}),
    # V1.2 defines only bytes 0-5 of 0x351; a 6-byte frame decodes without the DVL
    (0x351, "14 02 B0 04 40 06", "limits", {"charge_voltage_v": 53.2, "charge_current_a": 120.0,
                                            "discharge_current_a": 160.0}),
    # Pytes sends the name with DLC 5, BYD pads with NULs (§2.6)
    (0x35E, "50 59 54 45 53", "manufacturer", {"manufacturer": "PYTES"}),
    (0x35E, "42 59 44 00 00 00 00 00", "manufacturer", {"manufacturer": "BYD"}),
])
def test_pylon_decodes_the_captures(frame_id, data, name, fields):
    assert decode("pylon", frame_id, data) == (name, fields)


def test_second_us5000_capture_is_encoded_identically():
    frames = frames_of("pylon", report(charge_current_a=120.0, discharge_current_a=160.0, voltage_v=49.96,
                                       current_a=-1.5, temperature_c=5.5))
    assert frames[0x351] == bytes.fromhex("14 02 B0 04 40 06 C2 01")
    assert frames[0x356] == bytes.fromhex("84 13 F1 FF 37 00")


def test_eco_worthy_limits_capture():
    frames = frames_of("pylon", report(charge_voltage_v=58.4, charge_current_a=200.0, discharge_current_a=200.0,
                                       discharge_voltage_v=44.8))
    assert frames[0x351] == bytes.fromhex("48 02 D0 07 D0 07 C0 01")


# [PYLON-1.2] tables 1-4: (byte, bit) of each flag, read from the document
PYLON_PROTECTION_BITS = {"over_voltage": (0, 1), "under_voltage": (0, 2), "over_temperature": (0, 3),
                         "under_temperature": (0, 4), "discharge_over_current": (0, 7),
                         "charge_over_current": (1, 0), "system_error": (1, 3)}
PYLON_ALARM_BITS = {"high_voltage": (2, 1), "low_voltage": (2, 2), "high_temperature": (2, 3),
                    "low_temperature": (2, 4), "discharge_high_current": (2, 7),
                    "charge_high_current": (3, 0), "internal_comm_fail": (3, 3)}


@pytest.mark.parametrize("attribute, flag, position", [("protection", flag, position)
                                                        for flag, position in PYLON_PROTECTION_BITS.items()]
                         + [("alarm", flag, position) for flag, position in PYLON_ALARM_BITS.items()])
@pytest.mark.parametrize("name", ["pylon", "deye", "solark", "luxpower", "victron"])
def test_each_0x359_flag_sets_exactly_its_spec_bit(name, attribute, flag, position):
    data = frames_of(name, report(**{attribute: frozenset([flag])}))[0x359]
    expected = bytearray(4)
    expected[position[0]] = 1 << position[1]
    assert data[:4] == expected
    assert profiles.get(name).decode(Frame(0x359, data)).fields[attribute] == [flag]


def test_0x359_decodes_flags_in_the_order_of_report_names():
    fields = decode("pylon", 0x359, "FF FF FF FF 01 50 4E").fields
    assert fields["protection"] == list(PROTECTIONS)
    assert fields["alarm"] == list(ALARMS)


@pytest.mark.parametrize("attribute, mask", [("charge_enable", 0x80), ("discharge_enable", 0x40),
                                             ("force_charge_1", 0x20), ("force_charge_2", 0x10),
                                             ("full_charge", 0x08)])
def test_0x35c_request_bits_follow_table_5(attribute, mask):
    flags = dict(charge_enable=False, discharge_enable=False, force_charge_1=False, force_charge_2=False,
                 full_charge=False)
    flags[attribute] = True
    assert frames_of("pylon", report(**flags))[0x35C] == bytes([mask, 0])


def test_dcl_is_sent_positive():
    # juamiso's DBC and PYLON_EMU declare/send it negative (PYLON_CAN.md §2.1, §8 #14): not copied
    assert struct.unpack_from("<h", frames_of("pylon", report(discharge_current_a=120.0))[0x351], 4) == (1200,)


def test_manufacturer_is_padded_with_spaces_and_configurable():
    assert frames_of("pylon", US5000, "PYLONDIY")[0x35E] == b"PYLONDIY"
    assert frames_of("pylon", US5000, "ACME")[0x35E] == b"ACME    "


def test_deye_accepts_only_names_starting_with_pylon():
    assert frames_of("deye", US5000, "PYLONDIY")[0x35E] == b"PYLONDIY"
    with pytest.raises(ValueError, match="starting with 'PYLON'"):
        profiles.get("deye").encode(US5000, "DIYPYLON")


@pytest.mark.parametrize("name", ["TOO-LONG-NAME", "PYL\u00d6N", "TAB\tNAME"])
def test_manufacturer_must_be_short_printable_ascii(name):
    with pytest.raises(ValueError, match="printable ASCII"):
        profiles.get("pylon").encode(US5000, name)


def test_pylon_temperature_has_no_not_available_encoding():
    with pytest.raises(ValueError, match="temperature_c"):
        profiles.get("pylon").encode(report(temperature_c=None))


def test_unknown_flag_names_the_allowed_ones():
    with pytest.raises(ValueError, match="over_voltage, under_voltage"):
        profiles.get("pylon").encode(report(protection=frozenset(["melting"])))


# --- Sol-Ark rev 1.3 ----------------------------------------------------------------------------

def test_solark_frames_follow_the_solark_tables():
    battery = report(voltage_v=52.34, current_a=-12.5, temperature_c=21.7, capacity_ah=280,
                     protection=frozenset(["system_error"]), alarm=frozenset(["high_temperature"]),
                     charge_enable=True, discharge_enable=False, force_charge_2=True)
    frames = frames_of("solark", battery)
    assert list(frames) == [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x379]
    assert all(len(data) == 8 for data in frames.values())  # "only ... frames containing 8 bytes"
    assert frames[0x351] == struct.pack("<HhhH", 532, 4800, 4800, 450)
    assert frames[0x355] == struct.pack("<HH4x", 88, 94)
    assert frames[0x356] == struct.pack("<hhh2x", 523, -125, 217)  # terminal voltage in 0.1 V
    assert frames[0x359] == bytes([0x00, 0x08, 0x08, 0x00, 6]) + b"PN\x00"
    assert frames[0x35C] == bytes([0x80 | 0x10]) + bytes(7)  # forced charge request 1 = bit 4
    assert frames[0x35E] == b"PYLON   "
    assert frames[0x379] == struct.pack("<H6x", 280)


def test_solark_capacity_unknown_is_zero_and_voltage_decodes_in_tenths():
    assert frames_of("solark", report(capacity_ah=None))[0x379] == bytes(8)
    assert decode("solark", 0x356, "0B 02 83 FF D9 00 00 00").fields == {
        "voltage_v": 52.3, "current_a": -12.5, "temperature_c": 21.7}
    # Eco-Worthy capture (§2.8): 379 C8 00 ... = 200 Ah
    assert frames_of("solark", report(capacity_ah=200))[0x379] == bytes.fromhex("C8 00 00 00 00 00 00 00")


# --- Luxpower / EG4 V04 --------------------------------------------------------------------------

def test_luxpower_frames_follow_the_luxpower_tables():
    battery = report(cell_max_v=3.452, cell_min_v=3.318, temperature_max_c=28.1, temperature_min_c=22.5,
                     capacity_ah=280, cycle_count=1234, voltage_v=52.1, current_a=12.5)
    frames = frames_of("luxpower", battery)
    assert list(frames) == [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E]
    assert frames[0x355] == struct.pack("<HHHH", 88, 94, 3452, 3318)
    assert frames[0x356] == struct.pack("<hhhh", 5210, 125, 281, 225)
    assert frames[0x359] == bytes(4) + struct.pack("<BHx", 6, 280)  # capacity Ah instead of "PN"
    assert frames[0x35C] == struct.pack("<BxH4x", 0xC0, 1234)


def test_luxpower_missing_extensions():
    frames = frames_of("luxpower", report(temperature_c=19.5))
    assert frames[0x355][4:] == bytes(4)
    assert frames[0x356][4:] == struct.pack("<hh", 195, 195)  # one sensor: max = min = it
    assert frames[0x359][5:7] == bytes(2)
    assert frames[0x35C][2:4] == bytes(2)
    with pytest.raises(ValueError, match="temperature_max_c and temperature_c"):
        profiles.get("luxpower").encode(report(temperature_c=None))


@pytest.mark.parametrize("data, requested", [("01 00 00 00 00 00 00 00", True), ("00 00 00 00 00 00 00 00", False)])
def test_luxpower_0x300_shutdown_command(data, requested):
    assert decode("luxpower", 0x300, data) == ("shutdown_command", {"shutdown_requested": requested})


# --- SMA Sunny Island -------------------------------------------------------------------------

def test_sma_frame_set_and_ranges():
    battery = report(soc_pct=55.55, capacity_ah=630, temperature_c=None)
    frames = frames_of("sma_si", battery)
    assert list(frames) == [0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F]  # no 0x359/0x35C
    assert frames[0x351] == struct.pack("<HhhH", 532, 4800, 4800, 450)
    assert frames[0x355] == struct.pack("<HHH", 56, 94, 5555)  # HiResSOC in 0.01 %
    assert frames[0x356] == struct.pack("<hh", 4986, -270) + b"\x00\x80"  # temperature invalid
    assert frames[0x35F] == b"\xff\xff\xff\xff" + struct.pack("<H", 630) + b"\xff\xff"  # unused = invalid


@pytest.mark.parametrize("changes, expected", [
    # [SMA-TI] §5.3 table: CVL 41-63 V, CCL/DCL 0-1200 A, DVL 41-48 V. Clamped only where
    # that tightens: CVL and the currents down, DVL up.
    (dict(charge_voltage_v=70.0, charge_current_a=2000.0, discharge_current_a=-5.0, discharge_voltage_v=40.0),
     (630, 12000, 0, 410)),
    # a CVL below 41 V or a DVL above 48 V cannot be sent: raising the CVL or lowering the DVL
    # would loosen it, so the nearest safe frame stops charging / discharging instead
    (dict(charge_voltage_v=30.0, charge_current_a=100.0, discharge_current_a=1500.0, discharge_voltage_v=50.0),
     (410, 0, 0, 480)),
    (dict(charge_voltage_v=40.99, discharge_voltage_v=48.01), (410, 0, 0, 480)),
    (dict(charge_voltage_v=41.0, discharge_voltage_v=48.0), (410, 4800, 4800, 480)),
])
def test_sma_limits_are_clamped_to_the_sunny_island_ranges_only_where_that_tightens(changes, expected):
    assert struct.unpack("<HhhH", frames_of("sma_si", report(**changes))[0x351]) == expected


def test_a_cvl_the_frame_cannot_carry_stops_charging_and_withdraws_the_requests():
    frames = frames_of("pylon", report(charge_voltage_v=-1.0, force_charge_1=True, force_charge_2=True,
                                       full_charge=True))
    assert struct.unpack("<HhhH", frames[0x351]) == (0, 0, 4800, 450)
    assert frames[0x35C] == bytes([0x40, 0x00])   # discharge enable only


def test_sma_0x35a_bits_follow_the_sma_tables():
    # [SMA-TI] §5.3/§7: per item "arrive" = first bit, "leave" = second bit. Items used here:
    # 1 high voltage (byte 0 bits 2/3), 2 low voltage (bits 4/5), 3 high temp (bits 6/7),
    # 4 low temp (byte 1 bits 0/1), 8 high current (byte 1 bits 6/7), 9 high charge current
    # (byte 2 bits 0/1), 12 BMS internal (byte 2 bits 6/7); warnings likewise in bytes 4-7.
    everything = report(protection=frozenset(PROTECTIONS), alarm=frozenset(ALARMS))
    assert frames_of("sma_si", everything)[0x35A] == bytes([0x54, 0x41, 0x41, 0x00] * 2)
    assert frames_of("sma_si", US5000)[0x35A] == bytes([0xA8, 0x82, 0x82, 0x00] * 2)
    only = frames_of("sma_si", report(protection=frozenset(["over_voltage"]), alarm=frozenset(["internal_comm_fail"])))
    assert only[0x35A] == bytes([0xA4, 0x82, 0x82, 0x00, 0xA8, 0x82, 0x42, 0x00])


def test_sma_decodes_smavenusdriver_frames():
    # PRIOR_ART.md §2.2 #9: static 0x356 "00 00 00 00 F0 00" = 24.0 degC, 0x35F = 630 Ah
    assert decode("sma_si", 0x356, "00 00 00 00 F0 00").fields["temperature_c"] == 24.0
    assert decode("sma_si", 0x35F, "03 04 0A 04 76 02 00 00").fields["capacity_ah"] == 630


def test_sma_invalid_codes_decode_as_none():
    assert decode("sma_si", 0x355, "FF FF FF FF FF FF").fields == {
        "soc_pct": None, "soh_pct": None, "soc_hires_pct": None}


def test_sunny_island_telemetry():
    # [SMA-TI] §6 for 0x305-0x307; SMAVenusDriver's reading (x100 W, /10 V, /100 Hz) for the rest
    si = profiles.get("sma_si")

    def fields(frame_id, data):
        return si.decode(Frame(frame_id, data)).fields

    assert fields(0x305, struct.pack("<Hhhh", 521, -153, 234, 875)) == {
        "battery_voltage_v": 52.1, "battery_current_a": 15.3,  # SI: negative while charging
        "battery_temperature_c": 23.4, "soc_pct": 87.5}
    assert fields(0x306, struct.pack("<HBBHH", 98, 10, 1, 0, 552)) == {
        "soh_pct": 98, "charging_procedure": 10, "operating_state": 1, "error_code": 0,
        "charge_voltage_setpoint_v": 55.2}
    assert fields(0x300, struct.pack("<hh4x", 12, -5)) == {
        "ac_in_l1_power_w": 1200, "ac_in_l2_power_w": -500, "ac_in_power_w": 700}
    assert fields(0x301, struct.pack("<hh", -23, 0))["inverter_power_w"] == -2300
    assert fields(0x304, struct.pack("<hhhH", 2301, 2298, 0, 5002)) == {
        "ac_out_l1_voltage_v": 230.1, "ac_out_l2_voltage_v": 229.8, "ac_out_l3_voltage_v": 0.0,
        "ac_out_frequency_hz": 50.02}
    assert fields(0x307, struct.pack("<HB5x", 3, 0x80)) == {
        "relay_state": 3, "ac_in_relay_closed": True, "ac_in_voltage_valid": False}
    assert fields(0x308, struct.pack("<h6x", 23)) == {"ac_out_power_w": 2300}
    assert fields(0x309, struct.pack("<hhhH", 2310, 0, 0, 4998))["ac_in_frequency_hz"] == 49.98


# --- Victron -------------------------------------------------------------------------------------

def test_victron_frames():
    frames = frames_of("victron", report(soc_pct=84.56, capacity_ah=572, temperature_c=None))
    assert list(frames) == [0x351, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E, 0x35F]
    assert frames[0x355] == struct.pack("<HHH", 85, 94, 8456)
    assert frames[0x356][4:] == b"\x00\x80"  # [MG] §1.4: invalid sn16
    assert frames[0x35E] != b"PYLON   "  # avoids Venus's Pylontech quirk (VENUS.md §8.4)
    assert frames[0x35F][4:6] == struct.pack("<H", 572)


def test_victron_reports_under_voltage_protection_as_a_warning_only():
    # MG §1.4.2: 1 = raised, 2 = OK, 0 = not supported; a low-voltage alarm would stop charging (§6)
    data = frames_of("victron", report(protection=frozenset(["under_voltage"])))[0x35A]
    alarms, warnings = int.from_bytes(data[:4], "little"), int.from_bytes(data[4:], "little")
    low_voltage = 2  # item index
    assert alarms >> 2 * low_voltage & 3 == 0
    assert warnings >> 2 * low_voltage & 3 == 1
    assert frames_of("victron", report(protection=frozenset(["under_voltage"])))[0x359][0] == 0x04


@pytest.mark.parametrize("frame_id, data, name, fields", [
    # V1.3-firmware US5000 (§2.7)
    (0x355, "54 00 60 00 00 00", "state_of_charge", {"soc_pct": 84, "soh_pct": 96, "soc_hires_pct": 0.0}),
    (0x356, "7B 13 E9 FE 6B 01", "measurements", {"voltage_v": 49.87, "current_a": -27.9, "temperature_c": 36.3}),
    (0x35F, "4C 49 01 03 3C 02 AA 00", "system_info", {"battery_type": 0x494C, "bms_version": 0x0301,
                                                        "capacity_ah": 572, "manufacturer_id": 0xAA}),
    (0x35A, "00 00 00 00 00 00 00 00", "alarms_warnings", {"alarms_raised": [], "alarms_cleared": [],
                                                           "warnings_raised": [], "warnings_cleared": []}),
    # BYD LVS with a GX (§2.8, [BydCan])
    (0x305, "00 00 00 00 00 00 00 00", "keepalive", {}),
    (0x307, "12 34 56 78 56 49 43 00", "gx_identification", {"identification": "VIC"}),
    (0x306, "00 00 00 00 00 00 00 00", "gx_heartbeat", {}),
])
def test_victron_decodes_the_captures(frame_id, data, name, fields):
    assert decode("victron", frame_id, data) == (name, fields)


def test_byd_all_ok_0x35a():
    fields = decode("victron", 0x35A, "AA AA AA AA AA AA AA AA").fields
    assert fields["alarms_raised"] == fields["warnings_raised"] == []
    assert len(fields["alarms_cleared"]) == len(fields["warnings_cleared"]) == 16


# --- profile API -------------------------------------------------------------------------------

def test_profile_names_equal_config_profiles():
    assert set(profiles.names()) == set(config.PROFILES)
    for name in profiles.names():
        assert profiles.get(name).name == name


def test_unknown_profile_names_the_allowed_ones():
    assert {"deye", "deye_hv", "hoymiles_hv", "luxpower", "pylon", "pylon_hv", "sma_si", "sofar_hv", "solark",
            "solxpow_hv", "victron"} <= set(profiles.names())
    with pytest.raises(ValueError, match="unknown inverter profile 'growatt': allowed are %s$"
                                         % re.escape(", ".join(profiles.names()))):
        profiles.get("growatt")


@pytest.mark.parametrize("name", profiles.names())
def test_frame_set_is_fixed(name):
    profile = profiles.get(name)
    quiet = profile.encode(report(temperature_c=20.0))
    busy = profile.encode(report(temperature_c=20.0, protection=frozenset(PROTECTIONS), capacity_ah=100,
                                 cell_min_v=3.1, cell_max_v=3.4, cycle_count=5))
    assert [f.arbitration_id for f in quiet] == [f.arbitration_id for f in busy] == list(profile.frame_ids)
    assert [len(f.data) for f in quiet] == [len(f.data) for f in busy]
    assert all(f.is_extended_id == (profile.transport == "polled") for f in quiet)    # Pylon HV: 29-bit
    assert profile.cycle_s >= 1.0 and profile.default_manufacturer


def pylon_hv_requests(address):
    """PYLON_HV.md §3.1, §7: the poll (never addressed) and the control commands, with and without address."""
    return [(0x4200, True)] + [(base + offset, True) for base in (0x8200, 0x8210, 0x8240)
                               for offset in sorted({0, address})]


# Inverter frames each profile must receive (PYLON_CAN.md §4, PYLON_HV.md): (id, extended)
INVERTER_IDS = {
    "pylon": [(0x305, False), (0x305, True)], "deye": [(0x305, False), (0x305, True)],
    "solark": [(0x305, False), (0x305, True)],
    "luxpower": [(0x305, False), (0x305, True), (0x300, False)],
    "victron": [(0x305, False), (0x306, False), (0x307, False)],
    "sma_si": [(frame_id, False) for frame_id in range(0x300, 0x310)],
    "pylon_hv": pylon_hv_requests(0), "deye_hv": pylon_hv_requests(0), "hoymiles_hv": pylon_hv_requests(0),
    "solxpow_hv": pylon_hv_requests(0), "sofar_hv": pylon_hv_requests(1),
}


def test_every_profile_says_which_inverter_frames_it_receives():
    assert sorted(INVERTER_IDS) == list(profiles.names())


@pytest.mark.parametrize("name", profiles.names())
def test_rx_filters_pass_the_inverter_frames_and_not_our_own(name):
    profile = profiles.get(name)
    # python-can's own filter matching is the oracle for the filter format
    with can.Bus(interface="virtual", channel="rx-filter-test", can_filters=profile.rx_filters) as bus:
        def passes(frame_id, extended):
            return bus._matches_filters(can.Message(arbitration_id=frame_id, is_extended_id=extended))

        for frame_id, extended in INVERTER_IDS[name]:
            assert passes(frame_id, extended), hex(frame_id)
        for frame in profile.encode(report()):
            assert not passes(frame.arbitration_id, frame.is_extended_id), hex(frame.arbitration_id)
        if name in ("victron", "sma_si"):
            assert not passes(0x305, True)
    profile.rx_filters.clear()  # a copy: the profile keeps its filters
    assert profile.rx_filters


@pytest.mark.parametrize("name", profiles.names())
def test_inverter_frames_decode_to_inverter_fields(name):
    profile = profiles.get(name)
    for frame_id, extended in INVERTER_IDS[name]:
        decoded = profile.decode(Frame(frame_id, bytes(range(1, 9)), extended))
        numbers = {key: value for key, value in decoded.fields.items() if key != "identification"}
        assert set(numbers) <= set(INVERTER_FIELDS), (hex(frame_id), decoded)
        assert all(isinstance(value, (bool, int, float)) for value in numbers.values())


def test_inverter_fields_are_unique():
    assert len(set(INVERTER_FIELDS)) == len(INVERTER_FIELDS)


def test_29_bit_keepalive_and_foreign_frames():
    assert decode("pylon", 0x305, "00 00 00 00 00 00 00 00", extended=True) == ("keepalive", {})
    assert decode("pylon", 0x351, "14 02 C0 12 C0 12 C2 01", extended=True) == ("unknown", {})
    assert decode("pylon", 0x123, "01") == ("unknown", {})
    assert decode("sma_si", 0x30A, "01 02") == ("unknown", {})


@pytest.mark.parametrize("name, frame_id, data, minimum", [
    ("pylon", 0x351, "14 02 C0 12", 6), ("pylon", 0x356, "7A 13 F2", 6), ("pylon", 0x35E, "", 1),
    ("sma_si", 0x351, "14 02 C0 12 C0 12", 8), ("sma_si", 0x305, "01 02", 8), ("victron", 0x35A, "AA AA", 8),
])
def test_too_short_frames_raise_decode_error_naming_id_length_and_minimum(name, frame_id, data, minimum):
    length = len(bytes.fromhex(data))
    with pytest.raises(DecodeError, match=r"0x%03X .*has %d data bytes; at least %d" % (frame_id, length, minimum)):
        decode(name, frame_id, data)


def test_encode_needs_a_battery_report():
    with pytest.raises(TypeError, match="BatteryReport"):
        profiles.get("pylon").encode(US5000._asdict())


# A V1.2-firmware US5000 sends 0x355 with 4 bytes and 0x356 with 6 (PYLON_CAN.md §2.8): every
# profile that extends these frames decodes them without the optional fields, and a 0x35F
# cut after the capacity still gives its fields (issue 12 item 18).
@pytest.mark.parametrize("name, frame_id, data, fields", [
    (name, 0x355, "58 00 5E 00", {"soc_pct": 88, "soh_pct": 94})
    for name in ("victron", "sma_si", "luxpower", "solark")] + [
    ("luxpower", 0x356, "7A 13 F2 FE 6B 01", {"voltage_v": 49.86, "current_a": -27.0, "temperature_max_c": 36.3}),
    ("solark", 0x356, "7A 13 F2 FE 6B 01", {"voltage_v": 498.6, "current_a": -27.0, "temperature_c": 36.3}),
    ("victron", 0x35F, "4C 49 01 03 3C 02", {"battery_type": 0x494C, "bms_version": 0x0301, "capacity_ah": 572}),
    ("sma_si", 0x35F, "4C 49 01 03 3C 02", {"battery_type": 0x494C, "bms_version": 0x0301, "capacity_ah": 572}),
])
def test_optional_bytes_may_be_absent(name, frame_id, data, fields):
    assert decode(name, frame_id, data).fields == fields
