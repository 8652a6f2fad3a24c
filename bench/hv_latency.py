"""Pylon HV answer latency, measured inside the system tests' VM on real SocketCAN.

bench/run.py runs this after bench/vm_bench.py (both are pytest's arguments in one VM) and adds
its section to the same bench.json. The daemon answers on vcan0 with an HV profile and an HV
pack; the inverter is this process, which sends a 0x4200 ensemble poll once a second (an
inverter's cadence) on vcan0 and, at the same moment, on vcan1, where the baseline answers: a
minimal python-can responder (one socket, a blocking receive, the 9 frames sent back). The
latency of a poll is the time from the request to the last frame of its reply set on candump's
kernel timestamps; measured on an idle machine and with a busy loop on every core.
"""
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional

import can
import pytest

from bench import stats
from bench.settings import RESULTS_FILE
from bench.vm_bench import START_TIMEOUT_S, Results, busy_loops, ms, row, service_daemon, settings, table  # noqa: F401
from protocol.pylon_hv import ENSEMBLE_REQUEST, REQUEST_ID
# The system tests' fixtures: the vcan interfaces, the results folder, candump recorders.
from tests.system.conftest import artifacts_dir, candump, judge_channel, results_dir, tier, vcan_channels  # noqa: F401
from tests.unit.test_protocol_hv_config import HV_PACK

PROFILE = "pylon_hv"
POLL_INTERVAL_S = 1.0       # what HV inverters do (PYLON_HV.md §4), and the simulated one
REPLY_IDS = tuple(0x4210 + 0x10 * i for i in range(9))
# The baseline: the least a program can do to answer the poll with python-can on SocketCAN.
BASELINE_RESPONDER = """
import sys, can
bus = can.Bus(interface="socketcan", channel=sys.argv[1],
              can_filters=[{"can_id": %d, "can_mask": 0x1FFFFFFF, "extended": True}])
replies = [can.Message(arbitration_id=i, data=bytes(8), is_extended_id=True) for i in %r]
print("ready", flush=True)
while True:
    if bus.recv() is not None:
        for reply in replies:
            bus.send(reply)
""" % (REQUEST_ID, REPLY_IDS)


@pytest.fixture(scope="module")
def results(results_dir, settings) -> Results:  # noqa: F811
    """bench.json of this run: what bench/vm_bench.py measured before, and this section."""
    kept = Results(results_dir, settings)
    earlier = results_dir / RESULTS_FILE
    if earlier.exists():
        kept.data = json.loads(earlier.read_text())
    return kept


class BaselineResponder:
    def __init__(self, channel: str):
        self.process = subprocess.Popen([sys.executable, "-c", BASELINE_RESPONDER, channel],
                                        stdout=subprocess.PIPE, universal_newlines=True)

    def __enter__(self) -> "BaselineResponder":
        if self.process.stdout.readline().strip() != "ready":
            raise AssertionError("the baseline responder did not start (exit code %s)" % self.process.poll())
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait(30)


def poll_both(buses: List[can.BusABC], count: int) -> None:
    """``count`` ensemble polls, one per POLL_INTERVAL_S, on every bus at the same moment."""
    request = can.Message(arbitration_id=REQUEST_ID, data=bytes([ENSEMBLE_REQUEST]) + bytes(7), is_extended_id=True)
    next_poll = time.monotonic()
    for _ in range(count):
        for bus in buses:
            bus.send(request)
        next_poll += POLL_INTERVAL_S
        time.sleep(max(0.0, next_poll - time.monotonic()))
    time.sleep(POLL_INTERVAL_S)


def latencies(recorder) -> List[Optional[float]]:
    return stats.reply_latencies([(c.timestamp, c.frame.arbitration_id) for c in recorder.stop()],
                                 REQUEST_ID, REPLY_IDS)


def figures(found: List[Optional[float]]) -> Dict:
    answered = [f for f in found if f is not None]
    if not answered:
        raise AssertionError("none of %d polls got its whole reply set" % len(found))
    return {"polls": len(found), "unanswered": len(found) - len(answered), "median": stats.percentile(answered, 0.5),
            "p99": stats.percentile(answered, 0.99), "max": max(answered)}


def test_hv_answer_latency(results, settings, candump, vcan_channels, tmp_path):  # noqa: F811
    """Poll to the last reply frame: the daemon against the minimal responder, idle and loaded."""
    ours_channel, baseline_channel = vcan_channels[:2]
    count = settings["hv_polls"]
    with results.section("hv latency") as section:
        sections = {name: dict(keys) for name, keys in HV_PACK.items()}
        daemon = service_daemon(tmp_path, ours_channel, inverter={"profile": PROFILE}, **sections).start()
        try:
            daemon.wait_sending(START_TIMEOUT_S)
            with BaselineResponder(baseline_channel), \
                    can.Bus(interface="socketcan", channel=ours_channel) as ours, \
                    can.Bus(interface="socketcan", channel=baseline_channel) as theirs:
                for loops in (0, os.cpu_count()):
                    recorders = candump(ours_channel), candump(baseline_channel)
                    with busy_loops(loops):
                        poll_both([ours, theirs], count)
                    add_latency(section, "every core busy, %d busy loops" % loops if loops else "idle machine",
                                figures(latencies(recorders[0])), figures(latencies(recorders[1])))
            polls = daemon.status()["polls"]
            results.note("HV latency: the daemon's own count (status polls): answered %s of %s, held back %s, "
                         "stale %s, send failures %s, worst request-to-burst-sent %s s" % (
                             polls["answered"], sum(polls["requests"].values()), polls["held_back"], polls["stale"],
                             polls["send_failures"], polls["max_latency_s"]))
        finally:
            results.stop_keeping_log(daemon, "hv-latency")


def add_latency(section, condition: str, ours: Dict, theirs: Dict) -> None:
    baseline_is = "a minimal python-can responder, same polls, other vcan"
    what = "%s, %d polls at %g s" % (condition, ours["polls"], POLL_INTERVAL_S)
    for figure, field in (("median", "median"), ("99th percentile", "p99"), ("largest", "max")):
        row(section, "HV answer latency (%s): %s, poll to the last of its %d replies" % (what, figure, len(REPLY_IDS)),
            ms(ours[field]), ms(theirs[field]), "ms", baseline_is)
    table(section, "HV answer latency (%s), request to the last reply frame" % what,
          ["responder", "polls", "not answered whole", "median (ms)", "p99 (ms)", "largest (ms)"],
          [[name, f["polls"], f["unanswered"]] + [round(ms(f[k]), 3) for k in ("median", "p99", "max")]
           for name, f in (("pylon-venus (%s)" % PROFILE, ours), ("minimal responder (baseline)", theirs))])
