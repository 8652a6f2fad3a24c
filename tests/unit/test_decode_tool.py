"""The decode tool's core on a candump log built from the US5000 captures (PYLON_CAN.md §2.8).

The log (data/us5000_candump.log) holds the six V1.2 frames, a standard and a 29-bit 0x305, a
short frame, an unknown id (Eco-Worthy's 0x370), a malformed line, a remote frame, a blank
line and the second US5000 capture. Expected values are the capture's own decoding in §2.8.
"""
import json
import os
import subprocess
import sys

import pytest

from protocol import profiles
from protocol.decode import decode_line, decode_lines

LOG = os.path.join(os.path.dirname(__file__), "data", "us5000_candump.log")

EXPECTED = [
    {"t": 1700000000.0, "id": 0x351, "name": "limits",
     "fields": {"charge_voltage_v": 53.2, "charge_current_a": 480.0, "discharge_current_a": 480.0,
                "discharge_voltage_v": 45.0}},
    {"t": 1700000000.01, "id": 0x355, "name": "state_of_charge", "fields": {"soc_pct": 88, "soh_pct": 94}},
    {"t": 1700000000.02, "id": 0x356, "name": "measurements",
     "fields": {"voltage_v": 49.86, "current_a": -27.0, "temperature_c": 36.3}},
    {"t": 1700000000.03, "id": 0x359, "name": "protection_alarm", "fields": {"protection": [], "alarm": [],
                                                                              "modules": 6}},
    {"t": 1700000000.04, "id": 0x35C, "name": "requests",
     "fields": {"charge_enable": True, "discharge_enable": True, "force_charge_1": False, "force_charge_2": False,
                "full_charge": False}},
    {"t": 1700000000.05, "id": 0x35E, "name": "manufacturer", "fields": {"manufacturer": "PYLON"}},
    {"t": 1700000000.1, "id": 0x305, "name": "keepalive", "fields": {}},
    {"t": 1700000000.2, "id": 0x305, "extended": True, "name": "keepalive", "fields": {}},
    {"t": 1700000000.3, "id": 0x356, "line": 9,
     "error": "0x356 (measurements) has 3 data bytes; at least 6 are needed"},
    {"t": 1700000000.4, "id": 0x370, "name": "unknown", "fields": {}, "data": "76006C00CF0CCA0C"},
    {"line": 11, "error": "not a candump -l line, expected '(TIME) INTERFACE ID#DATA': "
                          "'this line was cut by a full disk'"},
    {"t": 1700000000.5, "id": 0x305, "line": 12, "error": "remote frame (RTR) '305#R' carries no data to decode"},
    {"t": 1700000001.0, "id": 0x351, "name": "limits",
     "fields": {"charge_voltage_v": 53.2, "charge_current_a": 120.0, "discharge_current_a": 160.0,
                "discharge_voltage_v": 45.0}},
    {"t": 1700000001.02, "id": 0x356, "name": "measurements",
     "fields": {"voltage_v": 49.96, "current_a": -1.5, "temperature_c": 5.5}},
]


def test_decodes_the_log_and_goes_on_after_errors():
    with open(LOG) as log:
        records = list(decode_lines(log, profiles.get("pylon")))
    assert records == EXPECTED
    json.dumps(records)  # the CLI prints them as JSON


def test_timestamps_keep_microseconds():
    record = decode_line("(1700000000.123456) can0 35C#C000", profiles.get("pylon"))
    assert record["t"] == 1700000000.123456


@pytest.mark.parametrize("line, error", [
    ("(1700000000.1) can0 0305#00", "expected 3 hex digits (11-bit) or 8 (29-bit)"),
    ("(1700000000.1) can0 800#00", "above 0x7FF"),
    ("(1700000000.1) can0 351##112233", "CAN FD"),
    ("(1700000000.1) can0 351#1402C", "pairs of hex digits"),
    ("(1700000000.1) can0 351#14ZZ", "pairs of hex digits"),
    ("(1700000000.1) can0 351#000102030405060708", "at most 8"),
    ("(1700000000.1) can0 351", "no '#'"),
    ("(yesterday) can0 351#00", "timestamp 'yesterday' is not a number"),
    ("", "not a candump -l line"),
])
def test_malformed_lines_name_the_problem(line, error):
    record = decode_line(line, profiles.get("pylon"))
    assert error in record["error"]
    assert "name" not in record


def test_the_profile_decides_what_an_id_means():
    line = "(1700000000.1) can0 305#0A02" + "6AFF" + "EA00" + "6B03"  # 52.2 V, -15.0 A, 23.4 degC, 87.5 %
    record = decode_line(line, profiles.get("sma_si"))
    assert record["name"] == "si_battery"
    assert record["fields"] == {"battery_voltage_v": 52.2, "battery_current_a": 15.0,  # + = charging
                                "battery_temperature_c": 23.4, "soc_pct": 87.5}
    assert decode_line(line, profiles.get("pylon"))["name"] == "keepalive"


