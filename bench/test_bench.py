"""The benchmarks' own arithmetic and report, checked on the host: `pytest bench/test_bench.py`.

The figures are only as good as the statistics behind them, so these are checked against
values worked out by hand and against the standard library, never against themselves.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from bench import proc, report, stats
from bench.baseline_imports import USAGE, daemon_modules
from bench.settings import SETTINGS, argument_type


def test_intervals_are_the_differences_of_consecutive_stamps():
    assert stats.intervals([10.0, 11.0, 12.5, 12.75]) == [1.0, 1.5, 0.25]
    assert stats.intervals([3.0]) == []


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))        # 1..100: the 99th percentile is 99, the median rank 50
    assert stats.percentile(values, 0.99) == 99
    assert stats.percentile(values, 0.5) == 50
    assert stats.percentile(values, 1.0) == 100
    assert stats.percentile([7.0], 0.99) == 7.0
    assert stats.percentile([5, 1, 3], 0.99) == 5


@pytest.mark.parametrize("values, fraction", [([], 0.5), ([1.0], 0.0), ([1.0], 1.5)])
def test_percentile_refuses_what_has_no_answer(values, fraction):
    with pytest.raises(ValueError):
        stats.percentile(values, fraction)


@hypothesis_settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=200), st.floats(0.01, 1.0))
def test_percentile_has_the_fraction_of_values_at_or_below_it(values, fraction):
    result = stats.percentile(values, fraction)
    assert result in values
    at_or_below = sum(1 for v in values if v <= result)
    below = sum(1 for v in values if v < result)
    assert at_or_below >= fraction * len(values) > below - 1e-9


def test_cadence_of_a_jittery_stream():
    gaps = [1.0, 1.002, 0.998, 1.0, 1.5] + [1.0] * 95
    figures = stats.cadence(gaps, 1.0)
    assert figures.intervals == 100
    assert figures.median_s == statistics.median(gaps) == 1.0
    assert figures.p99_s == 1.002        # rank 99 of 100: the 1.5 is the only value above it
    assert figures.max_deviation_s == pytest.approx(0.5)


def test_cadence_needs_a_stream():
    with pytest.raises(ValueError, match="too few"):
        stats.cadence([1.0], 1.0)


def test_stamps_are_grouped_per_id_sorted_and_windowed():
    frames = [(3.0, 0x351), (1.0, 0x351), (2.0, 0x355), (9.0, 0x351)]
    assert stats.stamps_by_id(frames) == {0x351: [1.0, 3.0, 9.0], 0x355: [2.0]}
    assert stats.stamps_by_id(frames, start=1.5, end=8.0) == {0x351: [3.0], 0x355: [2.0]}


def test_gaps_are_split_by_whether_they_ended_after_the_event():
    before, after = stats.gaps_around([0.0, 1.0, 2.0, 3.8, 4.8], event=2.5)
    assert before == [1.0, 1.0]
    assert after == pytest.approx([1.8, 1.0])


def test_the_first_complete_set_waits_for_the_last_id_and_ignores_invalid_frames():
    frames = [(1.0, 0x351, True), (1.2, 0x355, False), (1.4, 0x999, True), (2.2, 0x355, True),
              (2.0, 0x351, True), (1.1, 0x356, True)]
    assert stats.first_complete_set(frames, (0x351, 0x355, 0x356)) == 2.2
    assert stats.first_complete_set(frames, (0x351, 0x35E)) is None


def test_a_reply_latency_is_the_last_reply_of_a_whole_set_before_the_next_request():
    frames = [(0.5, 0x20), (1.0, 0x10), (1.25, 0x20), (1.5, 0x99), (1.75, 0x30),   # whole: 0.75
              (2.0, 0x10), (2.5, 0x20),                                              # 0x30 missing
              (3.0, 0x10), (3.25, 0x30), (3.5, 0x20), (3.75, 0x20)]                  # whole, 0x20 twice: 0.75
    assert stats.reply_latencies(frames, 0x10, (0x20, 0x30)) == [0.75, None, 0.75]
    assert stats.reply_latencies([(0.1, 0x20)], 0x10, (0x20,)) == []


def test_cpu_per_second_counts_live_new_and_ended_processes():
    before = proc.TreeCpu(live={1: 10.0, 2: 5.0, 3: 1.0}, reaped=4.0)
    # pid 3 ended and was reaped having used 1.75 s in all; pid 4 was born in between
    after = proc.TreeCpu(live={1: 10.5, 2: 5.25, 4: 0.5}, reaped=5.75)
    rates = proc.cpu_per_second(before, after, 2.0)
    assert rates == {1: 0.25, 2: 0.125, 4: 0.25, "reaped": 0.375}
    assert sum(rates.values()) * 2.0 == pytest.approx((10.5 + 5.25 + 0.5 + 5.75) - (10.0 + 5.0 + 1.0 + 4.0))


def spin(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


def test_cpu_time_from_proc_agrees_with_the_process_own_clock():
    before, own_before = proc.cpu_seconds(os.getpid()), time.process_time()
    spin(0.2)
    used, own_used = proc.cpu_seconds(os.getpid()) - before, time.process_time() - own_before
    assert used == pytest.approx(own_used, abs=0.02)


def test_reaped_children_cpu_time_agrees_with_getrusage():
    before = proc.reaped_children_cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", "import time\nstarted = time.process_time()\n"
                    "while time.process_time() - started < 0.3: pass"], check=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.reaped_children_cpu_seconds(os.getpid()) - before >= 0.28
    assert proc.reaped_children_cpu_seconds(os.getpid()) == pytest.approx(
        children.ru_utime + children.ru_stime, abs=0.05)


def test_memory_figures_are_ordered_as_the_kernel_defines_them():
    memory = proc.memory(os.getpid())
    assert 0 < memory.uss_bytes <= memory.pss_bytes <= memory.rss_bytes
    with open("/proc/self/status") as handle:
        rss_kib = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    assert memory.rss_bytes == pytest.approx(rss_kib * 1024, rel=0.05)


def test_the_tree_of_a_process_holds_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert proc.tree(os.getpid())[0] == os.getpid()
        assert child.pid in proc.tree(os.getpid())
        assert child.pid in proc.TreeCpu.read(os.getpid()).live
    finally:
        child.stdin.close()
        child.wait()


def test_settings_accept_only_positive_values_of_their_type():
    by_name = {s.name: s for s in SETTINGS}
    assert argument_type(by_name["idle_s"])("2.5") == 2.5
    assert argument_type(by_name["startup_runs"])("4") == 4
    for name, text in (("idle_s", "0"), ("idle_s", "-1"), ("idle_s", "soon"), ("startup_runs", "1.5")):
        with pytest.raises(argparse.ArgumentTypeError, match=name):
            argument_type(by_name[name])(text)


def test_the_baseline_imports_the_daemons_modules_and_the_libraries():
    modules = daemon_modules()
    for name in ("supervisor", "config", "workers.bms_tx", "workers.can_rx", "failsafe.transmitter",
                 "protocol.profiles.pylon", "can.interfaces.socketcan", "dbus.mainloop.glib"):
        assert name in modules
    assert not [m for m in modules if m.split(".")[0] in ("tests", "bench", "dev", "tools")]
    done = subprocess.run([sys.executable, "-m", "bench.baseline_imports", "--hold"], input="",
                          stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "ready\n")
    wrong = subprocess.run([sys.executable, "-m", "bench.baseline_imports", "--later"],
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert (wrong.returncode, wrong.stderr.strip()) == (2, USAGE)


RESULTS = {
    "machine": {"kernel": "6.1.0-56-amd64", "cpus": 2, "cpu_model": "QEMU CPU", "memory_mib": 985, "python": "3.11.2"},
    "settings": {"idle_s": 180.0},
    "notes": ["daemon shared: did not stop within 30 s"],
    "sections": {
        "cadence": {"rows": [{"figure": "Cadence (idle): median", "value": 1000.004, "baseline": 1000.2,
                              "unit": "ms", "baseline_is": "cangen"}],
                    "tables": [{"title": "Cadence per ID", "columns": ["ID", "median (ms)"],
                                "rows": [["351", 1000.004]]}]},
        "memory": {"rows": [{"figure": "PSS", "value": 80.0, "baseline": 20.0, "unit": "MiB",
                             "baseline_is": "bare python"}], "tables": []},
        "failover two instances": {"rows": [], "tables": [], "not_available": "no [standby]"},
        "cpu": {"rows": [], "tables": [], "error": "AssertionError: daemon exited | badly\nlog..."},
    },
}


HOST = {"uname": "Linux 6.12 x86_64", "cpu_model": "AMD EPYC", "cpus": 2}


def test_the_report_puts_each_figure_beside_its_baseline_and_ratio():
    text = report.render({"vcan": RESULTS}, HOST, "sh bench/run.sh", "2025-01-01 00:00 UTC", "abc1234")
    lines = text.splitlines()
    assert "| Cadence (idle): median | 1000.00 ms | 1000.20 ms | 1.00 | cangen |" in lines
    assert "| PSS | 80.0 MiB | 20.0 MiB | 4.00 | bare python |" in lines
    assert "| Failover, two instances, kill -9 of the active one | not available yet: no [standby] | | | |" in lines
    assert "| CPU at full bus load | **failed**: AssertionError: daemon exited \\| badly | | | |" in lines
    assert "| Start-up | not run | | | |" in lines
    assert "- daemon shared: did not stop within 30 s" in lines
    assert "code at abc1234" in text and "VM without KVM" in text and "AMD EPYC" in text and "2025-01-01" in text
    assert lines[lines.index("### Cadence per ID") + 2:][:3] == ["| ID | median (ms) |", "|---|---|", "| 351 | 1000.004 |"]


def test_the_report_puts_the_tiers_side_by_side_figure_by_figure():
    controllers = {"machine": RESULTS["machine"], "settings": RESULTS["settings"], "notes": ["memory: vcan only"],
                   "sections": {
                       "cadence": {"rows": [{"figure": "Cadence (idle): median", "value": 1001.0, "baseline": 1000.0,
                                             "unit": "ms", "baseline_is": "cangen, another controller"}],
                                   "tables": [{"title": "Cadence per ID", "columns": ["ID"], "rows": [["351"]]}]},
                       "cpu": {"rows": [{"figure": "CPU flooded", "value": 30.0, "baseline": 60.0, "unit": "ms/s",
                                         "baseline_is": "candump"}], "tables": []}}}
    text = report.render({"vcan": RESULTS, "sja1000": controllers}, HOST, "sh bench/run.sh", "2025-01-01 00:00 UTC",
                         "abc1234")
    lines = text.splitlines()
    assert ("| figure | vcan: pylon-venus | baseline | ratio | SJA1000: pylon-venus | baseline | ratio "
            "| baseline measured as |") in lines
    assert ("| Cadence (idle): median | 1000.00 ms | 1000.20 ms | 1.00 | 1001.00 ms | 1000.00 ms | 1.00 "
            "| vcan: cangen; SJA1000: cangen, another controller |") in lines
    assert "| CPU flooded | | | | 30.00 ms/s | 60.00 ms/s | 0.50 | candump |" in lines
    assert "| CPU at full bus load | **failed**: AssertionError: daemon exited \\| badly | | | | | | |" in lines
    assert "| PSS | 80.0 MiB | 20.0 MiB | 4.00 | | | | bare python |" in lines
    assert "| Memory | | | | not run | | | |" in lines
    assert "- SJA1000: memory: vcan only" in lines and "- vcan: daemon shared: did not stop within 30 s" in lines
    assert "### Cadence per ID (vcan)" in lines and "### Cadence per ID (SJA1000)" in lines
    header = lines.index("| figure | vcan: pylon-venus | baseline | ratio | SJA1000: pylon-venus | baseline | ratio "
                         "| baseline measured as |")
    summary = lines[header:lines.index("", header)]
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 9 for line in summary), "every summary row has every column"


@pytest.mark.parametrize("value, baseline, shown", [(2.0, 1.0, "2.00"), (1.0, 4.0, "0.25"), (500.0, 2.0, "250"),
                                                    (1.0, 0.0, "-")])
def test_ratios(value, baseline, shown):
    assert report.ratio(value, baseline) == shown


SCALING_STEPS = [
    {"load": 0, "measured": 0.0, "cpu": {"supervisor": 0.010, "bms_tx": 0.004, "simulator": 0.005},
     "baseline_cpu": 0.001, "pss": 40 << 20},
    {"load": 1000, "measured": 996.4, "cpu": {"supervisor": 0.012, "can_rx": 0.0305}, "baseline_cpu": 0.050,
     "pss": 42 << 20},
]


def test_scaling_table_has_a_column_per_process_of_any_step_and_the_trees_total():
    from bench import scaling
    columns_rows = scaling.step_table(SCALING_STEPS, "frames/s", "candump")
    assert columns_rows["columns"] == ["frames/s asked", "measured", "supervisor (ms/s)", "bms_tx (ms/s)",
                                       "simulator (ms/s)", "can_rx (ms/s)", "tree (ms/s)", "as on a device (ms/s)",
                                       "candump (ms/s)", "tree PSS (MiB)"]
    assert columns_rows["rows"] == [[0, 0.0, 10.0, 4.0, 5.0, 0.0, 19.0, 14.0, 1.0, 40.0],
                                    [1000, 996.4, 12.0, 0.0, 0.0, 30.5, 42.5, 42.5, 50.0, 42.0]]


def test_scaling_summary_sets_the_highest_step_beside_its_baseline_and_its_memory_beside_the_lowest():
    from bench import scaling
    section = {"rows": [], "tables": []}
    scaling.add_steps(section, "foreign bus load", "frames/s", SCALING_STEPS, "candump", "candump reading the same bus")
    cpu, memory = section["rows"]
    assert (cpu["value"], cpu["baseline"], cpu["unit"]) == (pytest.approx(42.5), pytest.approx(50.0), "ms/s")
    assert "(supervisor, can_rx), foreign bus load, 996 frames/s" in cpu["figure"]
    assert cpu["baseline_is"] == "candump reading the same bus"
    assert (memory["value"], memory["baseline"], memory["unit"]) == (42.0, 40.0, "MiB")
    assert section["steps"]["steps"] == SCALING_STEPS and len(section["tables"]) == 1


def test_scaling_plot_is_a_png_drawn_only_when_there_are_steps(tmp_path):
    pytest.importorskip("matplotlib")
    from bench import scaling
    path = tmp_path / "scaling.png"
    assert scaling.draw_plot({"cadence": {"rows": []}}, path) is None and not path.exists()
    section = {"rows": [], "tables": []}
    scaling.add_steps(section, "foreign bus load", "frames/s", SCALING_STEPS, "candump", "candump reading the same bus")
    note = scaling.draw_plot({scaling.SECTIONS["bus"]: section}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.name in note


def test_the_footprint_reads_strace_summaries_as_calls_per_second_most_frequent_first():
    from bench.footprint import _syscall_counts
    summary = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600          15        40           getpid
 40.00    0.000400          10        20        20 wait4
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000          16        60        20 total
"""
    assert _syscall_counts(summary, 10.0) == [("getpid", 4.0), ("wait4", 2.0)]


