"""Persisted state never stops the frames: unreadable files are set aside, failed or slow writes
are counted and retried off the path of a frame, interrupted writes leave nothing behind."""
import errno
import json
import logging
import os
import time
import types

import pytest

import config
from bms.state import ChargeState
from ipc.atomic_file import load_or_set_aside
from ipc.flash_writer import FlashWriter
from venus.energy import EnergyCounters
from tests.fakes.worker import FakeWorker
from workers.bms_tx import BmsTransmitter


def transmitter(path, state=None):
    return BmsTransmitter(FakeWorker(path, state))


FLOAT = ChargeState(phase="float", last_full_charge_t=1.7e9, charge_voltage_v=53.6).to_dict()


# ---- the charge-state file at start -------------------------------------------------------------

@pytest.mark.parametrize("content", [
    "{not json",                                    # corrupt
    json.dumps(FLOAT)[:25],                         # truncated by a power cut
    "",                                             # empty
    "\x00\x00\x00\x00",                             # zeroed blocks after a crash
    json.dumps(["float"]),                          # not a charge state at all
    json.dumps(dict(FLOAT, phase="equalize")),      # a value this version cannot hold
])
def test_an_unreadable_charge_state_file_is_set_aside_and_the_engine_starts(tmp_path, caplog, content):
    path = tmp_path / "charge-state.json"
    path.write_text(content)
    tx = transmitter(path)
    assert tx.engine.state == ChargeState()
    assert not path.exists() and (tmp_path / "charge-state.json.unreadable").read_text() == content
    assert "unreadable" in caplog.text and str(path) in caplog.text
    assert tx.worker.state.read("charge_state")["storage"]["unreadable"] == 1


def test_a_charge_state_file_of_a_newer_version_is_read_and_its_unknown_keys_ignored(tmp_path, caplog):
    path = tmp_path / "charge-state.json"
    path.write_text(json.dumps(dict(FLOAT, equalize_s=120.0, cycles=7)))
    with caplog.at_level(logging.WARNING):
        tx = transmitter(path)
    assert tx.engine.state.phase == "float" and tx.engine.state.charge_voltage_v == 53.6
    assert "cycles, equalize_s" in caplog.text and "ignored" in caplog.text
    assert path.exists() and not (tmp_path / "charge-state.json.unreadable").exists()


def test_a_worker_restart_takes_the_state_and_the_count_from_shared_memory(tmp_path):
    path = tmp_path / "charge-state.json"
    path.write_text("{not json")
    first = transmitter(path)
    path.write_text("{not json either")       # the file is not read again
    again = transmitter(path, first.worker.state)
    assert again.engine.state == ChargeState() and path.exists()
    assert again.worker.state.read("charge_state")["storage"]["unreadable"] == 1


def test_whatever_a_file_makes_its_parser_raise_it_is_set_aside(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"limits": 5}')
    loaded = load_or_set_aside(str(path), lambda document: document["missing"], logging.getLogger("test"), "a state")
    assert loaded == (None, "'missing'") and (tmp_path / "state.json.unreadable").exists()
    assert load_or_set_aside(str(path), dict, logging.getLogger("test"), "a state") == (None, None)


def test_temporaries_of_an_interrupted_write_are_removed_at_start(tmp_path):
    path = tmp_path / "charge-state.json"
    path.write_text(json.dumps(FLOAT))
    (tmp_path / ".charge-state.json.k2j3h4").write_text('{"phase": "fl')
    (tmp_path / ".other.json.abc").write_text("not ours")
    tx = transmitter(path)
    assert tx.engine.state.phase == "float"
    assert sorted(os.listdir(str(tmp_path))) == [".other.json.abc", "charge-state.json"]


# ---- writing the charge state: failures and slowness never reach the cycle ----------------------

