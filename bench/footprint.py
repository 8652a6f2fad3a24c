"""Memory and idle CPU as on a GX, beside Victron's own dbus-systemcalc-py on the same bus.

    python -m bench.footprint [--window-s S] [--results DIR]      (bench/run.py runs it)

On a private dbus-daemon: Victron's localsettings and systemcalc (from ../shared/peers/victron,
as tests/multiproc/victron.py starts them), a SmartShunt-like battery monitor (tests/fakes/peer),
the daemon as a service runs it (battery.source = "dbus", the shipped status and watchdog
intervals, no simulator, no recorder) and an inverter sending 0x305 keep-alives every second.
Over the window: the CPU time per second and the wakeups (context switches) per second of
every process and thread, then which system calls each process makes (strace -c, after the
window so it costs the window nothing), then the PSS of each, beside one bare interpreter
holding the daemon's libraries. The figures go to DIR/footprint.json as one bench section.

Where it runs: on this machine, with the daemon on python-can's udp_multicast virtual bus.
The VM would put the daemon on vcan, but it has no KVM: every process there runs under
emulation, where localsettings and systemcalc alone take minutes to start and a 120 s window
of a few ms/s is within the emulator's own noise. The receive path on udp_multicast is a
select() with the same timeout as on SocketCAN, so the wakeups are the same.
Victron's services absent: their figures are reported as not measured, with the reason.
"""
import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import can

import config
from bench import proc
from bench.baseline_imports import holding_interpreter
from tests.multiproc.daemon import Daemon
from tests.multiproc.victron import absent, private_venus

FILE = "footprint.json"
SECTION = "footprint"
SHUNT = "com.victronenergy.battery.ttyS5"
# what a SmartShunt publishes at rest: 52.8 V, no current, 60 %
MONITOR = {"/Dc/0/Voltage": 52.8, "/Dc/0/Current": 0.0, "/Dc/0/Power": 0.0, "/Dc/0/Temperature": 22.0,
           "/Soc": 60.0, "/ConsumedAmphours": -112.0, "/TimeToGo": None,
           "/System/MinCellVoltage": 3.29, "/System/MaxCellVoltage": 3.31}
KEEPALIVE_ID = 0x305
SETTLE_S = 15.0          # after the first frames: start-up work (imports, first reads) is done
STRACE_S = 10.0
DEVICE_WORKERS = ("can_rx", "bms_tx", "dbus_publisher")
TARGETS = {"memory_systemcalc": 1.5, "memory_interpreter": 1.3, "cpu_systemcalc": 3.0}
MIB = float(1 << 20)
NOTE = ("The idle footprint (bench/footprint.py) is measured on this machine, not in the VM: under the VM's "
        "emulation Victron's services take minutes to start and a few ms/s of idle CPU is within the emulator's "
        "noise. The daemon runs there on python-can's udp_multicast virtual bus, whose receive wait is the same "
        "select() time-out as on SocketCAN; but there bms_tx sends each frame ID from a thread of its own (one "
        "wake per ID per second, about 0.2 ms/s each), where on SocketCAN the kernel's broadcast manager sends "
        "them: the per-thread table shows them apart.")


class Sample:
    """CPU seconds and context switches of every thread of some processes, at one moment."""

    def __init__(self, pids: Dict[str, int]):
        self.at = time.monotonic()
        self.threads = {}       # (process name, tid) -> (thread name, cpu s, voluntary, involuntary)
        for name, pid in pids.items():
            for tid in _tasks(pid):
                try:
                    self.threads[(name, tid)] = _thread_counters(pid, tid)
                except (FileNotFoundError, ProcessLookupError):
                    continue


def _tasks(pid: int) -> List[int]:
    try:
        return sorted(int(tid) for tid in os.listdir("/proc/%d/task" % pid))
    except FileNotFoundError:
        return []


