"""Hot standby: of the devices on one CAN bus, exactly one transmits the BMS frames.

Every device runs the same software with its own node id and priority. The active one
transmits; the others (standby) run their workers normally, so their decisions are ready,
but do not transmit. Detection uses only what is on the bus:

* the BMS frames: a standby that sees none of the profile's first id for ``takeover_s``
  takes over with a new cadence whose first frame goes at once, so no id of the set is
  missing for longer than ``takeover_s`` + one period;
* an optional heartbeat (a bus such as a Sunny Island's may allow no foreign id) naming each
  device, its role, priority and epoch. With it two actives (a partition, a hung device
  that resumes) are resolved within one heartbeat: the later takeover (higher epoch) keeps
  the bus, then the higher priority, then the lower node id; a device that stops or yields
  hands over at once; a returning device with a higher priority takes the bus back only
  when configured to preempt.

A polled profile (Pylon HV: the inverter asks, the battery answers) has no cadence to watch:
the active device is known by its replies and its heartbeat (which a polled profile needs), and
a standby's clock runs only while a request goes unanswered (an inverter that does not poll
needs no takeover), or while no active device is heard at all. Two answers to one request must
never happen, so the right to answer is stricter than the role: a device answers only within a
lease of ``takeover_s`` x LEASE_SHARE renewed by its arbiter, and first listens ``settle_s`` after a
takeover that was not handed over (an active device that only seemed gone hears the new one and
yields before it answers) and after a pause in its own updates longer than the lease (a stopped
process tree that resumes: a peer may have taken over meanwhile).

SocketCAN delivers every frame to every local socket, so a device hears its own frames:
frames count as a peer's only while this device is standby and its own transmitters are
quiet, and heartbeats carry the node id (plus a random instance number that tells a second
device configured with the same node id from our own heartbeat).

``Arbiter`` is the pure state machine (time passed in); ``HotStandby`` puts it on the bus.
"""
import random
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

import can

from canbus.bus import open_bus, to_frame
from canbus.cyclic import Schedule
from protocol import DecodeError, profiles
from protocol.frame import Frame
from protocol.inverter import extended_filter, standard_filter
from protocol.report import BatteryReport, to_json

STANDBY = "standby"
ACTIVE = "active"
# At a cold start, before any peer frame was seen, node n listens (n - 1) x this much longer
# than node 1: two devices powered up together never take over at the same moment.
STARTUP_STAGGER_S = 0.5
BUS_RETRY_S = 5.0       # how often a bus that could not be opened is tried again
# Polled profiles: the right to answer lasts this share of takeover_s from the arbiter's last update:
# a device stopped longer resumes silent, before a peer that took over meanwhile could answer.
LEASE_SHARE = 0.5
POLLS = ("ensemble", "equipment")     # the requests a polled profile's battery answers: its keep-alive

# Heartbeat, 8 bytes: magic, node id, priority, role (0 standby, 1 active), flags (bit 0
# ready, bit 1 fresh, bit 2 preempt), epoch (u16 little endian), instance.
BEAT_MAGIC = 0xB5
BEAT_LENGTH = 8
READY, FRESH, PREEMPT = 1, 2, 4


class Beat(NamedTuple):
    """What one device says about itself in its heartbeat."""

    node_id: int
    priority: int
    role: str
    epoch: int           # takeovers seen on the bus: the later takeover wins a conflict
    ready: bool          # it has a frame set to send (its own decision or the peer's last frames)
    fresh: bool          # its own battery data is fresh
    preempt: bool        # it takes the bus back from a lower-priority active device
    instance: int        # random per start, 1-255


def encode_beat(beat: Beat) -> bytes:
    flags = (READY if beat.ready else 0) | (FRESH if beat.fresh else 0) | (PREEMPT if beat.preempt else 0)
    return bytes((BEAT_MAGIC, beat.node_id, beat.priority, 1 if beat.role == ACTIVE else 0, flags,
                  beat.epoch & 0xFF, beat.epoch >> 8 & 0xFF, beat.instance))


def decode_beat(data: bytes) -> Optional[Beat]:
    """The heartbeat in ``data``, or None for a frame that is not one (another device's id)."""
    if len(data) != BEAT_LENGTH or data[0] != BEAT_MAGIC or data[3] > 1 or data[1] == 0:
        return None
    return Beat(data[1], data[2], ACTIVE if data[3] else STANDBY, data[5] | data[6] << 8,
                bool(data[4] & READY), bool(data[4] & FRESH), bool(data[4] & PREEMPT), data[7])


