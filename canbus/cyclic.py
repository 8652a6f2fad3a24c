"""Send a frame set on its cadence, and hand the cadence over without a gap.

Every ID of a set repeats once per cycle; the IDs are spread evenly over the cycle, ID i at
``t0 + i * cycle / n``. Both ``bms_tx`` and the supervisor's failsafe follow the same
``Schedule`` (it lives in shared memory), so whichever of them takes over starts each ID at
its next due time and the inverter sees the cadence continue. Each ID is one python-can
``send_periodic`` task: on SocketCAN that is the kernel's broadcast manager, which keeps the
cadence without waking Python.

The hand-over is exact because each sender publishes its ``wire`` record: per ID, whether its
periodic task is on the wire (its first frame confirmed sent), and the time up to which every
due time of that ID is known sent. A taker continues each ID from there, never from a guess.

A lease bounds the kernel's tasks: the broadcast manager would go on sending the last frames
of a process tree that is stopped or hung, for ever, while the battery changes. With
``lease_s`` each task sends only for that long unless ``update()`` renews it (every cycle
does), so a frozen sender falls silent after its lease and the inverter (or a hot standby)
notices; its wire record says up to when its frames are certain to have gone out.

The broadcast manager arms each frame's timer when the previous frame's fires, so every frame
comes the timer's latency later than a period after the previous one: left alone, the frames
drift off the schedule (about 0.7 ms a cycle in an emulated VM, less on a device), and a taker,
which starts on the schedule, would then move every ID by the drift gathered so far. So the set
receives its own frames (the kernel's loopback, with the kernel's timestamps) and each
``update()`` shortens the next intervals of an ID later than the phase its task started with by
part of that, within ``MAX_CORRECTION`` of a cycle. That is only ever a new interval for the
running timer (never a restart), and no update changes the phase otherwise: the data is
replaced in place.
"""
import math
import threading
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import can

from canbus.bus import kernel_periodic, receive_only, start_periodic, to_message, update_periodic
from protocol.frame import Frame

ROUNDING = 1e-9     # of a cycle: due times that far apart are the same one
CORRECTION_GAIN = 0.5   # of an ID's lateness taken off its next intervals: it acts a frame later, so half settles
MAX_CORRECTION = 0.005  # of a cycle: the most an interval is shortened or lengthened to keep the phase
                        # (a few times the drift, far less than the jitter a timer has anyway)


class Schedule(NamedTuple):
    t0: float            # time.monotonic() of a due time of the set's first ID
    cycle_s: float
    ids: Sequence[int]

    @property
    def spacing_s(self) -> float:
        """The interval between two consecutive frames of the set."""
        return self.cycle_s / len(self.ids)

    def next_due(self, index: int, after: float) -> float:
        """The first due time of ID number ``index`` strictly after ``after`` (a due time computed
        as ``after`` itself, up to rounding, is not after it)."""
        phase = self.t0 + index * self.spacing_s
        cycles = math.floor((after - phase) / self.cycle_s + ROUNDING) + 1
        return phase + cycles * self.cycle_s

    def resume(self, sent_until: Sequence[float], now: float,
               paced: bool) -> Tuple["Schedule", List[int], float]:
        """How a taker continues, given each ID's ``sent_until`` (every due time up to it was sent):
        the schedule to go on with, the IDs that are overdue (a due time up to ``now`` unsent),
        and ``begin``: each ID's periodic task starts at its first due time after ``begin``.

        Not ``paced``: the schedule stays; the caller sends each overdue ID once at once.
        ``paced`` (an inverter that wants the set's spacing between any two frames): nothing is
        sent back-to-back; the schedule is shifted so that the ID unsent for longest goes first,
        no earlier than ``now`` nor than one spacing after the last frame sent, and every other
        ID follows in its order, within a cycle. No ID then waits longer than a cycle plus the
        time from the oldest unsent due time to the first frame.
        """
        unsent = [self.next_due(i, until) for i, until in enumerate(sent_until)]
        overdue = [i for i, due in enumerate(unsent) if due <= now]
        if not paced or not overdue:
            return self, overdue, now
        last_sent = max(due - self.cycle_s for due in unsent)
        start = max(now, last_sent + self.spacing_s)
        first = min(unsent[i] for i in overdue)
        # The shifted schedule has a due time at ``start`` and none in the half spacing before it.
        return self._replace(t0=self.t0 + (start - first)), [], start - self.spacing_s / 2

    def as_dict(self) -> Dict:
        return {"t0": self.t0, "cycle_s": self.cycle_s, "ids": list(self.ids)}

    @classmethod
    def from_dict(cls, value: Optional[Dict]) -> Optional["Schedule"]:
        if not value or "t0" not in value:
            return None
        return cls(value["t0"], value["cycle_s"], tuple(value["ids"]))


