"""What the kernel says a process costs, read from /proc."""
import os
from typing import Dict, List, NamedTuple

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


def reaped_children_cpu_seconds(pid: int) -> float:
    """CPU time of the children ``pid`` has waited for (cutime + cstime, in 10 ms ticks): what
    a worker that ended and was restarted used, which no live process shows any more."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


class TreeCpu(NamedTuple):
    """CPU seconds so far of the live processes of a tree, and of the children its root reaped."""
    live: Dict[int, float]
    reaped: float

    @classmethod
    def read(cls, root: int) -> "TreeCpu":
        live = {}
        for pid in tree(root):
            try:
                live[pid] = cpu_seconds(pid)
            except FileNotFoundError:
                continue    # it ended just now: its time shows in ``reaped`` once it is waited for
        return cls(live, reaped_children_cpu_seconds(root))


def cpu_per_second(before: TreeCpu, after: TreeCpu, elapsed_s: float) -> Dict:
    """Per live pid (a process born in between counts from its start) and ``"reaped"``: the
    workers that ended in between, whose whole time moved into their parent's account."""
    rates = {pid: (seconds - before.live.get(pid, 0.0)) / elapsed_s for pid, seconds in after.live.items()}
    ended = sum(seconds for pid, seconds in before.live.items() if pid not in after.live)
    rates["reaped"] = (after.reaped - before.reaped - ended) / elapsed_s
    return rates


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

