"""Two daemons in hot standby on one bus, and the judge of what they put on it.

Each device of a pair announces its own manufacturer name in 0x35E ("PYLONA", "PYLONB"), so
a recording of the bus tells who sent when. The judge sees only the recording: the windows in
which both devices sent, and the longest silence of every id of the frame set; on a polled
profile (Pylon HV), with a ``Poller`` as the inverter, how often each reply id followed each
request.
"""
import collections
import os
import threading
import time
from typing import Dict, Iterable, List, NamedTuple, Tuple

import can

from canbus.bus import to_message
from protocol.pylon_hv import REQUEST_ID
from simulation.inverter import requests
from tests.multiproc.daemon import Daemon

NAME_ID = 0x35E
PYLON_IDS = (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E)


class Record(NamedTuple):
    t: float
    arbitration_id: int
    data: bytes


class Recording:
    """Every frame on the shared udp_multicast bus ``can_section``, stamped with time.monotonic()
    on arrival."""

    def __init__(self, can_section):
        self.bus = can.Bus(interface="udp_multicast", channel=can_section["channel"], port=can_section["udp_port"])
        self.records = []
        self.notifier = can.Notifier(self.bus, [self._on_message], timeout=0.2)

    def _on_message(self, msg):
        self.records.append(Record(time.monotonic(), msg.arbitration_id, bytes(msg.data)))

    def close(self):
        self.notifier.stop()
        self.bus.shutdown()


class Poller:
    """A polling HV inverter on the shared bus: the simulated inverter's requests (0x4200, the
    equipment data now and then), one every ``interval_s``, from a thread of the test."""

    def __init__(self, can_section, interval_s: float = 1.0):
        self.bus = can.Bus(interface="udp_multicast", channel=can_section["channel"], port=can_section["udp_port"])
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self.thread.start()

    def _run(self):
        tick = 0
        while not self.stopping.wait(0 if tick == 0 else self.interval_s):
            tick += 1
            for frame in requests("polled", tick):
                self.bus.send(to_message(frame))

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.bus.shutdown()


def answers_per_request(records: Iterable[Record], reply_ids) -> List[Tuple[float, Dict[int, int]]]:
    """(time, {reply id: how often it was heard}) of every request of the inverter, counting the
    replies up to the next request."""
    result: List[Tuple[float, Dict[int, int]]] = []
    for record in sorted(records, key=lambda r: r.t):
        if record.arbitration_id == REQUEST_ID:
            result.append((record.t, collections.Counter()))
        elif result and record.arbitration_id in reply_ids:
            result[-1][1][record.arbitration_id] += 1
    return result


def name_of(node: int) -> str:
    return "PYLON" + "ABCDEFGHIJKLMNO"[node - 1]


def standby_daemon(folder, node: int, can: dict, record: bool = True, **overrides) -> Daemon:
    """A device of a pair: its own folder, the shared bus ``can``, node id ``node``."""
    sections = {"can": dict(can), "standby": {"enabled": True, "node_id": node},
                "inverter": {"manufacturer": name_of(node), "keepalive_timeout_s": 0.0},
                "simulation": {"inverter": False}}
    for section, keys in overrides.items():
        sections.setdefault(section, {}).update(keys)
    path = os.path.join(str(folder), name_of(node))
    os.makedirs(path, exist_ok=True)
    return Daemon(path, record, **sections)


def sender(record: Record) -> str:
    return record.data.decode("ascii", "replace").strip()


def sending_runs(records: Iterable[Record], period: float) -> List[Tuple[str, float, float]]:
    """(device, first, last) of each uninterrupted run of a device's name frames."""
    runs = []
    current: Dict[str, List[float]] = {}
    for record in sorted((r for r in records if r.arbitration_id == NAME_ID), key=lambda r: r.t):
        name = sender(record)
        run = current.get(name)
        if run is not None and record.t - run[1] <= 1.5 * period:
            run[1] = record.t
        else:
            if run is not None:
                runs.append((name, run[0], run[1]))
            current[name] = [record.t, record.t]
    runs.extend((name, run[0], run[1]) for name, run in current.items())
    return sorted(runs, key=lambda run: run[1])


def double_windows(records: Iterable[Record], period: float) -> List[Tuple[float, str, str]]:
    """(how long, device, device) of every stretch in which two devices sent."""
    runs = sending_runs(records, period)
    windows = []
    for index, (name, first, last) in enumerate(runs):
        for other, other_first, other_last in runs[index + 1:]:
            overlap = min(last, other_last) - max(first, other_first)
            if other != name and overlap >= 0:
                windows.append((overlap, name, other))
    return windows


def longest_silences(records: Iterable[Record], ids=PYLON_IDS) -> Dict[int, float]:
    """The longest interval between two frames of each id, whoever sent them."""
    times = collections.defaultdict(list)
    for record in records:
        times[record.arbitration_id].append(record.t)
    return {frame_id: max((b - a for a, b in zip(sorted(times[frame_id]), sorted(times[frame_id])[1:])),
                          default=float("inf")) for frame_id in ids}


def who_sends(records: Iterable[Record], after: float) -> set:
    return {sender(r) for r in records if r.arbitration_id == NAME_ID and r.t > after}
