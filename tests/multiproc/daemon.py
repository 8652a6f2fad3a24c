"""Run the real daemon (`supervisor.py run`) in a subprocess with its own bus, files and D-Bus."""
import json
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from protocol import profiles  # noqa: E402
from protocol.decode import decode_lines  # noqa: E402


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


class Daemon:
    """One simulation: the shipped defaults plus ``overrides``, on a udp port of its own."""

    def __init__(self, folder, record=True, **overrides):
        self.folder = str(folder)
        self.record = record
        self.status_path = os.path.join(self.folder, "status.json")
        self.record_path = os.path.join(self.folder, "bus.log")
        self.log_path = os.path.join(self.folder, "daemon.log")
        sections = {
            "can": {"udp_port": random.randint(20000, 60000), "channel": "239.74.%d.%d" % (
                random.randint(1, 254), random.randint(1, 254))},
            "status": {"file": self.status_path, "interval_s": 0.5},
            "state": {"charge_file": os.path.join(self.folder, "charge-state.json")},
            "venus": {"dvcc_file": os.path.join(self.folder, "dvcc-limits.json")},
            # the web console on a port and files of its own, so simulations can run side by side
            "web": {"port": random.randint(20000, 60000), "history_file": os.path.join(self.folder, "history.bin"),
                    "password_file": os.path.join(self.folder, "web-password.json"),
                    "log_file": self.log_path},
        }
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        self.config_path = os.path.join(self.folder, "config.toml")
        with open(self.config_path, "w") as handle:
            for section, keys in sections.items():
                handle.write("[%s]\n" % section)
                for key, value in keys.items():
                    handle.write("%s = %s\n" % (key, toml_value(value)))
        self.process = None

    def start(self):
        self._log = open(self.log_path, "a")
        record = ["--record", self.record_path] if self.record else []
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "supervisor.py"), "run", "--config", self.config_path] + record,
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def command(self, *args):
        return subprocess.run([sys.executable, os.path.join(ROOT, "supervisor.py")] + list(args) +
                              ["--config", self.config_path], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=60)

    def status(self):
        try:
            with open(self.status_path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def wait_for(self, predicate, timeout=60.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and predicate(status):
                return status
            if self.process.poll() is not None:
                raise AssertionError("daemon exited with %s while waiting for %s:\n%s"
                                     % (self.process.returncode, what, self.log()))
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s; last status:\n%s\nlog:\n%s"
                             % (what, json.dumps(self.status(), indent=1), self.log()[-4000:]))

    def wait_sending(self, timeout=60.0):
        return self.wait_for(lambda s: s["pid"] == self.process.pid and s["frames"] and s["workers"]["bms_tx"]["alive"]
                             and not s["failsafe"]["engaged"], timeout, "frames on the bus")

    def worker_pid(self, name):
        return self.status()["workers"][name]["pid"]

    def log(self):
        with open(self.log_path) as handle:
            return handle.read()

    def frames(self, frame_id=None):
        """Every recorded frame, decoded, optionally only those with ``frame_id``."""
        with open(self.record_path) as handle:
            records = [r for r in decode_lines(handle, profiles.get(self.profile)) if "error" not in r]
        return [r for r in records if frame_id is None or r["id"] == frame_id]

    @property
    def profile(self):
        import config
        return config.load(self.config_path).inverter.profile

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the daemon did not stop within %g s after %s" % (timeout, sig))
        if getattr(self, "_log", None):
            self._log.close()
        return self.process.returncode


def gaps(records):
    """Intervals between consecutive frames of one kind."""
    times = [r["t"] for r in records]
    return [b - a for a, b in zip(times, times[1:])]


def signal_quietly(pid, sig):
    """``os.kill``, except that a process that has ended meanwhile is no error (a transient child
    of a tree, a worker the supervisor already killed as hung)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def freeze_tree(pid):
    """SIGSTOP ``pid`` and every descendant, parent first; the pids frozen, for ``thaw``."""
    tree = [pid] + sorted(children_of(pid))
    for member in tree:
        signal_quietly(member, signal.SIGSTOP)
    return tree


def thaw(tree):
    for member in tree:
        signal_quietly(member, signal.SIGCONT)


def children_of(pid):
    """Every live descendant of ``pid``, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def tree_cpu_seconds(pid, children=True):
    """CPU time (user + system, seconds) used so far by ``pid`` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in {pid} | (children_of(pid) if children else set()):
        try:
            with open("/proc/%d/stat" % process) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wait_until(probe, what: str, timeout_s: float = 20.0):
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %g s waiting for %s (last: %r)" % (timeout_s, what, value))
        time.sleep(0.02)