def test_lowercase_hex_and_29_bit_foreign_ids():
    record = decode_line("(1.5) vcan0 18ff50e5#0102", profiles.get("pylon"))
    assert record == {"t": 1.5, "id": 0x18FF50E5, "extended": True, "name": "unknown", "fields": {}, "data": "0102"}


# --- the command line: every bad line an error line, the rest decoded, always valid JSON ---

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def strict_json(line):
    def refuse(constant):
        raise ValueError("%s is not JSON" % constant)
    return json.loads(line, parse_constant=refuse)


def run_decode(path, *options, stdin=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "supervisor.py"), "decode"] + list(options) + [path],
                          input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def test_a_line_that_is_not_utf8_is_an_error_line_and_the_rest_decode(tmp_path):
    good = b"(1700000000.000000) can0 351#1402C012C012C201\n"
    log = tmp_path / "damaged.log"
    log.write_bytes(good * 3 + b"(1700000000.1) can0 35E#\xff\xfePYLON\n" + good * 3)
    result = run_decode(str(log))
    assert result.returncode == 0 and result.stderr == b""
    records = [strict_json(line) for line in result.stdout.decode("ascii").splitlines()]
    assert len(records) == 7
    assert [record.get("name") for record in records] == ["limits"] * 3 + [None] + ["limits"] * 3
    assert records[3] == {"line": 4, "error": "not UTF-8 text: byte 0xff at column 25: "
                                              "'(1700000000.1) can0 35E#\\\\xff\\\\xfePYLON'"}


def test_stdin_is_read_as_bytes_too():
    result = run_decode("-", stdin=b"(1.0) can0 35C#C000\n(2.0) can0 35C#\xc0\n")
    records = [strict_json(line) for line in result.stdout.decode("ascii").splitlines()]
    assert records[0]["name"] == "requests" and records[1]["line"] == 2 and "not UTF-8" in records[1]["error"]


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_a_timestamp_that_is_not_finite_is_an_error_line(tmp_path, stamp):
    log = tmp_path / "stamps.log"
    log.write_text("(%s) can0 35C#C000\n(1.0) can0 35C#C000\n" % stamp)
    result = run_decode(str(log))
    records = [strict_json(line) for line in result.stdout.decode("ascii").splitlines()]
    assert records[0] == {"line": 1, "error": "timestamp %r is not a finite number" % stamp}
    assert records[1]["name"] == "requests"


@pytest.mark.parametrize("frame_id", ["20000000", "FFFFFFFF"])
def test_29_bit_ids_above_the_29_bits_are_refused(frame_id):
    record = decode_line("(1.0) can0 %s#00" % frame_id, profiles.get("pylon"))
    assert record == {"t": 1.0, "id": int(frame_id, 16), "extended": True,
                      "error": "29-bit CAN id 0x%s is above 0x1FFFFFFF" % frame_id}
    assert decode_line("(1.0) can0 1FFFFFFF#00", profiles.get("pylon"))["name"] == "unknown"


def test_an_hv_log_decodes_the_inverters_requests_and_the_batterys_29_bit_replies(tmp_path):
    """Reference payloads of PYLON_HV.md §5 (the Battery-Emulator defaults and the EEV 0x7320
    capture), as a candump of a poll and its replies; the values are the document's."""
    log = tmp_path / "hv.log"
    log.write_text("(1.000) can0 00004200#0000000000000000\n"
                   "(1.010) can0 00004210#A50930759D042E64\n"
                   "(1.020) can0 00004230#DF0CDA0C03000600\n"
                   "(2.000) can0 00004200#0200000000000000\n"
                   "(2.010) can0 00007320#2D00030F90003200\n"
                   "(3.000) can0 351#1402C012C012C201\n")         # an LV frame means nothing here
    result = run_decode(str(log), "--profile", "pylon_hv")
    assert result.returncode == 0, result.stderr
    records = [strict_json(line) for line in result.stdout.decode("ascii").splitlines()]
    assert [(r["id"], r.get("extended"), r["name"]) for r in records] == [
        (0x4200, True, "request"), (0x4210, True, "pile_status"), (0x4230, True, "cell_voltages"),
        (0x4200, True, "request"), (0x7320, True, "geometry"), (0x351, None, "unknown")]
    assert records[0]["fields"]["poll_request"] == 0 and records[3]["fields"]["poll_request"] == 2
    assert records[1]["fields"] == {"voltage_v": 246.9, "current_a": 0.0, "temperature_c": 18.1, "soc_pct": 46,
                                    "soh_pct": 100}
    assert records[2]["fields"] == {"cell_max_v": 3.295, "cell_min_v": 3.290}
    assert records[4]["fields"] == {"cell_count": 45, "modules": 3, "cells_per_module": 15, "nominal_voltage_v": 144,
                                    "capacity_ah": 50}