class Transition(NamedTuple):
    role: str
    reason: str
    due: float                  # when the change was due: a takeover's new cadence starts here, not later
    handover: bool = False      # the active device said it stopped: continue its cadence


class Cadence(NamedTuple):
    """Where a takeover's frames go: ``t0`` is a due time of the first id, and each id starts at
    its first due time after ``after`` (at once where that has passed)."""

    t0: float
    after: float


class _Peer:
    __slots__ = ("beat", "seen_at")

    def __init__(self, beat: Beat, seen_at: float):
        self.beat = beat
        self.seen_at = seen_at


class Arbiter:
    """Decides this device's role from the frames and heartbeats it hears.

    ``frame`` and ``beat`` record what was heard; ``update`` (called often, with this
    device's own state) returns a Transition when the role changes. Time is passed in.
    """

    def __init__(self, node_id: int, priority: int, takeover_s: float, preempt: bool = False,
                 instance: int = 1, now: float = 0.0, polled: bool = False, settle_s: float = 0.0):
        self.node_id = node_id
        self.priority = priority
        self.takeover_s = takeover_s
        self.preempt = preempt
        self.instance = instance
        self.role = STANDBY
        self.since = now
        self.reason = "started: listening for an active device"
        self.epoch = 0
        self.takeovers = 0
        self.last_takeover: Optional[Tuple[float, str]] = None
        self.peer_frames_at: Optional[float] = None
        self.duplicate_at: Optional[float] = None
        self._peers: Dict[Tuple[int, int], _Peer] = {}
        self._highest_epoch = 0
        self._handover: Optional[Tuple[float, int]] = None      # (when, from node) a peer stopped being active
        self._ready_since: Optional[float] = None
        self._peer_activated_at: Optional[float] = None
        self._ready = self._fresh = self._sending = False
        self.next_takeover_at: Optional[float] = None     # when a takeover falls due unless a frame is heard
        self.polled = polled
        self.settle_s = settle_s
        self.lease_s = takeover_s * LEASE_SHARE
        self._unanswered_since: Optional[float] = None   # polled: the first request heard since the last reply
        self._updated_at: Optional[float] = None
        self.answer_from: Optional[float] = None          # polled and active: when answering may start

    # -- what is heard -------------------------------------------------------------
    @property
    def listening(self) -> bool:
        """BMS frames on the bus are a peer's: we are standby and our own transmitters are quiet."""
        return self.role == STANDBY and not self._sending

    def frame(self, now: float) -> None:
        """A BMS frame of the profile's first id (polled: a reply to a request)."""
        if self.listening:
            self.peer_frames_at = now
            self._unanswered_since = None

    def poll(self, now: float) -> None:
        """A request of the inverter that the active device answers (polled profiles)."""
        if self.listening and self._unanswered_since is None:
            self._unanswered_since = now

    def beat(self, beat: Beat, now: float) -> None:
        if beat.node_id == self.node_id:
            if beat.instance == self.instance:
                return                          # our own heartbeat, delivered to our own socket
            self.duplicate_at = now
        key = (beat.node_id, beat.instance)
        previous = self._peers.get(key)
        if (previous is not None and previous.beat.role == ACTIVE and beat.role == STANDBY
                and now - previous.seen_at <= self.takeover_s):
            self._handover = (now, beat.node_id)
        if beat.role == ACTIVE and (previous is None or previous.beat.role == STANDBY):
            self._peer_activated_at = now       # its first frames are on their way: give them time
        self._peers[key] = _Peer(beat, now)
        self._highest_epoch = max(self._highest_epoch, beat.epoch)

    # -- deciding ------------------------------------------------------------------
    def update(self, now: float, ready: bool, fresh: bool, sending: bool) -> Optional[Transition]:
        """Re-decide the role. ``ready``: we have a frame set to send; ``fresh``: our own battery
        data is fresh; ``sending``: our own transmitters are on the bus."""
        self._sending = sending
        self._fresh = fresh
        if ready and not self._ready:
            self._ready_since = now
        self._ready = ready
        self.next_takeover_at = None
        paused = self._updated_at is not None and now - self._updated_at > self.lease_s
        self._updated_at = now
        live = self._live_peers(now)
        if self.role == ACTIVE:
            self._handover = None
            if paused and self.answer_from is not None:    # our lease lapsed: listen before answering again
                self.answer_from = max(self.answer_from, now + self.settle_s)
            return self._keep_or_yield(live, now)
        if not ready:
            return None
        if self._handover is not None:
            when, node = self._handover
            if now - when > self.takeover_s:
                self._handover = None
            elif not any(p.beat.role == ACTIVE for p in live) and self._better_standby(live) is None:
                return self._take_over(now, "node %d handed over" % node, now, handover=True)
        if self.polled and self._active_heard(live, now):
            return self._take_over_unanswered(live, now)
        quiet_since = max(self.since, self.peer_frames_at or self.since, self._peer_activated_at or self.since)
        wait = self.takeover_s
        if self.peer_frames_at is None:
            # A cold start: devices that become ready together must not take over together.
            quiet_since = max(quiet_since, self._ready_since)
            wait += (self.node_id - 1) * STARTUP_STAGGER_S
        better = self._better_standby(live)
        if better is not None:
            wait += self.takeover_s             # it goes first; we follow if it does not
        self.next_takeover_at = quiet_since + wait
        if now - quiet_since >= wait:
            what = "no %s for %.1f s" % ("replies to polls" if self.polled else "BMS frames", now - quiet_since) \
                if self.peer_frames_at is not None else "no active device heard for %.1f s" % (now - quiet_since)
            return self._take_over(now, what + ("" if better is None else ", node %d did not take over"
                                                % better.node_id), quiet_since + wait)
        return None

    def _active_heard(self, live: List[_Peer], now: float) -> bool:
        """An active device's heartbeat or reply was heard within the takeover time."""
        return any(p.beat.role == ACTIVE for p in live) or (
            self.peer_frames_at is not None and now - self.peer_frames_at <= self.takeover_s)

    def _take_over_unanswered(self, live: List[_Peer], now: float) -> Optional[Transition]:
        """Polled, an active device heard: take over once a request went unanswered for the takeover
        time (a better standby first); no request, no clock."""
        if self._unanswered_since is None:
            return None
        # requests before it became active were not its to answer; it answers after settling
        quiet_since = max(self.since, self._unanswered_since, self._peer_activated_at or self.since)
        better = self._better_standby(live)
        wait = self.takeover_s if better is None else 2 * self.takeover_s
        self.next_takeover_at = quiet_since + wait
        if now - quiet_since < wait:
            return None
        return self._take_over(now, "polls unanswered for %.1f s" % (now - quiet_since) + (
            "" if better is None else ", node %d did not take over" % better.node_id), quiet_since + wait)

    def _keep_or_yield(self, live: List[_Peer], now: float) -> Optional[Transition]:
        mine = (self.epoch, self.priority, -self.node_id, self.instance)
        for peer in live:
            beat = peer.beat
            if beat.role == ACTIVE and (beat.epoch, beat.priority, -beat.node_id, beat.instance) > mine:
                return self._become_standby(now, "node %d is active too and wins (epoch %d, priority %d)"
                                            % (beat.node_id, beat.epoch, beat.priority))
            if (beat.role == STANDBY and beat.preempt and beat.ready and beat.fresh
                    and (beat.priority, -beat.node_id) > (self.priority, -self.node_id)):
                return self._become_standby(now, "node %d (priority %d) preempts" % (beat.node_id, beat.priority))
        return None

    def _better_standby(self, live: List[_Peer]) -> Optional[Beat]:
        """A ready standby peer that outranks us: it takes over first."""
        for peer in live:
            beat = peer.beat
            if beat.role == STANDBY and beat.ready and (beat.priority, -beat.node_id) > (self.priority, -self.node_id):
                return beat
        return None

    def _live_peers(self, now: float) -> List[_Peer]:
        for key in [key for key, peer in self._peers.items() if now - peer.seen_at > self.takeover_s]:
            del self._peers[key]
        return list(self._peers.values())

    def _take_over(self, now: float, reason: str, due: float, handover: bool = False) -> Transition:
        self.epoch = max(self.epoch, self._highest_epoch) + 1
        self.takeovers += 1
        self.last_takeover = (now, reason)
        self._handover = None
        self.answer_from = now if handover else now + self.settle_s
        return self._change(ACTIVE, now, reason, due)._replace(handover=handover)

    def _become_standby(self, now: float, reason: str) -> Transition:
        self._handover = None
        self.answer_from = self._unanswered_since = None
        return self._change(STANDBY, now, reason, now)

    def _change(self, role: str, now: float, reason: str, due: float) -> Transition:
        self.role, self.since, self.reason = role, now, reason
        return Transition(role, reason, due)

    def answer_until(self, now: float) -> Optional[float]:
        """Polled: until when this device may answer the inverter's requests, a lease from ``now``
        (an update), or None while it may not (standby; settling after a takeover or a pause)."""
        if self.role != ACTIVE or self.answer_from is None or now < self.answer_from:
            return None
        return now + self.lease_s

    # -- what we say -----------------------------------------------------------------
    def own_beat(self, leaving: bool = False) -> Beat:
        """Our heartbeat. We say active until our transmitters are quiet, so that a peer taking
        over from us never starts while our frames are still on the bus; leaving, we hand over."""
        role = ACTIVE if not leaving and (self.role == ACTIVE or self._sending) else STANDBY
        return Beat(self.node_id, self.priority, role, self.epoch & 0xFFFF, self._ready and not leaving,
                    self._fresh and not leaving, self.preempt, self.instance)

    def status(self, now: float) -> dict:
        """Role, takeovers and the peer most worth knowing about (the active one, else the latest)."""
        live = self._live_peers(now)
        frames_age = None if self.peer_frames_at is None else now - self.peer_frames_at
        peer = None
        if live:
            best = max(live, key=lambda p: (p.beat.role == ACTIVE, p.seen_at))
            peer = {"node_id": best.beat.node_id, "priority": best.beat.priority, "role": best.beat.role,
                    "epoch": best.beat.epoch, "last_seen_age_s": round(now - best.seen_at, 3)}
        elif self.role == STANDBY and frames_age is not None:
            peer = {"node_id": None, "priority": None, "role": ACTIVE if frames_age <= self.takeover_s else "silent",
                    "epoch": None, "last_seen_age_s": round(frames_age, 3)}
        if peer is not None:
            peer["frames_age_s"] = None if frames_age is None else round(frames_age, 3)
        return {
            "node_id": self.node_id, "priority": self.priority, "preempt": self.preempt, "epoch": self.epoch,
            "role_age_s": round(now - self.since, 3), "reason": self.reason, "peer": peer,
            "takeovers": self.takeovers,
            "last_takeover_age_s": None if self.last_takeover is None else round(now - self.last_takeover[0], 3),
            "last_takeover_reason": None if self.last_takeover is None else self.last_takeover[1],
            "duplicate_node_id": self.duplicate_heard(now),
            # polled: may answer the inverter's requests now (not while settling or after a pause)
            "answering": self.answer_until(now) is not None if self.polled else None,
        }

    def duplicate_heard(self, now: float) -> bool:
        """Another device with our node id was heard lately: a configuration mistake."""
        return self.duplicate_at is not None and now - self.duplicate_at <= self.takeover_s


