"""The benchmarks, measured inside the system tests' VM on real SocketCAN, on either tier.

Not part of the test suite: bench/run.py boots the VM with this file as pytest's argument
(pytest is what the VM runs), once per tier: ``vcan`` (vcan0, vcan1) and ``sja1000`` (four
emulated SJA1000 controllers on one emulated bus, see ``channels``). Each test measures figures
users care about, each beside a baseline measured in the same run on the same machine, and
saves them to bench.json in the results folder; bench/run.py renders both tiers side by side
in bench/RESULTS.md. A benchmark that fails records its error there and the others still run.
candump's kernel timestamps are the bus clock.
"""
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Tuple

import pytest

import config
from bench import proc, stats
from bench.baseline_imports import holding_interpreter
from bench.settings import RESULTS_FILE, SETTINGS, option
from protocol import DecodeError, profiles
from tests.multiproc.daemon import Daemon, children_of
from tests.system import can_utils
# The system tests' fixtures: the vcan interfaces, the results folder, candump recorders.
# Importing their conftest also stops the run when it is not inside the VM.
from tests.system.conftest import (artifacts_dir, candump, judge_channel, results_dir, tier,  # noqa: F401
                                   vcan_channels)

BASELINE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "baseline_imports.py")
START_TIMEOUT_S = 180.0      # first frames after `run`; imports are slow under emulation
RESTART_TIMEOUT_S = 60.0
FOREIGN_ID = "123"           # the flood's CAN ID: no profile listens to it
BASELINE_ID = "350"          # the cadence baseline's CAN ID: beside the Pylon set, in no profile
SIMULATION_PROCESSES = ("simulator", "dbus-daemon")  # there only because the battery is simulated
MIB = float(1 << 20)


def service_daemon(folder, channel: str, **overrides) -> Daemon:
    """The multi-process tests' daemon on SocketCAN, configured the way the service runs it.

    Without ``--record`` (its recorder would read every frame of a flood in Python) and with
    the shipped status interval and watchdog; the battery is the simulation's, no inverter.
    """
    sections = {"can": {"interface": "socketcan", "channel": channel}, "simulation": {"inverter": False},
                "status": {"interval_s": config.load().status.interval_s}}
    for section, keys in overrides.items():
        sections.setdefault(section, {}).update(keys)
    return Daemon(folder, record=False, **sections)


class Results:
    """bench.json: the guest machine, the settings, one section per benchmark, and notes."""

    def __init__(self, folder, settings: Dict):
        self.folder = folder
        self.data = {"machine": guest_machine(), "settings": settings, "sections": {}, "notes": []}

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[Dict]:
        """Rows and tables of one benchmark; its error is recorded when it fails."""
        entry = {"rows": [], "tables": []}
        self.data["sections"][name] = entry
        try:
            yield entry
        except Exception as error:
            entry["error"] = "%s: %s" % (type(error).__name__, error)
            raise
        finally:
            self.save()

    def note(self, text: str) -> None:
        self.data["notes"].append(text)
        self.save()

    def stop_keeping_log(self, daemon: Daemon, name: str) -> None:
        """Stop a daemon with SIGTERM as a service manager would; keep its log beside bench.json."""
        try:
            daemon.stop()
        except AssertionError as error:         # it was killed after the timeout: worth knowing
            self.note("daemon %s: %s" % (name, error))
        finally:
            logs = self.folder / "daemon-logs"
            logs.mkdir(exist_ok=True)
            (logs / (name + ".log")).write_text(daemon.log())

    def save(self) -> None:
        (self.folder / RESULTS_FILE).write_text(json.dumps(self.data, indent=1))


def row(section: Dict, figure: str, value: float, baseline: float, unit: str, baseline_is: str) -> None:
    section["rows"].append({"figure": figure, "value": value, "baseline": baseline, "unit": unit,
                            "baseline_is": baseline_is})


def table(section: Dict, title: str, columns: List[str], rows: List[List]) -> None:
    section["tables"].append({"title": title, "columns": columns, "rows": rows})