def _footprint_section(with_systemcalc: bool):
    from bench import footprint
    cpu = {"supervisor": 1.0, "can_rx": 2.0, "bms_tx": 3.0, "dbus_publisher": 0.5, "systemcalc": 1.0}
    threads = [{"process": name, "tid": n, "thread": "python", "cpu_ms_s": ms, "wakeups_s": 1.0, "preempted_s": 0.0}
               for n, (name, ms) in enumerate(cpu.items()) if with_systemcalc or name != "systemcalc"]
    mib = 1 << 20
    memory = {name: proc.Memory(pss, pss, pss) for name, pss in
              (("supervisor", 10 * mib), ("can_rx", 10 * mib), ("bms_tx", 10 * mib), ("dbus_publisher", 10 * mib),
               ("systemcalc", 20 * mib), ("baseline interpreter", 25 * mib))}
    ours = {"supervisor": 1, "can_rx": 2, "bms_tx": 3, "dbus_publisher": 4}
    others = {"baseline interpreter": 9}
    if with_systemcalc:
        others["systemcalc"] = 8
    return footprint.section(120.0, ours, others, threads, memory, {},
                             "" if with_systemcalc else "Victron's services are not at /x")


def test_the_footprint_says_for_each_target_whether_it_is_met():
    rows = {r["figure"].split(" (target")[0] + r["baseline_is"][:8]: r for r in _footprint_section(True)["rows"]}
    cpu = next(r for r in rows.values() if r["figure"].startswith("Idle CPU, 120 s"))
    assert (cpu["value"], cpu["baseline"]) == (6.5, 1.0) and "**not met**" in cpu["figure"]   # 6.5x > 3x
    supervisor = next(r for r in rows.values() if "the supervisor against" in r["figure"])
    assert "(bms_tx)" in supervisor["figure"] and supervisor["figure"].endswith("(**met**)")
    memory = [r for r in rows.values() if r["figure"].startswith("Memory (PSS) at idle: the device tree")]
    assert [(r["value"], r["baseline"]) for r in memory] == [(40.0, 20.0), (40.0, 25.0)]
    assert all("**not met**" in r["figure"] for r in memory)        # 2x > 1.5x, 1.6x > 1.3x