def enospc(*_args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fault", ["read-only folder", "disk full"])
def test_a_failed_persist_is_counted_and_reported_and_never_stops_a_cycle(tmp_path, monkeypatch, caplog, fault):
    if fault == "read-only folder":         # even root cannot create a file under a regular file
        (tmp_path / "data").write_text("")
        path = tmp_path / "data" / "charge-state.json"
    else:
        path = tmp_path / "charge-state.json"
        monkeypatch.setattr(os, "fsync", enospc)
    tx = transmitter(path)
    for second in range(3):
        tx._persist(dict(FLOAT, absorption_s=float(second)), "float" if second else "bulk", 100.0 * second)
    assert tx.writer.flush(0.3) is False
    tx._persist(dict(FLOAT, absorption_s=9.0), "float", 400.0)
    assert tx.writer.flush(0.3) is False        # the last attempt is over: its temp file is gone
    storage = tx.worker.state.read("charge_state")["storage"]
    assert storage["failures"] >= 1 and storage["failing_since"] is not None
    assert ("No space left" if fault == "disk full" else "File exists") in storage["last_error"]
    assert caplog.text.count("cannot write") == 1, "logged once per episode"
    assert tx.worker.state.read("charge_state")["state"]["absorption_s"] == 9.0
    assert [n for n in os.listdir(str(tmp_path)) if n.startswith(".")] == []


def test_a_slow_disk_never_delays_the_cycle_and_the_latest_value_wins(tmp_path, monkeypatch):
    path = tmp_path / "charge-state.json"
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(1.0), real_fsync(fd)))
    tx = transmitter(path)
    started = time.monotonic()
    for second in range(5):
        tx._persist(dict(FLOAT, absorption_s=float(second)), "float", 100.0 * second)
    assert time.monotonic() - started < 0.2
    assert tx.writer.flush(10.0)
    assert json.loads(path.read_text())["absorption_s"] == 4.0
    assert tx.writer.health(str(path))["written"] <= 2


def test_a_failed_write_is_retried_until_the_disk_is_back(tmp_path, monkeypatch, caplog):
    path = str(tmp_path / "status.json")
    writer = FlashWriter(logging.getLogger("test"), retry_s=0.05)
    monkeypatch.setattr(os, "fsync", enospc)
    writer.submit(path, '{"n": 1}', "the status file")
    time.sleep(0.4)
    failing = writer.health(path)
    assert failing["failures"] >= 3 and failing["failing_since"] is not None
    monkeypatch.undo()
    assert writer.flush(5.0)
    assert json.load(open(path)) == {"n": 1}
    healthy = writer.health(path)
    assert healthy["failing_since"] is None and healthy["failures"] >= failing["failures"]
    assert caplog.text.count("cannot write") == 1 and "written again" in caplog.text


# ---- energy counters ------------------------------------------------------------------------

def test_a_corrupt_energy_file_continues_from_the_previous_generation(tmp_path, caplog):
    path = str(tmp_path / "energy.json")
    counters = EnergyCounters(path)
    counters.add({"InverterToAcOut": 1000.0}, 3600.0)
    assert counters.save()
    counters.add({"InverterToAcOut": 1000.0}, 3600.0)
    assert counters.save()
    with open(path, "w") as handle:
        handle.write('{"kwh": {"InverterTo')
    again = EnergyCounters(path)
    assert again.values()["/Energy/InverterToAcOut"] == pytest.approx(1.0)
    assert os.path.exists(path + ".unreadable") and "unreadable" in caplog.text


def test_energy_counters_never_go_down(tmp_path):
    path = str(tmp_path / "energy.json")
    counters = EnergyCounters(path)
    counters.add({"InverterToAcOut": 1000.0}, 3600.0)
    counters.save()
    counters.add({"InverterToAcOut": 1000.0}, -7200.0)      # a clock stepped back by 2 h
    counters.add({"InverterToAcOut": float("nan")}, 1.0)
    counters.save()
    assert counters.values()["/Energy/InverterToAcOut"] == pytest.approx(1.0)
    assert EnergyCounters(path).values()["/Energy/InverterToAcOut"] == pytest.approx(1.0)


