"""bms.replay: a recorded trace through the engine, with empty cells (stale data) and bad rows."""
import io
import json
import os
import subprocess
import sys

import pytest

import config
from bms.replay import ReplayError, replay
from tests.unit.test_protocol_hv_config import hv
from tools.replay import run_cli

CFG = config.load()   # hold 10 s, stale 30 s, safe discharge 20 A
TRACE = os.path.join(os.path.dirname(__file__), "data", "replay_small.csv")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def results():
    with open(TRACE) as handle:
        return list(replay(handle, CFG))


def test_every_good_row_gives_a_decision_and_every_bad_row_an_error():
    rows = [r for r in results() if not isinstance(r, ReplayError)]
    errors = [r for r in results() if isinstance(r, ReplayError)]
    assert [row["t"] for row in rows] == [0, 10, 20, 30, 40, 50, 70, 90, 110]
    assert errors == [
        ReplayError(10, "voltage_v = 'abc' is not a finite number"),
        ReplayError(11, "t = 60 is not after the previous row's t = 70"),
        ReplayError(12, "5 fields, the header has 7"),
    ]
    assert str(errors[0]) == "line 10: voltage_v = 'abc' is not a finite number"


def test_rows_carry_the_decision():
    rows = {row["t"]: row for row in results() if not isinstance(row, ReplayError)}
    assert set(rows[0]) == {"t", "phase", "freshness", "charge_voltage_v", "charge_current_a", "discharge_current_a",
                            "discharge_voltage_v", "charge_enable", "discharge_enable", "force_charge", "full_charge",
                            "alarms", "reasons"}
    assert (rows[0]["phase"], rows[0]["charge_voltage_v"], rows[0]["charge_current_a"]) == ("bulk", 55.2, 100.0)
    assert rows[0]["discharge_voltage_v"] == 48.0 and rows[0]["alarms"] == []
    assert rows[20]["phase"] == "absorption"
    assert set(rows[20]["reasons"]) == {"charge_current", "discharge_current", "charge_voltage"}


def test_empty_cells_age_the_last_values_through_hold_into_stale():
    rows = {row["t"]: row for row in results() if not isinstance(row, ReplayError)}
    # data from t=30: 10 s old at 40 (still fresh), 20 s at 50 (hold), 40 s at 70 (stale)
    assert [rows[t]["freshness"] for t in (30, 40, 50, 70, 90, 110)] == ["fresh", "fresh", "hold", "stale", "fresh", "fresh"]
    stale = rows[70]
    assert stale["charge_current_a"] == 0.0 and not stale["charge_enable"]
    assert stale["discharge_current_a"] == 20.0 and "internal_comm_fail" in stale["alarms"]
    assert stale["phase"] == "absorption"
    assert rows[50]["charge_current_a"] < rows[30]["charge_current_a"]
    # data back: the charge limit, cut to 0 at t=70, is held 30 s before it comes back
    assert rows[90]["charge_current_a"] == 0.0 and rows[90]["reasons"]["charge_current"].startswith("recovery hold")
    assert rows[110]["charge_current_a"] > 0.0 and rows[110]["charge_enable"]


def test_no_data_yet_gives_a_row_without_values():
    lines = ["t,voltage_v,current_a,soc_pct,temperature_c", "0,,,,", "5,52.0,1.0,50.0,20.0"]
    first, second = replay(lines, CFG)
    assert first["phase"] is None and first["charge_current_a"] is None and first["alarms"] == []
    assert second["phase"] == "bulk"


@pytest.mark.parametrize("lines, problem", [
    (["t,voltage_v,current_a,soc_pct"], "header: missing column(s) temperature_c"),
    (["t,voltage_v,current_a,soc_pct,temperature_c,colour"], "header: unknown column(s) colour"),
    (["t,t,voltage_v,current_a,soc_pct,temperature_c"], "header: repeated column(s) t"),
    ([], "no header"),
])
def test_a_bad_header_stops_the_replay(lines, problem):
    out = list(replay(lines + ["0,52.0,1.0,50.0,20.0"], CFG)) if lines else list(replay([], CFG))
    assert len(out) == 1 and isinstance(out[0], ReplayError) and out[0].line == 1
    assert out[0].problem.startswith(problem)


@pytest.mark.parametrize("row, problem", [
    (",52.0,1.0,50.0,20.0", "t is empty"),
    ("0,52.0,1.0,150.0,20.0", "soc_pct = 150 is implausible: expected 0 to 100 %"),
    ("0,-1,1.0,50.0,20.0", "voltage_v = -1 is implausible"),
    ("0,52.0,nan,50.0,20.0", "current_a = 'nan' is not a finite number"),
])
def test_bad_rows_are_named(row, problem):
    (error,) = replay(["t,voltage_v,current_a,soc_pct,temperature_c", row], CFG)
    assert error.line == 2 and error.problem.startswith(problem)


