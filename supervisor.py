#!/usr/bin/env python3
"""pylon-venus: a Pylontech-compatible BMS on CAN for a Venus OS battery monitor.

Entry point and parent process. ``run`` creates the shared memory, spawns the workers
(can_rx, bms_tx, dbus_publisher, and in a simulation the simulator), restarts them with
backoff when they die or hang, keeps the frames flowing with the failsafe while bms_tx is
down, decides the hot-standby role (only the active device transmits), and writes the
status file. The other commands are tools around it.
"""
import collections
import gc
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time

import sdnotify

import config as config_module
from canbus.bus import kernel_cyclic
from canbus.recorder import BusRecorder
from failsafe.standby import ACTIVE, STANDBY, HotStandby
from failsafe.transmitter import FailsafeTransmitter
from health.check import problems, warnings
from health.process_metrics import ProcessMetrics
from health.status import build_status, format_status
from ipc.atomic_file import read_json
from ipc.flash_writer import FlashWriter
from ipc.log_sink import NonBlockingHandler
from ipc.private_dbus import PrivateDbus
from ipc.shared_state import SharedState, StateInUse
from protocol import profiles
from protocol.decode import decode_lines
from sources.venus_presence import dbus_publisher_wanted, venus_os_present
from tools.replay import run_cli
from version import VERSION
from workers.runtime import main as worker_main, preload as preload_workers

log = logging.getLogger("pylon-venus")
KILL_WAIT_S = 1.0       # how long a killed worker may take to end before it is reported and left
DUE_MARGIN_S = 0.01     # the loop wakes this long after a deadline, so it is past (timeouts are "older than")


