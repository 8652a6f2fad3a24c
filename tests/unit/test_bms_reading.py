"""What the engine may trust from the battery monitor: missing, implausible, inconsistent and
frozen values are missing data for that quantity, never a reason to clear a protection."""
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import config
from bms.engine import BmsEngine
from bms.reading import read
from bms.snapshot import BatterySnapshot
from bms.state import ChargeState
from protocol import profiles, sma

CFG = config.load()   # hold 10 s, stale 30 s, safe discharge 20 A, CCL 100 A, DCL 120 A, 16 cells
NO_SENSOR = CFG.replace(battery={"temperature_sensor": False})


def snap(voltage_v=52.0, current_a=10.0, soc_pct=60.0, temperature_c=20.0, age_s=0.0, cell_min_v=None,
         cell_max_v=None, inverter_power_w=None):
    return BatterySnapshot(voltage_v, current_a, soc_pct, temperature_c, age_s, cell_min_v, cell_max_v,
                           inverter_power_w)


def run(engine, snapshots, start=0.0):
    """One step a second; the decisions."""
    return [engine.step(s, start + i) for i, s in enumerate(snapshots)]


# --- a sensor that drops out (issue 12.1) ---------------------------------------------------------

def test_a_temperature_dropout_keeps_the_cold_charge_cut_and_the_measured_temperature():
    engine = BmsEngine(CFG)
    cold = engine.step(snap(temperature_c=-5.0), 0.0)
    assert cold.report.charge_current_a == 0.0 and "low_temperature" in cold.report.alarm
    decisions = run(engine, [snap(temperature_c=None)] * 60, start=1.0)
    for decision in decisions:
        report = decision.report
        assert report.charge_current_a == 0.0 and not report.charge_enable
        assert "low_temperature" in report.alarm
        assert report.temperature_c == -5.0            # the last real value, never the assumed 25 degC
    assert decisions[5].freshness == "fresh"           # within stale.hold_s the held value is decided from
    last = decisions[-1]
    assert last.freshness == "stale" and "internal_comm_fail" in last.report.alarm
    assert "temperature_c" in last.reasons["charge_current"] and "missing" in last.reasons["charge_current"]
    assert last.report.discharge_current_a == CFG.stale.safe_discharge_current_a
    back = engine.step(snap(temperature_c=-5.0), 61.0)
    assert back.freshness == "fresh" and back.report.charge_current_a == 0.0


def test_a_cell_voltage_dropout_keeps_the_over_voltage_cut():
    engine = BmsEngine(CFG)
    high = engine.step(snap(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.70), 0.0)
    assert high.report.charge_current_a == 0.0 and "over_voltage" in high.report.protection
    for decision in run(engine, [snap(voltage_v=54.0, cell_min_v=3.30)] * 40, start=1.0):
        assert decision.report.charge_current_a == 0.0 and "over_voltage" in decision.report.protection
    assert "cell_max_v" in decision.reasons["charge_current"]
    assert engine.data_quality()["rejected"]["missing"] == 40


def test_a_restart_does_not_forget_that_the_monitor_reports_cells():
    """A cell voltage missing after a restart is stale, not absent: the pack average must not
    stand in for it and clear the over-voltage latch the saved state carries."""
    engine = BmsEngine(CFG)
    assert engine.step(snap(voltage_v=54.0, cell_min_v=3.30, cell_max_v=3.70), 0.0).report.charge_current_a == 0.0
    saved = ChargeState.from_dict(json.loads(json.dumps(engine.state.to_dict())))
    restarted = BmsEngine(CFG, saved)
    for decision in run(restarted, [snap(voltage_v=54.0, cell_min_v=3.30)] * 40, start=1.0):
        assert decision.report.charge_current_a == 0.0 and not decision.report.charge_enable
        assert "over_voltage" in decision.report.protection


def test_with_the_sensor_configured_a_temperature_never_seen_is_stale_at_once():
    decision = BmsEngine(CFG).step(snap(temperature_c=None), 0.0)
    assert decision.freshness == "stale"
    assert decision.report.charge_current_a == 0.0 and not decision.report.charge_enable
    assert decision.reasons["charge_current"] == "stale: temperature_c missing, never valid"