def test_foreign_energy_values_are_dropped_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "energy.json"
    path.write_text(json.dumps({"kwh": {"InverterToAcOut": 2.5, "AcIn3ToMoon": 1.0, "AcIn1ToAcOut": -3}}))
    values = EnergyCounters(str(path)).values()
    assert values["/Energy/InverterToAcOut"] == 2.5 and values["/Energy/AcIn1ToAcOut"] is None
    assert "AcIn3ToMoon" in caplog.text and "AcIn1ToAcOut" in caplog.text


def test_an_unwritable_energy_file_is_counted_not_raised(tmp_path, caplog):
    (tmp_path / "data").write_text("")
    counters = EnergyCounters(str(tmp_path / "data" / "energy.json"))
    counters.add({"InverterToAcOut": 1000.0}, 3600.0)
    assert counters.save() is False and counters.save() is False
    assert counters.values()["/Energy/InverterToAcOut"] is None, "published only once on disk"
    assert counters.writer.health(counters.path)["failures"] >= 1 and caplog.text.count("cannot write") == 1


def test_a_slow_disk_delays_an_energy_save_a_moment_only(tmp_path, monkeypatch):
    path = str(tmp_path / "energy.json")
    counters = EnergyCounters(path)
    counters.add({"InverterToAcOut": 1000.0}, 3600.0)
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(1.5), real_fsync(fd)))
    started = time.monotonic()
    assert counters.save() is False
    assert time.monotonic() - started < 0.5
    assert counters.values()["/Energy/InverterToAcOut"] is None, "published only once on disk"
    assert counters.writer.flush(10.0)
    assert counters.values()["/Energy/InverterToAcOut"] == pytest.approx(1.0)


# ---- the status file -------------------------------------------------------------------------

def test_a_slow_or_failing_status_write_never_holds_up_the_supervisor(tmp_path, monkeypatch):
    import supervisor
    status_file = str(tmp_path / "status.json")
    fake = types.SimpleNamespace(cfg=config.load().replace(status={"file": status_file}), notifier=None,
                                 status_writer=FlashWriter(logging.getLogger("test")))
    monkeypatch.setattr(supervisor, "build_status", lambda sup, version: {"written": time.monotonic()})
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(1.0), real_fsync(fd)))
    started = time.monotonic()
    for _ in range(3):
        supervisor.Supervisor.write_status(fake)
    assert time.monotonic() - started < 0.2
    assert fake.status_writer.flush(10.0) and "written" in json.load(open(status_file))
    monkeypatch.setattr(os, "fsync", enospc)
    supervisor.Supervisor.write_status(fake)        # a full disk: counted, not raised
    assert not fake.status_writer.flush(0.3)
    assert fake.status_writer.health(status_file)["failures"] == 1


@pytest.mark.parametrize("code, refused", [(errno.EROFS, False), (errno.ENOSPC, False), (errno.EACCES, True),
                                           (errno.ENOENT, True)])
def test_a_read_only_or_full_disk_at_start_is_no_reason_to_send_no_frames(tmp_path, monkeypatch, code, refused):
    """A storage state that may pass lets the daemon start (it reports the failed writes); a place
    this user can never write is a configuration error, refused before any bus is opened."""
    import tempfile

    def cannot_create(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "TemporaryFile", cannot_create)
    cfg = config.load().replace(status={"file": str(tmp_path / "status.json")})
    problems = config.unwritable_files(cfg)
    assert bool([p for p in problems if p.startswith("status.file")]) == refused, problems


def test_a_protection_or_request_that_sets_or_clears_reaches_the_file_at_once(tmp_path):
    """A daemon restart (power cut) a few seconds after a latch set must still find it: the file
    is written at a change of phase, latches or force charge, not only once a minute."""
    path = tmp_path / "charge-state.json"
    tx = transmitter(path)
    tx._persist(dict(FLOAT, absorption_s=1.0), "float", 0.0)
    for second, change in enumerate(({"latches": ["over_voltage"]}, {"latches": []}, {"force_charge": True}), 1):
        tx._persist(dict(FLOAT, absorption_s=1.0 + second, **change), "float", float(second))
        assert tx.writer.flush(2.0) is not False
        saved = json.loads(path.read_text())
        assert {key: saved[key] for key in change} == change, (second, saved)
