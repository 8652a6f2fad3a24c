"""Send a frame set on its cadence, and hand the cadence over without a gap.

Every ID of a set repeats once per cycle; the IDs are spread evenly over the cycle, ID i at
``t0 + i * cycle / n``. Both ``bms_tx`` and the supervisor's failsafe follow the same
``Schedule`` (it lives in shared memory), so whichever of them takes over starts each ID at
its next due time and the inverter sees the cadence continue. Each ID is one python-can
``send_periodic`` task: on SocketCAN that is the kernel's broadcast manager, which keeps the
cadence without waking Python.
"""
import math
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import can

from canbus.bus import to_message
from protocol.frame import Frame


class Schedule(NamedTuple):
    t0: float            # time.monotonic() of a due time of the set's first ID
    cycle_s: float
    ids: Sequence[int]

    def next_due(self, index: int, after: float) -> float:
        """The first due time of ID number ``index`` strictly after ``after``."""
        phase = self.t0 + index * self.cycle_s / len(self.ids)
        cycles = math.floor((after - phase) / self.cycle_s) + 1
        return phase + cycles * self.cycle_s

    def as_dict(self) -> Dict:
        return {"t0": self.t0, "cycle_s": self.cycle_s, "ids": list(self.ids)}

    @classmethod
    def from_dict(cls, value: Optional[Dict]) -> Optional["Schedule"]:
        if not value or "t0" not in value:
            return None
        return cls(value["t0"], value["cycle_s"], tuple(value["ids"]))


class CyclicFrameSet:
    """The periodic tasks of one frame set on one bus."""

    def __init__(self, bus: can.BusABC, schedule: Schedule):
        self.bus = bus
        self.schedule = schedule
        self._tasks: Dict[int, can.broadcastmanager.CyclicSendTaskABC] = {}
        self._data: Dict[int, bytes] = {}

    def start(self, frames: List[Frame], after: float, wait: Callable[[float], bool]) -> bool:
        """Take over the cadence as of ``after``: an ID whose due time has passed since then is
        sent once at once, and every ID's periodic task starts at its next due time, so the
        schedule's phase is kept for whoever takes over next.

        ``wait(seconds)`` sleeps between starts and returns True to abort; the caller uses it
        to keep beating. Returns False when aborted (nothing is left running then).
        """
        self._check(frames)
        start_at = time.monotonic()     # due times up to here are sent once, later ones by the tasks
        for index in range(len(frames)):
            if self.schedule.next_due(index, after) <= start_at:
                self.bus.send(to_message(frames[index]))
        order = sorted(range(len(frames)), key=lambda i: self.schedule.next_due(i, start_at))
        for index in order:
            delay = self.schedule.next_due(index, start_at) - time.monotonic()
            if delay > 0 and wait(delay):
                self.stop()
                return False
            frame = frames[index]
            self._tasks[index] = self.bus.send_periodic(to_message(frame), self.schedule.cycle_s)
            self._data[index] = frame.data
        return True

    def update(self, frames: List[Frame]) -> None:
        """Change the data in place; the timing stays as it is."""
        self._check(frames)
        for index, task in self._tasks.items():
            if frames[index].data != self._data[index]:
                task.modify_data(to_message(frames[index]))
                self._data[index] = frames[index].data

    def stop(self) -> None:
        for task in self._tasks.values():
            try:
                task.stop()
            except can.CanError:
                pass  # the socket may already be gone with its link; nothing is sending then
        self._tasks.clear()
        self._data.clear()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def _check(self, frames: List[Frame]) -> None:
        ids = tuple(frame.arbitration_id for frame in frames)
        if ids != tuple(self.schedule.ids):
            raise ValueError("frame set %s does not match the schedule's %s"
                             % ([hex(i) for i in ids], [hex(i) for i in self.schedule.ids]))