def test_without_a_sensor_nothing_is_derated_and_not_available_is_sent_where_the_profile_can():
    engine = BmsEngine(NO_SENSOR.replace(battery={"assumed_temperature_c": 18.0}))
    decision = engine.step(snap(temperature_c=None), 0.0)
    assert decision.freshness == "fresh" and decision.report.charge_current_a == 100.0
    assert decision.report.temperature_c is None
    assert engine.step(snap(temperature_c=-5.0), 1.0).report.temperature_c is None   # not decided from: ignored
    measurements = {name: {f.arbitration_id: f.data for f in profiles.get(name).encode(decision.report)}[0x356]
                    for name in profiles.names() if profiles.get(name).transport == "broadcast"}
    assert int.from_bytes(measurements["sma_si"][4:6], "little") == sma.INVALID_SIGNED
    assert int.from_bytes(measurements["victron"][4:6], "little") == sma.INVALID_SIGNED
    for name, data in measurements.items():      # the rest have no code: the assumed 18.0 degC instead
        code = profiles.get(name).temperature_not_available
        assert int.from_bytes(data[4:6], "little", signed=code is None) == (180 if code is None else code), name
    assert measurements["luxpower"][4:8] == bytes.fromhex("b400b400")


def test_the_temperature_sensor_setting_is_validated():
    with pytest.raises(config.ConfigError, match="battery.temperature_sensor"):
        CFG.replace(battery={"temperature_sensor": "no"})


# --- implausible readings (issue 12.6) ------------------------------------------------------------

def test_one_implausible_pack_voltage_is_a_bad_reading_not_an_under_voltage():
    engine = BmsEngine(CFG)
    engine.step(snap(), 0.0)
    decision = engine.step(snap(voltage_v=1.0), 1.0)
    assert decision.report.discharge_current_a == 120.0 and decision.report.discharge_enable
    assert "under_voltage" not in decision.report.protection
    assert decision.report.voltage_v == 52.0
    assert engine.data_quality()["rejected"]["implausible"] == 1
    assert engine.data_quality()["now"] == {"voltage_v": "voltage_v = 1 is implausible: expected 24 to 72 V"}
    assert engine.step(snap(), 2.0).report.discharge_current_a == 120.0
    assert engine.data_quality()["now"] == {}


@pytest.mark.parametrize("cells, reported", [((0.5, 3.3), (3.24, 3.3)), ((3.2, 9.0), (3.2, 3.27))])
def test_an_implausible_cell_voltage_is_missing_data_for_that_cell(cells, reported):
    engine = BmsEngine(CFG)
    engine.step(snap(cell_min_v=3.24, cell_max_v=3.27), 0.0)
    decision = engine.step(snap(cell_min_v=cells[0], cell_max_v=cells[1]), 1.0)
    assert (decision.report.charge_current_a, decision.report.discharge_current_a) == (100.0, 120.0)
    assert decision.report.protection == frozenset()
    assert (decision.report.cell_min_v, decision.report.cell_max_v) == reported   # the bad one: its last valid value
    assert engine.data_quality()["rejected"]["implausible"] == 1


def test_an_implausible_value_at_first_sight_decides_nothing():
    assert BmsEngine(CFG).step(snap(voltage_v=1.0), 0.0) is None
    reading, problem = read(snap(voltage_v=1.0), 16)
    assert reading is None and problem == "voltage_v = 1 is implausible: expected 24 to 72 V"


# --- inconsistent data (issue 20.4) ---------------------------------------------------------------

def test_a_lowest_cell_above_the_highest_is_not_trusted():
    decision = BmsEngine(CFG).step(snap(voltage_v=54.0, cell_min_v=3.70, cell_max_v=3.30), 0.0)
    assert decision.report.charge_current_a == 0.0 and decision.freshness == "stale"
    assert "cell_" in decision.reasons["charge_current"] and "inconsistent" in decision.reasons["charge_current"]
    reading, _ = read(snap(voltage_v=54.0, cell_min_v=3.70, cell_max_v=3.30), 16)
    assert (reading.cell_min_v, reading.cell_max_v) == (None, None)


def test_cells_that_do_not_fit_the_pack_voltage_are_not_trusted():
    engine = BmsEngine(CFG)
    engine.step(snap(voltage_v=52.0, cell_min_v=3.24, cell_max_v=3.27), 0.0)
    engine.step(snap(voltage_v=52.0, cell_min_v=3.45, cell_max_v=3.47), 1.0)   # average 3.25 V is below both
    quality = engine.data_quality()
    assert set(quality["now"]) == {"cell_min_v"} and quality["rejected"]["inconsistent"] == 1
    assert "pack voltage" in quality["now"]["cell_min_v"]


def test_an_inconsistent_cell_keeps_its_cut():
    engine = BmsEngine(CFG)
    engine.step(snap(voltage_v=44.0, cell_min_v=2.70, cell_max_v=2.80), 0.0)
    assert engine.step(snap(voltage_v=44.0, cell_min_v=2.70, cell_max_v=2.80), 1.0).report.discharge_current_a == 0.0
    decision = engine.step(snap(voltage_v=47.2, cell_min_v=3.00, cell_max_v=2.90), 2.0)   # average 2.95 V
    assert decision.report.discharge_current_a == 0.0 and "under_voltage" in decision.report.protection


