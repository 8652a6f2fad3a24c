"""The benchmark run's settings, defined once for bench/run.py and for the VM side (conftest.py)."""
import argparse
from typing import Callable, NamedTuple


class Setting(NamedTuple):
    name: str
    default: float
    type: type
    help: str


# What bench/vm_bench.py writes in the results folder and bench/run.py reads back.
RESULTS_FILE = "bench.json"

SETTINGS = (
    Setting("idle_s", 180.0, float, "seconds of cadence recording on an idle machine"),
    Setting("loaded_s", 120.0, float, "seconds of cadence recording with a busy-loop process per core"),
    Setting("cpu_s", 20.0, float, "seconds of each CPU measurement (idle bus, then flooded bus)"),
    Setting("flood_rate", 4000, int, "frames per second of foreign IDs in the flood; 4000 is what a "
                                     "500 kbit/s bus carries at full load"),
    Setting("startup_runs", 3, int, "daemon start-ups (and baseline imports) timed; the median is reported"),
    Setting("failover_window_s", 10.0, float, "seconds recorded before each fault (the baseline) and "
                                              "after the recovery"),
    Setting("footprint_s", 120.0, float, "seconds of the idle footprint beside Victron's systemcalc "
                                         "(bench/footprint.py, on this machine; at least 120)"),
    Setting("hv_polls", 200, int, "0x4200 polls, one a second, timed per condition (idle, loaded) in the "
                                  "HV answer latency benchmark (bench/hv_latency.py)"),
    Setting("scaling_s", 20.0, float, "seconds of each step of the scaling benchmark (bench/scaling.py): CPU and "
                                      "PSS at each foreign bus load and each HV poll rate"),
)


def option(name: str) -> str:
    """The pytest option that carries a setting into the VM."""
    return "--bench-" + name.replace("_", "-")


def argument_type(setting: Setting) -> Callable[[str], float]:
    """An argparse ``type`` that accepts only positive values of the setting's type."""
    def parse(text: str):
        try:
            value = setting.type(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError("%s must be a positive %s, got %r" % (
                setting.name, "whole number" if setting.type is int else "number", text))
        return value
    return parse
