"""can_rx: listen to the inverter and publish what it says.

Its own socket carries kernel filters for the inverter's IDs and, without hot standby, for
our own BMS IDs, so a bus full of foreign traffic costs nothing. A python-can Notifier
delivers frames; the main loop only beats, ages the link and publishes. A frame too short for
its ID, or an error frame, is counted and ignored.

A frame with one of our own BMS IDs is never read as the inverter's. It is ours when its
data is what this device sends (the "frames" slot of bms_tx, the "failsafe" slot while the
failsafe sends): the kernel (SocketCAN loopback) and the virtual bus deliver the frames of our
other sockets to this one, so only the data tells them apart. Any other frame with our IDs
comes from a second transmitter on the bus (another BMS, a second device without hot standby),
which makes the inverter alternate between two decisions: ``OwnIdWatch`` reports it in the
slot (``foreign_transmitter``), the status, ``check`` and the log. With hot standby on, our
IDs on the bus are the arbitration's business and this watch is off. A second transmitter
sending byte for byte what we send is not told apart: the inverter then sees one decision.

An inverter's command in force (Luxpower 0x300 "shut the battery down") lives in the
"inverter" slot, not only in this process: a restarted can_rx takes it, the link's last-seen
time and the last values back from the slot, so a kill -9 releases nothing. A shutdown command
ends when the inverter clears it (0x300 with bit 0 = 0) or when the inverter link goes down (no
frame from the inverter for ``inverter.keepalive_timeout_s``): a silent inverter commands
nothing, and one that still wants the battery off repeats its 0x300. With the supervision off
(timeout 0) only the inverter's clear ends it (or a restart of the whole daemon).
"""
import collections
import threading
import time
from typing import Dict, Optional, Tuple

import can

from canbus.bus import open_bus, to_frame
from protocol import DecodeError, profiles
from protocol.inverter import standard_filter

# A frame counts as ours when its data was in our slots within this many of our cycles (plus a
# second) of its arrival: bms_tx changes the data and writes the slot within one cycle, and the
# slots are read every PUBLISH_S.
OWN_MATCH_CYCLES = 2
PUBLISH_S = 0.5
# a second transmitter is reported from its FOREIGN_MIN_FRAMES-th frame (one stray frame is no
# transmitter), until none was heard for FOREIGN_HOLD_S
FOREIGN_MIN_FRAMES = 3
FOREIGN_HOLD_S = 10.0