def _thread_counters(pid: int, tid: int):
    folder = "/proc/%d/task/%d/" % (pid, tid)
    with open(folder + "comm") as handle:
        comm = handle.read().strip()
    with open(folder + "schedstat") as handle:
        cpu_s = int(handle.read().split()[0]) / 1e9
    switches = {}
    with open(folder + "status") as handle:
        for line in handle:
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                key, value = line.split(":")
                switches[key] = int(value)
    return comm, cpu_s, switches["voluntary_ctxt_switches"], switches["nonvoluntary_ctxt_switches"]


def rates(before: Sample, after: Sample) -> List[Dict]:
    """Per thread alive at both moments: CPU ms/s and wakeups/s (voluntary context switches:
    each is a sleep that ended; involuntary ones are preemptions)."""
    elapsed = after.at - before.at
    found = []
    for key, (comm, cpu_s, voluntary, involuntary) in sorted(after.threads.items()):
        if key not in before.threads:
            continue
        _, cpu_before, voluntary_before, involuntary_before = before.threads[key]
        found.append({"process": key[0], "tid": key[1], "thread": comm,
                      "cpu_ms_s": 1000.0 * (cpu_s - cpu_before) / elapsed,
                      "wakeups_s": (voluntary - voluntary_before) / elapsed,
                      "preempted_s": (involuntary - involuntary_before) / elapsed})
    return found


def per_process(threads: List[Dict]) -> Dict[str, Dict[str, float]]:
    totals = {}
    for thread in threads:
        total = totals.setdefault(thread["process"], {"cpu_ms_s": 0.0, "wakeups_s": 0.0})
        total["cpu_ms_s"] += thread["cpu_ms_s"]
        total["wakeups_s"] += thread["wakeups_s"]
    return totals


def syscall_profile(pids: Dict[str, int], seconds: float) -> Dict[str, List]:
    """``strace -c -f`` of each process at once for ``seconds``: (syscall, calls/s) by count."""
    tracers = {name: subprocess.Popen(["strace", "-c", "-f", "-qq", "-p", str(pid)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, universal_newlines=True)
               for name, pid in pids.items()}
    time.sleep(seconds)
    found = {}
    for name, tracer in tracers.items():
        tracer.send_signal(signal.SIGINT)
        try:
            _, summary = tracer.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            tracer.kill()
            _, summary = tracer.communicate()
        found[name] = _syscall_counts(summary, seconds)
    return found


def _syscall_counts(summary: str, seconds: float) -> List:
    """strace -c's table: ``% time seconds usecs/call calls [errors] syscall``."""
    counts = []
    for line in summary.splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]) and fields[-1] != "total":
            counts.append((fields[-1], round(int(fields[3]) / seconds, 1)))
    return sorted(counts, key=lambda item: -item[1])


@contextlib.contextmanager
def venus_bus(folder: str) -> Iterator[Dict]:
    """The private bus with Victron's services (when present) and the monitor; yields the pids
    by name and, under "not_measured", why Victron's are missing."""
    why_absent = absent()
    with private_venus(os.path.join(folder, "victron"), SHUNT, MONITOR, with_victron=not why_absent) as venus:
        pids = {"dbus-daemon": venus.bus.process.pid, "monitor (SmartShunt-like)": venus.peer.process.pid}
        if venus.services is not None:
            pids.update(localsettings=venus.services.localsettings.pid, systemcalc=venus.services.systemcalc.pid)
        yield {"pids": pids, "not_measured": why_absent}


