"""The [inverter] section: the 0x35E name, the keep-alive timeout and the limits are checked against the profile."""
import os
import subprocess
import sys

import pytest

import config
from protocol import profiles


def problems(**inverter):
    with pytest.raises(config.ConfigError) as raised:
        config.load().replace(inverter=inverter)
    return raised.value.problems


@pytest.mark.parametrize("inverter", [
    dict(profile="deye", manufacturer="", keepalive_timeout_s=6.0),
    dict(profile="deye", manufacturer="PYLONDIY", keepalive_timeout_s=0.0),
    dict(profile="victron", manufacturer=""),
    dict(profile="sma_si", manufacturer="ACME BMS"),
])
def test_valid_inverter_settings_load(inverter):
    assert config.load().replace(inverter=inverter).inverter.as_dict().items() >= inverter.items()


def test_deye_needs_a_pylon_name():
    assert problems(profile="deye", manufacturer="DIYPYLON") == [
        "inverter.manufacturer = 'DIYPYLON' is not allowed for profile deye: the inverter only accepts names "
        "starting with 'PYLON'"]


@pytest.mark.parametrize("name", ["NINE CHARS", "PYL\u00d6N"])
def test_manufacturer_must_be_short_printable_ascii(name):
    assert problems(manufacturer=name) == [
        "inverter.manufacturer = %r is not allowed: expected 1 to 8 printable ASCII characters" % name]


def test_deye_keepalive_timeout_covers_its_midnight_pause():
    assert problems(profile="deye", keepalive_timeout_s=5.0) == [
        "inverter.keepalive_timeout_s = 5 is below 6 for inverter.profile = 'deye': that inverter pauses its "
        "keep-alives longer; use 0 (off) or at least 6"]


# A 12-cell pack: every cross-check holds, and its voltages lie below the Sunny Island's range.
TWELVE_CELLS = dict(battery={"cell_count": 12}, limits={"discharge_voltage_v": 36.0},
                    charge={"absorption_voltage_v": 41.4, "full_charge_voltage_v": 41.4, "float_voltage_v": 40.2,
                            "rebulk_voltage_v": 39.6})


def test_limits_outside_what_the_profile_can_send_are_refused():
    assert config.load().replace(**TWELVE_CELLS).inverter.profile == "pylon"
    with pytest.raises(config.ConfigError) as raised:
        config.load().replace(inverter={"profile": "sma_si"}, **TWELVE_CELLS)
    assert raised.value.problems == [
        "charge.float_voltage_v = 40.2 is not allowed for inverter.profile = 'sma_si': expected 41 to 63, "
        "the charge_voltage_v its frames can carry",
        "limits.discharge_voltage_v = 36 is not allowed for inverter.profile = 'sma_si': expected 41 to 48, "
        "the discharge_voltage_v its frames can carry"]


def test_a_current_limit_above_what_the_frames_carry_is_refused():
    with pytest.raises(config.ConfigError) as raised:
        config.load().replace(limits={"max_charge_current_a": 4000.0})
    assert raised.value.problems == [
        "limits.max_charge_current_a = 4000 is not allowed for inverter.profile = 'pylon': expected 0 to 3276.7, "
        "the charge_current_a its frames can carry"]


def test_a_dvl_above_the_sunny_island_range_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "sma.toml"
    path.write_text('[inverter]\nprofile = "sma_si"\n[limits]\ndischarge_voltage_v = 50.0\n')
    root = os.path.dirname(config.DEFAULT_PATH)
    result = subprocess.run([sys.executable, os.path.join(root, "supervisor.py"), "check", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config: limits.discharge_voltage_v = 50 is not allowed for inverter.profile = 'sma_si': expected 41 to 48, "
        "the discharge_voltage_v its frames can carry"]


@pytest.mark.parametrize("name", [name for name in profiles.names() if profiles.get(name).transport == "broadcast"])
def test_a_bit_rate_the_inverter_does_not_speak_is_refused_naming_the_key(name):
    """Pylon LV inverters speak 500 kbit/s only (PYLON_CAN.md §1); the profile says which rates it allows."""
    with pytest.raises(config.ConfigError) as raised:
        config.load().replace(inverter={"profile": name}, can={"bitrate": 250000})
    assert raised.value.problems == [
        "can.bitrate = 250000 is not allowed for inverter.profile = %r: expected 500000" % name]
