"""simulator: the world around the daemon in a simulation, closed-loop.

A simulated inverter reads our BMS frames from the bus exactly as a real one would (decoded
with the profile), obeys them, and sends its keep-alives; its battery current moves a
simulated battery, which is published on D-Bus as a SmartShunt-like battery monitor that
dbus_publisher reads like any real one. Simulated time runs from the local time of day, at
``[simulation] time_scale`` simulated seconds per second.
"""
import threading
import time
import types

import can
import dbus
import dbus.mainloop.glib
from gi.repository import GLib

from canbus.bus import open_bus, to_frame, to_message
from protocol import DecodeError, profiles
from simulation.battery import BatteryModel
from simulation.inverter import InverterModel, requests
from venus.battery_service import SimulatedBatteryService

STEP_S = 0.5
LIMIT_FIELDS = ("charge_voltage_v", "charge_current_a", "discharge_current_a", "discharge_voltage_v")
REQUEST_FIELDS = ("charge_enable", "discharge_enable", "force_charge_1", "force_charge_2", "full_charge")


class HeardFrames(can.Listener):
    """What the simulated inverter has heard of the BMS: the latest value of every field."""

    def __init__(self, profile, log):
        self.profile = profile
        self.log = log
        self.fields = {}
        self.lock = threading.Lock()

    def on_message_received(self, msg: can.Message) -> None:
        try:
            decoded = self.profile.decode(to_frame(msg))
        except DecodeError as error:
            self.log.warning("simulated inverter: bad BMS frame %s", error)
            return
        with self.lock:
            self.fields.update(decoded.fields)

    def report(self):
        """The limits and flags the inverter obeys, or None before it heard the limits."""
        with self.lock:
            fields = dict(self.fields)
        if not all(name in fields for name in LIMIT_FIELDS):
            return None
        if "charge_enable" not in fields:   # profiles without 0x35C: a zero limit is the only stop
            fields.update(charge_enable=fields["charge_current_a"] > 0,
                          discharge_enable=fields["discharge_current_a"] > 0)
        for name in REQUEST_FIELDS:
            fields.setdefault(name, False)
        return types.SimpleNamespace(**{name: fields[name] for name in LIMIT_FIELDS + REQUEST_FIELDS})


def seconds_since_midnight() -> float:
    now = time.localtime()
    return now.tm_hour * 3600.0 + now.tm_min * 60.0 + now.tm_sec


def run(worker) -> None:
    cfg = worker.cfg
    profile = profiles.get(cfg.inverter.profile)
    battery = BatteryModel.from_config(cfg)
    inverter = InverterModel.from_config(cfg) if cfg.simulation.inverter else None
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    monitor = SimulatedBatteryService(dbus.SystemBus()) \
        if cfg.battery.source == "simulated" else None
    extended = profile.transport == "polled"
    bus = open_bus(cfg, [{"can_id": frame_id, "can_mask": 0x1FFFFFFF if extended else 0x7FF, "extended": extended}
                         for frame_id in profile.frame_ids])
    heard = HeardFrames(profile, worker.log)
    notifier = can.Notifier(bus, [heard], timeout=0.5)
    loop = GLib.MainLoop()
    clock = {"t_s": seconds_since_midnight(), "last": time.monotonic(), "logged": 0.0}

    def step() -> bool:
        now = time.monotonic()
        dt_s = (now - clock["last"]) * cfg.simulation.time_scale
        clock["last"] = now
        clock["t_s"] += dt_s
        current_a = 0.0
        if inverter is not None:
            current_a = inverter.current(heard.report(), battery.voltage_v, clock["t_s"])
            if inverter.keepalive_due(now):
                for frame in requests(profile.transport, inverter.ticks):
                    bus.send(to_message(frame))
        snapshot = battery.step(current_a, dt_s)
        if monitor is not None:
            monitor.update(snapshot.voltage_v, snapshot.current_a, snapshot.soc_pct, snapshot.temperature_c,
                           snapshot.cell_min_v, snapshot.cell_max_v)
        if now - clock["logged"] >= 10:
            clock["logged"] = now
            worker.log.info("battery %.2f V %+.1f A SoC %.1f %% %.1f degC", snapshot.voltage_v,
                            snapshot.current_a, snapshot.soc_pct, snapshot.temperature_c)
        return True

    def beat() -> bool:
        worker.beat()
        if worker.stopping.is_set():
            loop.quit()
        return True

    GLib.timeout_add(int(STEP_S * 1000), step)
    GLib.timeout_add(int(cfg.watchdog.heartbeat_interval_s * 1000), beat)
    beat()
    try:
        loop.run()
    finally:
        notifier.stop()
        bus.shutdown()
        if monitor is not None:
            monitor.close()
