"""The CAN interface's state and counters, as the kernel reports them."""
import os


class LinkMonitor:
    """Reads /sys/class/net/<channel> for SocketCAN; other interfaces have no such view."""

    def __init__(self, cfg):
        self.interface = cfg.can.interface
        self.channel = cfg.can.channel
        self._sys = os.path.join("/sys/class/net", cfg.can.channel)
        self._state = None
        self.downs = 0          # times the link was seen going down

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
        self._state = link["state"] = state
        link["link_downs"] = self.downs
        for counter in ("tx_packets", "rx_packets", "tx_errors", "rx_errors", "tx_dropped", "rx_dropped"):
            value = self._read(os.path.join("statistics", counter))
            link[counter] = int(value) if value is not None else None
        return link
