"""CPU and memory as the load grows, measured inside the system tests' VM on real SocketCAN.

bench/run.py runs this in the same VM as bench/vm_bench.py and adds its section to the same
bench.json. Two loads, each in steps, each step beside a baseline measured at the same time:

- foreign bus load: the daemon (the shipped LV profile) on vcan0 while cangen sends foreign
  frames at 0, 1000, 2000 and 3500 frames/s; baseline: candump reading the same bus;
- HV polling: the daemon with the pylon_hv profile answering 0x4200 ensemble polls at 1, 5, 10
  and 20 polls/s from this process; baseline: bench/hv_latency.py's minimal python-can
  responder, polled at the same moments on vcan1.

Per step: the CPU time per second of each process of the daemon's tree and of the baseline,
and the PSS of the tree. The pure parts (rows, table, plot) are checked in bench/test_bench.py;
bench/run.py draws the plot on the host from bench.json.
"""
import os
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import can

from bench import proc
from bench.hv_latency import PROFILE as HV_PROFILE, BaselineResponder, results  # noqa: F401
from bench.vm_bench import (MIB, SIMULATION_PROCESSES, START_TIMEOUT_S, flood, frames_sent, ms,  # noqa: F401
                            process_names, row, service_daemon, settings, table, tree_memory)
from protocol.pylon_hv import ENSEMBLE_REQUEST, REQUEST_ID
from tests.multiproc.daemon import Daemon, children_of
from tests.system import can_utils
from tests.system.conftest import artifacts_dir, candump, judge_channel, results_dir, tier, vcan_channels  # noqa: F401
from tests.unit.test_protocol_hv_config import HV_PACK

SECTIONS = {"bus": "scaling bus load", "hv": "scaling hv polls"}    # bench.json sections, by load
BUS_LOADS = (0, 1000, 2000, 3500)       # foreign frames/s; 3500 is near what 500 kbit/s carries
POLL_RATES = (1, 5, 10, 20)             # HV ensemble polls/s; inverters poll about once a second
SETTLE_S = 2.0                          # after a load starts, before its window
PLOT_FILE = "scaling.png"     # beside RESULTS.md, prefixed with the tier
STEPS = len(BUS_LOADS) + len(POLL_RATES)
STEP_OVERHEAD_S = 15.0        # a step's settling and calibration; each test also starts a daemon


class Step:
    """One load step: the load asked for and measured, the CPU (s/s) of each process of the
    daemon's tree and of the baseline, the tree's PSS (bytes)."""

    def __init__(self, load: float, measured: float, cpu: Dict[str, float], baseline_cpu: float, pss: int):
        self.load, self.measured, self.cpu, self.baseline_cpu, self.pss = load, measured, cpu, baseline_cpu, pss

    def as_dict(self) -> Dict:
        return {"load": self.load, "measured": self.measured, "cpu": self.cpu, "baseline_cpu": self.baseline_cpu,
                "pss": self.pss}


def device_cpu(step: Dict) -> float:
    """The CPU of the tree as on a device: without the simulated battery's processes."""
    return sum(rate for name, rate in step["cpu"].items() if name not in SIMULATION_PROCESSES)


def step_table(steps: Sequence[Dict], load_name: str, baseline_name: str) -> Dict:
    """Columns and rows: one row per step, each process, the tree's total with and without the
    simulation's processes, the baseline, the tree's PSS."""
    names = []  # type: List[str]
    for step in steps:
        names.extend(name for name in step["cpu"] if name not in names)
    columns = ([load_name + " asked", "measured"] + ["%s (ms/s)" % name for name in names]
               + ["tree (ms/s)", "as on a device (ms/s)", "%s (ms/s)" % baseline_name, "tree PSS (MiB)"])
    rows = [[step["load"], round(step["measured"], 1)] + [round(ms(step["cpu"].get(name, 0.0)), 2) for name in names]
            + [round(ms(sum(step["cpu"].values())), 2), round(ms(device_cpu(step)), 2),
               round(ms(step["baseline_cpu"]), 2),
               round(step["pss"] / MIB, 1)] for step in steps]
    return {"columns": columns, "rows": rows}


