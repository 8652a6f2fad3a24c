"""``run --record FILE``: every frame on the bus, in candump -l format, from its own socket."""
import can

from canbus.bus import open_bus


class BusRecorder:
    def __init__(self, cfg, path: str):
        self.bus = open_bus(cfg)
        channel = cfg.can.channel if cfg.can.interface == "socketcan" else "sim0"
        self.writer = can.CanutilsLogWriter(path, channel=channel)
        self.notifier = can.Notifier(self.bus, [self.writer], timeout=0.2)

    def close(self) -> None:
        self.notifier.stop()
        self.writer.stop()
        self.bus.shutdown()
