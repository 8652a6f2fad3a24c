"""web: the console a person opens in a browser (see web/server.py).

Isolated from the frames like every worker, and more: it runs at a lower CPU priority, bounds
its connections, and only reads shared memory and the status file; what it changes goes
through its own slot to bms_tx and the supervisor. Its main loop beats and adds a history
sample every ``web.history_interval_s``; the HTTP server runs in one thread (a thread per
request), which sleeps in select() while nobody asks anything.
"""
import os
import threading
import time

from web import auth, history
from web.server import Console, Server, bind_address, localsettings_writer

NICE = 10       # the frames' workers come first when the CPU is short
POLL_S = 0.5    # how often the idle server thread wakes to see whether it should stop


def run(worker) -> None:
    cfg = worker.cfg
    os.nice(NICE)
    ring = history.History(cfg.web.history_file, cfg.web.history_interval_s)
    console = Console(cfg, worker.state, worker.log, ring, localsettings_writer(worker.log))
    password_set = console.password_set
    host = bind_address(cfg, password_set)
    server = Server((host, cfg.web.port), console)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), name="web-server", daemon=True)
    thread.start()
    worker.log.info("web console at http://%s:%d/ (%s)", "127.0.0.1" if host in ("0.0.0.0", "") else host,
                    server.server_address[1],
                    ("changes need the password" + ("" if console.read_open else ", reading too"))
                    if password_set else "read only: set a password with `supervisor.py web-password` to change "
                                         "settings; without one it listens on this machine only")
    next_sample = time.monotonic()
    try:
        while not worker.stopping.is_set():
            if not thread.is_alive():
                raise RuntimeError("the web server thread ended")
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + cfg.web.history_interval_s
                ring.append(history.sample_from(worker.state.read("frames"), worker.state.read("battery"), time.time()))
            worker.beat()
            worker.wait(min(worker.beat_period_s, max(0.0, next_sample - time.monotonic())))
    finally:
        server.clients_stop.set()
        server.shutdown()
        server.server_close()
        ring.close()


def set_password(cfg, password: str) -> str:
    """``supervisor.py web-password``: store the hash; returns what to tell the user."""
    auth.store_password(cfg.web.password_file, password)
    return ("password stored (hashed) in %s; the console listens on %s after the next start"
            % (cfg.web.password_file, bind_address(cfg, True)))