class WorkerHandle:
    """One supervised worker: its process, restart history and state."""

    def __init__(self, name: str):
        self.name = name
        self.process = None
        self.state = "starting"          # running, backoff, fault, stopped
        self.restarts = 0
        self.recent = collections.deque()
        self.next_start = 0.0
        self.started_at = 0.0
        self.last_exit = None
        self.metrics = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Supervisor:
    def __init__(self, cfg, record_path=None):
        self.cfg = cfg
        self.started = time.monotonic()
        self.stopping = False
        self.ready_sent = False
        self.private_dbus = None
        self.recorder = None
        name = segment_name(cfg)
        self.state = SharedState.create(name)
        self.context = multiprocessing.get_context("fork")
        names = ["can_rx", "bms_tx"]
        publish, why_not = dbus_publisher_wanted(cfg, venus_os_present())
        if publish:
            names.append("dbus_publisher")
        else:
            log.warning("%s", why_not)
        if cfg.battery.source in ("vedirect", "mqtt"):      # the monitor read without Venus's D-Bus
            names.append("battery_reader")
        if cfg.simulation.inverter or cfg.battery.source == "simulated":
            names.append("simulator")
        if cfg.web.enabled:
            names.append("web")
        self.workers = collections.OrderedDict((name, WorkerHandle(name)) for name in names)
        preload_workers(names)
        self.restart_request = None         # the web console's last restart request, done
        self.notifier = systemd_notifier()
        self.status_writer = FlashWriter(log)       # a slow or full disk never holds up this loop
        if record_path:
            self.recorder = BusRecorder(cfg, record_path, log)
        if "simulator" in self.workers:
            self.private_dbus = PrivateDbus(name)
            self.private_dbus.export()
            log.info("simulation: private D-Bus at %s", self.private_dbus.address)
        self.failsafe = FailsafeTransmitter(cfg, self.state, log)
        self.standby = HotStandby(cfg, log) if cfg.standby.enabled else None
        self.role = STANDBY if self.standby is not None else ACTIVE
        self._publish_role(time.monotonic(), "hot standby: listening for an active device" if self.standby
                           else "the only device on the bus (hot standby off)")

    # -- workers -----------------------------------------------------------------
    def spawn(self, handle: WorkerHandle) -> None:
        handle.process = self.context.Process(target=worker_main, args=(handle.name, self.cfg, self.state.path),
                                              name=handle.name)
        # Every object so far into the collector's permanent generation: a worker's collections then
        # never write to the pages it shares with this process, which stay shared (copy-on-write).
        gc.freeze()
        handle.process.start()
        handle.started_at = time.monotonic()
        handle.state = "running"
        handle.metrics = ProcessMetrics(handle.process.pid)
        log.info("worker %s started (pid %d)", handle.name, handle.process.pid)

    def on_exit(self, handle: WorkerHandle, reason: str, silent_since: float) -> None:
        """A worker ended: let the failsafe cover bms_tx, then schedule the restart.

        ``silent_since`` is the last moment bms_tx is known to have sent the IDs its wire record
        says were on the wire; the failsafe continues every ID from where that record says it was
        last sent, so none is skipped (a duplicate is the lesser harm).
        """
        handle.last_exit = reason
        if handle.name == "bms_tx" and self.role == ACTIVE and self.failsafe.available():
            self.failsafe.engage(silent_since, writer=handle.process.pid)
        self._reap(handle)
        now = time.monotonic()
        wd = self.cfg.watchdog
        handle.recent.append(now)
        while handle.recent and now - handle.recent[0] > wd.restart_period_s:
            handle.recent.popleft()
        handle.restarts += 1
        if len(handle.recent) > wd.restart_intensity:
            handle.state = "fault"
            handle.next_start = now + wd.restart_backoff_max_s
            log.error("worker %s %s; %d restarts within %g s: fault, next try in %g s", handle.name, reason,
                      len(handle.recent), wd.restart_period_s, wd.restart_backoff_max_s)
            return
        delay = min(wd.restart_backoff_initial_s * 2 ** (len(handle.recent) - 1), wd.restart_backoff_max_s)
        handle.state = "backoff"
        handle.next_start = now + delay
        log.warning("worker %s %s; restart %d in %.1f s", handle.name, reason, handle.restarts, delay)

    def watch(self) -> None:
        """Reap dead workers, kill hung ones, start those whose backoff has passed."""
        if self.stopping:
            return      # under systemd every process gets the SIGTERM: exits now are the stop
        now = time.monotonic()
        wd = self.cfg.watchdog
        for handle in self.workers.values():
            if handle.state == "running":
                beat = self.state.read("heartbeat." + handle.name)
                beating = beat is not None and beat.get("pid") == handle.process.pid
                if not handle.process.is_alive():
                    self.on_exit(handle, "exited with code %s" % handle.process.exitcode,
                                 beat["t"] if beating else now)
                elif beating and now - beat["t"] > wd.heartbeat_timeout_s:
                    handle.process.kill()
                    # The kernel's broadcast manager kept a hung worker's frames going until the kill
                    # (or the end of their lease, which the failsafe reads from the wire record).
                    silent_since = time.monotonic() if kernel_cyclic(self.cfg) else beat["t"]
                    self.on_exit(handle, "hung (no heartbeat for %.2f s), killed" % (now - beat["t"]), silent_since)
                elif not beating and now - handle.started_at > wd.startup_timeout_s:
                    handle.process.kill()
                    self.on_exit(handle, "did not start within %g s, killed" % wd.startup_timeout_s, now)
            elif handle.state in ("starting", "backoff", "fault") and now >= handle.next_start:
                self.spawn(handle)
        self.restart_requested()
        self.arbitrate()
        self.hand_over()

    def restart_requested(self) -> None:
        """The web console asked to restart a worker in fault or backoff: at once, its count cleared."""
        request = (self.state.read("web") or {}).get("restart")
        if not request or request == self.restart_request:
            return
        self.restart_request = request
        handle = self.workers.get(request.get("worker"))
        if handle is not None and handle.state in ("fault", "backoff"):
            log.warning("worker %s: restart requested on the web console", handle.name)
            handle.recent.clear()
            self.spawn(handle)

    def arbitrate(self) -> None:
        """Hot standby: re-decide the role from what is on the bus; a change takes effect at once."""
        if self.standby is None:
            return
        now = time.monotonic()
        frames = self.state.read("frames") or {}
        change = self.standby.update(now, ready=frames.get("report") is not None,
                                     fresh=self._own_data_fresh(now), sending=self._sending())
        if change is None:
            lease = self.standby.answer_lease(now)      # polled: the right to answer, renewed
            if lease is not None:
                self._role_slot.update(lease)
                self.state.write("role", self._role_slot)
            return
        log.warning("hot standby: role %s: %s", change.role, change.reason)
        cadence = None
        if change.role == ACTIVE:
            cadence = self.standby.takeover_cadence(change)
            self._cover_takeover(cadence)
        else:
            self.failsafe.release()
        self.role = change.role
        self._publish_role(now, change.reason, cadence)

    def _cover_takeover(self, cadence) -> None:
        """Send the active device's last frames through the failsafe, on the takeover's cadence,
        until bms_tx has taken the bus with its own decision (``hand_over``): the failsafe's bus is
        open and its loop is ours, while bms_tx first has to see the role, open its bus and start
        its tasks, which took 2.4 s on a loaded machine (the frames' gap then broke takeover_s + one
        period)."""
        peer_frames = self.standby.observed_frame_set(cadence.t0)
        if peer_frames is not None:
            self.failsafe.engage(cadence.after, source=peer_frames)

    def _own_data_fresh(self, now: float) -> bool:
        battery = self.state.read("battery") or {}
        return battery.get("updated") is not None and now - battery["updated"] <= self.cfg.stale.hold_s

    def _sending(self) -> bool:
        """Our frames are on the bus: the failsafe's or bms_tx's."""
        bms = self.workers["bms_tx"]
        beat = self.state.read("heartbeat.bms_tx") or {}
        return self.failsafe.engaged or (bms.alive and beat.get("pid") == bms.process.pid
                                         and bool(beat.get("transmitting")))

    def _publish_role(self, now: float, reason: str, cadence=None) -> None:
        """``cadence``: where a takeover's frames go (bms_tx starts there, not later)."""
        self._role_slot = {"role": self.role, "since": now, "reason": reason,
                           "cadence": None if cadence is None else list(cadence)}
        if self.standby is not None:
            self._role_slot.update(self.standby.answer_lease(now, force=True) or {})
        self.state.write("role", self._role_slot)

    def hand_over(self) -> None:
        """Failsafe on while bms_tx cannot send; off as soon as a new bms_tx is ready (covering a
        takeover with the active device's last frames: once our own data is fresh too). Only an
        active device sends."""
        if self.role != ACTIVE:
            self.failsafe.release()
            return
        bms = self.workers["bms_tx"]
        beat = self.state.read("heartbeat.bms_tx") or {}
        ready = bms.state == "running" and beat.get("pid") == bms.process.pid and beat.get("ready")
        if self.failsafe.engaged and ready and self.failsafe.settled and (self.failsafe.source is None
                                                or self._own_data_fresh(time.monotonic())):
            self.failsafe.release()
        elif not self.failsafe.engaged and bms.state != "running" and self.failsafe.available():
            self.failsafe.engage(time.monotonic())

    # -- main loop ---------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):     # SIGHUP: a closed SSH session
            signal.signal(sig, self._on_signal)
        # The loop sleeps until something falls due, which may be seconds away: a signal's byte on
        # this pipe ends the sleep (a handler alone would not, the wait is resumed after it).
        woken, wake = os.pipe()
        for end in (woken, wake):
            os.set_blocking(end, False)
        signal.set_wakeup_fd(wake)
        log.info("pylon-venus %s: profile %s on %s %s, battery from %s%s", VERSION, self.cfg.inverter.profile,
                 self.cfg.can.interface, self.cfg.can.channel, self.cfg.battery.source,
                 ", simulated inverter" if self.cfg.simulation.inverter else "")
        next_status = 0.0
        try:
            while not self.stopping:
                sentinels = [h.process.sentinel for h in self.workers.values() if h.alive]
                if multiprocessing.connection.wait(sentinels + [woken], timeout=self._sleep_time(next_status)):
                    _drain(woken)
                self.watch()
                now = time.monotonic()
                if self.recorder is not None:
                    self.recorder.keep_open(now)
                if now >= next_status:
                    next_status = now + self.cfg.status.interval_s
                    self.write_status()
        finally:
            signal.set_wakeup_fd(-1)
            os.close(woken)
            os.close(wake)
            self.shutdown()
        return 0

    def _sleep_time(self, next_status: float) -> float:
        """Until the next thing falls due (a worker's death wakes the loop at once anyway): the
        status write, a heartbeat's or a start-up's deadline, a restart after its backoff, a
        standby's takeover (or its lease). So a steady daemon wakes once per status write, and a
        hung worker is still found when its heartbeat_timeout_s runs out. While anything is in
        transition (a worker starting or down, the failsafe sending, hot standby arbitrating) at
        most one heartbeat interval: a new bms_tx's first beat ends the failsafe at once."""
        wd = self.cfg.watchdog
        due = [next_status]
        steady = self.standby is None and not self.failsafe.engaged
        for handle in self.workers.values():
            if handle.state != "running":
                steady = False
                due.append(handle.next_start)
                continue
            beat = self.state.read("heartbeat." + handle.name)
            if beat is not None and beat.get("pid") == handle.process.pid:
                due.append(beat["t"] + wd.heartbeat_timeout_s)
            else:
                steady = False
                due.append(handle.started_at + wd.startup_timeout_s)
        now = time.monotonic()
        if not steady:
            due.append(now + wd.heartbeat_interval_s)
        wake_at = self.standby.wake_at() if self.standby is not None else None
        if wake_at is not None:
            due.append(wake_at)
        return max(0.0, min(due) - now + DUE_MARGIN_S)

    def _on_signal(self, signum, _frame) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True

    def shutdown(self) -> None:
        for handle in self.workers.values():
            if handle.alive:
                handle.process.terminate()
        deadline = time.monotonic() + 3
        self._join(self.workers["bms_tx"], deadline)
        self.failsafe.close()
        if self.standby is not None:
            self.standby.close()        # our frames have stopped: a hot-standby peer takes over at once
        for handle in self.workers.values():
            self._join(handle, deadline)
        if self.recorder is not None:
            self.recorder.close()
        if self.private_dbus is not None:
            self.private_dbus.stop()
        self.state.unlink()
        self.state.close()
        log.info("stopped")

    @classmethod
    def _join(cls, handle: WorkerHandle, deadline: float) -> None:
        """Wait for a stopping worker until ``deadline``, then kill it."""
        if handle.process is not None:
            handle.process.join(max(0.0, deadline - time.monotonic()))
            if handle.process.is_alive():
                log.warning("worker %s did not stop; killed", handle.name)
                handle.process.kill()
                cls._reap(handle)
        handle.state = "stopped"

    @staticmethod
    def _reap(handle: WorkerHandle) -> None:
        """Wait a bounded time for a dead or killed worker to end. One that survives SIGKILL is in
        uninterruptible sleep (a stalled SD card, a wedged USB CAN driver): it is reported and
        left, so neither the loop nor a stop waits for it."""
        handle.process.join(KILL_WAIT_S)
        if handle.process.is_alive():
            log.error("worker %s (pid %d) did not end after SIGKILL (uninterruptible sleep?): left behind",
                      handle.name, handle.process.pid)

    # -- health ------------------------------------------------------------------
    def write_status(self) -> None:
        status = build_status(self, VERSION)
        self.status_writer.submit(self.cfg.status.file, json.dumps(status, indent=1), "the status file")
        if self.notifier is None:
            return
        serving = bool(status["frames"]) or self.role == STANDBY      # a standby serves by listening
        if serving and not self.ready_sent:
            self.notifier.notify("READY=1")
            self.ready_sent = True
        reasons = problems(status, self.cfg)
        self.notifier.notify("STATUS=%s" % ("; ".join(reasons) if reasons else "healthy, sending %d frames"
                                            % len(status["frames"]) if status["frames"] else "healthy, standby"))
        if serving or not self.ready_sent:
            self.notifier.notify("WATCHDOG=1")


