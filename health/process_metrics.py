"""CPU and memory of a process: psutil where installed, /proc where not."""
import os
import time
from typing import Dict, Optional

try:
    import psutil
except ImportError:  # pragma: no cover - Venus images without psutil
    psutil = None

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ProcessMetrics:
    """Tracks one pid; CPU percent is measured between two calls of ``read``."""

    def __init__(self, pid: int):
        self.pid = pid
        self._process = psutil.Process(pid) if psutil else None
        self._last = None  # (wall time, cpu seconds) for the /proc fallback
        if self._process is not None:
            self._process.cpu_percent(None)

    def read(self) -> Dict[str, Optional[float]]:
        try:
            if self._process is not None:
                return {"rss_bytes": self._process.memory_info().rss,
                        "cpu_percent": self._process.cpu_percent(None)}
            return self._read_proc()
        except (OSError, ValueError) if psutil is None else (OSError, psutil.Error):
            return {"rss_bytes": None, "cpu_percent": None}

    def _read_proc(self) -> Dict[str, Optional[float]]:
        with open("/proc/%d/stat" % self.pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS   # utime + stime
        with open("/proc/%d/statm" % self.pid) as handle:
            rss = int(handle.read().split()[1]) * _PAGE_SIZE
        now = time.monotonic()
        percent = None
        if self._last is not None and now > self._last[0]:
            percent = 100.0 * (cpu - self._last[1]) / (now - self._last[0])
        self._last = (now, cpu)
        return {"rss_bytes": rss, "cpu_percent": percent}
