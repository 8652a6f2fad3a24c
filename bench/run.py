"""Run every benchmark in the system tests' VM, then the idle footprint here, then write bench/RESULTS.md.

    sh bench/run.sh [--idle-s S] [--loaded-s S] ... [--results DIR] [--output FILE]

The VM (tests/system/vm.py) boots Debian's kernel, which has SocketCAN, once per tier (``--tiers``:
vcan interfaces, then emulated SJA1000 controllers on one bus), and runs pytest on bench/vm_bench.py
(and, on vcan, bench/hv_latency.py and bench/scaling.py); each tier's measurements land in DIR/<tier>/bench.json, which
this turns into Markdown, the tiers side by side, with the idle footprint beside Victron's systemcalc
(bench/footprint.py, on this machine, DIR/footprint.json).
``--render-only`` rewrites the Markdown from existing bench.json files without booting the VM.
Exits with pytest's exit code (0: every benchmark ran), or 100 when the VM could not run.
"""
import argparse
import compileall
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from bench import footprint, proc, report, scaling
from bench.baseline_imports import ROOT, TOP_LEVEL_MODULES, runtime_packages
from bench.settings import RESULTS_FILE, SETTINGS, argument_type, option
from tests.system import vm

BENCH_DIR = Path(__file__).resolve().parent
# Time the VM may take beyond the measurements themselves: boot, daemon starts, log parsing.
VM_OVERHEAD_S = 900.0
REVISION_FILE = "revision"  # the code measured, written before the VM starts
START_UP_S = 90.0          # one timed daemon start-up and its baseline, under emulation
TIERS = ("vcan", "sja1000")
# What each tier's VM runs: the HV latency needs a bus per responder (vcan0, vcan1), which the one
# emulated bus is not.
TIER_BENCHMARKS = {"vcan": ("vm_bench.py", "hv_latency.py", "scaling.py"), "sja1000": ("vm_bench.py",)}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results = Path(args.results).resolve()
    measured = {tier: results / tier / RESULTS_FILE for tier in args.tiers}
    revision_file = results / REVISION_FILE
    exit_code = 0
    if not args.render_only:
        for path in measured.values():
            path.unlink(missing_ok=True)      # never report an earlier run's figures as this one's
        (results / footprint.FILE).unlink(missing_ok=True)
        results.mkdir(parents=True, exist_ok=True)
        revision_file.write_text(git_revision())
        compile_bytecode()
        for tier in args.tiers:
            tier_exit = vm.main(["--tier", tier, "--results", str(results / tier), "--timeout",
                                 "%.0f" % vm_timeout_s(args), "--"]
                                + [str(BENCH_DIR / name) for name in TIER_BENCHMARKS[tier]] + ["-v"]
                                + ["%s=%s" % (option(s.name), getattr(args, s.name)) for s in SETTINGS])
            exit_code = exit_code or tier_exit
        exit_code = exit_code or footprint.main(["--window-s", str(args.footprint_s), "--results", str(results)])
    found = {tier: json.loads(path.read_text()) for tier, path in measured.items() if path.exists()}
    if not found:
        print("bench: no %s, so %s is left as it was (the VM's output above says why)"
              % (" nor ".join(str(path) for path in measured.values()), args.output), file=sys.stderr)
        return exit_code or vm.VM_FAILED
    command = "sh bench/run.sh" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
                                          if a != "--render-only")
    measured_at = datetime.datetime.fromtimestamp(max(measured[tier].stat().st_mtime for tier in found),
                                                  datetime.timezone.utc)
    with_footprint(found[next(iter(found))], results)
    for tier, figures in found.items():
        note = scaling.draw_plot(figures["sections"], Path(args.output).parent / ("%s-%s" % (tier, scaling.PLOT_FILE)))
        if note:
            figures["notes"].append(note)
    markdown = report.render(found, host_machine(), command,
                             measured_at.strftime("%Y-%m-%d %H:%M UTC"),
                             revision_file.read_text() if revision_file.exists() else "an unrecorded commit")
    Path(args.output).write_text(markdown)
    print(markdown)
    print("bench: wrote %s%s" % (args.output, "" if exit_code == 0 else
                                 "; some benchmarks failed (pytest exit %d, see %s)" % (exit_code, results)))
    return exit_code


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n\n")[0])
    for setting in SETTINGS:
        parser.add_argument("--" + setting.name.replace("_", "-"), dest=setting.name, default=setting.default,
                            type=argument_type(setting),
                            help="%s (default %s)" % (setting.help, setting.default))
    parser.add_argument("--tiers", nargs="+", choices=TIERS, default=list(TIERS),
                        help="the VM tiers to measure on, one boot each (default: %s)" % " ".join(TIERS))
    parser.add_argument("--results", default=str(BENCH_DIR / "results"),
                        help="folder with a folder per tier for bench.json, pytest.log and candump logs "
                             "(default bench/results)")
    parser.add_argument("--output", default=str(BENCH_DIR / "RESULTS.md"), help="the Markdown report")
    parser.add_argument("--render-only", action="store_true",
                        help="only rewrite the report from the results folder's bench.json")
    return parser.parse_args(argv)


def with_footprint(measured: dict, results: Path) -> dict:
    """bench.json plus the idle footprint measured on this machine, when it was."""
    path = results / footprint.FILE
    if path.exists():
        measured["sections"].update(json.loads(path.read_text()))
        measured["notes"].append(footprint.NOTE)
    return measured


def vm_timeout_s(args) -> float:
    """Boot, the timed start-ups, every measurement window, with a generous margin."""
    windows = args.idle_s + args.loaded_s + 2 * args.cpu_s + 4 * args.failover_window_s + 2 * args.hv_polls
    windows += scaling.STEPS * (args.scaling_s + scaling.STEP_OVERHEAD_S)
    return VM_OVERHEAD_S + START_UP_S * args.startup_runs + windows


def compile_bytecode() -> None:
    """Byte code for the code the VM runs, as an install has: the VM's view of this tree is
    read-only, so without it every start would compile the project again."""
    for name in TOP_LEVEL_MODULES:
        compileall.compile_file(os.path.join(ROOT, name + ".py"), quiet=1)
    for folder in runtime_packages() + ["bench", "tests"]:
        compileall.compile_dir(os.path.join(ROOT, folder), quiet=1)


def git_revision() -> str:
    """The commit measured, and whether the work tree differed from it."""
    def git(*args) -> str:
        return subprocess.run(["git", "-C", ROOT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "an unknown commit (no git)"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md")
    return commit + (" with uncommitted changes" if changed else "")


def host_machine() -> dict:
    uname = platform.uname()
    return {"uname": "%s %s %s" % (uname.system, uname.release, uname.machine),
            "cpu_model": proc.cpu_model(), "cpus": os.cpu_count()}


if __name__ == "__main__":
    sys.exit(main())