def _drain(fd: int) -> None:
    """Empty the signal wakeup pipe (its bytes only say that a signal came)."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def segment_name(cfg) -> str:
    """Shared memory is named after the CAN bus (and the hot-standby node on it), so one bus has
    one transmitting instance however its configuration's paths are written or where it runs."""
    bus = [cfg.can.interface, cfg.can.channel]
    if cfg.can.interface == "udp_multicast":
        bus.append(str(cfg.can.udp_port))
    if cfg.standby.enabled:
        bus.append("node %d" % cfg.standby.node_id)
    return hashlib.sha1(" ".join(bus).encode()).hexdigest()[:12]


def systemd_notifier():
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    return sdnotify.SystemdNotifier()


def setup_logging(level: str) -> None:
    """Every process (the forked workers inherit the handler) writes its own lines to stdout,
    never waiting for it: a stalled log reader costs lines, not the frames or a stop."""
    handler = NonBlockingHandler(1)         # stdout, even when sys.stdout is None (started with it closed)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# -- commands --------------------------------------------------------------------
def cmd_run(args, cfg) -> int:
    setup_logging(cfg.logging.level)
    try:
        supervisor = Supervisor(cfg, args.record)
    except StateInUse as error:
        log.error("%s", error)
        return 1
    code = supervisor.run()
    if any(handle.alive for handle in supervisor.workers.values()):
        # multiprocessing joins every child at exit: one in uninterruptible sleep would hold us forever
        logging.shutdown()
        os._exit(code)
    return code


