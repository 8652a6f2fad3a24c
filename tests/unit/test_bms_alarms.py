"""Warnings and protections: thresholds from config.toml, hysteresis, and the protocol flag names."""
import config
from bms import alarms
from bms.reading import read
from bms.snapshot import BatterySnapshot
from protocol.report import ALARMS, PROTECTIONS

CFG = config.load()   # cells 2.8..3.65 V, margin 0.05 V, hysteresis 0.05 V / 2 degC, currents 100 A / 120 A
RULES = alarms.latches(CFG)


def reading(voltage_v=52.0, current_a=0.0, temperature_c=20.0, cell_min_v=None, cell_max_v=None):
    result, _ = read(BatterySnapshot(voltage_v, current_a, 50.0, temperature_c, 0.0, cell_min_v, cell_max_v), 16)
    return result


def run(readings):
    """The flags after each reading, starting with nothing set."""
    active, flags = frozenset(), []
    for value in readings:
        active = alarms.update(active, value, RULES)
        flags.append(alarms.report_flags(active))
    return active, flags


def test_over_voltage_trips_above_the_cell_limit_and_clears_with_hysteresis():
    cells = [3.40, 3.62, 3.66, 3.62, 3.59, 3.54]
    _, flags = run([reading(voltage_v=53.0, cell_min_v=3.3, cell_max_v=v) for v in cells])
    protections = ["over_voltage" in p for p, _ in flags]
    warnings = ["high_voltage" in a for _, a in flags]
    assert protections == [False, False, True, True, False, False]   # clears below 3.65 - 0.05 = 3.60
    assert warnings == [False, True, True, True, True, False]        # trips above 3.60, clears below 3.55


def test_pack_average_stands_in_for_missing_cells():
    _, flags = run([reading(voltage_v=16 * 3.66)])
    assert "over_voltage" in flags[0][0]
    _, flags = run([reading(voltage_v=16 * 2.79)])
    assert "under_voltage" in flags[0][0] and "low_voltage" in flags[0][1]


def test_cold_blocks_charging_as_a_warning_and_everything_as_a_protection():
    temperatures = [5.0, -1.0, 1.0, 2.5, -21.0, -18.5, -17.0]
    active_sets, flags = [], []
    active = frozenset()
    for t in temperatures:
        active = alarms.update(active, reading(temperature_c=t), RULES)
        active_sets.append(active)
        flags.append(alarms.report_flags(active))
    assert ["charge_too_cold" in a for a in active_sets] == [False, True, True, False, True, True, True]
    assert ["low_temperature" in a for _, a in flags] == [False, True, True, False, True, True, True]
    assert ["under_temperature" in p for p, _ in flags] == [False, False, False, False, True, True, False]


def test_heat_blocks_charging_first():
    _, flags = run([reading(temperature_c=52.0)])
    assert flags[0] == (frozenset(), frozenset({"high_temperature"}))
    _, flags = run([reading(temperature_c=56.0)])
    assert "over_temperature" in flags[0][0]


def test_over_current_warning_then_protection_clearing_below_the_maximum():
    currents = [105.0, 115.0, 151.0, 120.0, 101.0, 99.0]
    _, flags = run([reading(current_a=i) for i in currents])
    assert ["charge_high_current" in a for _, a in flags] == [False, True, True, True, True, False]
    assert ["charge_over_current" in p for p, _ in flags] == [False, False, True, True, True, False]
    _, flags = run([reading(current_a=-181.0)])     # 150 % of 120 A is 180 A
    assert "discharge_over_current" in flags[0][0] and "discharge_high_current" in flags[0][1]


def test_unknown_temperature_raises_no_temperature_flag():
    active, _ = run([reading(temperature_c=None)])
    assert active == frozenset()


def test_every_flag_is_a_protocol_name():
    active = frozenset(rule.name for rule in RULES)
    protection, alarm = alarms.report_flags(active)
    assert protection <= set(PROTECTIONS) and alarm <= set(ALARMS)
    assert protection == set(PROTECTIONS) - {"system_error"}
    assert alarm == set(ALARMS) - {"internal_comm_fail"}


def test_a_latch_whose_measure_becomes_unknown_is_held():
    active, flags = run([reading(temperature_c=-5.0), reading(temperature_c=None), reading(temperature_c=None)])
    assert {"charge_too_cold"} <= active and all("low_temperature" in alarm for _, alarm in flags)
    active, _ = run([reading(temperature_c=-5.0), reading(temperature_c=None), reading(temperature_c=20.0)])
    assert active == frozenset()                                          # a real value clears it


def test_without_a_temperature_sensor_no_temperature_latch_exists():
    """A configuration without a sensor drops the temperature latches: one carried over could never clear."""
    no_sensor = alarms.latches(CFG.replace(battery={"temperature_sensor": False}))
    active = alarms.update(frozenset(), reading(temperature_c=-5.0), RULES)
    assert "charge_too_cold" in active
    assert alarms.update(active, reading(temperature_c=None), no_sensor) == frozenset()
