"""What every worker process shares: its config, the shared state, its heartbeat, a stop flag.

The supervisor forks each worker into ``main``; logging handlers are inherited from the
parent (multiprocessing-logging), so a worker only logs. A worker beats from its own main
loop, so a hung loop stops the heartbeat even while the process lives.
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

WORKERS = ("can_rx", "bms_tx", "dbus_publisher", "simulator")


class Worker:
    def __init__(self, name: str, cfg, state: SharedState):
        self.name = name
        self.cfg = cfg
        self.state = state
        self.log = logging.getLogger("pylon-venus.%s" % name)
        self.stopping = threading.Event()
        self._parent = os.getppid()

    def beat(self, **info) -> None:
        """Tell the supervisor this worker's loop is alive; stop when the supervisor is gone."""
        if os.getppid() != self._parent:
            self.log.error("supervisor %d is gone; stopping", self._parent)
            self.stopping.set()
        info.update(pid=os.getpid(), t=time.monotonic())
        self.state.write("heartbeat." + self.name, info)

    def wait(self, seconds: float) -> bool:
        """Sleep until the next beat is due; True when the worker should stop."""
        return self.stopping.wait(seconds)


def main(name: str, cfg, state_path: str) -> None:
    """Process entry point: run ``workers.<name>.run`` until SIGTERM, log a crash once."""
    die_with_parent(signal.SIGKILL)      # no orphan survives a kill -9 of the supervisor
    worker = Worker(name, cfg, SharedState.attach(state_path))
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