# -- the peer's last frames, as a frame set the failsafe can send ------------------------------
def report_from_frames(profile, frames: List[Frame]) -> BatteryReport:
    """The BatteryReport behind a whole frame set of ``profile`` (``Profile.report_from_frames``)."""
    return profile.report_from_frames(frames)


# -- on the bus ------------------------------------------------------------------------
MAX_RECEIVE_DELAY_S = 1.0


def heard_at(timestamp: float, monotonic_now: float, wall_now: float) -> float:
    """When a frame reached our socket, on the monotonic clock, from its receive ``timestamp``
    (wall clock; on SocketCAN the kernel's): a notifier thread that runs late must not make the
    bus look quiet for longer than it was. A clock step counts as no delay, and at most
    MAX_RECEIVE_DELAY_S is believed."""
    delay = wall_now - timestamp
    return monotonic_now - (delay if 0.0 <= delay <= MAX_RECEIVE_DELAY_S else 0.0)


class _Receiver(can.Listener):
    def __init__(self, standby: "HotStandby"):
        self.standby = standby

    def on_message_received(self, msg: can.Message) -> None:
        self.standby.receive(msg, heard_at(msg.timestamp, time.monotonic(), time.time()))

    def on_error(self, exc: Exception) -> None:
        """A socket whose link went down must not spin the Notifier."""
        self.standby.log.error("hot standby: CAN receive failed: %s", exc)
        time.sleep(0.5)


