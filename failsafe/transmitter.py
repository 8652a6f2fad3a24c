"""The failsafe: while bms_tx is not transmitting, the supervisor keeps the frames flowing.

It sends the last frame set bms_tx left in shared memory (on a hot standby that takes over
without fresh data of its own: the last frame set heard from the active device), made
conservative with age by the BMS engine's own stale policy (``bms.stale.degrade``), on the
same schedule, so the inverter sees no gap. It engages only while this device is active. It runs in a thread of the supervisor: starting the periodic tasks
waits for each ID's due time and must not hold up the watchdog.

The hand-over is exact both ways: on engaging it continues each ID from where bms_tx's wire
record (in the frames slot) says it was last sent, and on release it publishes its own wire
record, from which bms_tx continues.
"""
import threading
import time
from typing import List, Optional

import can

from bms.stale import degrade
from canbus.bus import open_bus
from canbus.cyclic import CyclicFrameSet, Schedule, known_sent_until
from canbus.responder import PollResponder, answer_allowed
from protocol import profiles
from protocol.report import from_json, to_json


def data_age(frames_slot: dict, now: float) -> float:
    """Age of the battery data behind the last decision, growing while nobody decides."""
    return (frames_slot.get("data_age_s") or 0.0) + max(0.0, now - frames_slot["written"])