class OwnIdWatch:
    """Tells our own BMS frames from a second transmitter's by their data (see the module doc)."""

    def __init__(self, profile, log):
        self.ids = frozenset(profile.frame_ids)
        self.window_s = OWN_MATCH_CYCLES * profile.cycle_s + 1.0
        self.log = log
        self.lock = threading.Lock()
        self.heard_frames: collections.deque = collections.deque()      # (time, id, data), not yet judged
        self.sent: Dict[Tuple[int, bytes], Tuple[float, float]] = {}    # (id, data) -> first, last seen in a slot
        self.foreign: Optional[dict] = None         # {"ids", "count", "first", "last"} of the current episode
        self.reported = False
        self.observed_from: Optional[float] = None      # start of the current unbroken run of observations
        self.observed_at: Optional[float] = None

    def filters(self):
        return [standard_filter(frame_id) for frame_id in sorted(self.ids)]

    def heard(self, arbitration_id: int, data: bytes, received: float, now: float) -> None:
        """A frame with one of our IDs arrived (Notifier thread); ``received``: its wall-clock
        timestamp, so a frame that waited in the socket while this process stalled keeps its time."""
        at = min(now, received - (time.time() - now)) if received else now
        with self.lock:
            self.heard_frames.append((at, arbitration_id, bytes(data)))

    def observe(self, slots, now: float) -> None:
        """What our slots say this device sends now (``slots``: the "frames" and "failsafe" slots).
        After a gap in these observations (a stalled process) earlier frames cannot be judged."""
        if self.observed_at is None or now - self.observed_at > 2 * PUBLISH_S + 0.5:
            self.observed_from = now
        self.observed_at = now
        for slot in slots:
            for arbitration_id, data, _ in (slot or {}).get("frames") or ():
                key = (arbitration_id, bytes.fromhex(data))
                first, _ = self.sent.get(key, (now, now))
                self.sent[key] = (first, now)
        for key in [key for key, (_, last) in self.sent.items() if now - last > 2 * self.window_s]:
            del self.sent[key]

    def judge(self, now: float) -> Optional[dict]:
        """Judge the frames whose window has passed; the foreign transmitter in force, for the slot."""
        with self.lock:
            while self.heard_frames and now - self.heard_frames[0][0] >= self.window_s:
                at, arbitration_id, data = self.heard_frames.popleft()
                if self.observed_from is None or at < self.observed_from:
                    continue                    # sent while we were not watching our slots: unknown
                first, last = self.sent.get((arbitration_id, data), (None, None))
                if first is None or not first - self.window_s <= at <= last + self.window_s:
                    self._foreign_frame(arbitration_id, data, at)
        if self.foreign is not None and now - self.foreign["last"] > FOREIGN_HOLD_S:
            if self.reported:
                self.log.warning("the second transmitter of our BMS IDs is silent again (%d frames of %s)",
                                 self.foreign["count"], ", ".join(self.foreign["ids"]))
            self.foreign, self.reported = None, False
        if self.foreign is None or self.foreign["count"] < FOREIGN_MIN_FRAMES:
            return None
        if not self.reported:
            self.reported = True
            self.log.error("another device sends our BMS IDs %s with other data: the inverter alternates between "
                           "two decisions; remove or reconfigure it, or run both with [standby] enabled",
                           ", ".join(self.foreign["ids"]))
        return {"ids": self.foreign["ids"], "count": self.foreign["count"],
                "first_seen_age_s": now - self.foreign["first"], "last_seen_age_s": now - self.foreign["last"]}

    def _foreign_frame(self, arbitration_id: int, data: bytes, at: float) -> None:
        if self.foreign is None:
            self.foreign = {"ids": [], "count": 0, "first": at, "last": at}
        name = "0x%03X" % arbitration_id
        if name not in self.foreign["ids"]:
            self.foreign["ids"] = sorted(self.foreign["ids"] + [name])
        self.foreign["count"] += 1
        self.foreign["last"] = max(self.foreign["last"], at)


def _seen_at(previous: dict, age_key: str) -> Optional[float]:
    """The time.monotonic() (one clock for every process) a previous can_rx last saw something."""
    age, written = previous.get(age_key), previous.get("written")
    return None if age is None or written is None else written - age