class HotStandby:
    """The arbiter on the supervisor's own socket: kernel filters for the profile's BMS ids (a
    polled profile's 29-bit replies, and the inverter's requests) and the heartbeat id, a Notifier
    to hear them, the heartbeat as a periodic task.

    A bus that cannot be opened (a USB adapter not yet present at boot) is reported in the
    status and tried again every ``BUS_RETRY_S``; until it opens this device stays standby (it
    cannot hear whether another one is active), and its listening starts when it opens.
    """

    def __init__(self, cfg, log):
        section = cfg.standby
        self.cfg = cfg
        self.log = log
        self.profile = profiles.get(cfg.inverter.profile)
        self.polled = self.profile.transport == "polled"
        self.heartbeat_id = section.heartbeat_id if section.heartbeat else None
        self._instance = random.randint(1, 255)
        self.arbiter = self._new_arbiter(time.monotonic())
        self._lock = threading.Lock()
        self._observed: Dict[int, Tuple[bytes, float]] = {}     # the peer's last frame of each id
        if self.polled:
            self._filters = [extended_filter(frame_id) for frame_id in self.profile.frame_ids] + list(
                self.profile.rx_filters)
        else:
            self._filters = [standard_filter(frame_id) for frame_id in self.profile.frame_ids]
        if self.heartbeat_id is not None:
            self._filters.append(standard_filter(self.heartbeat_id))
        self.bus = self.notifier = None
        self.bus_error: Optional[str] = None
        self._next_open = 0.0
        self._beat_task = None
        self._beat_data = b""
        self._duplicate_logged = False
        self._lease: Optional[float] = None      # polled: the right to answer as the role slot last said
        self._keep_open(time.monotonic())

    def _new_arbiter(self, now: float) -> Arbiter:
        section = self.cfg.standby
        # polled: two heartbeats of a peer that took over reach us before we answer again
        return Arbiter(section.node_id, section.priority, section.takeover_s, section.preempt,
                       instance=self._instance, now=now, polled=self.polled,
                       settle_s=2 * section.heartbeat_interval_s if self.polled else 0.0)

    def _keep_open(self, now: float) -> bool:
        """Open the bus unless it is open; True when it is. A failure is logged once and retried."""
        if self.bus is not None:
            return True
        if now < self._next_open:
            return False
        try:
            self.bus = open_bus(self.cfg, self._filters)
        except (OSError, can.CanError) as error:
            self._next_open = now + BUS_RETRY_S
            if str(error) != self.bus_error:
                self.log.error("hot standby: cannot open %s %s: %s; standby until it opens, trying every %g s",
                               self.cfg.can.interface, self.cfg.can.channel, error, BUS_RETRY_S)
            self.bus_error = str(error)
            return False
        if self.bus_error is not None:
            self.log.warning("hot standby: %s %s opened: listening", self.cfg.can.interface, self.cfg.can.channel)
            self.arbiter = self._new_arbiter(now)       # nothing was heard until now
        self.bus_error = None
        self.notifier = can.Notifier(self.bus, [_Receiver(self)], timeout=0.5)
        self._send_beat()
        return True

    def receive(self, msg: can.Message, now: float) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        with self._lock:
            if not msg.is_extended_id and msg.arbitration_id == self.heartbeat_id:
                beat = decode_beat(bytes(msg.data))
                if beat is not None:
                    self.arbiter.beat(beat, now)
            elif msg.is_extended_id != self.polled:
                return
            elif msg.arbitration_id in self.profile.frame_ids:
                if self.arbiter.listening:
                    self._observed[msg.arbitration_id] = (bytes(msg.data), now)
                    if self.polled or msg.arbitration_id == self.profile.frame_ids[0]:
                        self.arbiter.frame(now)
            elif self.polled and self._is_poll(msg):
                self.arbiter.poll(now)

    def _is_poll(self, msg: can.Message) -> bool:
        try:
            return self.profile.request_kind(to_frame(msg)) in POLLS
        except DecodeError:
            return False

    def update(self, now: float, ready: bool, fresh: bool, sending: bool) -> Optional[Transition]:
        """Re-decide the role (``ready``: our own decision exists; the peer's last frames also
        make us ready) and keep the heartbeat current."""
        if not self._keep_open(now):
            return None
        with self._lock:
            change = self.arbiter.update(now, ready or self._observed_complete(), fresh, sending)
            duplicate = self.arbiter.duplicate_heard(now)
        if duplicate and not self._duplicate_logged:
            self.log.error("hot standby: another device uses node id %d: give each device its own "
                           "[standby] node_id", self.arbiter.node_id)
        self._duplicate_logged = duplicate
        self._send_beat()
        return change

    def answer_lease(self, now: float, force: bool = False) -> Optional[dict]:
        """Polled: ``{"answer_until": ...}`` (``Arbiter.answer_until``) for the role slot when it must
        be written (``force``; the right starts or ends; half the lease is spent), else None. The
        responders answer only within it (``canbus.responder.answer_allowed``)."""
        if not self.polled:
            return None
        with self._lock:
            until = self.arbiter.answer_until(now)
        held = self._lease
        if not force and (until is None) == (held is None) and (
                until is None or held - now > self.arbiter.lease_s / 2):
            return None
        self._lease = until
        return {"answer_until": until}

    def wake_at(self) -> Optional[float]:
        """When the role must be decided again at the latest: a takeover falling due; polled, the
        end of settling and the renewal of the lease."""
        due = [self.arbiter.next_takeover_at]
        if self.polled and self.arbiter.role == ACTIVE:
            due.append(self.arbiter.answer_from if self._lease is None else self._lease - self.arbiter.lease_s / 2)
        return min((t for t in due if t is not None), default=None)

    def takeover_cadence(self, change: Transition) -> Cadence:
        """A handover continues the departing device's cadence from its last frame, so each id
        misses at most the hand-over time; any other takeover starts a new cadence when it was due."""
        first = self.profile.frame_ids[0]
        with self._lock:
            first_seen = self._observed.get(first)
            last_seen = max((seen for _, seen in self._observed.values()), default=None)
        if change.handover and first_seen is not None and change.due - first_seen[1] < 2 * self.profile.cycle_s:
            return Cadence(first_seen[1], last_seen)
        return Cadence(change.due, change.due - 1e-6)

    def _observed_complete(self) -> bool:
        return all(frame_id in self._observed for frame_id in self.profile.frame_ids)

    def observed_frame_set(self, t0: float) -> Optional[dict]:
        """The peer's last frames as a frame set in the frames slot's form, with a new cadence
        whose first id is due at ``t0``; None when not every id of the set was heard."""
        with self._lock:
            if not self._observed_complete():
                return None
            frames = [Frame(frame_id, self._observed[frame_id][0]) for frame_id in self.profile.frame_ids]
            oldest = min(self._observed[frame_id][1] for frame_id in self.profile.frame_ids)
        try:
            report = self.profile.report_from_frames(frames)
        except (DecodeError, ValueError) as error:
            self.log.error("hot standby: the peer's last frames cannot be sent again: %s", error)
            return None
        return {"source": "peer", "written": oldest, "data_age_s": 0.0, "report": to_json(report),
                "schedule": Schedule(t0, self.profile.cycle_s, self.profile.frame_ids).as_dict()}

    def status(self, now: float) -> dict:
        with self._lock:
            status = self.arbiter.status(now)
        age = status.pop("last_takeover_age_s")
        status.update(enabled=True, heartbeat_id=None if self.heartbeat_id is None else "0x%03X" % self.heartbeat_id,
                      takeover_s=self.cfg.standby.takeover_s, bus_error=self.bus_error,
                      last_takeover_at=None if age is None else round(time.time() - age, 3))
        return status

    def _send_beat(self, leaving: bool = False) -> None:
        """Keep the heartbeat task's data current; a change also goes out at once."""
        if self.heartbeat_id is None or self.bus is None:
            return
        with self._lock:
            data = encode_beat(self.arbiter.own_beat(leaving))
        if data == self._beat_data:
            return
        message = can.Message(arbitration_id=self.heartbeat_id, data=data, is_extended_id=False)
        try:
            if self._beat_task is None:
                self._beat_task = self.bus.send_periodic(message, self.cfg.standby.heartbeat_interval_s)
            else:
                self._beat_task.modify_data(message)
                self.bus.send(message)
            self._beat_data = data
        except (can.CanError, OSError) as error:
            self.log.error("hot standby: heartbeat not sent: %s", error)

    def close(self) -> None:
        """Say we are leaving (a peer takes over at once), then stop. Call once our frames have stopped."""
        if self.bus is None:
            return
        self._send_beat(leaving=True)
        self.notifier.stop()
        if self._beat_task is not None:
            self._beat_task.stop()
        self.bus.shutdown()
