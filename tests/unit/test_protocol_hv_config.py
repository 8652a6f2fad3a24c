"""HV settings in config.py: an HV pack on an HV profile loads; a bad combination is refused by name."""
import os
import subprocess
import sys

import pytest

import config
from config import ConfigError
from protocol import profiles

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# 96 LFP cells in 6 modules of 16: a 307 V pack
HV_PACK = {
    "battery": {"cell_count": 96, "modules": 6, "capacity_ah": 50.0},
    "charge": {"absorption_voltage_v": 331.2, "float_voltage_v": 321.6, "rebulk_voltage_v": 316.8,
               "full_charge_voltage_v": 331.2, "tail_current_a": 2.5},
    "limits": {"discharge_voltage_v": 288.0, "max_charge_current_a": 30.0, "max_discharge_current_a": 30.0},
    "stale": {"safe_discharge_current_a": 10.0},
}


def hv_sections(profile="pylon_hv", **changes):
    """The config sections of an HV pack on ``profile``, with ``changes`` (section -> keys) on top."""
    sections = {name: dict(keys) for name, keys in HV_PACK.items()}
    sections.setdefault("inverter", {})["profile"] = profile
    for name, keys in changes.items():
        sections.setdefault(name, {}).update(keys)
    return sections


def hv(profile="pylon_hv", **changes):
    return config.load().replace(**hv_sections(profile, **changes))


def test_every_profile_is_selectable_and_the_config_list_is_the_profiles_package():
    assert tuple(config.PROFILES) == profiles.names()


@pytest.mark.parametrize("name", [n for n in profiles.names() if profiles.get(n).transport == "polled"])
def test_an_hv_pack_loads_on_each_hv_profile(name):
    cfg = hv(name)
    assert cfg.inverter.profile == name and cfg.battery.cell_count == 96


@pytest.mark.parametrize("changes, key", [
    ({"battery": {"modules": 5}}, "battery.modules = 5"),
    ({"can": {"bitrate": 125000}}, "can.bitrate = 125000"),
])
def test_a_bad_hv_combination_is_refused_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as error:
        hv(**changes)
    assert any(problem.startswith(key) for problem in error.value.problems), error.value.problems


def test_an_lv_profile_refuses_a_pack_its_voltage_field_cannot_carry():
    with pytest.raises(ConfigError) as error:
        hv("pylon")
    assert any(problem.startswith("battery.cell_count = 96") for problem in error.value.problems), \
        error.value.problems


def test_250_kbit_is_allowed_for_hv():
    assert hv(can={"bitrate": 250000}).can.bitrate == 250000


def test_a_bad_hv_config_exits_2_before_any_bus(tmp_path):
    path = tmp_path / "hv.toml"
    path.write_text('[inverter]\nprofile = "sofar_hv"\n[battery]\ncell_count = 96\nmodules = 5\n'
                    '[status]\nfile = "%s"\n' % (tmp_path / "status.json"))
    result = subprocess.run([sys.executable, "supervisor.py", "check", "--config", str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert result.returncode == 2
    assert "battery.modules = 5" in result.stderr + result.stdout
