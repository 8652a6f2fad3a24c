"""``supervisor.py replay``: a recorded battery trace through the BMS engine, and its plot.

The I/O shell around the pure ``bms.replay``: it reads the file, prints one JSON object per
row and, as a development extra, draws the trace with matplotlib (not a runtime dependency).
"""
import json
from typing import Any, Dict, List, Optional, TextIO

from bms.replay import ReplayError, replay


def plot(rows: List[Dict[str, Any]], out_png: str) -> None:
    """Charge voltage, currents and phase over time as a PNG (needs matplotlib, a development extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise RuntimeError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    decided = [row for row in rows if row["phase"] is not None]
    hours = [row["t"] / 3600.0 for row in decided]
    figure, (volts, amps, phase) = pyplot.subplots(3, 1, sharex=True, figsize=(10, 7))
    volts.plot(hours, [row["charge_voltage_v"] for row in decided], label="CVL", drawstyle="steps-post")
    volts.plot(hours, [row["discharge_voltage_v"] for row in decided], label="DVL", drawstyle="steps-post")
    volts.set_ylabel("V")
    amps.plot(hours, [row["charge_current_a"] for row in decided], label="CCL", drawstyle="steps-post")
    amps.plot(hours, [row["discharge_current_a"] for row in decided], label="DCL", drawstyle="steps-post")
    amps.set_ylabel("A")
    phase.step(hours, [row["phase"] + ("" if row["freshness"] == "fresh" else " (%s)" % row["freshness"])
                       for row in decided], where="post")
    phase.set_xlabel("t (h)")
    for axes in (volts, amps):
        axes.legend(loc="best")
        axes.grid(True)
    figure.tight_layout()
    figure.savefig(out_png)
    pyplot.close(figure)



def run_cli(trace_path: str, cfg, out: TextIO, err: TextIO, plot_path: Optional[str] = None) -> int:
    """``supervisor.py replay``: one JSON object per row on ``out``, problems on ``err``.

    Exit code 0: every row replayed; 1: some rows were skipped; 2: nothing could be replayed
    (the trace cannot be read, has no usable header or no usable row) or the plot failed.
    """
    try:
        with open(trace_path, newline="", encoding="utf-8-sig") as handle:   # -sig: a spreadsheet's BOM
            results = list(replay(handle, cfg))
    except (OSError, UnicodeDecodeError) as error:
        err.write("%s: cannot be read: %s\n" % (trace_path, getattr(error, "strerror", None) or error))
        return 2
    rows = [result for result in results if not isinstance(result, ReplayError)]
    errors = [result for result in results if isinstance(result, ReplayError)]
    for error in errors:
        err.write("%s:%d: %s\n" % (trace_path, error.line, error.problem))
    if errors and not rows:
        return 2
    for row in rows:
        out.write(json.dumps(row) + "\n")
    if plot_path is not None:
        try:
            plot(rows, plot_path)
        except (RuntimeError, OSError) as error:
            err.write("%s: plot not written: %s\n" % (plot_path, error))
            return 2
    return 1 if errors else 0
