"""The battery and inverter models on their own, against hand-computed physics."""
import math

import pytest

import config
from protocol.report import BatteryReport
from simulation.battery import LFP_OCV, BatteryModel, interpolate
from simulation.inverter import InverterModel
from simulation.profiles import cloudy_pv, constant, daily_temperature, sunny_pv

HOUR = 3600.0


def battery(soc_pct=50.0, temperature_c=25.0):
    return BatteryModel(capacity_ah=280.0, cell_count=16, soc_pct=soc_pct, temperature_c=temperature_c)


def test_ocv_table_is_increasing_and_interpolated():
    socs, volts = zip(*LFP_OCV)
    assert list(socs) == sorted(socs) and list(volts) == sorted(volts)
    assert interpolate(LFP_OCV, 55.0) == pytest.approx((3.29 + 3.30) / 2)
    assert interpolate(LFP_OCV, -5.0) == 2.60 and interpolate(LFP_OCV, 105.0) == 3.60


def test_soc_integrates_the_current_and_stays_within_0_and_100():
    model = battery(soc_pct=50.0)
    model.step(28.0, HOUR)                       # 28 Ah into 280 Ah
    assert model.soc_pct == pytest.approx(60.0)
    model.step(-56.0, HOUR / 2)
    assert model.soc_pct == pytest.approx(50.0)
    model.step(1000.0, 10 * HOUR)
    assert model.soc_pct == 100.0
    model.step(-1000.0, 10 * HOUR)
    assert model.soc_pct == 0.0


def test_voltage_is_ocv_plus_current_through_the_resistance_which_rises_in_the_cold():
    model = battery(soc_pct=50.0, temperature_c=25.0)
    snapshot = model.step(50.0, 0.0)
    assert snapshot.voltage_v == pytest.approx(16 * 3.29 + 50.0 * 0.02)
    cold = battery(soc_pct=50.0, temperature_c=0.0)
    assert cold.step(50.0, 0.0).voltage_v == pytest.approx(16 * 3.29 + 50.0 * 0.02 * 1.75)


def test_temperature_follows_the_ambient_with_its_time_constant():
    model = battery(temperature_c=0.0)
    model.step(0.0, 3600.0, ambient_c=20.0)
    assert model.temperature_c == pytest.approx(20.0 * (1 - math.exp(-1)))


def test_cells_spread_around_the_average_and_widen_at_the_top():
    for soc in (5.0, 50.0, 100.0):
        snapshot = battery(soc_pct=soc).snapshot()
        average = snapshot.voltage_v / 16
        assert snapshot.cell_min_v < average < snapshot.cell_max_v
    middle, top = battery(soc_pct=50.0).snapshot(), battery(soc_pct=100.0).snapshot()
    assert top.cell_max_v - top.cell_min_v > middle.cell_max_v - middle.cell_min_v


@pytest.mark.parametrize("arguments, message", [
    ({"capacity_ah": 0.0}, "capacity_ah"), ({"cell_count": 0}, "cell_count"), ({"soc_pct": math.nan}, "soc_pct")])
def test_bad_model_parameters_are_refused(arguments, message):
    values = dict(capacity_ah=280.0, cell_count=16, soc_pct=50.0, temperature_c=20.0)
    values.update(arguments)
    with pytest.raises(ValueError, match=message):
        BatteryModel(**values)
    with pytest.raises(ValueError, match="dt_s"):
        battery().step(1.0, -1.0)


def report(**changes):
    values = dict(charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0, discharge_voltage_v=48.0,
                  soc_pct=50.0, soh_pct=100.0, voltage_v=52.0, current_a=0.0, temperature_c=20.0,
                  charge_enable=True, discharge_enable=True)
    values.update(changes)
    return BatteryReport(**values)


NOON = 12 * HOUR
MIDNIGHT = 0.0


def test_surplus_charges_within_the_charge_limit_and_enable():
    inverter = InverterModel(constant(5200.0), constant(0.0))
    assert inverter.current(report(), 50.0, NOON) == 100.0            # 104 A wanted, 100 A allowed
    assert inverter.current(report(charge_current_a=30.0), 50.0, NOON) == 30.0
    assert inverter.current(report(charge_enable=False), 50.0, NOON) == 0.0


def test_deficit_discharges_within_the_discharge_limit_enable_and_dvl():
    inverter = InverterModel(constant(0.0), constant(2600.0))
    assert inverter.current(report(), 52.0, MIDNIGHT) == pytest.approx(-50.0)
    assert inverter.current(report(discharge_current_a=20.0), 52.0, MIDNIGHT) == -20.0
    assert inverter.current(report(discharge_enable=False), 52.0, MIDNIGHT) == 0.0
    assert inverter.current(report(), 47.9, MIDNIGHT) == 0.0
    assert inverter.current(None, 52.0, MIDNIGHT) == 0.0              # no BMS: the battery is left alone


def test_force_charge_request_charges_from_the_grid():
    inverter = InverterModel(constant(0.0), constant(500.0))
    assert inverter.current(report(force_charge_2=True, charge_current_a=40.0), 50.0, MIDNIGHT) == 40.0


def test_cv_controller_brings_the_pack_to_the_charge_voltage_and_the_current_down():
    model = battery(soc_pct=99.0)
    inverter = InverterModel(constant(10000.0), constant(0.0))
    for _ in range(50):
        current = inverter.current(report(), model.voltage_v, NOON)
        model.step(current, 1.0)
    assert model.voltage_v == pytest.approx(55.2, abs=0.01)
    assert 0.0 < current < 100.0


def test_keepalive_is_due_once_per_interval():
    inverter = InverterModel(constant(0.0), constant(0.0))
    assert [inverter.keepalive_due(t) for t in (0.0, 0.5, 0.99, 1.0, 1.5, 2.2)] == [True, False, False, True, False, True]


def test_profiles():
    sun = sunny_pv(4000.0)
    assert sun(3 * HOUR) == 0.0 and sun(NOON) == pytest.approx(4000.0) and sun(NOON + 86400.0) == pytest.approx(4000.0)
    clouds = cloudy_pv(4000.0)
    assert all(0.0 <= clouds(t) <= 0.45 * sun(t) + 1e-9 for t in range(0, 86400, 600))
    air = daily_temperature(-5.0, 15.0)
    assert air(6 * HOUR) == pytest.approx(-5.0) and air(18 * HOUR) == pytest.approx(15.0)


def test_models_from_config():
    cfg = config.load()
    model = BatteryModel.from_config(cfg)
    assert (model.capacity_ah, model.soc_pct, model.temperature_c) == (280.0, 60.0, 20.0)
    inverter = InverterModel.from_config(cfg)
    assert inverter.pv_w(NOON) == pytest.approx(4000.0) and inverter.load_w(NOON) == 800.0
