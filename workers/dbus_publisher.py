"""dbus_publisher: the Venus side — battery monitor in, inverter out, DVCC and settings in.

One GLib main loop on the system bus (in a simulation the supervisor points it at a private
daemon). It follows the battery monitor by signals into the "battery" slot, publishes the
inverter as a vebus service (and, if configured, our decision as a battery service), keeps
the energy counters, and writes what Venus asks of the inverter (DVCC limits, /Mode, runtime
settings) into the "dvcc" slot for bms_tx. Shared-memory slots are read on a 1 s timer; no
D-Bus call ever blocks the loop. An exception in a timer is logged, never the end of the
process; one that keeps the services off the bus ends the worker, so the supervisor restarts it,
and so does the 1 s work failing ``MAX_POLL_FAILURES`` times in a row: a worker whose D-Bus
values are frozen and whose DVCC limits no longer expire must not go on beating as if healthy.
"""
import functools
import json
import math
import time
from typing import Dict, Optional

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

from ipc.atomic_file import load_or_set_aside
from ipc.flash_writer import FlashWriter
from version import VERSION
from venus import dvcc
from venus.battery_monitor import BatteryMonitorFollower
from venus.battery_service import BmsBatteryService
from venus.energy import EnergyCounters, split_flows
from venus.identity import device_instance_of
from venus.settings import DeviceSetting, VenusSettings
from venus.vebus import VebusService

POLL_S = 1.0
# a gap in the inverter's power readings longer than this is not integrated (link lost, worker stalled)
MAX_ENERGY_GAP_S = 5 * POLL_S
# consecutive failures of the 1 s work after which the worker ends (exit 1, no more heartbeats)
MAX_POLL_FAILURES = 3
# while DVCC rewrites unchanged limits, the limits file is renewed every dvcc_timeout_s / this
DVCC_SAVES_PER_TIMEOUT = 4


def guarded(log, function, repeat: bool = True):
    """A GLib callback that logs an exception instead of dying; ``repeat``: keep the source."""
    @functools.wraps(function)
    def call(*args):
        try:
            function(*args)
        except Exception:
            log.exception("%s failed", function.__name__)
        return repeat
    return call


def service_connection():
    """A connection of its own for each service we publish: each exports its own '/' (as velib's users do)."""
    return dbus.SystemBus(private=True)


def setting_overrides(values: Dict[str, object], cfg) -> Dict[str, object]:
    """The runtime settings that differ from the configuration file: all bms_tx needs to apply."""
    overrides = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        if getattr(getattr(cfg, section), name) != value:
            overrides[key] = value
    return overrides