def cmd_status(args, cfg) -> int:
    status = read_json(cfg.status.file)
    if status is None:
        print("no status file at %s: pylon-venus is not running" % cfg.status.file)
        return 1
    print(json.dumps(status, indent=1) if args.json else format_status(status, cfg))
    return 0


def cmd_check(args, cfg) -> int:
    try:
        status = read_json(cfg.status.file)
    except (OSError, ValueError) as error:
        print("UNHEALTHY: the status file %s cannot be read: %s" % (cfg.status.file, error))
        return 1
    reasons = problems(status, cfg)
    for reason in reasons:
        print("UNHEALTHY: %s" % reason)
    for warning in warnings(status) if status is not None else ():
        print("WARNING: %s" % warning)
    if not reasons:
        print("healthy")
    return 1 if reasons else 0


def cmd_decode(args, cfg) -> int:
    profile = profiles.get(args.profile or cfg.inverter.profile)
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")   # bytes: a bad line is one error
    except OSError as error:
        print("decode: cannot read %s: %s" % (args.file, error.strerror), file=sys.stderr)
        return 1
    with source:
        for record in decode_lines(source, profile):
            print(json.dumps(record))
    return 0


def cmd_web_password(args, cfg) -> int:
    import getpass
    from workers.web import set_password
    password = getpass.getpass("web console password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    try:
        print(set_password(cfg, password))
    except (ValueError, OSError) as error:
        print("web-password: %s" % error, file=sys.stderr)
        return 1
    return 0


def cmd_replay(args, cfg) -> int:
    return run_cli(args.trace, cfg, sys.stdout, sys.stderr, plot_path=args.plot)


def parse_args(argv):
    parser, command = config_module.command_parser("supervisor.py", __doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=VERSION)

    run = command("run", "run the daemon in the foreground")
    run.add_argument("--record", metavar="FILE", help="record every frame on the bus (candump -l format)")
    status = command("status", "print the status file for a person")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    command("check", "exit 0 when healthy, 1 with the reasons otherwise")
    decode = command("decode", "decode a candump -l log to one JSON object per frame")
    decode.add_argument("--profile", choices=config_module.PROFILES, help="inverter profile (default: the config's)")
    decode.add_argument("file", metavar="FILE", help="candump -l log, - for stdin")
    command("web-password", "set the web console's password (read from stdin; stored hashed)")
    replay = command("replay", "feed a recorded battery trace through the BMS engine")
    replay.add_argument("--plot", metavar="OUT.png", help="also draw the trace (needs matplotlib)")
    replay.add_argument("trace", metavar="TRACE.csv")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = config_module.load_or_exit(args.config, writes_files=args.command == "run")
    handler = {"run": cmd_run, "status": cmd_status, "check": cmd_check,
               "decode": cmd_decode, "replay": cmd_replay, "web-password": cmd_web_password}[args.command]
    return handler(args, cfg)


if __name__ == "__main__":
    sys.exit(main())
