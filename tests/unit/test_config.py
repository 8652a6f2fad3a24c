"""config.toml is complete and documented, and bad settings are refused with clear lines."""
import re
import subprocess
import sys

import pytest

import config

ROOT = config.os.path.dirname(config.DEFAULT_PATH)


def write(tmp_path, text):
    path = tmp_path / "user.toml"
    path.write_text(text)
    return str(path)


def problems_of(tmp_path, text):
    with pytest.raises(config.ConfigError) as raised:
        config.load(write(tmp_path, text))
    return raised.value.problems


def test_shipped_defaults_load_and_cover_the_schema_exactly():
    cfg = config.load()
    assert cfg.as_dict().keys() == config.SCHEMA.keys()
    for section, rules in config.SCHEMA.items():
        assert set(cfg.as_dict()[section]) == set(rules), section


def test_every_key_in_config_toml_has_a_comment_above_it():
    lines = open(config.DEFAULT_PATH).read().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            above = [l for l in lines[:number] if l.strip()][-1]
            assert above.startswith("#") or re.match(r"^[a-z_]+ = ", above), "undocumented: %s" % line


def test_contract_key_names():
    cfg = config.load()
    for section, key in [("can", "interface"), ("can", "channel"), ("can", "bitrate"), ("inverter", "profile"),
                         ("battery", "source"), ("simulation", "inverter"), ("status", "file")]:
        getattr(getattr(cfg, section), key)
    assert cfg.battery.source in ("dbus", "simulated")
    assert isinstance(cfg.simulation.inverter, bool)


def test_user_file_overrides_only_what_it_names(tmp_path):
    cfg = config.load(write(tmp_path, '[can]\ninterface = "socketcan"\nchannel = "can1"\n'))
    assert (cfg.can.interface, cfg.can.channel) == ("socketcan", "can1")
    assert cfg.can.bitrate == config.load().can.bitrate


def test_unknown_key_and_section_are_named(tmp_path):
    problems = problems_of(tmp_path, '[can]\nchanel = "can0"\n[cann]\nx = 1\n')
    assert any("can.chanel is not a known key" in p and "channel" in p for p in problems)
    assert any("[cann] is not a known section" in p for p in problems)


def test_wrong_type_and_range_name_key_value_and_allowed(tmp_path):
    problems = problems_of(tmp_path, '[can]\nbitrate = "fast"\n[battery]\ncell_count = 99\nsource = "serial"\n')
    assert "can.bitrate = 'fast' is not allowed: expected an integer from 10000 to 1000000" in problems
    assert "battery.cell_count = 99 is not allowed: expected an integer from 1 to 32" in problems
    assert "battery.source = 'serial' is not allowed: expected one of 'dbus', 'simulated'" in problems
    assert len(problems) == 3


def test_booleans_are_not_numbers_and_integers_are_numbers(tmp_path):
    problems = problems_of(tmp_path, '[limits]\nmax_charge_current_a = true\n')
    assert problems == ["limits.max_charge_current_a = True is not allowed: expected a number from 0 to 5000"]
    assert config.load(write(tmp_path, '[limits]\nmax_charge_current_a = 50\n')).limits.max_charge_current_a == 50.0


def test_inconsistent_pairs(tmp_path):
    problems = problems_of(tmp_path, '[charge]\nfloat_voltage_v = 56.0\n[watchdog]\n'
                                     'restart_backoff_initial_s = 40.0\nrestart_backoff_max_s = 30.0\n')
    assert any(p.startswith("charge.float_voltage_v = 56 is above charge.absorption_voltage_v = 55.2") for p in problems)
    assert any(p.startswith("watchdog.restart_backoff_initial_s = 40 is above watchdog.restart_backoff_max_s = 30")
               for p in problems)


def test_replace_validates():
    cfg = config.load()
    assert cfg.replace(charge={"float_voltage_v": 53.0}).charge.float_voltage_v == 53.0
    with pytest.raises(config.ConfigError):
        cfg.replace(charge={"float_voltage_v": 99.0})


def test_invalid_toml_is_reported(tmp_path):
    assert problems_of(tmp_path, "[can\n")[0].startswith(str(tmp_path / "user.toml") + ": is not valid TOML")


def test_bad_config_exits_2_before_touching_any_bus(tmp_path):
    path = write(tmp_path, '[can]\ninterface = "socketcan"\nchannel = "can0"\nbitrate = -1\n'
                           '[status]\nfile = "%s"\n' % (tmp_path / "status.json"))
    result = subprocess.run([sys.executable, "supervisor.py", "run", "--config", path], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("config: can.bitrate = -1 is not allowed: expected an integer "
                                     "from 10000 to 1000000")
    assert result.stdout == ""
    assert not (tmp_path / "status.json").exists()