def guest_machine() -> Dict:
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": proc.cpu_model(),
            "memory_mib": proc.memory_total_mib(), "python": platform.python_version()}


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def settings(request) -> Dict:
    return {s.name: request.config.getoption(option(s.name)) for s in SETTINGS}


@pytest.fixture(scope="module")
def results(results_dir, settings) -> Results:
    return Results(results_dir, settings)


@pytest.fixture(scope="module")
def profile():
    return profiles.get(config.load().inverter.profile)


@pytest.fixture(scope="module")
def channels(tier, vcan_channels) -> Dict[str, str]:
    """Where each part is. ``device``: the daemon (and a standby pair's first device); ``peer``:
    the pair's second device; ``baseline``: cangen, the cadence baseline; ``flood``: cangen's
    foreign IDs; ``reader``: candump, the flood's CPU baseline, where the daemon receives;
    ``judge`` and ``judge_baseline``: where candump records our frames and the baseline's.
    On vcan the daemon's vcan0 is the bus and the baseline has vcan1 of its own; on the emulated
    bus every part has a controller: the daemon can0, the others can1, the judge can2."""
    if tier == "vcan":
        bus, spare = vcan_channels[:2]
        return {"device": bus, "peer": bus, "baseline": spare, "flood": bus, "reader": bus, "judge": bus,
                "judge_baseline": spare}
    device, other, judge = vcan_channels[:3]
    return {"device": device, "peer": other, "baseline": other, "flood": other, "reader": device, "judge": judge,
            "judge_baseline": judge}


def vcan_only(tier: str, results: "Results", what: str) -> None:
    """Skip a benchmark that the controllers do not change (measured on the vcan tier)."""
    if tier != "vcan":
        results.note("%s: measured on the vcan tier only (the CAN controller does not change it)" % what)
        pytest.skip("%s is measured on the vcan tier" % what)


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory, channels, results):
    """One daemon for the benchmarks that watch it run, started by the first that asks for it
    (so that a failed start is that benchmark's recorded error). Each gets it with every
    worker running and the frames on the bus."""
    started = []  # type: List[Daemon]

    def get() -> Daemon:
        if not started:
            started.append(service_daemon(tmp_path_factory.mktemp("daemon"), channels["device"]).start())
        daemon = started[0]
        daemon.wait_sending(START_TIMEOUT_S)
        daemon.wait_for(lambda s: all(worker["alive"] for worker in s["workers"].values()), START_TIMEOUT_S,
                        "every worker running")
        return daemon

    yield get
    for daemon in started:
        results.stop_keeping_log(daemon, "shared")


# ------------------------------------------------------------------------------ helpers

def valid(profile, frame) -> bool:
    try:
        return profile.decode(frame).name != "unknown"
    except DecodeError:
        return False