def add_steps(section: Dict, what: str, load_unit: str, steps: Sequence[Dict], baseline_name: str,
              baseline_is: str) -> None:
    """The summary rows (the highest step's CPU as on a device against its baseline; its PSS
    against the lowest step's) and the table; the steps are kept for the plot."""
    low, high = steps[0], steps[-1]
    row(section, "CPU time per second of the daemon's tree as on a device (%s), %s, %.0f %s" % (
        ", ".join(name for name in high["cpu"] if name not in SIMULATION_PROCESSES + ("reaped",)), what,
        high["measured"], load_unit), ms(device_cpu(high)), ms(high["baseline_cpu"]), "ms/s", baseline_is)
    row(section, "Memory (PSS) of the daemon's tree, %s, %.0f %s against %.0f %s" % (
        what, high["measured"], load_unit, low["measured"], load_unit),
        high["pss"] / MIB, low["pss"] / MIB, "MiB", "the same daemon at the lowest step")
    columns_rows = step_table(steps, load_unit, baseline_name)
    table(section, "Scaling, %s: CPU time per second per process and PSS per step" % what,
          columns_rows["columns"], columns_rows["rows"])
    section["steps"] = {"what": what, "unit": load_unit, "steps": list(steps)}


def draw_plot(sections: Dict, path: Path) -> Optional[str]:
    """The daemon's and the baseline's CPU, and the daemon's PSS, against each load, as a PNG;
    a note for the report, or None when there is nothing to plot (matplotlib is a development
    extra, imported only here)."""
    scaling = [sections[name]["steps"] for name in SECTIONS.values() if "steps" in (sections.get(name) or {})]
    if not scaling:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        return "The scaling plot was not drawn: matplotlib (requirements-dev.txt) is not installed."
    figure, axes = pyplot.subplots(2, len(scaling), figsize=(6 * len(scaling), 7), squeeze=False)
    for column, load in enumerate(scaling):
        x = [step["measured"] for step in load["steps"]]
        cpu, pss = axes[0][column], axes[1][column]
        cpu.plot(x, [ms(sum(step["cpu"].values())) for step in load["steps"]], "o-", label="daemon's tree")
        cpu.plot(x, [ms(device_cpu(step)) for step in load["steps"]], "^-", label="as on a device")
        cpu.plot(x, [ms(step["baseline_cpu"]) for step in load["steps"]], "s--", label="baseline")
        cpu.set_title(load["what"])
        cpu.set_ylabel("CPU time (ms/s)")
        cpu.legend()
        pss.plot(x, [step["pss"] / MIB for step in load["steps"]], "o-")
        pss.set_ylabel("PSS of the tree (MiB)")
        pss.set_xlabel(load["unit"])
        pss.set_ylim(bottom=0)
        cpu.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(str(path))
    pyplot.close(figure)
    return "Scaling plot (CPU and PSS against each load): %s." % path.name


# ------------------------------------------------------------------------------ measuring

def measure(daemon: Daemon, baseline_pid: int, window_s: float, counter) -> Step:
    """CPU per process of the tree and of the baseline over ``window_s``, the load ``counter()``
    counted over it (per second), then the tree's PSS."""
    root = daemon.process.pid
    before, baseline_before, count_before = proc.TreeCpu.read(root), proc.cpu_seconds(baseline_pid), counter()
    started = time.monotonic()
    time.sleep(window_s)
    after, elapsed = proc.TreeCpu.read(root), time.monotonic() - started
    baseline = (proc.cpu_seconds(baseline_pid) - baseline_before) / elapsed
    measured = (counter() - count_before) / elapsed
    rates = proc.cpu_per_second(before, after, elapsed)
    names = dict(process_names(daemon), reaped="reaped")
    cpu = {}  # type: Dict[str, float]
    for pid, rate in rates.items():
        name = names.get(pid, "ended")
        cpu[name] = cpu.get(name, 0.0) + rate
    _, memory = tree_memory(daemon)
    return Step(0, measured, cpu, baseline, sum(m.pss_bytes for m in memory.values()))


