"""The cross-checks of the [charge] and [limits] keys the engine relies on."""
import pytest

import config

CFG = config.load()


@pytest.mark.parametrize("changes, message", [
    ({"charge": {"full_charge_voltage_v": 55.0}},
     "charge.absorption_voltage_v = 55.2 is above charge.full_charge_voltage_v = 55"),
    ({"charge": {"full_charge_voltage_v": 58.5}},
     "charge.full_charge_voltage_v = 58.5 is above battery.cell_count x battery.cell_voltage_max_v = 58.4"),
    ({"limits": {"charge_taper_cell_v": 3.0}},
     "battery.cell_voltage_min_v = 2.8 < limits.discharge_taper_cell_v = 3.1 < limits.charge_taper_cell_v = 3"),
    ({"limits": {"discharge_taper_cell_v": 2.7}}, "battery.cell_voltage_min_v = 2.8 < limits.discharge_taper_cell_v = 2.7 <"),
    ({"limits": {"charge_taper_cell_v": 3.44}},
     "charge.full_charge_voltage_v / battery.cell_count = 3.45 is above limits.charge_taper_cell_v = 3.44"),
    ({"limits": {"cell_voltage_warning_margin_v": 0.45}}, "limits.cell_voltage_warning_margin_v = 0.45 leaves no"),
    ({"limits": {"current_warning_pct": 200.0}},
     "limits.current_warning_pct = 200 is above limits.current_protection_pct = 150"),
])
def test_inconsistent_engine_settings_are_named(changes, message):
    with pytest.raises(config.ConfigError) as error:
        CFG.replace(**changes)
    assert any(problem.startswith(message) for problem in error.value.problems), error.value.problems


def test_a_balancing_full_charge_voltage_is_accepted():
    assert CFG.replace(charge={"full_charge_voltage_v": 56.0}).charge.full_charge_voltage_v == 56.0