def baseline_import_s() -> float:
    """Interpreter start plus the imports of the daemon's libraries, until the process ends."""
    started = time.monotonic()
    subprocess.run([sys.executable, BASELINE_SCRIPT], check=True)
    return time.monotonic() - started


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """``count`` processes that spin on a CPU each."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def restarts(daemon) -> int:
    return sum(worker["restarts"] for worker in daemon.status()["workers"].values())


def process_names(daemon) -> Dict[int, str]:
    """The live processes of the daemon's tree by pid: supervisor, the workers' names, commands."""
    names = {worker["pid"]: name for name, worker in daemon.status()["workers"].items()}
    names[daemon.process.pid] = "supervisor"
    found = {}
    for pid in proc.tree(daemon.process.pid):
        try:
            found[pid] = names.get(pid) or proc.command_name(pid)
        except FileNotFoundError:
            continue        # it ended since the tree was read
    return found


def frames_sent(channel: str) -> int:
    with open("/sys/class/net/%s/statistics/tx_packets" % channel) as handle:
        return int(handle.read())


def ms(seconds: float) -> float:
    return seconds * 1000.0


# ------------------------------------------------------------------------------ benchmarks
# In this order: the start-ups and the two instances first, each alone on the machine; then
# the shared daemon's benchmarks, the bms_tx failovers last (they restart a worker).

def test_start_up(results, settings, profile, candump, tmp_path, channels, tier):
    """From `run` to the first complete, valid frame set on the bus, against `python -c import ...`."""
    vcan_only(tier, results, "start-up")
    with results.section("startup") as section:
        daemon_s, baseline_s = [], []
        for run in range(1, settings["startup_runs"] + 1):
            # The daemon first: the first run fills the page cache with the libraries at its cost.
            folder = tmp_path / ("start-up-%d" % run)
            folder.mkdir()
            daemon_s.append(start_up_s(service_daemon(folder, channels["device"]), candump, profile, results))
            baseline_s.append(baseline_import_s())
        row(section, "Start-up: `run` to the first valid frame set on the bus (median of %d)"
            % len(daemon_s), statistics.median(daemon_s), statistics.median(baseline_s), "s",
            "python start + import of the same libraries (median of %d)" % len(baseline_s))
        table(section, "Start-up, each run", ["run", "daemon (s)", "baseline (s)"],
              [[i + 1, round(d, 3), round(b, 3)] for i, (d, b) in enumerate(zip(daemon_s, baseline_s))])


def start_up_s(daemon: Daemon, candump, profile, results: Results) -> float:
    recorder = candump()
    started = time.time()
    daemon.start()
    try:
        daemon.wait_sending(START_TIMEOUT_S)
        time.sleep(profile.cycle_s + 0.5)       # the set's IDs are spread over one cycle
        captured = recorder.stop()
    finally:
        results.stop_keeping_log(daemon, os.path.basename(daemon.folder))
    complete = stats.first_complete_set(
        ((c.timestamp, c.frame.arbitration_id, valid(profile, c.frame)) for c in captured), profile.frame_ids)
    if complete is None:
        raise AssertionError("no complete valid frame set (%s) reached the bus; seen: %s" % (
            " ".join("%X" % i for i in profile.frame_ids), sorted({"%X" % c.frame.arbitration_id for c in captured})))
    return complete - started


def test_failover_of_the_active_instance(results, settings, profile, candump, channels, tmp_path):
    """Two instances in hot standby on one bus, kill -9 of the active one's supervisor (its workers
    die with it): the longest gap of any ID until the standby took over, against the gaps before."""
    with results.section("failover two instances") as section:
        window = settings["failover_window_s"]
        instances = []  # type: List[Daemon]
        try:
            for node in (1, 2):     # one after the other, as devices are installed
                folder = tmp_path / ("standby-node-%d" % node)
                folder.mkdir()
                instances.append(service_daemon(folder, channels["device" if node == 1 else "peer"],
                                                standby={"enabled": True, "node_id": node}).start())
                if node == 1:
                    instances[0].wait_for(lambda s: s["role"] == "active" and s["frames"], START_TIMEOUT_S,
                                          "the first instance active and sending")
            active, standby = active_and_standby(instances)
            recorder = candump(channels["judge"])
            time.sleep(window)
            fault = time.time()
            active.process.kill()
            active.process.wait()
            standby.wait_for(lambda s: s["role"] == "active", RESTART_TIMEOUT_S, "the standby took over")
            standby.wait_sending(RESTART_TIMEOUT_S)
            recovered_s = time.time() - fault
            time.sleep(window)
            add_failover(section, "two instances in hot standby, kill -9 of the active one",
                         longest_gaps(recorder.stop(), fault, profile), window,
                         "the standby reported active and sending after %.1f s (standby.takeover_s = %g)"
                         % (recovered_s, config.load().standby.takeover_s))
        finally:
            for node, instance in enumerate(instances, 1):
                results.stop_keeping_log(instance, "standby-node-%d" % node)


def active_and_standby(instances: List[Daemon]):
    """Once one instance sends and the other stands by, ready, hearing it: (active, standby)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        statuses = [instance.status() or {} for instance in instances]      # {}: no status file yet
        roles = [status.get("role") for status in statuses]
        if sorted(roles, key=str) == ["active", "standby"]:
            active, standby = (0, 1) if roles[0] == "active" else (1, 0)
            peer = statuses[standby]["standby"].get("peer") or {}
            if (statuses[active]["frames"] and statuses[standby]["workers"]["bms_tx"]["alive"]
                    and peer.get("role") == "active"):
                return instances[active], instances[standby]
        time.sleep(0.2)
    last = [instance.status() or {} for instance in instances]
    raise AssertionError("no active + standby pair within %g s: roles %s, standby states %s" % (
        START_TIMEOUT_S, [status.get("role") for status in last], [status.get("standby") for status in last]))


