"""``run --record FILE``: every frame on the bus, in candump -l format, from its own socket.

A recording is bookkeeping: a bus that cannot be opened (a USB adapter not yet present at
boot) is reported and tried again every ``RETRY_S``, never a reason for the supervisor to stop.
"""
import time
from typing import Optional

import can

from canbus.bus import open_bus

RETRY_S = 5.0


class BusRecorder:
    def __init__(self, cfg, path: str, log):
        self.cfg = cfg
        self.path = path
        self.log = log
        self.bus = self.writer = self.notifier = None
        self.error: Optional[str] = None        # why the recording is not running, for the log
        self._next_try = 0.0
        self.keep_open(time.monotonic())

    def keep_open(self, now: float) -> None:
        """Open the bus and the file unless they are open; a failure is logged once and retried."""
        if self.notifier is not None or now < self._next_try:
            return
        try:
            self.bus = open_bus(self.cfg)
            channel = self.cfg.can.channel if self.cfg.can.interface == "socketcan" else "sim0"
            self.writer = can.CanutilsLogWriter(self.path, channel=channel)
        except (OSError, can.CanError) as error:
            if self.bus is not None:
                self.bus.shutdown()
                self.bus = None
            self._next_try = now + RETRY_S
            if str(error) != self.error:
                self.log.error("recording to %s: cannot open %s %s: %s; trying again every %g s", self.path,
                               self.cfg.can.interface, self.cfg.can.channel, error, RETRY_S)
            self.error = str(error)
            return
        if self.error is not None:
            self.log.warning("recording to %s: %s %s opened", self.path, self.cfg.can.interface, self.cfg.can.channel)
        self.error = None
        self.notifier = can.Notifier(self.bus, [self.writer], timeout=0.2)

    def close(self) -> None:
        if self.notifier is None:
            return
        self.notifier.stop()
        self.writer.stop()
        self.bus.shutdown()