def test_cli_prints_one_json_object_per_row_and_reports_skipped_rows(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert run_cli(TRACE, CFG, out, err) == 1
    table = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["t"] for row in table] == [0, 10, 20, 30, 40, 50, 70, 90, 110]
    assert set(table[0]) >= {"t", "phase", "charge_voltage_v", "charge_current_a", "discharge_current_a",
                             "discharge_voltage_v", "charge_enable", "discharge_enable", "force_charge",
                             "full_charge", "alarms", "reasons"}
    assert table[6]["freshness"] == "stale" and table[6]["charge_enable"] is False
    assert table[6]["alarms"] == ["internal_comm_fail"] and table[6]["reasons"]["charge_current"].startswith("stale:")
    assert err.getvalue().splitlines() == [
        "%s:10: voltage_v = 'abc' is not a finite number" % TRACE,
        "%s:11: t = 60 is not after the previous row's t = 70" % TRACE,
        "%s:12: 5 fields, the header has 7" % TRACE]
    good = tmp_path / "good.csv"
    good.write_text("t,voltage_v,current_a,soc_pct,temperature_c\n0,52.0,1.0,50.0,20.0\n")
    assert run_cli(str(good), CFG, io.StringIO(), io.StringIO()) == 0


def test_cli_exit_2_when_nothing_can_be_replayed(tmp_path):
    err = io.StringIO()
    assert run_cli(str(tmp_path / "missing.csv"), CFG, io.StringIO(), err) == 2
    assert "missing.csv: cannot be read: No such file or directory" in err.getvalue()
    bad = tmp_path / "bad.csv"
    bad.write_text("time,volts\n1,2\n")
    err = io.StringIO()
    assert run_cli(str(bad), CFG, io.StringIO(), err) == 2
    assert "bad.csv:1: header: missing column(s)" in err.getvalue()


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "trace.png"
    assert run_cli(TRACE, CFG, io.StringIO(), io.StringIO(), plot_path=str(png)) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matplotlib_is_not_imported_with_the_module():
    code = "import sys, bms.replay; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def replay_cli(trace):
    return subprocess.run([sys.executable, os.path.join(ROOT, "supervisor.py"), "replay", str(trace)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


@pytest.mark.parametrize("rows, line, problem", [
    # the data's age (the time since the last complete row) must be a finite number
    ("-1e308,52,1,50,20\n0,,,,\n1e308,,,,\n", 4,
     "t = 1e+308 is too far after the last complete row's t = -1e+308: the data's age is not a finite number of "
     "seconds"),
])
def test_times_too_far_apart_are_a_row_error_not_a_traceback(tmp_path, rows, line, problem):
    trace = tmp_path / "far.csv"
    trace.write_text("t,voltage_v,current_a,soc_pct,temperature_c\n" + rows)
    result = replay_cli(trace)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["%s:%d: %s" % (trace, line, problem)]
    assert [json.loads(row)["t"] for row in result.stdout.splitlines()] == [-1e308, 0]


def test_a_csv_saved_by_a_spreadsheet_with_a_bom_is_read(tmp_path):
    trace = tmp_path / "excel.csv"
    trace.write_bytes(b"\xef\xbb\xbft,voltage_v,current_a,soc_pct,temperature_c\r\n0,52.0,1.0,50.0,20.0\r\n")
    result = replay_cli(trace)
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["phase"] == "bulk"


def test_an_hv_pack_replays_with_its_own_voltages_and_its_stale_policy():
    """A 96-cell HV pack on pylon_hv (tests/unit/test_protocol_hv_config.py): its bulk CVL is its
    absorption voltage, absorption starts at it, and a silent monitor stops charging as for LV."""
    trace = io.StringIO("t,voltage_v,current_a,soc_pct,temperature_c,cell_min_v,cell_max_v\n"
                        "0,316.0,20.0,60.0,20.0,3.28,3.30\n"
                        "10,331.5,10.0,97.0,20.0,3.44,3.46\n"
                        "20,,,,,,\n50,,,,,,\n")
    rows = {row["t"]: row for row in replay(trace, hv()) if not isinstance(row, ReplayError)}
    assert (rows[0]["phase"], rows[0]["charge_voltage_v"], rows[0]["discharge_voltage_v"]) == ("bulk", 331.2, 288.0)
    assert rows[0]["charge_current_a"] == 30.0 and rows[0]["discharge_current_a"] == 30.0
    assert rows[10]["phase"] == "absorption"
    assert rows[50]["freshness"] == "stale" and rows[50]["charge_current_a"] == 0.0
    assert rows[50]["discharge_current_a"] == 10.0          # the HV pack's stale.safe_discharge_current_a