def test_cadence(results, settings, profile, shared_daemon, candump, channels, tier):
    """Intervals between frames of each ID, idle and with every core busy, against cangen."""
    with results.section("cadence") as section:
        daemon = shared_daemon()
        for duration, loops in ((settings["idle_s"], 0), (settings["loaded_s"], os.cpu_count())):
            restarts_before = restarts(daemon)
            ours = candump(channels["judge"])
            theirs = ours if channels["judge_baseline"] == channels["judge"] else candump(channels["judge_baseline"])
            generator = can_utils.cangen(channels["baseline"], [
                "-g", "%g" % ms(profile.cycle_s), "-I", BASELINE_ID, "-L", "8", "-D", "i",
                "-n", str(int(duration / profile.cycle_s) + 10)])
            with busy_loops(loops):
                start = time.time()
                time.sleep(duration)
                end = time.time()
            generator.terminate()
            generator.wait(10)
            our_frames = ours.stop()
            their_frames = our_frames if theirs is ours else theirs.stop()
            our_stamps = stats.stamps_by_id(((c.timestamp, c.frame.arbitration_id) for c in our_frames), start, end)
            their_stamps = stats.stamps_by_id(((c.timestamp, c.frame.arbitration_id) for c in their_frames), start, end)
            condition = "%s, %g s" % ("every core busy, %d busy loops" % loops if loops else "idle machine", duration)
            add_cadence(section, condition, profile, our_stamps, their_stamps.get(int(BASELINE_ID, 16), []),
                        restarts(daemon) - restarts_before,
                        "other vcan" if tier == "vcan" else "another controller on the same bus")


def add_cadence(section, condition: str, profile, our_stamps, baseline_stamps, restarted: int, where: str) -> None:
    missing = [frame_id for frame_id in profile.frame_ids if len(our_stamps.get(frame_id, ())) < 3]
    if missing:
        raise AssertionError("cadence (%s): IDs %s hardly reached the bus"
                             % (condition, " ".join("%X" % i for i in missing)))
    period = profile.cycle_s
    per_id = {frame_id: stats.cadence(stats.intervals(our_stamps[frame_id]), period) for frame_id in profile.frame_ids}
    ours = stats.cadence([gap for frame_id in profile.frame_ids for gap in stats.intervals(our_stamps[frame_id])],
                         period)
    theirs = stats.cadence(stats.intervals(baseline_stamps), period)
    baseline_is = "cangen -g %g (ID %s), same time, %s" % (ms(period), BASELINE_ID, where)
    for figure, field in (("median interval", "median_s"), ("99th percentile interval", "p99_s"),
                          ("largest deviation from the %g s period" % period, "max_deviation_s")):
        row(section, "Cadence (%s): %s, all IDs" % (condition, figure), ms(getattr(ours, field)),
            ms(getattr(theirs, field)), "ms", baseline_is)
    table(section, "Cadence (%s), per ID; worker restarts during it: %d" % (condition, restarted),
          ["ID", "intervals", "median (ms)", "p99 (ms)", "largest deviation (ms)"],
          [["%X" % frame_id] + cadence_cells(per_id[frame_id]) for frame_id in profile.frame_ids]
          + [["cangen (baseline)"] + cadence_cells(theirs)])


def cadence_cells(figures: stats.Cadence) -> List:
    return [figures.intervals, round(ms(figures.median_s), 3), round(ms(figures.p99_s), 3),
            round(ms(figures.max_deviation_s), 3)]