def started_daemon(folder: Path, channel: str, **sections) -> Daemon:
    daemon = service_daemon(folder, channel, **sections).start()
    daemon.wait_sending(START_TIMEOUT_S)
    daemon.wait_for(lambda s: all(worker["alive"] for worker in s["workers"].values()), START_TIMEOUT_S,
                    "every worker running")
    return daemon


def test_scaling_with_foreign_bus_load(results, settings, candump, vcan_channels, tmp_path):  # noqa: F811
    """The daemon's CPU and PSS as cangen's foreign frames grow, against candump on the same bus."""
    channel = vcan_channels[0]
    window = settings["scaling_s"]
    with results.section(SECTIONS["bus"]) as section:
        daemon = started_daemon(tmp_path, channel)
        steps = []
        try:
            recorder = candump(channel)
            readers = [pid for pid in children_of(os.getpid()) if proc.command_name(pid) == "candump"]
            assert len(readers) == 1, "expected one candump, found %s" % readers
            for load in BUS_LOADS:
                generator = None
                if load:
                    generator = can_utils.cangen(channel, flood(channel, load) + [
                        "-n", str(int(load * (window + SETTLE_S + 30)))])
                try:
                    time.sleep(SETTLE_S)
                    step = measure(daemon, readers[0], window, lambda: frames_sent(channel))
                finally:
                    if generator is not None:
                        generator.terminate()
                        generator.wait(10)
                step.load = load
                steps.append(step.as_dict())
            recorder.stop()
            add_steps(section, "foreign bus load", "frames/s", steps, "candump",
                      "candump reading the same bus (it dropped %d frames)" % recorder.dropped)
        finally:
            results.stop_keeping_log(daemon, "scaling-bus-load")


def poll(buses: List[can.BusABC], rate: float, stop: threading.Event, sent: List[int]) -> None:
    """Ensemble polls at ``rate`` per second on every bus at the same moment, until ``stop``;
    ``sent[0]`` counts them."""
    request = can.Message(arbitration_id=REQUEST_ID, data=bytes([ENSEMBLE_REQUEST]) + bytes(7), is_extended_id=True)
    next_poll = time.monotonic()
    while not stop.is_set():
        for bus in buses:
            bus.send(request)
        sent[0] += 1
        next_poll += 1.0 / rate
        stop.wait(max(0.0, next_poll - time.monotonic()))


def test_scaling_with_hv_polls(results, settings, vcan_channels, tmp_path):  # noqa: F811
    """The daemon's CPU and PSS as an HV inverter polls faster, against a minimal responder."""
    ours_channel, baseline_channel = vcan_channels[:2]
    window = settings["scaling_s"]
    with results.section(SECTIONS["hv"]) as section:
        sections = {name: dict(keys) for name, keys in HV_PACK.items()}
        daemon = started_daemon(tmp_path, ours_channel, inverter={"profile": HV_PROFILE}, **sections)
        steps = []
        try:
            with BaselineResponder(baseline_channel) as baseline, \
                    can.Bus(interface="socketcan", channel=ours_channel) as ours, \
                    can.Bus(interface="socketcan", channel=baseline_channel) as theirs:
                for rate in POLL_RATES:
                    stop, sent = threading.Event(), [0]
                    poller = threading.Thread(target=poll, args=([ours, theirs], rate, stop, sent), daemon=True)
                    poller.start()
                    try:
                        time.sleep(SETTLE_S)
                        step = measure(daemon, baseline.process.pid, window, lambda: sent[0])
                    finally:
                        stop.set()
                        poller.join(10)
                    step.load = rate
                    steps.append(step.as_dict())
            add_steps(section, "HV polling (%s)" % HV_PROFILE, "polls/s", steps, "minimal responder",
                      "a minimal python-can responder answering the same polls on vcan1")
        finally:
            results.stop_keeping_log(daemon, "scaling-hv")
