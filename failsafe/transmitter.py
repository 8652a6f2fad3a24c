"""The failsafe: while bms_tx is not transmitting, the supervisor keeps the frames flowing.

It sends the last frame set bms_tx left in shared memory (on a hot standby that takes over
without fresh data of its own: the last frame set heard from the active device), made
conservative with age by the BMS engine's own stale policy (``bms.stale.degrade``), on the
same schedule, so the inverter sees no gap. It engages only while this device is active. It runs in a thread of the supervisor: starting the periodic tasks
waits for each ID's due time and must not hold up the watchdog.
"""
import threading
import time
from typing import Optional

import can

from bms.stale import degrade
from canbus.bus import open_bus
from canbus.cyclic import CyclicFrameSet, Schedule
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
        self.profile = profiles.get(cfg.inverter.profile)
        self.engaged_since: Optional[float] = None
        self._bus = self._open_bus()        # ready before it is needed: engaging must be quick
        self._sender: Optional[CyclicFrameSet] = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._release = threading.Event()
        self._after = 0.0
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

    def engage(self, after: float, source: Optional[dict] = None) -> None:
        """Start sending; each ID's first frame is its first due time after ``after``.

        ``source``: a frame set in the frames slot's form to send instead of bms_tx's last one
        (a hot standby taking over with the last frames it heard from the active device).
        """
        with self._lock:
            if self.engaged:
                return
            self.engaged_since = time.monotonic()
            self._after = after
            self.source = source
            self._schedule = (source or self.state.read("frames"))["schedule"]
            self._release.clear()
            self._publish(engaged=True)
        self.log.warning("failsafe engaged: sending %s, made conservative with age",
                         "the active device's last frame set" if source else "the last-known frame set")
        self._wake.set()

    def release(self) -> None:
        """Stop sending so that bms_tx can take the bus at the next due times."""
        with self._lock:
            if not self.engaged:
                return
            self._release.set()
            if self._sender is not None:
                self._sender.stop()
                self._sender = None
            self.engaged_since = None
            self._publish(engaged=False, released_at=time.monotonic())
        self.log.info("failsafe released: bms_tx transmits again")

    def _publish(self, engaged: bool, **extra) -> None:
        extra.update(engaged=engaged, since=self.engaged_since)
        if engaged:
            extra["schedule"] = self._schedule        # bms_tx continues this cadence when it takes over
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
        if self._bus is None:
            self._bus = open_bus(self.cfg, receive=False)
        with self._lock:
            if not self.engaged:
                return
            if self._sender is not None:
                self._sender.update(frames)
                self._publish(engaged=True)
                return
            sender = CyclicFrameSet(self._bus, Schedule.from_dict(self._schedule))
        if sender.start(frames, self._after, self._release.wait):
            with self._lock:
                if self.engaged and not self._release.is_set():
                    self._sender = sender
                    self._publish(engaged=True)
                    return
            sender.stop()

    def _open_bus(self):
        try:
            return open_bus(self.cfg, receive=False)
        except (can.CanError, OSError) as error:
            self.log.warning("failsafe cannot open %s yet (%s); it retries when needed", self.cfg.can.channel, error)
            return None

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=2 * self.profile.cycle_s)
        with self._lock:
            if self._sender is not None:
                self._sender.stop()
        if self._bus is not None:
            self._bus.shutdown()