def test_memory(results, shared_daemon, tier):
    """PSS of the daemon's process tree against one bare interpreter holding the same libraries."""
    vcan_only(tier, results, "memory")
    with results.section("memory") as section:
        daemon = shared_daemon()
        with holding_interpreter() as baseline_pid:      # both measured at the same moment
            names, tree = tree_memory(daemon)
            baseline = proc.memory(baseline_pid)
        service = [pid for pid, name in names.items() if name not in SIMULATION_PROCESSES]
        baseline_is = "one python that imported the same libraries"
        row(section, "Memory (PSS): the whole process tree, %d processes" % len(tree),
            sum(m.pss_bytes for m in tree.values()) / MIB, baseline.pss_bytes / MIB, "MiB", baseline_is)
        row(section, "Memory (PSS): as on a device, without the simulator and its D-Bus (%s)"
            % ", ".join(names[pid] for pid in service),
            sum(tree[pid].pss_bytes for pid in service) / MIB, baseline.pss_bytes / MIB, "MiB", baseline_is)
        table(section, "Memory per process", ["process", "PSS (MiB)", "USS (MiB)", "RSS (MiB)"],
              [[names[pid]] + memory_cells(tree[pid]) for pid in names]
              + [["baseline interpreter"] + memory_cells(baseline)])


def tree_memory(daemon: Daemon, attempts: int = 5) -> Tuple[Dict[int, str], Dict[int, proc.Memory]]:
    """Every process of the tree with its memory, read again while a worker is being restarted."""
    for _ in range(attempts):
        names = process_names(daemon)
        try:
            return names, {pid: proc.memory(pid) for pid in names}
        except (FileNotFoundError, ProcessLookupError):
            time.sleep(1.0)
    raise AssertionError("the daemon's processes kept changing over %d attempts (workers restarting)" % attempts)


def memory_cells(memory: proc.Memory) -> List[float]:
    return [round(memory.pss_bytes / MIB, 2), round(memory.uss_bytes / MIB, 2), round(memory.rss_bytes / MIB, 2)]


def test_cpu_at_full_bus_load(results, settings, shared_daemon, candump, channels):
    """CPU time of the daemon's tree while cangen floods the bus with foreign IDs, against candump."""
    with results.section("cpu") as section:
        daemon = shared_daemon()
        root, window = daemon.process.pid, settings["cpu_s"]
        restarts_before = restarts(daemon)
        before, started = proc.TreeCpu.read(root), time.monotonic()
        time.sleep(window)
        idle = proc.cpu_per_second(before, proc.TreeCpu.read(root), time.monotonic() - started)
        restarts_idle = restarts(daemon) - restarts_before
        flood_options = flood(channels["flood"], settings["flood_rate"])
        recorder = candump(channels["reader"])
        readers = [pid for pid in children_of(os.getpid()) if proc.command_name(pid) == "candump"]
        assert len(readers) == 1, "expected one candump, found %s" % readers
        generator = can_utils.cangen(channels["flood"], flood_options + [
            "-n", str(int(settings["flood_rate"] * (window + 30)))])
        try:
            time.sleep(2.0)
            restarts_before = restarts(daemon)
            sent_before, reader_before = frames_sent(channels["flood"]), proc.cpu_seconds(readers[0])
            before, started = proc.TreeCpu.read(root), time.monotonic()
            time.sleep(window)
            after, elapsed = proc.TreeCpu.read(root), time.monotonic() - started
            reader = (proc.cpu_seconds(readers[0]) - reader_before) / elapsed
            rate = (frames_sent(channels["flood"]) - sent_before) / elapsed
            restarts_flooded = restarts(daemon) - restarts_before
        finally:
            generator.terminate()
            generator.wait(10)
        recorder.stop()
        flooded = proc.cpu_per_second(before, after, elapsed)
        names = dict(process_names(daemon), reaped="workers that ended (their time, reaped by the supervisor)")
        ours_idle, ours_flooded = ms(sum(idle.values())), ms(sum(flooded.values()))
        row(section, "CPU time per second, bus flooded with foreign IDs: the daemon's tree", ours_flooded, ms(reader),
            "ms/s", "candump reading the same bus (%.0f frames/s; it dropped %d frames)" % (rate, recorder.dropped))
        row(section, "CPU time per second of the daemon's tree: flooded bus against idle bus",
            ours_flooded, ours_idle, "ms/s", "the same daemon, idle bus, the %g s before" % window)
        table(section, "CPU time per second (ms/s) per process, %g s each; worker restarts: %d idle, %d flooded; "
              "flood: cangen %s" % (window, restarts_idle, restarts_flooded, " ".join(flood_options)),
              ["process", "idle bus", "flooded bus"],
              [[names.get(pid, "pid %s, ended" % pid), round(ms(idle.get(pid, 0.0)), 2),
                round(ms(flooded.get(pid, 0.0)), 2)] for pid in list(names) + sorted(set(idle) - set(names), key=str)]
              + [["candump (baseline)", "", round(ms(reader), 2)]])


