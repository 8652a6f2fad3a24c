"""The running daemon on the host: workers killed and hung, the failsafe, restarts, stop, status.

Each test runs the real `supervisor.py run` on the embedded simulation (its own virtual bus
and private D-Bus) and judges it by the recorded bus and the status file.
"""
import fcntl
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

import config
from ipc.shared_state import segment_path
from supervisor import Supervisor, WorkerHandle, segment_name
from tests.multiproc.daemon import ROOT, Daemon, children_of, gaps, wait_until

PERIOD = 1.0


def test_the_simulation_sends_the_profile_frame_set_at_its_cadence(daemon):
    d = daemon()
    status = d.wait_sending()
    assert [f["id"] for f in status["frames"]] == ["0x351", "0x355", "0x356", "0x359", "0x35C", "0x35E"]
    time.sleep(5)
    d.stop()
    for frame_id in (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E):
        intervals = gaps(d.frames(frame_id))
        assert len(intervals) >= 3, hex(frame_id)
        assert max(intervals) < 1.5 * PERIOD and min(intervals) > 0.5 * PERIOD, (hex(frame_id), intervals)
    assert d.frames(0x305), "the simulated inverter answers with 0x305"


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_bms_tx_killed_or_hung_leaves_no_gap_and_is_restarted(daemon, how):
    # A hung bms_tx stops sending on the virtual bus: it must be found within half a period.
    d = daemon(watchdog={"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 0.4})
    d.wait_sending()
    time.sleep(3)
    pid = d.worker_pid("bms_tx")
    fault_time = time.time()
    os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    d.wait_for(lambda s: s["workers"]["bms_tx"]["restarts"] >= 1, 10, "bms_tx restarted")
    status = d.wait_sending(30)
    recovered_time = time.time()
    assert status["workers"]["bms_tx"]["pid"] != pid
    time.sleep(3)
    d.stop()
    limits = d.frames(0x351)
    intervals = gaps(limits)
    assert max(intervals) < 1.5 * PERIOD, intervals
    assert ("hung" if how == "stop" else "exited with code -9") in d.log()
    assert "failsafe engaged" in d.log() and "failsafe released" in d.log()
    # While the failsafe covered, nothing was more permissive than bms_tx's last decisions.
    last = [r["fields"] for r in limits if fault_time - 2 <= r["t"] < fault_time]
    covered = [r["fields"] for r in limits if fault_time <= r["t"] <= recovered_time]
    assert last and covered
    for field in ("charge_voltage_v", "charge_current_a", "discharge_current_a"):
        bound = max(f[field] for f in last)
        assert all(f[field] <= bound for f in covered), field


@pytest.mark.parametrize("name", ["can_rx", "dbus_publisher", "simulator"])
def test_other_workers_killed_are_restarted_without_a_gap(daemon, name):
    d = daemon()
    d.wait_sending()
    d.wait_for(lambda s: s["workers"][name]["alive"], 30, name)
    pid = d.worker_pid(name)
    os.kill(pid, signal.SIGKILL)
    d.wait_for(lambda s: s["workers"][name]["alive"] and s["workers"][name]["pid"] != pid, 20, "restart")
    time.sleep(2)
    d.stop()
    assert max(gaps(d.frames(0x351))) < 1.5 * PERIOD
    assert d.status()["workers"][name]["restarts"] == 1


def test_restart_intensity_escalates_to_a_visible_fault(daemon):
    d = daemon(watchdog={"restart_intensity": 2, "restart_period_s": 60.0, "restart_backoff_initial_s": 0.1})
    d.wait_sending()
    for kills in range(1, 4):
        d.wait_for(lambda s: s["workers"]["can_rx"]["alive"], 20, "can_rx up")
        os.kill(d.worker_pid("can_rx"), signal.SIGKILL)
        d.wait_for(lambda s: s["workers"]["can_rx"]["restarts"] == kills, 10, "can_rx death %d seen" % kills)
    status = d.wait_for(lambda s: s["workers"]["can_rx"]["state"] == "fault", 10, "fault state")
    assert status["workers"]["can_rx"]["restarts"] == 3
    check = d.command("check")
    assert check.returncode == 1 and "worker can_rx is in fault" in check.stdout
    assert "fault, next try in" in d.log()


def test_sigterm_stops_everything_and_leaves_nothing_behind(daemon):
    d = daemon()
    d.wait_sending()
    descendants = children_of(d.process.pid)
    assert len(descendants) >= 5           # four workers and the private dbus-daemon
    segment = segment_path(segment_name(config.load(d.config_path)))
    assert os.path.exists(segment)
    assert d.stop() == 0
    time.sleep(0.5)
    assert not [pid for pid in descendants if os.path.exists("/proc/%d" % pid)]
    assert not os.path.exists(segment)


def test_a_signal_wakes_the_sleeping_loop_at_once(daemon):
    """The loop sleeps until the next thing falls due (issue 19), here tens of seconds away; a
    stop must not wait for that: a signal ends the sleep (a wakeup fd among the sentinels)."""
    d = daemon(watchdog={"heartbeat_timeout_s": 40.0, "startup_timeout_s": 60.0}, can={"frame_lease_s": 60.0},
               status={"interval_s": 60.0})
    wait_until(lambda: os.path.exists(d.record_path) and len(d.frames(0x351)) >= 3, "bms_tx's frames on the bus", 60)
    time.sleep(3.0)                     # every worker beating: steady, nothing due for about 30 s
    sent = time.monotonic()
    assert d.stop(timeout=20) == 0
    assert time.monotonic() - sent < 15.0, "the stop waited for the loop's next due time"


def test_kill_9_of_the_parent_leaves_no_orphans_and_the_next_start_cleans_up(daemon):
    d = daemon()
    d.wait_sending()
    descendants = children_of(d.process.pid)
    d.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [p for p in descendants if os.path.exists("/proc/%d" % p)]:
        time.sleep(0.1)
    assert not [pid for pid in descendants if os.path.exists("/proc/%d" % pid)]
    again = daemon()
    again.wait_sending()
    assert again.stop() == 0


def test_the_status_file_is_always_valid_json_while_hammered(daemon):
    d = daemon()
    d.wait_sending()
    reads, failures, stop = [0], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                with open(d.status_path) as handle:
                    json.load(handle)
                reads[0] += 1
            except ValueError as error:
                failures.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join()
    assert reads[0] > 500 and not failures


def test_status_has_every_documented_field(daemon):
    d = daemon()
    status = d.wait_sending()
    for key in ("version", "pid", "uptime_s", "role", "workers", "battery", "inverter", "failsafe", "can", "frames",
                "shm_read_failures"):
        assert key in status
    for worker in status["workers"].values():
        assert set(worker) >= {"pid", "alive", "restarts", "recent_restarts", "last_heartbeat_age_s", "rss_bytes",
                               "cpu_percent", "shm_read_failures"}
    assert status["battery"]["age_s"] < 5 and status["battery"]["voltage_v"] > 40
    assert status["inverter"]["link"] == "up"
    assert set(status["can"]) >= {"interface", "state", "tx_frames", "rx_frames", "errors"}
    assert status["failsafe"] == {"engaged": False, "since": None}
    shown = d.command("status")
    assert shown.returncode == 0 and "HEALTHY" in shown.stdout and "0x351" in shown.stdout


def test_check_fails_when_a_worker_is_down_or_data_is_stale(daemon):
    d = daemon(stale={"hold_s": 1.0, "stale_s": 3.0}, watchdog={"restart_backoff_initial_s": 30.0})
    d.wait_sending()
    d.wait_for(lambda s: not d.command("check").returncode, 30, "healthy")
    os.kill(d.worker_pid("simulator"), signal.SIGKILL)   # the battery monitor goes silent
    d.wait_for(lambda s: s["battery"]["age_s"] is not None and s["battery"]["age_s"] > 3.5, 20, "stale data")
    check = d.command("check")
    assert check.returncode == 1
    assert "worker simulator is down" in check.stdout
    assert "battery data is stale" in check.stdout
    charge = [f for f in d.status()["frames"] if f["id"] == "0x351"][0]["fields"]
    assert charge["charge_current_a"] == 0


def test_systemd_notifications_ready_status_and_watchdog(daemon, tmp_path):
    import socket
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(30)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        daemon()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    messages = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ("READY=1" in messages and
                                                 messages[messages.index("READY=1"):].count("WATCHDOG=1") >= 3):
        messages.append(listener.recv(4096).decode())
    listener.close()
    assert "READY=1" in messages
    assert messages.count("WATCHDOG=1") >= 3
    statuses = [m for m in messages if m.startswith("STATUS=")]
    assert statuses[-1] == "STATUS=healthy, sending 6 frames", messages
    assert messages.count("READY=1") == 1


def _start_with_output(d, output, cwd=ROOT):
    """Start ``d`` with its stdout and stderr going to the file descriptor ``output``."""
    open(d.log_path, "a").close()
    d.process = subprocess.Popen([sys.executable, os.path.join(ROOT, "supervisor.py"), "run", "--config",
                                  d.config_path, "--record", d.record_path], cwd=cwd, stdout=output,
                                 stderr=output)
    return d


def _stop_within(d, sig, seconds):
    """Send ``sig``; the daemon must exit within ``seconds`` (it is killed otherwise)."""
    started = time.monotonic()
    d.stop(sig, seconds)
    return time.monotonic() - started


def test_a_stalled_log_sink_and_a_killed_worker_never_hang_the_stop(tmp_path):
    """A full stdout pipe (a stalled multilog) while workers are killed: logging drops lines,
    the frames go on, and SIGTERM still stops everything within a bounded time."""
    reader, writer = os.pipe()
    fcntl.fcntl(writer, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)   # the constant is new in 3.10
    stalled = threading.Event()

    def drain_until_stalled():
        while not stalled.is_set():
            if select.select([reader], [], [], 0.1)[0]:
                os.read(reader, 65536)

    drainer = threading.Thread(target=drain_until_stalled)
    drainer.start()
    d = _start_with_output(Daemon(tmp_path, watchdog={"restart_backoff_initial_s": 0.05, "restart_backoff_max_s": 0.1,
                                                      "restart_intensity": 1000}), writer)
    filler = None
    try:
        d.wait_sending()
        stalled.set()
        drainer.join()
        filler = threading.Thread(target=lambda: _fill(writer))    # blocks once the pipe is full
        filler.start()
        deadline = time.monotonic() + 10
        while _pipe_bytes(reader) < 4096 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pipe_bytes(reader) >= 4096, "the log pipe did not fill"
        _kill_workers_as_they_start(d, 8)       # each start logs: far more lines than any pipe holds
        d.wait_sending(10)
        assert _stop_within(d, signal.SIGTERM, 10) >= 0
        assert d.process.returncode == 0
    finally:
        if d.process.poll() is None:
            d.process.kill()
            d.process.wait()
        stalled.set()
        os.close(reader)            # a blocked filler gets EPIPE
        if filler is not None:
            filler.join(5)
        os.close(writer)


def _fill(fd):
    try:
        while True:
            os.write(fd, b"x" * 512)
    except OSError:
        pass


def _kill_workers_as_they_start(d, seconds):
    """For ``seconds``, SIGKILL every worker but bms_tx soon after it starts, while it logs."""
    rng = random.Random(5)
    spared = {pid for pid in children_of(d.process.pid) if _command_name(pid) == "dbus-daemon"}
    spared.add(d.worker_pid("bms_tx"))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in children_of(d.process.pid) - spared:
            time.sleep(rng.random() * 0.05)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            spared.add(pid)
        time.sleep(0.002)


def _command_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _pipe_bytes(fd):
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_sighup_is_an_orderly_stop(daemon):
    """An SSH session closing on a foreground run: the recording is complete, nothing left behind."""
    d = daemon()
    d.wait_sending()
    time.sleep(2)
    segment = segment_path(segment_name(config.load(d.config_path)))
    descendants = children_of(d.process.pid)
    _stop_within(d, signal.SIGHUP, 15)
    assert d.process.returncode == 0, d.log()
    assert "SIGHUP received: stopping" in d.log()
    assert not os.path.exists(segment)
    assert len(d.frames(0x351)) >= 2, "the recording was closed with its frames"
    time.sleep(0.5)
    assert not [pid for pid in descendants if os.path.exists("/proc/%d" % pid)]


def test_one_configuration_with_a_relative_status_file_runs_once_whatever_the_directory(tmp_path):
    """The instance guard is keyed on the bus: a second start from another directory refuses."""
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    d = Daemon(tmp_path, status={"file": "status.json"}, state={"charge_file": "charge-state.json"},
               venus={"energy_file": "energy.json"})
    log = open(d.log_path, "a")
    first = _start_with_output(d, log.fileno(), cwd=str(first_dir))
    try:
        d.status_path = str(first_dir / "status.json")
        d.wait_sending()
        second = subprocess.run([sys.executable, os.path.join(ROOT, "supervisor.py"), "run", "--config",
                                 d.config_path], cwd=str(second_dir), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True, timeout=20)
        assert second.returncode == 1, second.stdout
        assert "another pylon-venus" in second.stdout, second.stdout
        assert not (second_dir / "status.json").exists()
    finally:
        first.stop()
        log.close()


def test_the_fault_line_counts_the_restarts_within_the_period_only(daemon):
    d = daemon(watchdog={"restart_intensity": 2, "restart_period_s": 2.0, "restart_backoff_initial_s": 0.1})
    d.wait_sending()
    for kills in range(1, 6):
        d.wait_for(lambda s: s["workers"]["can_rx"]["alive"], 20, "can_rx up")
        os.kill(d.worker_pid("can_rx"), signal.SIGKILL)
        d.wait_for(lambda s: s["workers"]["can_rx"]["restarts"] == kills, 10, "can_rx death %d seen" % kills)
        if kills <= 2:
            time.sleep(2.5)             # these two fall out of the restart period
    d.wait_for(lambda s: s["workers"]["can_rx"]["state"] == "fault", 10, "fault state")
    check = d.command("check")
    assert "worker can_rx is in fault: 3 restarts within 2 s" in check.stdout, check.stdout


def test_an_orderly_stop_after_many_worker_kills_is_as_quick_as_any(daemon):
    """A worker killed while it logs took nothing with it that the stop would wait for."""
    d = daemon(watchdog={"restart_intensity": 1000, "restart_backoff_initial_s": 0.05, "restart_backoff_max_s": 0.1})
    d.wait_sending()
    _kill_workers_as_they_start(d, 4)
    time.sleep(1)
    assert _stop_within(d, signal.SIGTERM, 30) < 2.5, d.log()


class _UnkillableProcess:
    """A worker in uninterruptible sleep (a stalled SD card): neither SIGTERM nor SIGKILL ends it."""

    pid = 4242
    exitcode = None

    def join(self, timeout=None):
        assert timeout is not None, "an unbounded join() on a process that never ends"

    def is_alive(self):
        return True

    def terminate(self):
        pass

    def kill(self):
        pass


def test_a_worker_that_never_dies_is_reported_and_left_the_stop_goes_on(caplog):
    handle = WorkerHandle("bms_tx")
    handle.process = _UnkillableProcess()
    started = time.monotonic()
    Supervisor._join(handle, time.monotonic() + 0.2)
    assert time.monotonic() - started < 5
    assert "worker bms_tx (pid 4242) did not end after SIGKILL" in caplog.text
    assert handle.state == "stopped"


def test_a_hung_worker_that_survives_its_kill_is_reported_and_restarted_the_loop_goes_on(caplog):
    supervisor = Supervisor.__new__(Supervisor)      # only what on_exit needs: no bus, no processes
    supervisor.cfg = config.load()
    handle = WorkerHandle("can_rx")
    handle.process = _UnkillableProcess()
    started = time.monotonic()
    supervisor.on_exit(handle, "hung (no heartbeat for 2.00 s), killed", started)
    assert time.monotonic() - started < 5
    assert "worker can_rx (pid 4242) did not end after SIGKILL" in caplog.text
    assert handle.state == "backoff" and handle.restarts == 1


def test_a_can_adapter_missing_at_boot_does_not_stop_the_supervisor(daemon):
    """Hot standby and --record on a bus that is not there: reported, retried; the daemon lives."""
    d = daemon(can={"interface": "socketcan", "channel": "pvmissing0"}, standby={"enabled": True},
               simulation={"inverter": False})
    status = d.wait_for(lambda s: s["standby"].get("bus_error"), 30, "the standby's bus error in the status")
    assert status["role"] == "standby"
    time.sleep(1)
    assert d.process.poll() is None
    assert "recording to %s: cannot open socketcan pvmissing0" % d.record_path in d.log()
    assert "hot standby: cannot open socketcan pvmissing0" in d.log()
    assert d.stop() == 0


class _BeatingProcess(_UnkillableProcess):
    """A running worker, for the loop's arithmetic: alive, never asked to end."""

    def __init__(self, pid):
        self.pid = pid
        self.sentinel = None


class _Slots:
    def __init__(self, slots):
        self.slots = slots

    def read(self, name):
        return self.slots.get(name)


def _steady_supervisor(beats_age_s, failsafe_engaged=False):
    """A Supervisor with every worker running and beating ``beats_age_s`` ago (name -> age)."""
    supervisor = Supervisor.__new__(Supervisor)
    supervisor.cfg = config.load()
    supervisor.standby = None
    supervisor.failsafe = type("Failsafe", (), {"engaged": failsafe_engaged})()
    supervisor.workers, slots = {}, {}
    now = time.monotonic()
    for number, (name, age) in enumerate(beats_age_s.items()):
        handle = WorkerHandle(name)
        handle.process, handle.state, handle.started_at = _BeatingProcess(1000 + number), "running", now - 60
        supervisor.workers[name] = handle
        if age is not None:
            slots["heartbeat." + name] = {"pid": handle.process.pid, "t": now - age}
    supervisor.state = _Slots(slots)
    return supervisor, now


def test_at_steady_state_the_loop_sleeps_until_the_status_is_due_not_every_heartbeat():
    # Issue 19: the supervisor woke every heartbeat interval (4/s) with nothing to do.
    supervisor, now = _steady_supervisor({"can_rx": 0.0, "bms_tx": 0.0, "dbus_publisher": 0.0})
    wd = supervisor.cfg.watchdog
    sleep = supervisor._sleep_time(now + 1.0)
    assert wd.heartbeat_interval_s < sleep <= 1.0 + 0.05, sleep


def test_the_loop_wakes_when_a_heartbeat_falls_due_so_a_hang_is_found_in_time():
    supervisor, now = _steady_supervisor({"can_rx": 0.0, "bms_tx": 1.9})
    timeout = supervisor.cfg.watchdog.heartbeat_timeout_s
    sleep = supervisor._sleep_time(now + 5.0)
    assert sleep <= timeout - 1.9 + 0.05, sleep


@pytest.mark.parametrize("case", ["failsafe engaged", "worker not beating yet"])
def test_while_anything_is_in_transition_the_loop_wakes_every_heartbeat_interval(case):
    supervisor, now = _steady_supervisor({"can_rx": 0.0, "bms_tx": None if case == "worker not beating yet" else 0.0},
                                         failsafe_engaged=case == "failsafe engaged")
    assert supervisor._sleep_time(now + 5.0) <= supervisor.cfg.watchdog.heartbeat_interval_s + 0.05


def test_workers_with_nothing_else_due_beat_four_times_per_timeout_not_every_interval():
    # Issue 19: can_rx, dbus_publisher and web woke every heartbeat_interval_s only to beat.
    from workers.runtime import Worker
    shipped = config.load()
    worker = Worker("can_rx", shipped, None)
    assert worker.beat_period_s == shipped.watchdog.heartbeat_timeout_s / 4 > shipped.watchdog.heartbeat_interval_s
    fast = shipped.replace(watchdog={"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 0.3})
    assert Worker("can_rx", fast, None).beat_period_s == 0.1      # never slower than the configured interval


def test_bms_tx_wakes_every_heartbeat_interval_only_where_its_role_can_change(tmp_path):
    # Without hot standby the role is active for good: its idle loop need not wake 4 times a second.
    from tests.fakes.worker import FakeWorker
    from workers.bms_tx import BmsTransmitter
    worker = FakeWorker(tmp_path / "charge-state.json")
    wd = worker.cfg.watchdog
    assert BmsTransmitter(worker).beat_period_s == worker.beat_period_s > wd.heartbeat_interval_s
    worker.cfg = worker.cfg.replace(standby={"enabled": True})
    assert BmsTransmitter(worker).beat_period_s == wd.heartbeat_interval_s


def test_the_supervisor_imports_the_workers_code_before_it_forks_but_never_d_bus_or_glib():
    # Issue 19: an import inside a forked worker copies pages of the parent's import machinery
    # (about 2.4 MiB for can_rx); D-Bus and GLib must still be loaded after the fork only.
    probe = ("import sys, supervisor; from workers.runtime import preload, WORKERS; preload(WORKERS); "
             "print(sorted(m for m in ('workers.can_rx', 'workers.bms_tx', 'dbus', 'gi') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, stdout=subprocess.PIPE, universal_newlines=True,
                           check=True).stdout.strip()
    assert found == "['workers.bms_tx', 'workers.can_rx']"