def known_sent_until(wire: Optional[Dict], alive_until: Optional[float] = None) -> Optional[List[float]]:
    """Per ID, the time up to which every due time was sent, from a sender's ``wire`` record.

    An ID on the wire went on being sent as long as its sender lived: up to ``alive_until`` (the
    last moment that sender is known alive) but not past its lease, less its task's ``lag``
    (each frame goes that long after its due time), or, when that is not known, only up to its
    first confirmed frame. None when there is no record.
    """
    if not wire:
        return None
    if alive_until is not None and wire.get("lease_until") is not None:
        alive_until = min(alive_until, wire["lease_until"])
    lags = wire.get("lag") or [0.0] * len(wire["on"])
    return [max(until, alive_until - lag) if on and alive_until is not None else until
            for on, until, lag in zip(wire["on"], wire["until"], lags)]


class CyclicFrameSet:
    """The periodic tasks of one frame set on one bus.

    ``paced``: catch-ups keep the set's spacing (see ``Schedule.resume``). ``on_change()`` is
    called whenever the ``wire`` record changes, so the owner can publish it at once.
    ``clock``: the monotonic clock the schedule's times are on; ``wall_clock``: the clock of the
    bus's receive timestamps. ``lease_s`` (0: none): how long kernel tasks go on sending without
    an ``update()``, rounded down to whole cycles (at least one).
    """

    def __init__(self, bus: can.BusABC, schedule: Schedule, paced: bool = False,
                 on_change: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic,
                 lease_s: float = 0.0, wall_clock: Callable[[], float] = time.time):
        self.bus = bus
        self.schedule = schedule
        self.paced = paced
        self.on_change = on_change
        self.clock = clock
        self.wall_clock = wall_clock
        self._tasks: Dict[int, can.broadcastmanager.CyclicSendTaskABC] = {}
        self._first_sent: Dict[int, threading.Event] = {}
        self._send_lock = threading.Lock()
        self._data: Dict[int, bytes] = {}
        self._until: List[float] = []
        self._lag: List[float] = []     # per ID, how long after its due times its task's frames go
        self._start_lag: List[float] = []   # per ID, its task's lag when it started: the phase it keeps
        self._lease_frames = max(1, int(lease_s / schedule.cycle_s + ROUNDING)) \
            if lease_s and kernel_periodic(bus) else 0
        # Every ID's task sends at least up to here (its last leased frame is later); None: no lease yet.
        self._leased_until: Optional[float] = None
        self._timed = kernel_periodic(bus)  # the kernel's tasks: their frames are timed and kept on phase
        self._started_at = 0.0              # frames received before this are not this set's

    @property
    def wire(self) -> Dict:
        """Per ID: ``on``, its task's first frame is confirmed sent, so it is sent while this
        process lives, but not past ``lease_until`` (None: no lease), each frame ``lag`` seconds
        after its due time; ``until``, every due time up to it is known sent."""
        on = [index in self._tasks and self._first_sent[index].is_set() for index in range(len(self._until))]
        return {"on": on, "until": list(self._until), "lease_until": self._leased_until, "lag": list(self._lag)}

    def start(self, frames: List[Frame], sent_until: Sequence[float], wait: Callable[[float], bool]) -> bool:
        """Take over the cadence from a previous sender that sent ID i's due times up to
        ``sent_until[i]``: overdue IDs are caught up (see ``Schedule.resume``) and every ID's
        periodic task starts at its next due time, so the phase is kept for whoever takes over
        next.

        ``wait(seconds)`` sleeps between starts and returns True to abort; the caller uses it
        to keep beating. Returns False when aborted (nothing is left running then).
        """
        self._check(frames)
        try:
            return self._start(frames, sent_until, wait)
        except BaseException:
            self.stop()     # nothing half-started is left sending
            raise

    def _start(self, frames: List[Frame], sent_until: Sequence[float], wait: Callable[[float], bool]) -> bool:
        now = self.clock()
        self.schedule, overdue, begin = self.schedule.resume(sent_until, now, self.paced)
        first = {i: self.schedule.next_due(i, begin) for i in range(len(frames))}
        # On the schedule it goes on with, every ID is covered up to one cycle before its first
        # periodic frame (a shifted schedule's due times are not the previous sender's), but an
        # overdue one only once it is caught up.
        self._until = [sent_until[i] if i in overdue else first[i] - self.schedule.cycle_s
                       for i in range(len(frames))]
        self._lag = [0.0] * len(frames)
        self._start_lag = [0.0] * len(frames)
        if self._timed:
            receive_only(self.bus, frames)
            self._started_at = now
        self.on_change()
        for index in overdue:
            self.bus.send(to_message(frames[index]))
            self._until[index] = now
            self.on_change()
        for index in sorted(first, key=first.get):
            delay = first[index] - self.clock()
            if delay > 0 and wait(delay):
                self.stop()
                return False
            frame = frames[index]
            started_at = self.clock()
            self._tasks[index], self._first_sent[index] = start_periodic(
                self.bus, to_message(frame), self.schedule.cycle_s, self._send_lock, timeout=self.schedule.spacing_s,
                lease_frames=self._lease_frames)
            if self._lease_frames and self._leased_until is None:
                self._leased_until = started_at + self._leased_cycles_s
            # The task keeps the phase it started with: every frame goes this much after its due time.
            self._lag[index] = max(0.0, self.clock() - first[index])
            self._start_lag[index] = self._lag[index]
            self._data[index] = frame.data
            if self._first_sent[index].is_set():
                self._until[index] = first[index]
            self.on_change()
        return True

    def update(self, frames: List[Frame]) -> bool:
        """Change the data in place, renew the lease and keep each ID on its phase (see above).

        False when the lease may have lapsed (this process was stopped for about as long): the
        set is then stopped, its wire record says up to when each ID was sent, and the owner
        starts a new set from there, as a taker would. The owner publishes the wire record (its
        ``lag`` follows the frames received).
        """
        self._check(frames)
        now = self.clock()
        # A renewal must reach every task before its last leased frame: half a cycle of margin.
        if self._lease_frames and (self._leased_until is None
                                   or now >= self._leased_until - self.schedule.cycle_s / 2):
            self.stop()
            return False
        if not self._timed:
            for index, task in self._tasks.items():
                if frames[index].data != self._data[index]:
                    update_periodic(task, to_message(frames[index]))
                    self._data[index] = frames[index].data
            return True
        corrections = self._corrections()
        for index, task in self._tasks.items():
            update_periodic(task, to_message(frames[index]), self._lease_frames,
                            interval=self.schedule.cycle_s - corrections.get(index, 0.0))
            self._data[index] = frames[index].data
        if self._lease_frames:
            self._leased_until = now + self._leased_cycles_s
        return True

    def _corrections(self) -> Dict[int, float]:
        """Per ID whose frames were received since the last update: how much shorter than a cycle
        its next intervals are to be (negative: longer) to come back to the phase its task started
        with. Its ``lag`` becomes the latest frame's."""
        latest: Dict[int, float] = {}
        index_of = {frame_id: index for index, frame_id in enumerate(self.schedule.ids)}
        offset = self.wall_clock() - self.clock()
        message = self.bus.recv(timeout=0)
        while message is not None:
            sent_at = message.timestamp - offset
            if message.arbitration_id in index_of and sent_at >= self._started_at:
                latest[index_of[message.arbitration_id]] = sent_at
            message = self.bus.recv(timeout=0)
        corrections = {}
        limit = MAX_CORRECTION * self.schedule.cycle_s
        for index, sent_at in latest.items():
            due = self.schedule.next_due(index, sent_at - self.schedule.cycle_s / 2)     # the nearest
            late = sent_at - due
            corrections[index] = max(-limit, min(limit, CORRECTION_GAIN * (late - self._start_lag[index])))
            self._lag[index] = max(0.0, late)
        return corrections

    @property
    def _leased_cycles_s(self) -> float:
        """After a task is started or renewed at t, every due time up to t plus this is sent (its
        intervals may be shortened by up to ``MAX_CORRECTION``)."""
        return (self._lease_frames - 1) * self.schedule.cycle_s * (1 - MAX_CORRECTION)

    def stop(self) -> None:
        """Stop every task; the wire record then says up to when each ID was sent."""
        stopped_at = self.clock()
        if self._leased_until is not None:
            stopped_at = min(stopped_at, self._leased_until)     # a lapsed lease ended the frames earlier
        for index, task in self._tasks.items():
            if self._first_sent[index].is_set():
                self._until[index] = max(self._until[index], stopped_at - self._lag[index])
            try:
                task.stop()
            except can.CanError:
                pass  # the socket may already be gone with its link; nothing is sending then
        self._tasks.clear()
        self._first_sent.clear()
        self._data.clear()
        self._leased_until = None
        self.on_change()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def _check(self, frames: List[Frame]) -> None:
        ids = tuple(frame.arbitration_id for frame in frames)
        if ids != tuple(self.schedule.ids):
            raise ValueError("frame set %s does not match the schedule's %s"
                             % ([hex(i) for i in ids], [hex(i) for i in self.schedule.ids]))