# --- frozen values (issue 20.3) -------------------------------------------------------------------

def test_values_that_never_move_while_current_flows_are_stale():
    engine = BmsEngine(CFG)
    decisions = run(engine, [snap(current_a=-30.0)] * 400)
    frozen_s = CFG.stale.frozen_s
    assert all(d.freshness == "fresh" for d in decisions[:int(frozen_s) + 1])
    assert decisions[-1].freshness == "stale" and decisions[-1].report.charge_current_a == 0.0
    assert "unchanged" in decisions[-1].reasons["discharge_current"]
    assert engine.data_quality()["rejected"]["frozen"] > 0
    moving = engine.step(snap(voltage_v=52.01, current_a=-30.1), 400.0)
    assert moving.freshness == "fresh"


def test_values_at_rest_may_stay_the_same():
    decisions = run(BmsEngine(CFG), [snap(current_a=0.0)] * 400)
    assert all(d.freshness == "fresh" for d in decisions)


def test_inverter_power_reveals_a_frozen_monitor_at_zero_current():
    decisions = run(BmsEngine(CFG), [snap(current_a=0.0, inverter_power_w=-2000.0)] * 400)
    assert decisions[-1].freshness == "stale"


def test_frozen_detection_can_be_switched_off():
    decisions = run(BmsEngine(CFG.replace(stale={"frozen_s": 0.0})), [snap(current_a=-30.0)] * 400)
    assert all(d.freshness == "fresh" for d in decisions)


# --- property: losing a quantity never makes the limits larger ------------------------------------

QUANTITIES = ("voltage_v", "current_a", "soc_pct", "temperature_c", "cell_min_v", "cell_max_v")
BAD = {"voltage_v": 1.0, "current_a": math.nan, "soc_pct": 150.0, "temperature_c": -300.0,
       "cell_min_v": 0.5, "cell_max_v": 9.0}

snapshots = st.builds(
    snap, voltage_v=st.floats(44.0, 58.0), current_a=st.floats(-150.0, 150.0), soc_pct=st.floats(0.0, 100.0),
    temperature_c=st.floats(-25.0, 60.0), cell_min_v=st.none() | st.floats(2.7, 3.6),
    cell_max_v=st.none() | st.floats(2.8, 3.7))


@settings(max_examples=150, deadline=None, database=None)
@given(cfg=st.sampled_from([CFG, NO_SENSOR]), steady=snapshots, before=st.integers(1, 40),
       lost=st.sampled_from(QUANTITIES), how=st.sampled_from(["missing", "implausible"]),
       after=st.integers(1, 60))
def test_losing_a_quantity_never_gives_larger_limits(cfg, steady, before, lost, how, after):
    """An engine whose monitor loses one quantity never allows more than its twin that keeps it."""
    keeps, loses = BmsEngine(cfg), BmsEngine(cfg)
    for t in range(before):
        assert keeps.step(steady, float(t)) == loses.step(steady, float(t))
    damaged = steady._replace(**{lost: None if how == "missing" else BAD[lost]})
    for t in range(before, before + after):
        kept, lost_report = keeps.step(steady, float(t)).report, loses.step(damaged, float(t)).report
        assert lost_report.charge_current_a <= kept.charge_current_a
        assert lost_report.discharge_current_a <= kept.discharge_current_a
        assert lost_report.charge_enable <= kept.charge_enable
        assert lost_report.protection >= kept.protection


# --- what bms_tx hands the engine ----------------------------------------------------------------

class Slots:
    def __init__(self, **slots):
        self.slots = slots

    def read(self, name):
        return self.slots.get(name)


@pytest.mark.parametrize("link, power", [("up", -2000.0), ("down", None)])
def test_the_snapshot_carries_the_inverter_power_while_its_link_is_up(link, power):
    from workers.bms_tx import read_snapshot
    battery = {"voltage_v": 52.0, "current_a": 0.0, "soc_pct": 60.0, "temperature_c": None, "cell_min_v": 3.2,
               "cell_max_v": None, "updated": 100.0}
    inverter = {"link": link, "fields": {"inverter_power_w": -2000.0}}
    snapshot = read_snapshot(Slots(battery=battery, inverter=inverter), 103.0)
    assert snapshot == snap(current_a=0.0, temperature_c=None, age_s=3.0, cell_min_v=3.2, inverter_power_w=power)
