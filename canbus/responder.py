"""Answer a polling inverter (Pylon HV): the request/response transport beside the cyclic one.

A ``PollResponder`` opens its own socket with kernel filters for the inverter's request ids
only (a bus full of foreign 29-bit traffic costs it nothing) and answers from a python-can
``Notifier`` thread, at once: the reply burst leaves within the time one encode takes, each
frame handed to the bus with a send timeout, so a full adapter TX queue makes it wait rather
than drop or overflow. What it answers comes from ``report()``, called at each request
(bms_tx: its last decision; the failsafe: the last-known one, degraded with age), and only
while ``may_answer()`` says this sender holds the bus, so two senders never answer one poll
(on a hot standby: ``answer_allowed``, the active role within its lease). A request read later
than STALE_REQUEST_S after it arrived (a process that was stopped) is not answered: the inverter
has moved on, and a late burst could follow its next request.
"""
import errno
import threading
import time
from typing import Callable, Dict, Optional

import can

from canbus.bus import open_bus, to_frame, to_message
from canbus.cyclic import Schedule
from protocol import DecodeError
from protocol.pylon_hv import PollSession
from protocol.report import BatteryReport

SEND_TIMEOUT_S = 0.05       # per frame: how long a full TX queue may delay the burst
QUEUE_FULL_RETRY_S = 0.001  # a full queue (ENOBUFS) empties at about one frame per 0.3 ms at 500 kbit/s
STALE_REQUEST_S = 0.5       # half an inverter's poll interval (1 s): a later burst could follow the next poll


def answer_allowed(role_slot: Optional[dict], now: float) -> bool:
    """This device answers polls: its role is active and, on a hot standby (the slot then carries
    ``answer_until``, monotonic), its right to answer is not settling (None) nor lapsed: a process
    tree that was stopped does not answer on resuming before its arbiter has heard the bus again."""
    role_slot = role_slot or {}
    if role_slot.get("role") != "active":
        return False
    if "answer_until" not in role_slot:
        return True         # hot standby off: the only device on the bus
    until = role_slot["answer_until"]
    return until is not None and now < until


class PollResponder(can.Listener):
    def __init__(self, cfg, profile, report: Callable[[], Optional[BatteryReport]], log,
                 may_answer: Callable[[], bool] = lambda: True, bus: Optional[can.BusABC] = None):
        self.profile = profile
        self.manufacturer = cfg.inverter.manufacturer
        self.report = report
        self.may_answer = may_answer
        self.log = log
        self.session = PollSession(profile)
        self.lock = threading.Lock()
        self.bus = bus if bus is not None else open_bus(cfg, profile.rx_filters)
        self.answered = 0
        self.held_back = 0          # requests that came while this sender did not hold the bus or had no decision
        self.stale = 0              # requests read too late to answer (STALE_REQUEST_S)
        self.silenced = False
        self.send_failures = 0
        self.last_request_at: Optional[float] = None
        self.last_latency_s: Optional[float] = None
        self.max_latency_s = 0.0
        # what the frames slot says of a sender: the set and its nominal cycle; no cadence is on the wire
        self.schedule = Schedule(time.monotonic(), profile.cycle_s, profile.frame_ids)
        self.wire = None
        self.notifier = can.Notifier(self.bus, [self], timeout=0.5)

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_error_frame:      # the controller's news (can_rx counts it), no request of the inverter
            return
        now = time.monotonic()
        # the socket's receive time (wall clock): a late notifier thread counts in the latency
        delay = max(0.0, time.time() - msg.timestamp) if msg.timestamp else 0.0
        received = now - delay
        with self.lock:     # a whole burst, or none: ``silence`` waits for one under way
            self.last_request_at = received
            try:
                report = None
                if delay > STALE_REQUEST_S:
                    self.stale += 1
                elif self.silenced or not self.may_answer():
                    self.held_back += 1
                else:
                    report = self.report()
                    self.held_back += report is None
                replies = self.session.handle(to_frame(msg), report, self.manufacturer)
            except (DecodeError, ValueError) as error:
                self.log.warning("inverter request %s not answered: %s", to_frame(msg), error)
                return
            if not replies:
                return
            try:
                for frame in replies:
                    self._send(frame)
            except (can.CanError, OSError) as error:
                self.send_failures += 1
                self.log.error("answering the inverter failed: %s", error)
                return
            self.answered += 1
            self.last_latency_s = time.monotonic() - received
            self.max_latency_s = max(self.max_latency_s, self.last_latency_s)

    def _send(self, frame) -> None:
        """One frame; a TX queue that is full (SocketCAN: ENOBUFS rather than blocking) is waited
        for up to SEND_TIMEOUT_S, so a burst longer than the adapter's queue is paced, not lost."""
        deadline = time.monotonic() + SEND_TIMEOUT_S
        while True:
            try:
                self.bus.send(to_message(frame), timeout=SEND_TIMEOUT_S)
                return
            except can.CanOperationError as error:
                if error.error_code != errno.ENOBUFS or time.monotonic() >= deadline:
                    raise
            time.sleep(QUEUE_FULL_RETRY_S)

    def silence(self) -> None:
        """From the return of this call on, nothing more is answered (a burst under way ends first)."""
        with self.lock:
            self.silenced = True

    @property
    def running(self) -> bool:
        return self.notifier is not None

    def stats(self) -> Dict[str, object]:
        """For the status: requests by kind ("ignored": unknown), answered, held back, stale, when the
        last request came (monotonic), and the last and worst latency from request to the burst sent."""
        with self.lock:
            return {"requests": dict(self.session.counts), "answered": self.answered,
                    "held_back": self.held_back, "stale": self.stale, "last_request_at": self.last_request_at,
                    "last_latency_s": None if self.last_latency_s is None else round(self.last_latency_s, 4),
                    "max_latency_s": round(self.max_latency_s, 4), "send_failures": self.send_failures}

    def stop(self) -> None:
        """No answer leaves after this returns, at once: the next sender may answer the next poll.
        The notifier thread (it may wait up to its timeout for a frame) ends, and the socket
        closes, in the background. The notifier calls its listeners' ``stop`` too: that call finds
        nothing left to stop."""
        self.silence()
        notifier, self.notifier = self.notifier, None
        if notifier is not None:
            threading.Thread(target=self._close, args=(notifier,), name="poll-responder-close", daemon=True).start()

    def _close(self, notifier: can.Notifier) -> None:
        notifier.stop()
        self.bus.shutdown()