class FailsafeTransmitter:
    def __init__(self, cfg, state, log):
        self.cfg = cfg
        self.state = state
        self.log = log
        self.profile = profiles.get(cfg.inverter.profile).for_pack(cfg.battery.cell_count)
        self._answering = None      # polled profiles: the degraded report the polls are answered from
        self._poll_stats: Optional[dict] = None     # polled profiles: the last responder's, once released
        self.engaged_since: Optional[float] = None
        self._bus = self._open_bus()        # ready before it is needed: engaging must be quick
        self._sender: Optional[CyclicFrameSet] = None
        self._starting: Optional[CyclicFrameSet] = None      # the sender whose start is under way
        self._lock = threading.RLock()     # a stopping sender publishes its wire record from within
        self._wake = threading.Event()
        self._release = threading.Event()
        self._sent_until: List[float] = []     # per ID, where the previous sender left off
        self._wire: Optional[dict] = None        # the wire record of the last time it sent
        self.source: Optional[dict] = None       # None: bms_tx's last frame set
        self._schedule: Optional[dict] = None
        self._thread = threading.Thread(target=self._run, name="failsafe", daemon=True)
        self._closing = False
        self._publish(engaged=False)
        self._thread.start()

    @property
    def engaged(self) -> bool:
        return self.engaged_since is not None

    @property
    def settled(self) -> bool:
        """Every ID is on its cadence (or starting has failed for two cycles): only then can
        bms_tx take over at the due times after the release without skipping one."""
        return self._sender is not None or (
            self.engaged and time.monotonic() - self.engaged_since > 2 * self.profile.cycle_s)

    def available(self) -> bool:
        """There is a last-known frame set to fall back on."""
        slot = self.state.read("frames") or {}
        return slot.get("report") is not None and slot.get("schedule") is not None

    def engage(self, after: float, source: Optional[dict] = None, writer: Optional[int] = None) -> None:
        """Start sending, continuing each ID from where its last sender left off.

        ``after``: the last moment the last sender is known to have sent (a dead bms_tx: its
        last heartbeat). ``writer``: the pid of that bms_tx; its wire record in the frames slot
        then says which IDs were on the wire until ``after`` and up to when each of the others
        was sent, so a frame due between its last heartbeat and its next task is not skipped.
        ``source``: a frame set in the frames slot's form to send instead of bms_tx's last one
        (a hot standby taking over with the last frames it heard from the active device); each
        ID then continues after ``after``.
        """
        with self._lock:
            if self.engaged:
                return
            self.engaged_since = time.monotonic()
            slot = source or self.state.read("frames")
            self._sent_until = self._continue_from(slot, after, writer) if source is None else [after] * len(
                slot["schedule"]["ids"])
            self.source = source
            self._schedule = slot["schedule"]
            self._release.clear()
            self._publish(engaged=True)
        self.log.warning("failsafe engaged: sending %s, made conservative with age",
                         "the active device's last frame set" if source else "the last-known frame set")
        self._wake.set()

    def _continue_from(self, slot: dict, after: float, writer: Optional[int]) -> List[float]:
        """Per ID, the time up to which bms_tx's frames slot and our own last sending say it was
        sent. An ID on the wire counts up to ``after`` only when the record is ``writer``'s own:
        another bms_tx's record (``writer`` died before it wrote one) counts only as far as its
        confirmed frames."""
        ids = slot["schedule"]["ids"]
        known = [known_sent_until(slot.get("wire"), after if slot.get("pid") == writer else None),
                 known_sent_until(self._wire)]
        known = [until for until in known if until is not None and len(until) == len(ids)]
        if not known:
            return [after] * len(ids)
        return [max(values) for values in zip(*known)]

    def release(self) -> None:
        """Stop sending so that bms_tx can take the bus at the next due times; the failsafe slot
        then says up to when each ID was sent, so bms_tx continues each one from there."""
        with self._lock:
            if not self.engaged:
                return
            self._release.set()
            self._starting = None
            if self._sender is not None:
                self._sender.stop()
                if isinstance(self._sender, PollResponder):
                    self._poll_stats = self._sender.stats()
                self._wire = self._sender.wire
                self._sender = None
            self.engaged_since = None
            self._publish(engaged=False, released_at=time.monotonic())
        self.log.info("failsafe released: bms_tx transmits again")

    def _publish(self, engaged: bool, **extra) -> None:
        extra.update(engaged=engaged, since=self.engaged_since)
        if self._schedule is not None:
            extra["schedule"] = self._schedule        # bms_tx continues this cadence when it takes over
            extra["wire"] = self._wire
        if engaged and self._sender is not None:
            extra["frames"] = self._frames_json
            extra["report"] = self._report_json
        self.state.write("failsafe", extra)

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self.profile.cycle_s)
            self._wake.clear()
            if self._closing or not self.engaged:
                continue
            try:
                self._send()
            except Exception:
                self.log.exception("failsafe could not send; retrying next cycle")

    def _send(self) -> None:
        slot = self.source or self.state.read("frames")
        report = degrade(from_json(slot["report"]), data_age(slot, time.monotonic()), self.cfg)
        frames = self.profile.encode(report, self.cfg.inverter.manufacturer)
        self._frames_json = [[f.arbitration_id, f.data.hex(), f.is_extended_id] for f in frames]
        self._report_json = to_json(report)
        if self.profile.transport == "polled":
            self._answer_polls(report)
            return
        if self._bus is None:
            self._bus = open_bus(self.cfg, receive=False)
        with self._lock:
            if not self.engaged:
                return
            if self._sender is not None:
                if self._sender.update(frames):
                    self._wire = self._sender.wire      # its lag follows the frames received
                    self._publish(engaged=True)
                    return
                # Its lease lapsed (this process was stopped): start again from where it left off.
                self._wire = self._sender.wire
                self._sent_until = known_sent_until(self._wire)
                self._sender = None
            sender = CyclicFrameSet(self._bus, Schedule.from_dict(self._schedule),
                                    paced=self.profile.min_frame_spacing_s > 0,
                                    on_change=lambda: self._on_wire_change(sender), lease_s=self.cfg.can.frame_lease_s)
            self._starting = sender
        if sender.start(frames, self._sent_until, self._release.wait):
            with self._lock:
                if self.engaged and not self._release.is_set():
                    self._sender = sender
                    self._publish(engaged=True)
                    return
            sender.stop()

    def _answer_polls(self, report) -> None:
        """A polled profile (Pylon HV): while engaged, the inverter's requests are answered with the
        last-known report made conservative with age (refreshed each cycle), never after release."""
        self._answering = report
        with self._lock:
            if not self.engaged:
                return
            if self._sender is None:
                self._sender = PollResponder(self.cfg, self.profile, lambda: self._answering, self.log,
                                             may_answer=self._holds_bus)
            self._publish(engaged=True)

    def poll_stats(self) -> Optional[dict]:
        """Polled profiles: the requests and answers of the responder engaged now, else of the last."""
        sender = self._sender
        return sender.stats() if isinstance(sender, PollResponder) else self._poll_stats

    def _holds_bus(self) -> bool:
        """Asked at each poll, from the responder's thread: engaged, and (hot standby) within the lease."""
        return (self.engaged and not self._release.is_set()
                and answer_allowed(self.state.read("role"), time.monotonic()))

    def _on_wire_change(self, sender: CyclicFrameSet) -> None:
        """Publish the starting sender's wire record and schedule while it still holds the bus
        (not an aborted start's, which may end after a new engagement)."""
        with self._lock:
            if sender is self._starting and self.engaged and not self._release.is_set():
                self._wire = sender.wire
                self._schedule = sender.schedule.as_dict()
                self._publish(engaged=True)

    def _open_bus(self):
        try:
            return open_bus(self.cfg, receive=False)
        except (can.CanError, OSError) as error:
            self.log.warning("failsafe cannot open %s yet (%s); it retries when needed", self.cfg.can.channel, error)
            return None

    def close(self) -> None:
        self._closing = True
        self._release.set()         # a start under way ends, and stops what it started
        self._wake.set()
        self._thread.join(timeout=2 * self.profile.cycle_s)
        with self._lock:
            if self._sender is not None:
                self._sender.stop()
        if self._bus is not None:
            self._bus.shutdown()
