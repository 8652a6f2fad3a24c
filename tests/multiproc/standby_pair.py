"""Two daemons in hot standby on one bus, and the judge of what they put on it.

Each device of a pair announces its own manufacturer name in 0x35E ("PYLONA", "PYLONB"), so
a recording of the bus tells who sent when. The judge sees only the recording: the windows in
which both devices sent, and the longest silence of every id of the frame set.
"""
import collections
import os
from typing import Dict, Iterable, List, NamedTuple, Tuple

from tests.multiproc.daemon import Daemon

NAME_ID = 0x35E
PYLON_IDS = (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E)


class Record(NamedTuple):
    t: float
    arbitration_id: int
    data: bytes


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
