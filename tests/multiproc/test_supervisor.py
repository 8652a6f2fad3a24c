"""The running daemon on the host: workers killed and hung, the failsafe, restarts, stop, status.

Each test runs the real `supervisor.py run` on the embedded simulation (its own virtual bus
and private D-Bus) and judges it by the recorded bus and the status file.
"""
import json
import os
import signal
import threading
import time

import pytest

import config
from ipc.shared_state import segment_path
from supervisor import segment_name
from tests.multiproc.daemon import Daemon, children_of, gaps

PERIOD = 1.0


@pytest.fixture
def daemon(tmp_path):
    started = []

    def start(**overrides):
        instance = Daemon(tmp_path, **overrides).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


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
    for key in ("version", "pid", "uptime_s", "role", "workers", "battery", "inverter", "failsafe", "can", "frames"):
        assert key in status
    for worker in status["workers"].values():
        assert set(worker) >= {"pid", "alive", "restarts", "last_heartbeat_age_s", "rss_bytes", "cpu_percent"}
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
        d = daemon()
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
