"""`check` judges usable data and monotonic ages, and reports storage it cannot write."""
import os
import time

import pytest

import config
from health import check

CFG = config.load()


def boot():
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()


def healthy_status(written_ago_s=0.5, **changes):
    """A status of an active device healthy in every way, written ``written_ago_s`` ago."""
    status = {
        "version": "test", "pid": 42, "role": "active", "uptime_s": 100.0,
        "written_at": time.time() - written_ago_s, "written_monotonic": time.monotonic() - written_ago_s,
        "boot_id": boot(),
        "workers": {"bms_tx": {"state": "running", "alive": True, "restarts": 0}},
        "battery": {"voltage_v": 52.1, "soc_pct": 80.0, "age_s": 0.4},
        "decision": {"phase": "bulk", "freshness": "fresh", "reasons": {"charge_current": "configured maximum"},
                     "age_s": 0.3},
        "failsafe": {"engaged": False}, "inverter": {"link": "up", "last_seen_age_s": 0.2},
        "can": {"state": "up", "channel": "can0"}, "frames": [{"id": "0x351"}],
        "standby": {"enabled": False},
    }
    status.update(changes)
    return status


def at_wall_clock(monkeypatch, offset_s):
    """The wall clock stepped by ``offset_s``; the monotonic clock goes on."""
    real = time.time
    monkeypatch.setattr(check.time, "time", lambda: real() + offset_s)


def test_a_fresh_status_is_healthy():
    assert check.problems(healthy_status(), CFG) == []


@pytest.mark.parametrize("step_s", [-7200.0, -86400.0 * 3])
def test_a_wall_clock_stepped_back_does_not_make_an_old_status_healthy(monkeypatch, step_s):
    status = healthy_status(written_ago_s=30.0)         # the supervisor stopped 30 s ago
    at_wall_clock(monkeypatch, step_s)
    assert check.problems(status, CFG) == [
        "the status file is 30 s old: the supervisor (pid 42) is not writing it"]


@pytest.mark.parametrize("step_s", [7200.0, 86400.0 * 3, -7200.0])
def test_a_wall_clock_step_does_not_make_a_fresh_status_old(monkeypatch, step_s):
    status = healthy_status()
    at_wall_clock(monkeypatch, step_s)
    assert check.problems(status, CFG) == []


@pytest.mark.parametrize("step_s, reason", [
    (-7200.0, "the status file was written 7200 s in the future (a clock step?): its health is unknown"),
    (7200.0, "the status file is 7200 s old: the supervisor (pid 42) is not writing it"),
])
def test_a_status_of_another_boot_is_judged_by_the_wall_clock_both_ways(monkeypatch, step_s, reason):
    status = healthy_status(written_ago_s=0.0, boot_id="another boot")
    at_wall_clock(monkeypatch, step_s)
    assert check.problems(status, CFG) == [reason]


@pytest.mark.parametrize("battery", [
    {"voltage_v": 0.0, "soc_pct": 80.0, "age_s": 0.4},
    {"voltage_v": 52.1, "soc_pct": -5.0, "age_s": 0.4},
])
def test_battery_data_that_is_fresh_but_unusable_is_unhealthy(battery):
    decision = {"phase": "bulk", "freshness": "stale", "age_s": 0.3,
                "reasons": {"charge_current": "stale: battery data 40 s old (voltage out of range)"}}
    assert check.problems(healthy_status(battery=battery, decision=decision), CFG) == [
        "battery data is unusable: stale: battery data 40 s old (voltage out of range)"]


def test_data_too_old_is_reported_once():
    decision = {"phase": "bulk", "freshness": "stale", "age_s": 0.3,
                "reasons": {"charge_current": "stale: battery data 40 s old"}}
    status = healthy_status(battery={"voltage_v": 52.1, "soc_pct": 80.0, "age_s": 40.0}, decision=decision)
    assert check.problems(status, CFG) == ["battery data is stale: 40 s old (limit %g s)" % CFG.stale.stale_s]


def test_storage_failures_are_warnings_and_the_daemon_stays_healthy():
    storage = {
        "charge_state": {"path": "/data/pylon-venus/charge-state.json", "failures": 4, "written": 0,
                         "failing_for_s": 12.0, "last_error": "[Errno 28] No space left on device",
                         "unreadable": 1},
        "status_file": {"path": "/run/pylon-venus/status.json", "failures": 2, "written": 50,
                        "failing_for_s": None, "last_error": "[Errno 30] Read-only file system"},
    }
    status = healthy_status(storage=storage)
    assert check.problems(status, CFG) == []
    assert check.warnings(status) == [
        "the charge state cannot be written to /data/pylon-venus/charge-state.json for 12 s "
        "([Errno 28] No space left on device): a restart would lose the charge phase",
        "the charge state file was unreadable at start: kept as /data/pylon-venus/charge-state.json.unreadable, "
        "the engine started afresh",
        "the status file could not be written 2 times (last: [Errno 30] Read-only file system)",
    ]


def test_a_status_file_that_cannot_be_written_is_reported_as_such(tmp_path):
    (tmp_path / "run").write_text("")
    cfg = CFG.replace(status={"file": str(tmp_path / "run" / "status.json")})
    assert check.problems(None, cfg) == [
        "no status file at %s: it cannot be written (%s is not a folder)" % (cfg.status.file, tmp_path / "run")]


@pytest.mark.parametrize("flag, blocks, reason", [
    (os.ST_RDONLY, 100, "is on a read-only file system"),
    (0, 0, "the file system of %s is full"),
])
def test_a_status_that_stopped_because_its_disk_is_full_or_read_only_says_so(tmp_path, monkeypatch, flag, blocks,
                                                                              reason):
    cfg = CFG.replace(status={"file": str(tmp_path / "status.json")})
    space = os.statvfs(str(tmp_path))
    monkeypatch.setattr(os, "statvfs", lambda path: os.statvfs_result(
        (space.f_bsize, space.f_frsize, space.f_blocks, blocks, blocks, space.f_files, space.f_ffree,
         space.f_favail, flag, space.f_namemax)))
    [problem] = check.problems(healthy_status(written_ago_s=20.0), cfg)
    assert problem.startswith("the status file is 20 s old: the supervisor (pid 42) is not writing it (it cannot "
                              "be written: ") and (reason % tmp_path if "%s" in reason else reason) in problem
