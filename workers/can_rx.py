"""can_rx: listen to the inverter and publish what it says.

Its own socket carries kernel filters for the inverter's IDs only, so a bus full of foreign
traffic costs nothing, and our own BMS frames (never inverter IDs) are not read back. A
python-can Notifier delivers frames; the main loop only beats, ages the link and publishes.
A frame too short for its ID, or an error frame, is counted and ignored.
"""
import threading
import time

import can

from canbus.bus import open_bus, to_frame
from protocol import DecodeError, profiles


class InverterListener(can.Listener):
    """Decodes inverter frames into the latest inverter state."""

    def __init__(self, profile, log):
        self.profile = profile
        self.log = log
        self.lock = threading.Lock()
        self.fields = {}
        self.last_seen = None
        self.gx_seen = None
        self.shutdown_requested = False
        self.counts = {"rx_frames": 0, "bad_frames": 0, "error_frames": 0, "unexpected_frames": 0,
                       "receive_errors": 0}

    def on_message_received(self, msg: can.Message) -> None:
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
            if decoded.fields.get("shutdown_requested"):
                if not self.shutdown_requested:
                    self.log.warning("the inverter commands a battery shutdown: charge and discharge disabled")
                self.shutdown_requested = True
            self.fields.update((k, v) for k, v in decoded.fields.items() if isinstance(v, (int, float)))

    def on_error(self, exc: Exception) -> None:
        """Count and pause: a socket whose link went down must not spin the Notifier."""
        with self.lock:
            self.counts["receive_errors"] += 1
        self.log.error("CAN receive failed: %s", exc)
        time.sleep(0.5)

    def snapshot(self, timeout_s: float, started: float) -> dict:
        now = time.monotonic()
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
            return dict(self.counts, link=link, last_seen_age_s=age, fields=dict(self.fields), written=now,
                        gx_seen_age_s=None if self.gx_seen is None else now - self.gx_seen,
                        shutdown_requested=self.shutdown_requested)


def run(worker) -> None:
    cfg = worker.cfg
    profile = profiles.get(cfg.inverter.profile)
    listener = InverterListener(profile, worker.log)
    bus = open_bus(cfg, profile.rx_filters)
    notifier = can.Notifier(bus, [listener], timeout=0.5)
    started = time.monotonic()
    publish_every = 0.5
    next_publish = started
    link = None
    try:
        while not worker.stopping.is_set():
            if time.monotonic() >= next_publish:
                next_publish += publish_every
                snapshot = listener.snapshot(cfg.inverter.keepalive_timeout_s, started)
                worker.state.write("inverter", snapshot)
                if snapshot["link"] != link:
                    worker.log.info("inverter link %s", snapshot["link"])
                    link = snapshot["link"]
            worker.beat()
            worker.wait(cfg.watchdog.heartbeat_interval_s)
    finally:
        notifier.stop()
        bus.shutdown()