@contextlib.contextmanager
def device_daemon(folder: str) -> Iterator[Daemon]:
    """The daemon as the service runs it on a GX, and an inverter sending keep-alives."""
    shipped = config.load()
    os.makedirs(os.path.join(folder, "daemon"))
    daemon = Daemon(os.path.join(folder, "daemon"), record=False, battery={"source": "dbus"},
                    simulation={"inverter": False}, status={"interval_s": shipped.status.interval_s},
                    venus={"energy_file": os.path.join(folder, "daemon", "energy.json"),
                           "dvcc_file": os.path.join(folder, "daemon", "dvcc-limits.json")},
                    state={"charge_file": os.path.join(folder, "daemon", "charge-state.json")})
    cfg = config.load(daemon.config_path)
    inverter = can.Bus(interface="udp_multicast", channel=cfg.can.channel, port=cfg.can.udp_port)
    keepalive = inverter.send_periodic(can.Message(arbitration_id=KEEPALIVE_ID, data=bytes(8), is_extended_id=False),
                                       1.0)
    try:
        daemon.start()
        daemon.wait_for(lambda s: s["frames"] and (s.get("battery") or {}).get("service") == SHUNT
                        and s["workers"]["bms_tx"]["alive"], 120.0, "frames from the monitor's values")
        yield daemon
    finally:
        keepalive.stop()
        inverter.shutdown()
        daemon.stop()


def daemon_processes(daemon: Daemon) -> Dict[str, int]:
    pids = {"supervisor": daemon.process.pid}
    pids.update((name, worker["pid"]) for name, worker in daemon.status()["workers"].items() if worker["alive"])
    return pids


def measure(window_s: float, folder: str) -> Dict:
    """The bench section: rows (figure beside baseline), tables, and the targets' verdicts."""
    os.makedirs(folder, exist_ok=True)
    with venus_bus(folder) as venus, device_daemon(folder) as daemon, holding_interpreter() as interpreter:
        time.sleep(SETTLE_S)
        ours = daemon_processes(daemon)
        others = dict(venus["pids"], **{"baseline interpreter": interpreter})
        pids = dict(ours, **others)
        restarts_before = {name: w["restarts"] for name, w in daemon.status()["workers"].items()}
        before = Sample(pids)
        time.sleep(window_s)
        after = Sample(pids)
        restarts = sum(w["restarts"] - restarts_before[name] for name, w in daemon.status()["workers"].items())
        if daemon_processes(daemon) != ours:
            raise AssertionError("a worker was restarted during the window (%d restarts): the figures would "
                                 "mix two processes" % restarts)
        memory = {name: proc.memory(pid) for name, pid in pids.items()}
        syscalls = syscall_profile(pids, STRACE_S)
    threads = rates(before, after)
    return section(window_s, ours, others, threads, memory, syscalls, venus["not_measured"])


