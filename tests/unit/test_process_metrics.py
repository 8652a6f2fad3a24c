"""CPU and memory of a process, with psutil and with the /proc fallback, agree."""
import os
import time

from health import process_metrics
from health.process_metrics import ProcessMetrics


def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_psutil_and_proc_fallback_measure_the_same_process(monkeypatch):
    with_psutil = ProcessMetrics(os.getpid())
    monkeypatch.setattr(process_metrics, "psutil", None)
    from_proc = ProcessMetrics(os.getpid())
    assert from_proc._process is None
    from_proc.read()                      # the first /proc reading only sets the baseline
    burn(0.3)
    a, b = with_psutil.read(), from_proc.read()
    assert a["rss_bytes"] > 10 * 1024 * 1024
    assert abs(a["rss_bytes"] - b["rss_bytes"]) < 0.2 * a["rss_bytes"]
    assert a["cpu_percent"] > 30 and b["cpu_percent"] > 30


def test_a_vanished_process_reads_as_unknown(monkeypatch):
    monkeypatch.setattr(process_metrics, "psutil", None)
    metrics = ProcessMetrics(2 ** 22 + 12345)
    assert metrics.read() == {"rss_bytes": None, "cpu_percent": None}