class InverterListener(can.Listener):
    """Decodes inverter frames into the latest inverter state; ``previous``: the "inverter" slot
    a previous can_rx left, whose command in force, last-seen times and values carry on."""

    def __init__(self, profile, log, previous: Optional[dict] = None, own: Optional[OwnIdWatch] = None):
        previous = previous or {}
        self.profile = profile
        self.own = own
        self.log = log
        self.lock = threading.Lock()
        self.fields = dict(previous.get("fields") or {})
        self.last_seen = _seen_at(previous, "last_seen_age_s")
        self.gx_seen = _seen_at(previous, "gx_seen_age_s")
        self.shutdown_since = (previous.get("shutdown_since") or previous.get("written")
                               if previous.get("shutdown_requested") else None)
        if self.shutdown_since is not None:
            log.warning("the inverter's shutdown command is still in force: charge and discharge stay disabled")
        self.counts = {"rx_frames": 0, "bad_frames": 0, "error_frames": 0, "unexpected_frames": 0,
                       "receive_errors": 0}

    def on_message_received(self, msg: can.Message) -> None:
        if (self.own is not None and not msg.is_error_frame and not msg.is_extended_id
                and msg.arbitration_id in self.own.ids):
            self.own.heard(msg.arbitration_id, msg.data, msg.timestamp, time.monotonic())
            return
        with self.lock:
            if msg.is_error_frame:
                self.counts["error_frames"] += 1
                return
            self.counts["rx_frames"] += 1
            try:
                decoded = self.profile.decode(to_frame(msg))
            except DecodeError as error:
                self.counts["bad_frames"] += 1
                self.log.warning("bad inverter frame ignored: %s", error)
                return
            if decoded.name == "unknown":
                self.counts["unexpected_frames"] += 1
                return
            now = time.monotonic()
            self.last_seen = now
            if decoded.name == "gx_identification":
                self.gx_seen = now
            if "shutdown_requested" in decoded.fields:
                self._shutdown_command(bool(decoded.fields["shutdown_requested"]), now)
            self.fields.update((k, v) for k, v in decoded.fields.items() if isinstance(v, (int, float)))

    def _shutdown_command(self, requested: bool, now: float) -> None:
        if requested and self.shutdown_since is None:
            self.log.warning("the inverter commands a battery shutdown: charge and discharge disabled until it "
                             "clears the command or its link goes down")
            self.shutdown_since = now
        elif not requested and self.shutdown_since is not None:
            self.log.warning("the inverter cleared its shutdown command: charge and discharge allowed again")
            self.shutdown_since = None

    def on_error(self, exc: Exception) -> None:
        """Count and pause: a socket whose link went down must not spin the Notifier."""
        with self.lock:
            self.counts["receive_errors"] += 1
        self.log.error("CAN receive failed: %s", exc)
        time.sleep(0.5)

    def snapshot(self, timeout_s: float, started: float, now: float) -> dict:
        """The "inverter" slot at ``now``; a link gone down ends a shutdown command."""
        with self.lock:
            age = None if self.last_seen is None else now - self.last_seen
            if timeout_s == 0:
                link = "unknown"
            elif age is not None and age <= timeout_s:
                link = "up"
            elif age is None and now - started < timeout_s:
                link = "unknown"
            else:
                link = "down"
            if link == "down" and self.shutdown_since is not None:
                self.log.warning("the inverter link is down: its shutdown command ends, charge and discharge "
                                 "allowed again")
                self.shutdown_since = None
            return dict(self.counts, link=link, last_seen_age_s=age, fields=dict(self.fields), written=now,
                        gx_seen_age_s=None if self.gx_seen is None else now - self.gx_seen,
                        shutdown_requested=self.shutdown_since is not None, shutdown_since=self.shutdown_since)


def run(worker) -> None:
    cfg = worker.cfg
    profile = profiles.get(cfg.inverter.profile)
    own = None if cfg.standby.enabled else OwnIdWatch(profile, worker.log)
    listener = InverterListener(profile, worker.log, worker.state.read("inverter"), own)
    bus = open_bus(cfg, profile.rx_filters + (own.filters() if own is not None else []))
    notifier = can.Notifier(bus, [listener], timeout=0.5)
    started = time.monotonic()
    next_publish = started
    link = None
    try:
        while not worker.stopping.is_set():
            if time.monotonic() >= next_publish:
                next_publish += PUBLISH_S
                now = time.monotonic()
                snapshot = listener.snapshot(cfg.inverter.keepalive_timeout_s, started, now)
                if own is not None:
                    own.observe((worker.state.read("frames"), worker.state.read("failsafe")), now)
                    snapshot["foreign_transmitter"] = own.judge(now)
                worker.state.write("inverter", snapshot)
                if snapshot["link"] != link:
                    worker.log.info("inverter link %s", snapshot["link"])
                    link = snapshot["link"]
            worker.beat()
            worker.wait(max(0.0, min(worker.beat_period_s, next_publish - time.monotonic())))
    finally:
        notifier.stop()
        bus.shutdown()