def flood(channel: str, rate: float) -> List[str]:
    """cangen options for about ``rate`` frames/s: a burst every 10 ms, its size found by two
    trials on the bus (a 10 ms sleep lasts longer under emulation, and writes take time too)."""
    def options(burst: int) -> List[str]:
        return ["-g", "10", "-c", str(burst), "-I", FOREIGN_ID, "-L", "8", "-D", "i"]

    burst = 10
    for _ in range(2):
        trial = can_utils.cangen(channel, options(burst) + ["-n", str(int(rate * 10))])
        try:
            time.sleep(0.5)
            sent_before, started = frames_sent(channel), time.monotonic()
            time.sleep(1.0)
            measured = (frames_sent(channel) - sent_before) / (time.monotonic() - started)
        finally:
            trial.terminate()
            trial.wait(10)
        burst = max(1, round(burst * rate / measured))
    return options(burst)


@pytest.mark.parametrize("how, sig", [("kill -9", signal.SIGKILL), ("SIGSTOP", signal.SIGSTOP)])
def test_failover_of_bms_tx(results, settings, profile, shared_daemon, candump, channels, how, sig):
    """The longest gap of any ID through a kill or a hang of bms_tx, against the gaps just before."""
    with results.section("failover %s" % how) as section:
        daemon = shared_daemon()
        window = settings["failover_window_s"]
        recorder = candump(channels["judge"])
        time.sleep(window)
        victim = daemon.status()["workers"]["bms_tx"]
        fault = time.time()
        os.kill(victim["pid"], sig)
        daemon.wait_for(lambda s: s["workers"]["bms_tx"]["restarts"] > victim["restarts"], RESTART_TIMEOUT_S,
                        "bms_tx restarted")
        daemon.wait_sending(RESTART_TIMEOUT_S)
        recovered_s = time.time() - fault
        time.sleep(window)
        add_failover(section, "%s of bms_tx" % how, longest_gaps(recorder.stop(), fault, profile), window,
                     "bms_tx sending again after %.1f s; bms_tx restarts so far: %d"
                     % (recovered_s, daemon.status()["workers"]["bms_tx"]["restarts"]))


def longest_gaps(captured, fault: float, profile) -> Dict[int, Tuple[float, float]]:
    """Per ID of the set: the longest gap before the fault, and the longest through and after it."""
    stamps = stats.stamps_by_id((c.timestamp, c.frame.arbitration_id) for c in captured)
    gaps = {}
    for frame_id in profile.frame_ids:
        before, after = stats.gaps_around(stamps.get(frame_id, []), fault)
        if not before or not after:
            raise AssertionError("ID %X was not on the bus on both sides of the fault" % frame_id)
        gaps[frame_id] = (max(before), max(after))
    return gaps


def add_failover(section, what: str, gaps: Dict[int, Tuple[float, float]], window: float, recovery: str) -> None:
    row(section, "Failover, %s: longest gap of any ID" % what, ms(max(after for _, after in gaps.values())),
        ms(max(before for before, _ in gaps.values())), "ms",
        "longest gap of any ID in the %g s before, same bus" % window)
    table(section, "Failover, %s: longest gap per ID; %s" % (what, recovery),
          ["ID", "before (ms)", "through the fault (ms)"],
          [["%X" % frame_id, round(ms(before), 1), round(ms(after), 1)] for frame_id, (before, after) in gaps.items()])