def section(window_s: float, ours: Dict[str, int], others: Dict[str, int], threads: List[Dict],
            memory: Dict[str, proc.Memory], syscalls: Dict[str, List], not_measured: str) -> Dict:
    totals = per_process(threads)
    device = [name for name in ours if name not in ("web",)]
    rows = []

    def cpu(names) -> float:
        return sum(totals[name]["cpu_ms_s"] for name in names)

    def pss(names) -> float:
        return sum(memory[name].pss_bytes for name in names) / MIB

    def add(figure: str, value: float, baseline: Optional[float], unit: str, baseline_is: str,
            target: Optional[float] = None, lower_is_met: bool = True) -> None:
        verdict = ""
        if target is not None:
            met = baseline is not None and (value <= target * baseline if lower_is_met else value > baseline)
            verdict = " (target: ratio <= %g: %s)" % (target, "**met**" if met else "**not met**") \
                if baseline is not None else " (target: ratio <= %g: not measured)" % target
        rows.append({"figure": figure + verdict, "value": value, "baseline": baseline, "unit": unit,
                     "baseline_is": baseline_is if baseline is not None else "not measured: " + not_measured})

    systemcalc = "systemcalc" in totals
    tree = "the device tree (%s)" % ", ".join(device)
    add("Idle CPU, %g s, battery steady, inverter present: %s" % (window_s, tree), cpu(device),
        cpu(["systemcalc"]) if systemcalc else None, "ms/s", "Victron's dbus_systemcalc.py, same bus, same time",
        TARGETS["cpu_systemcalc"])
    busiest = max((name for name in ours if name != "supervisor"), key=lambda name: totals[name]["cpu_ms_s"])
    add("Idle CPU: the supervisor against the busiest worker (%s); target: the supervisor is not the busiest"
        % busiest, totals["supervisor"]["cpu_ms_s"], totals[busiest]["cpu_ms_s"], "ms/s",
        "the busiest worker, same time")
    rows[-1]["figure"] += " (%s)" % ("**met**" if totals["supervisor"]["cpu_ms_s"] < totals[busiest]["cpu_ms_s"]
                                     else "**not met**")
    add("Idle wakeups per second: %s" % tree, sum(totals[name]["wakeups_s"] for name in device),
        totals["systemcalc"]["wakeups_s"] if systemcalc else None, "/s", "Victron's dbus_systemcalc.py")
    add("Memory (PSS) at idle: %s" % tree, pss(device), pss(["systemcalc"]) if systemcalc else None, "MiB",
        "Victron's dbus_systemcalc.py, same bus, same time", TARGETS["memory_systemcalc"])
    add("Memory (PSS) at idle: %s" % tree, pss(device), pss(["baseline interpreter"]), "MiB",
        "one python that imported the same libraries", TARGETS["memory_interpreter"])
    if "web" in ours:
        add("Memory (PSS) at idle: the web console worker, counted apart", pss(["web"]),
            pss(["systemcalc"]) if systemcalc else None, "MiB", "Victron's dbus_systemcalc.py")
        add("Idle CPU: the web console worker, counted apart", cpu(["web"]),
            cpu(["systemcalc"]) if systemcalc else None, "ms/s", "Victron's dbus_systemcalc.py")
    names = list(ours) + list(others)
    tables = [
        {"title": "Idle, per process, %g s: CPU, wakeups (voluntary context switches), memory" % window_s,
         "columns": ["process", "CPU (ms/s)", "wakeups/s", "PSS (MiB)", "USS (MiB)", "RSS (MiB)"],
         "rows": [[name, round(totals[name]["cpu_ms_s"], 3), round(totals[name]["wakeups_s"], 2),
                   round(memory[name].pss_bytes / MIB, 2), round(memory[name].uss_bytes / MIB, 2),
                   round(memory[name].rss_bytes / MIB, 2)] for name in names if name in totals]},
        {"title": "Where the idle time goes, per thread (a thread that wakes N times a second has a timer or "
                  "a time-out of 1/N s)",
         "columns": ["process", "thread", "CPU (ms/s)", "wakeups/s", "preempted/s"],
         "rows": [[t["process"], t["thread"], round(t["cpu_ms_s"], 3), round(t["wakeups_s"], 2),
                   round(t["preempted_s"], 2)] for t in threads if t["process"] in ours or t["cpu_ms_s"] > 0.05
                  or t["wakeups_s"] > 0.5]},
        {"title": "System calls per second of each process, strace -c -f over %g s after the window (the "
                  "sleeping ones are the timers: select/poll/epoll_wait/futex/clock_nanosleep)" % STRACE_S,
         "columns": ["process", "system calls per second, most frequent first"],
         "rows": [[name, ", ".join("%s %g" % (call, rate) for call, rate in syscalls.get(name, [])[:8])
                   or "strace gave nothing"] for name in names if name in syscalls]},
    ]
    return {"rows": rows, "tables": tables}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--window-s", type=float, default=120.0, help="seconds measured at idle (default 120)")
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"),
                        help="folder for footprint.json (default bench/results)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.window_s < 120.0:
        parser.error("--window-s must be at least 120 (issue 19 measures idle CPU over >= 120 s), got %g"
                     % args.window_s)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pylon-venus-footprint-") as folder:
        try:
            data = measure(args.window_s, folder)
        except Exception as error:
            data = {"rows": [], "tables": [], "error": "%s: %s" % (type(error).__name__, error)}
    (results / FILE).write_text(json.dumps({SECTION: data}, indent=1))
    print(json.dumps(data, indent=1))
    return 1 if "error" in data else 0


if __name__ == "__main__":
    sys.exit(main())
