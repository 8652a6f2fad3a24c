"""Figures from frame timestamps: pure functions, no I/O, no clock.

Timestamps are candump's kernel receive times in seconds. A cadence is judged per CAN ID
(the inverter watches each ID on its own), so every function here takes the stamps of one ID.
"""
import math
import statistics
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple


class Cadence(NamedTuple):
    intervals: int              # how many intervals the figures are made of
    median_s: float
    p99_s: float
    max_deviation_s: float      # largest |interval - period|


def intervals(stamps: Sequence[float]) -> List[float]:
    """Time between consecutive frames, in order; stamps must be sorted."""
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of values at or below it."""
    if not values:
        raise ValueError("no values to take a percentile of")
    if not 0.0 < fraction <= 1.0:
        raise ValueError("fraction %r is outside (0, 1]" % fraction)
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def cadence(gaps: Sequence[float], period_s: float) -> Cadence:
    """Median, 99th percentile and worst deviation from ``period_s`` of some intervals."""
    if len(gaps) < 2:
        raise ValueError("%d intervals are too few to judge a cadence (a frame stream stopped?)"
                         % len(gaps))
    return Cadence(len(gaps), statistics.median(gaps), percentile(gaps, 0.99),
                   max(abs(gap - period_s) for gap in gaps))


def stamps_by_id(frames: Iterable[Tuple[float, int]], start: float = -math.inf,
                 end: float = math.inf) -> Dict[int, List[float]]:
    """(timestamp, CAN ID) pairs within [start, end] grouped into sorted stamps per ID."""
    grouped = {}  # type: Dict[int, List[float]]
    for stamp, frame_id in frames:
        if start <= stamp <= end:
            grouped.setdefault(frame_id, []).append(stamp)
    for stamps in grouped.values():
        stamps.sort()
    return grouped


def gaps_around(stamps: Sequence[float], event: float) -> Tuple[List[float], List[float]]:
    """The intervals that ended before ``event`` and those that ended after it."""
    before, after = [], []
    for earlier, later in zip(stamps, stamps[1:]):
        (before if later <= event else after).append(later - earlier)
    return before, after


def first_complete_set(frames: Iterable[Tuple[float, int, bool]], ids: Sequence[int]) -> Optional[float]:
    """When every ID of ``ids`` had been seen in a valid frame: the stamp of the last of them.

    ``frames`` are (timestamp, CAN ID, valid) in any order; None when an ID never came.
    """
    first = {}  # type: Dict[int, float]
    for stamp, frame_id, valid in frames:
        if valid and frame_id in ids and stamp < first.get(frame_id, math.inf):
            first[frame_id] = stamp
    if set(first) != set(ids):
        return None
    return max(first.values())


def reply_latencies(frames: Iterable[Tuple[float, int]], request_id: int,
                    reply_ids: Sequence[int]) -> List[Optional[float]]:
    """Per request, in order: the time from it to the last of its replies, when every one of
    ``reply_ids`` came after it and before the next request; None when one did not.

    ``frames`` are (timestamp, CAN ID) pairs in the order the bus carried them.
    """
    wanted = set(reply_ids)
    found = []  # type: List[Optional[float]]
    request = None  # type: Optional[float]
    seen, last = set(), 0.0

    def close() -> None:
        if request is not None:
            found.append(last - request if seen == wanted else None)

    for stamp, frame_id in frames:
        if frame_id == request_id:
            close()
            request, seen = stamp, set()
        elif request is not None and frame_id in wanted:
            seen.add(frame_id)
            last = stamp
    close()
    return found
