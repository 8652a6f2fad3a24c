"""config.toml is complete and documented, and bad settings are refused with clear lines."""
import os
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
    problems = problems_of(tmp_path, '[can]\nbitrate = "fast"\n[battery]\ncell_count = 999\nsource = "serial"\n')
    assert "can.bitrate = 'fast' is not allowed: expected an integer from 10000 to 1000000" in problems
    assert "battery.cell_count = 999 is not allowed: expected an integer from 1 to 256" in problems
    assert "battery.source = 'serial' is not allowed: expected one of 'dbus', 'simulated', 'vedirect', 'mqtt'" in problems
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


def run_cli(*args, cwd=ROOT, timeout=60):
    return subprocess.run([sys.executable, os.path.join(ROOT, "supervisor.py")] + list(args), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


def test_a_config_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[inverter]\nmanufacturer = "M\u00dcLLER"\n'.encode("latin-1"))
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config: %s: is not UTF-8 text (TOML files are UTF-8): byte 0xdc on line 2" % path]


# --- paths and names: everything the daemon opens is checked before any bus (issue 20 item 7) ---

LONG_NAME = "s" * 246     # with the atomic write's ".<name>.XXXXXXXX" temp file that is 256 bytes


@pytest.mark.parametrize("text, problem", [
    ('[status]\nfile = ""\n', "status.file is empty: expected the path of the status file"),
    ('[state]\ncharge_file = ""\n', "state.charge_file is empty: expected the path of the charge state file"),
    ('[venus]\nenergy_file = ""\n', "venus.energy_file is empty: expected the path of the energy counter file"),
    ('[status]\nfile = "/tmp/%s"\n' % LONG_NAME,
     "status.file = '/tmp/%s' is not allowed: its file name has 246 bytes, at most 245 are allowed "
     "(the atomic write's temporary file adds 10 to the 255 a name may have)" % LONG_NAME),
    ('[state]\ncharge_file = "/tmp/%s/state.json"\n' % ("d" * 256),
     "state.charge_file = '/tmp/%s/state.json' is not allowed: its folder name %r has 256 bytes, at most 255 "
     "are allowed" % ("d" * 256, "d" * 256)),
    ('[state]\ncharge_file = "/tmp/pylon-venus/"\n',
     "state.charge_file = '/tmp/pylon-venus/' is not allowed: expected the path of a file, not of a folder"),
    ('[status]\nfile = "/tmp/a\\u0000b"\n', "status.file = '/tmp/a\\x00b' is not allowed: a path has no NUL character"),
    ('[state]\ncharge_file = "/tmp/pylon-venus/status.json"\n',
     "state.charge_file = '/tmp/pylon-venus/status.json' is not allowed: status.file is the same file; "
     "each file needs its own path"),
    ('[can]\ninterface = "sockecan"\n',
     "can.interface = 'sockecan' is not allowed: expected a python-can interface, one of "),
    ('[can]\nchannel = ""\n', "can.channel is empty: expected the interface's channel, e.g. 'can0' or a multicast group"),
    ('[can]\ninterface = "socketcan"\nchannel = "can0-on-the-left-port"\n',
     "can.channel = 'can0-on-the-left-port' is not allowed for can.interface = 'socketcan': expected a network "
     "interface name of 1 to 15 characters without '/' or spaces, e.g. 'can0'"),
    ('[can]\nchannel = "192.168.1.2"\n',
     "can.channel = '192.168.1.2' is not allowed for can.interface = 'udp_multicast': expected an IPv4 or IPv6 "
     "multicast group, e.g. '239.74.163.2'"),
    ('[venus]\nservice_suffix = "%s"\n' % ("p" * 33),
     "venus.service_suffix = '%s' is not allowed: expected 1 to 32 letters, digits, '_' or '-', not starting "
     "with a digit (it ends the D-Bus names com.victronenergy.vebus.<suffix> and "
     "com.victronenergy.battery.<suffix>)" % ("p" * 33)),
])
def test_paths_and_names_are_checked(tmp_path, text, problem):
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_the_longest_allowed_names_are_accepted(tmp_path):
    cfg = config.load(write(tmp_path, '[status]\nfile = "/tmp/%s"\n[venus]\nservice_suffix = "%s"\n'
                            '[can]\ninterface = "socketcan"\nchannel = "%s"\n' % ("s" * 245, "p" * 32, "c" * 15)))
    assert len(cfg.venus.service_suffix) == 32


def test_the_longest_service_suffix_fits_the_publishers_heartbeat_slot(monkeypatch):
    # dbus_publisher beats with its vebus name and the battery monitor it follows
    from ipc.shared_state import SharedState
    import workers.runtime
    suffix = config.load().replace(venus={"service_suffix": "p" * config.SERVICE_SUFFIX_MAX}).venus.service_suffix
    state = SharedState.create("config-test-%d" % os.getpid())
    try:
        monkeypatch.setattr(os, "getpid", lambda: 4194304)                       # the largest Linux pid
        monkeypatch.setattr(workers.runtime.time, "monotonic", lambda: 9999999999.123457)  # 300 years up
        worker = workers.runtime.Worker("dbus_publisher", None, state)
        worker.beat(vebus="com.victronenergy.vebus." + suffix,
                    battery_service="com.victronenergy.battery.".ljust(255, "x"),   # the longest D-Bus name
                    localsettings=True)
        assert state.read("heartbeat.dbus_publisher")["vebus"].endswith(suffix)
    finally:
        state.close()
        state.unlink()


def test_unusable_places_stop_the_daemon_before_any_bus(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    path = write(tmp_path, '[status]\nfile = "%s/status.json"\n[state]\ncharge_file = "%s"\n'
                           '[venus]\nenergy_file = "/proc/pylon-venus/energy.json"\n' % (a_file, tmp_path))
    result = run_cli("run", "--config", path, timeout=20)   # a daemon that starts is stopped at 20 s
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config: status.file = '%s/status.json' cannot be written: %s is not a folder" % (a_file, a_file),
        "config: state.charge_file = '%s' cannot be written: it is a folder" % tmp_path,
        "config: venus.energy_file = '/proc/pylon-venus/energy.json' cannot be written: no file can be created "
        "in /proc (No such file or directory)"]
    assert result.stdout == ""


def test_places_are_checked_only_for_the_daemon(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    path = write(tmp_path, '[status]\nfile = "%s/status.json"\n' % a_file)
    result = run_cli("status", "--config", path)
    assert result.returncode == 1 and result.stderr == ""
    assert result.stdout.startswith("no status file at %s/status.json" % a_file)