def test_the_footprint_reports_the_peer_figures_as_not_measured_with_the_reason():
    rows = _footprint_section(False)["rows"]
    against_systemcalc = [r for r in rows if r["baseline"] is None]
    assert len(against_systemcalc) == 3          # idle CPU, wakeups, memory beside systemcalc
    assert all(r["baseline_is"] == "not measured: Victron's services are not at /x" for r in against_systemcalc)
    assert "not measured" in report.quantity(None, "ms/s") and report.ratio(1.0, None) == "-"


def test_the_report_says_whether_each_cadence_meets_the_jitter_target():
    def cadence(value, baseline):
        return {"figure": "Cadence (idle machine, 180 s): largest deviation from the 1 s period, all IDs",
                "value": value, "baseline": baseline, "unit": "ms", "baseline_is": "cangen"}
    median = dict(cadence(1000.7, 1001.7), figure="Cadence (idle machine, 180 s): median interval, all IDs")
    met = {"machine": RESULTS["machine"], "settings": {}, "notes": [],
           "sections": {"cadence": {"rows": [median, cadence(50.0, 25.0)], "tables": []}}}
    missed = dict(met, sections={"cadence": {"rows": [cadence(144.69, 27.57)], "tables": []}})
    lines = report.render({"vcan": met, "sja1000": missed}, HOST, "sh bench/run.sh", "2025-01-01 00:00 UTC",
                          "abc1234").splitlines()
    verdicts = [line for line in lines if line.startswith("- ") and "largest deviation" in line]
    assert verdicts == [
        "- vcan, Cadence (idle machine, 180 s): largest deviation from the 1 s period, all IDs: met "
        "(50.00 ms, 2.00 x cangen's 25.00 ms)",
        "- SJA1000, Cadence (idle machine, 180 s): largest deviation from the 1 s period, all IDs: **not met** "
        "(144.69 ms, 5.25 x cangen's 27.57 ms)"]