class DbusPublisher:
    def __init__(self, worker, bus):
        self.worker = worker
        self.cfg = cfg = worker.cfg
        self.log = worker.log
        self.bus = bus
        self.loop = GLib.MainLoop()
        self.failure: Optional[Exception] = None
        self.started = time.monotonic()
        self.dvcc_writer = FlashWriter(self.log)
        self.dvcc_saved, self.dvcc_saved_at = None, -math.inf   # what the limits file holds, and when
        self.withdrawn = set()      # the paths whose limit expired, until Venus writes them again
        self.in_force = {}          # field -> value of the limits last published in the dvcc slot
        self.previous_dvcc = worker.state.read("dvcc") or self._restore_dvcc()
        # when Venus wrote the limits a previous worker left: a restart must not renew their lease
        self.restored_at = {path: at for path, at in (self.previous_dvcc.get("written_at") or {}).items()
                            if isinstance(at, (int, float)) and not isinstance(at, bool) and at <= self.started}
        device_key = "/Settings/Devices/pylonvenus_%s" % cfg.venus.service_suffix
        self.instance_setting = DeviceSetting(device_key + "/ClassAndVrmInstance", "vebus:%d" % cfg.venus.device_instance)
        self.bms_instance_setting = DeviceSetting(device_key + "_bms/ClassAndVrmInstance",
                                                  "battery:%d" % cfg.venus.device_instance)
        self.name_setting = DeviceSetting(device_key + "/CustomName", "")
        self.mode_setting = DeviceSetting(device_key + "/Mode", dvcc.MODE_ON, dvcc.MODE_CHARGER_ONLY, dvcc.MODE_OFF)
        device_settings = [self.instance_setting, self.name_setting, self.mode_setting]
        if cfg.venus.bms_service:
            device_settings.append(self.bms_instance_setting)
        self.settings = VenusSettings(bus, cfg, device_settings, self._settings_ready, self._setting_changed, self.log)
        self.follower = None
        if cfg.battery.source in ("dbus", "simulated"):
            own = ["com.victronenergy.battery.%s" % cfg.venus.service_suffix] if cfg.venus.bms_service else []
            self.follower = BatteryMonitorFollower(bus, self._battery_changed, cfg.battery.service, own,
                                                   cfg.dbus.refresh_s, worker.state.read("battery"), log=self.log)
        self.energy = EnergyCounters(cfg.venus.energy_file, self.log)
        self.last_power = None      # (time, ac_in_w, ac_out_w) of the last usable reading
        self.vebus: Optional[VebusService] = None
        self.bms: Optional[BmsBatteryService] = None
        self.last_dvcc = None
        self.decision_missing_logged = False
        self.poll_failures = 0      # consecutive

    # ---- start-up: settings first (device instance), then the services ----------------------

    def _restore_dvcc(self) -> dict:
        """After a daemon restart (new shared memory): the limits Venus held, from the limits file,
        each as old as it was (its write time moved onto this boot's monotonic clock)."""
        return load_or_set_aside(self.cfg.venus.dvcc_file, self._parse_dvcc, self.log, "the DVCC limits").value or {}

    def _parse_dvcc(self, document) -> dict:
        limits = document.get("limits") if isinstance(document, dict) else None
        if not isinstance(limits, dict):
            raise ValueError("no 'limits' table")
        wall = time.time()
        written, written_at = {}, {}
        for path, entry in limits.items():
            value, at = entry if isinstance(entry, list) and len(entry) == 2 else (None, None)
            if path not in dvcc.FIELDS or not dvcc.valid_limit(path, value) or isinstance(at, bool) \
                    or not isinstance(at, (int, float)) or not math.isfinite(at):
                raise ValueError("%s: %r is no [limit, time written]" % (path, entry))
            written[path] = value
            written_at[path] = self.started - max(0.0, wall - at)    # a clock set back: as if just written
        mode = document.get("mode")
        return {"written": written, "written_at": written_at, "mode": mode if dvcc.valid_mode(mode) else dvcc.MODE_ON}

    def _publish_restored_dvcc(self) -> None:
        """The restored limits in the dvcc slot before any battery reading: bms_tx sends nothing
        before one, so its first frame after a daemon restart already keeps them."""
        written = self.previous_dvcc.get("written") or {}
        if written and not self.worker.state.read("dvcc"):
            restored = {path: (value, self.restored_at.get(path, self.started)) for path, value in written.items()}
            slot = dvcc.dvcc_slot(restored, self.previous_dvcc.get("mode", dvcc.MODE_ON), {}, time.monotonic(),
                                  self.cfg.dbus.dvcc_timeout_s)
            slot.update(written=written, written_at=self.restored_at)
            self.worker.state.write("dvcc", slot)
            self.log.info("DVCC limits restored from %s: %s", self.cfg.venus.dvcc_file, self._in_force_text(slot))

    def start(self) -> None:
        self._publish_restored_dvcc()
        self.settings.start()
        if self.follower is not None:
            self.follower.start()
        GLib.timeout_add(int(self.worker.beat_period_s * 1000), guarded(self.log, self._beat))
        GLib.timeout_add(int(POLL_S * 1000), self._poll_or_give_up)
        GLib.timeout_add(int(self.cfg.venus.energy_save_interval_s * 1000), guarded(self.log, self.energy.save))

    def _settings_ready(self, values: Dict[str, object]) -> None:
        """Runs in a D-Bus reply handler, which would swallow an exception: a worker that cannot
        publish its services ends instead, so the supervisor restarts it."""
        try:
            self._publish_services(values)
        except Exception as error:
            self.log.exception("publishing the services failed")
            self.failure = error
            self.loop.quit()

    def _publish_services(self, values: Dict[str, object]) -> None:
        cfg = self.cfg
        mode = values.get(self.mode_setting.path, self.previous_dvcc.get("mode", dvcc.MODE_ON))
        restored = self.previous_dvcc.get("written") or {}
        self.vebus = VebusService(
            service_connection(), cfg, VERSION,
            device_instance_of(values.get(self.instance_setting.path), cfg.venus.device_instance),
            values.get(self.name_setting.path, ""), mode if dvcc.valid_mode(mode) else dvcc.MODE_ON,
            {path: value for path, value in restored.items() if dvcc.valid_limit(path, value)}, self._vebus_written)
        if cfg.venus.bms_service:
            self.bms = BmsBatteryService(
                service_connection(), cfg, VERSION,
                device_instance_of(values.get(self.bms_instance_setting.path), cfg.venus.device_instance))
        self._refresh_services(time.monotonic())
        for service in (self.vebus, self.bms):
            if service is not None:
                service.register()
                self.log.info("published %s", service.name)
        self._publish_dvcc()

    # ---- inputs ------------------------------------------------------------------------------

    def _battery_changed(self, snapshot: dict) -> None:
        self.worker.state.write("battery", snapshot)

    def _setting_changed(self, path: str, value) -> None:
        if self.vebus is not None:
            if path == self.name_setting.path and isinstance(value, str):
                self.vebus.set_local("/CustomName", value)
            elif path == self.mode_setting.path and dvcc.valid_mode(value):
                self.vebus.set_local("/Mode", value)
        self._publish_dvcc()

    def _vebus_written(self, path: str, value) -> None:
        """Venus wrote to the vebus service; the value is stored right after this returns."""
        if path == "/CustomName":
            self.settings.write(self.name_setting.path, value)
        elif path == "/Mode":
            self.settings.write(self.mode_setting.path, value)
        GLib.idle_add(guarded(self.log, self._publish_dvcc, repeat=False))

    # ---- outputs -----------------------------------------------------------------------------

    def _publish_dvcc(self) -> None:
        if self.vebus is None:
            return
        now = time.monotonic()
        written = self.vebus.written(self.restored_at, self.started)
        gone = dvcc.expired(written, now, self.cfg.dbus.dvcc_timeout_s)
        if gone:
            for path in gone:
                self.log.warning("DVCC limit %s = %g expired (not written for %.0f s; dbus.dvcc_timeout_s = %g): "
                                 "withdrawn", path, written[path][0], now - written[path][1],
                                 self.cfg.dbus.dvcc_timeout_s)
            self.vebus.withdraw(gone)
            self.withdrawn.update(gone)
            written = self.vebus.written(self.restored_at, self.started)
        self.withdrawn -= {path for path, (_, at) in written.items() if now - at <= self.cfg.dbus.dvcc_timeout_s}
        slot = dvcc.dvcc_slot(written, self.vebus.mode, setting_overrides(self.settings.values, self.cfg),
                              now, self.cfg.dbus.dvcc_timeout_s)
        slot["written"] = {path: value for path, (value, _) in written.items()}
        slot["written_at"] = {path: at for path, (_, at) in written.items()}
        slot["expired"] = sorted(dvcc.FIELDS[path] for path in self.withdrawn)
        self._log_in_force(slot)
        self._save_dvcc(written, slot["mode"], now)
        if slot != self.last_dvcc:
            self.worker.state.write("dvcc", slot)
            self.last_dvcc = slot

    @staticmethod
    def _in_force_text(slot: dict) -> str:
        limits = ["%s %g" % (field, slot[field]) for field in dvcc.FIELDS.values() if slot.get(field) is not None]
        return ", ".join(limits) or "none"

    def _log_in_force(self, slot: dict) -> None:
        """A limit that comes into force or ends is logged; a changed value only at debug level
        (DVCC's CCL moves with the solar chargers' current every 3 s)."""
        in_force = {field: slot.get(field) for field in dvcc.FIELDS.values()}
        if {f for f, v in in_force.items() if v is not None} != {f for f, v in self.in_force.items() if v is not None}:
            self.log.info("DVCC limits in force (mode %s): %s", slot.get("mode"), self._in_force_text(slot))
        elif in_force != self.in_force:
            self.log.debug("DVCC limits in force (mode %s): %s", slot.get("mode"), self._in_force_text(slot))
        self.in_force = in_force

    def _save_dvcc(self, written: dvcc.Written, mode: int, now: float) -> None:
        """The limits in force, with their wall-clock write times, to the limits file: when they
        change, and while DVCC rewrites them often enough that a restart finds them unexpired."""
        limits = {path: value for path, (value, _) in written.items() if dvcc.limiting(path, value)}
        timeout_s = self.cfg.dbus.dvcc_timeout_s
        due = limits and timeout_s > 0 and now - self.dvcc_saved_at >= timeout_s / DVCC_SAVES_PER_TIMEOUT
        if (limits, mode) == self.dvcc_saved and not due:
            return
        wall = time.time()
        document = {"limits": {path: [value, wall - (now - written[path][1])] for path, value in limits.items()},
                    "mode": mode}
        self.dvcc_writer.submit(self.cfg.venus.dvcc_file, json.dumps(document, indent=1, sort_keys=True),
                                "the DVCC limits")
        self.dvcc_saved, self.dvcc_saved_at = (limits, mode), now

    def _integrate_energy(self, inverter: dict, now: float) -> None:
        fields = inverter.get("fields") or {}
        ac_in, ac_out = fields.get("ac_in_power_w"), fields.get("ac_out_power_w")
        if inverter.get("link") != "up" or ac_in is None or ac_out is None:
            self.last_power = None
            return
        if self.last_power is not None and now - self.last_power[0] <= MAX_ENERGY_GAP_S:
            self.energy.add(split_flows(self.last_power[1], self.last_power[2]), now - self.last_power[0])
        self.last_power = (now, float(ac_in), float(ac_out))

    def _poll_or_give_up(self) -> bool:
        """The 1 s work; after MAX_POLL_FAILURES failures in a row the loop ends with the failure,
        so the worker exits and the supervisor restarts it (its restarts and last exit show)."""
        try:
            self._poll()
        except Exception as error:
            self.poll_failures += 1
            self.log.exception("the periodic D-Bus work failed (%d in a row)", self.poll_failures)
            if self.poll_failures >= MAX_POLL_FAILURES:
                self.log.error("the periodic D-Bus work failed %d times in a row: ending the worker so it is "
                               "restarted", self.poll_failures)
                self.failure = error
                self.loop.quit()
                return False
        else:
            self.poll_failures = 0
        return True

    def _poll(self) -> None:
        now = time.monotonic()
        if self.follower is not None:
            self.follower.reread_if_silent()
        self._refresh_services(now)
        self._publish_dvcc()

    def _refresh_services(self, now: float) -> None:
        state = self.worker.state
        inverter = state.read("inverter") or {}
        self._integrate_energy(inverter, now)
        if self.vebus is None:
            return
        battery, frames = state.read("battery"), state.read("frames") or {}
        self.vebus.refresh(battery, frames, inverter, self.energy.values())
        if self.bms is not None:
            self._refresh_bms(battery, frames)

    def _refresh_bms(self, battery: Optional[dict], frames: dict) -> None:
        decision = frames.get("decision")
        if decision is None and frames and not self.decision_missing_logged:
            self.log.error("the frames slot has no 'decision' (the limits before DVCC): /Info/* stays invalid, "
                           "publishing the DVCC-bounded limits would ratchet the charge current down")
            self.decision_missing_logged = True
        self.bms.refresh(battery, decision)

    def _beat(self) -> None:
        if self.worker.stopping.is_set() or self.failure is not None:
            self.loop.quit()
            return
        self.worker.beat(vebus=self.vebus.name if self.vebus else None,
                         battery_service=self.follower.selected if self.follower else None,
                         localsettings=self.settings.present)

    def stop(self) -> None:
        for service in (self.bms, self.vebus):
            if service is not None:
                service.close()
        if self.follower is not None:
            self.follower.stop()
        self.energy.save()
        self.dvcc_writer.flush(1.0)


def run(worker) -> None:
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    publisher = DbusPublisher(worker, bus)
    publisher.start()
    try:
        publisher.loop.run()
    finally:
        publisher.stop()
    if publisher.failure is not None:
        raise publisher.failure
