"""What the kernel says a process costs, read from /proc."""
import os
from typing import Dict, Iterable, List, NamedTuple

from tests.multiproc.daemon import children_of

KIB = 1024


class Memory(NamedTuple):
    pss_bytes: int      # shared pages divided among the processes that map them
    rss_bytes: int
    uss_bytes: int      # pages no other process maps


def tree(pid: int) -> List[int]:
    """``pid`` and every live descendant, parent first."""
    return [pid] + sorted(children_of(pid))


def command_name(pid: int) -> str:
    with open("/proc/%d/comm" % pid) as handle:
        return handle.read().strip()


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in nanosecond resolution (schedstat).

    /proc/PID/stat counts in 10 ms ticks, too coarse for a process that is nearly idle.
    """
    total_ns = 0
    folder = "/proc/%d/task" % pid
    for task in os.listdir(folder):
        try:
            with open(os.path.join(folder, task, "schedstat")) as handle:
                total_ns += int(handle.read().split()[0])
        except FileNotFoundError:
            continue    # the thread ended between listdir and open
    return total_ns / 1e9


def cpu_seconds_of(pids: Iterable[int]) -> Dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


def memory(pid: int) -> Memory:
    """From /proc/PID/smaps_rollup (kernel 4.14+)."""
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * KIB
    return Memory(fields["Pss"], fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"])


def cpu_model() -> str:
    with open("/proc/cpuinfo") as handle:
        return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                    "unknown CPU")


def memory_total_mib() -> int:
    with open("/proc/meminfo") as handle:
        return next(int(line.split()[1]) * KIB for line in handle if line.startswith("MemTotal:")) >> 20
