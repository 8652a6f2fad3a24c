"""What every worker process shares: its config, the shared state, its heartbeat, a stop flag.

The supervisor forks each worker into ``main``; the logging handler is inherited from the
parent and writes the worker's lines itself, never waiting (ipc/log_sink.py). A worker beats
from its own main loop, so a hung loop stops the heartbeat even while the process lives.
"""
import importlib
import logging
import os
import signal
import sys
import threading
import time

from ipc.linux import die_with_parent
from ipc.shared_state import SharedState

WORKERS = ("can_rx", "bms_tx", "dbus_publisher", "battery_reader", "simulator", "web")
BEATS_PER_TIMEOUT = 4
# Workers whose code loads neither D-Bus nor GLib (only the project's modules and python-can): the
# supervisor imports them before it forks, so their code is shared with the worker, not copied into
# it (an import in a forked process also writes to pages of the import machinery that would stay
# shared). The others load dbus-python or GLib, whose state no fork may copy: after the fork only.
PRELOADED = ("can_rx", "bms_tx")


class Worker:
    def __init__(self, name: str, cfg, state: SharedState):
        self.name = name
        self.cfg = cfg
        self.state = state
        self.log = logging.getLogger("pylon-venus.%s" % name)
        self.stopping = threading.Event()
        self._parent = os.getppid()

    @property
    def beat_period_s(self) -> float:
        """How often a worker with nothing else due beats: four beats per heartbeat timeout, so a
        late beat or two never gets it killed, and no more wakes than that (with hot standby on,
        bms_tx, which follows the role, beats every heartbeat_interval_s)."""
        wd = self.cfg.watchdog
        return max(wd.heartbeat_interval_s, wd.heartbeat_timeout_s / BEATS_PER_TIMEOUT)

    def beat(self, **info) -> None:
        """Tell the supervisor this worker's loop is alive; stop when the supervisor is gone."""
        if os.getppid() != self._parent:
            self.log.error("supervisor %d is gone; stopping", self._parent)
            self.stopping.set()
        info.update(pid=os.getpid(), t=time.monotonic())
        failures = sum(self.state.read_failures.values())
        if failures:
            info["shm_read_failures"] = failures      # reads answered with the last good value
        self.state.write("heartbeat." + self.name, info)

    def wait(self, seconds: float) -> bool:
        """Sleep until the next beat is due; True when the worker should stop."""
        return self.stopping.wait(seconds)


def preload(names) -> None:
    """Import the code of the workers in ``names`` that may be imported before the fork."""
    for name in names:
        if name in PRELOADED:
            importlib.import_module("workers." + name)


def main(name: str, cfg, state_path: str) -> None:
    """Process entry point: run ``workers.<name>.run`` until SIGTERM, log a crash once."""
    die_with_parent(signal.SIGKILL)      # no orphan survives a kill -9 of the supervisor
    worker = Worker(name, cfg, SharedState.attach(state_path))
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    for sig in (signal.SIGINT, signal.SIGHUP):      # sent to the whole group: the supervisor stops us
        signal.signal(sig, signal.SIG_IGN)
    code = 0
    try:
        importlib.import_module("workers." + name).run(worker)
    except Exception:
        worker.log.exception("%s crashed", name)
        code = 1
    finally:
        worker.state.close()
        logging.shutdown()
    sys.exit(code)
