"""The CAN interface's state and counters, as the kernel reports them."""
import os
import struct
import time

from canbus.bus import QueueWaitingSocketcanBus
from canbus.controller_state import read_controller

# The controller's state and error counters are bookkeeping: read at this cadence (and at
# once when the link goes up or down), never more often than a cycle.
CONTROLLER_READ_EVERY_S = 5.0


class LinkMonitor:
    """Reads /sys/class/net/<channel> for SocketCAN, and the controller's state over rtnetlink;
    other interfaces have no such view. Nothing here raises: what cannot be read is unknown."""

    def __init__(self, cfg, clock=time.monotonic):
        self.interface = cfg.can.interface
        self.channel = cfg.can.channel
        self._sys = os.path.join("/sys/class/net", cfg.can.channel)
        self._clock = clock
        self._state = None
        self.downs = 0          # times the link was seen going down
        self._controller = None         # the last read, or None (no CAN controller: vcan)
        self._controller_read_at = None

    def _read(self, name: str):
        try:
            with open(os.path.join(self._sys, name)) as handle:
                return handle.read().strip()
        except OSError:
            return None

    def read(self, transmitting: bool) -> dict:
        link = {"interface": self.interface, "channel": self.channel, "transmitting": transmitting}
        if self.interface != "socketcan":
            link["state"] = "virtual"
            return link
        operstate = self._read("operstate")
        state = {"up": "up", "unknown": "up", "down": "down", None: "missing"}.get(operstate, operstate)
        if state != "up" and self._state == "up":
            self.downs += 1
        changed = state != self._state
        self._state = link["state"] = state
        link["link_downs"] = self.downs
        link["queue_full"] = QueueWaitingSocketcanBus.queue_full     # sends that waited for room: retried, not lost
        for counter in ("tx_packets", "rx_packets", "tx_errors", "rx_errors", "tx_dropped", "rx_dropped"):
            value = self._read(os.path.join("statistics", counter))
            link[counter] = int(value) if value is not None else None
        link["controller"] = self._read_controller(changed)
        return link

    def _read_controller(self, link_changed: bool):
        """The controller's state and counters (see canbus.controller_state), refreshed every
        CONTROLLER_READ_EVERY_S; ``{"state": "unknown", "error": ...}`` when the kernel cannot tell."""
        now = self._clock()
        if not link_changed and self._controller_read_at is not None \
                and now - self._controller_read_at < CONTROLLER_READ_EVERY_S:
            return self._controller
        self._controller_read_at = now
        try:
            self._controller = read_controller(self.channel)
        except (OSError, ValueError, struct.error) as error:
            self._controller = {"state": "unknown", "error": str(error)[:160]}   # the slot is small
        return self._controller
