"""bms_tx: decide once per cycle and keep the frame set on the bus.

Each cycle it reads the battery snapshot, runs the BMS engine, bounds the decision by the
limits Venus wrote (DVCC/ESS) and by an inverter's shutdown command, encodes it with the
inverter profile and updates the periodic tasks in place. The same frame set, its decision
and its schedule go into shared memory, where the failsafe finds them if this process dies.
Nothing is sent before the engine has seen real battery data.
"""
import json
import os
import time
from typing import Optional

import can

from bms.engine import BmsEngine
from bms.external import apply_external_limits
from bms.snapshot import BatterySnapshot
from bms.state import ChargeState
from canbus.bus import open_bus
from canbus.cyclic import CyclicFrameSet, Schedule
from config import ConfigError
from ipc.atomic_file import read_json, write_atomic
from protocol import profiles
from protocol.report import to_json
from workers.link import LinkMonitor

SNAPSHOT_FIELDS = ("voltage_v", "current_a", "soc_pct", "temperature_c")
LOG_EVERY_S = 10.0
PERSIST_EVERY_S = 60.0


def read_snapshot(state, now: float):
    """The battery slot as a BatterySnapshot aged to ``now``, or None before any real data."""
    battery = state.read("battery")
    if not battery or battery.get("updated") is None:
        return None
    return BatterySnapshot(
        *(battery.get(name) for name in SNAPSHOT_FIELDS),
        age_s=max(0.0, now - battery["updated"]),
        cell_min_v=battery.get("cell_min_v"),
        cell_max_v=battery.get("cell_max_v"),
    )


class BmsTransmitter:
    def __init__(self, worker):
        self.worker = worker
        self.cfg = worker.cfg
        self.profile = profiles.get(self.cfg.inverter.profile)
        self.engine = BmsEngine(self.cfg, self._restore_state())
        self.settings = {}
        self.bus = None
        self.sender = None
        self.link = LinkMonitor(self.cfg)
        # Wall-clock time for the engine, but stepping with the monotonic clock: an NTP jump
        # must not end an absorption early or drop the CVL by a whole ramp at once.
        self.epoch = time.time() - time.monotonic()
        self._logged_state, self._logged_at = None, 0.0
        self.send_failures = 0
        self._persisted_phase, self._persisted_at = None, 0.0
        self._covered: Optional[Schedule] = None     # the cadence of the failsafe we wait for

    def _restore_state(self):
        """The engine's state from shared memory (a worker restart) or the file (a daemon restart)."""
        saved = self.worker.state.read("charge_state") or read_json(self.cfg.state.charge_file)
        return ChargeState.from_dict(saved) if saved else None

    def _apply_settings(self, dvcc: dict) -> None:
        """Settings changed on Venus take effect at the next cycle, validated like the file."""
        settings = (dvcc or {}).get("settings") or {}
        if settings == self.settings:
            return
        sections = {}
        for dotted, value in settings.items():
            section, key = dotted.split(".", 1)
            sections.setdefault(section, {})[key] = value
        try:
            cfg = self.worker.cfg.replace(**sections)
        except ConfigError as error:
            self.worker.log.error("settings from Venus refused, keeping the previous ones: %s",
                                  "; ".join(error.problems))
        else:
            self.worker.log.info("settings from Venus applied: %s", settings)
            self.cfg = cfg
            self.engine.reconfigure(cfg)
        self.settings = settings

    def cycle(self) -> None:
        state = self.worker.state
        dvcc = state.read("dvcc")
        self._apply_settings(dvcc)
        now = time.monotonic()
        snapshot = read_snapshot(state, now)
        decision = self.engine.step(snapshot, self.epoch + now)
        if decision is None:
            return
        inverter = state.read("inverter") or {}
        report = apply_external_limits(decision.report, dvcc, inverter.get("shutdown_requested", False))
        frames = self.profile.encode(report, self.cfg.inverter.manufacturer)
        self._persist(self.engine.state.to_dict(), decision.phase, now)
        self._log_decision(decision, report, frames, now)
        try:
            if self.sender is not None:
                self.sender.update(frames)
            elif self.active():
                self._start(frames)
        except (can.CanError, OSError) as error:
            self.send_failures += 1
            self.worker.log.error("sending failed (%s); the bus is reopened next cycle", error)
            self.close()
        schedule = self.sender.schedule if self.sender is not None else self._inherited_schedule(frames)
        state.write("frames", {
            "source": "bms_tx", "pid": os.getpid(), "written": now,
            "schedule": schedule.as_dict() if schedule is not None else None,
            "report": to_json(report), "decision": to_json(decision.report),
            "phase": decision.phase, "reasons": decision.reasons,
            "freshness": decision.freshness, "data_age_s": snapshot.age_s,
            "frames": [[f.arbitration_id, f.data.hex(), f.is_extended_id] for f in frames],
        })

    def _log_decision(self, decision, report, frames, now: float) -> None:
        """What was decided and sent: at once when the phase or freshness changes, else every 10 s."""
        state = (decision.phase, decision.freshness)
        if state == self._logged_state and now - self._logged_at < LOG_EVERY_S:
            return
        self._logged_state, self._logged_at = state, now
        self.worker.log.info(
            "%s (%s): CVL %.2f V (%s), CCL %.1f A (%s), DCL %.1f A (%s), DVL %.1f V, charge %s, discharge %s%s%s",
            decision.phase, decision.freshness, report.charge_voltage_v, decision.reasons["charge_voltage"],
            report.charge_current_a, decision.reasons["charge_current"], report.discharge_current_a,
            decision.reasons["discharge_current"], report.discharge_voltage_v,
            "on" if report.charge_enable else "off", "on" if report.discharge_enable else "off",
            "".join(", " + flag for flag in sorted(report.protection | report.alarm)),
            ", force charge" if report.force_charge_1 or report.force_charge_2 else "")
        self.worker.log.info("frames: %s", " ".join(str(frame) for frame in frames))

    def active(self) -> bool:
        """This device transmits (hot standby: the supervisor's role slot says so)."""
        return (self.worker.state.read("role") or {}).get("role") == "active"

    def _inherited_schedule(self, frames, known: Optional[Schedule] = None) -> Optional[Schedule]:
        """The cadence the bus already has (``known``: the failsafe's, else a previous bms_tx's), if
        it fits; a standby has none on the bus."""
        if known is None:
            if not self.active():
                return None
            known = Schedule.from_dict((self.worker.state.read("frames") or {}).get("schedule"))
        ids = tuple(frame.arbitration_id for frame in frames)
        if known is not None and tuple(known.ids) == ids and known.cycle_s == self.profile.cycle_s:
            return known
        return None

    def _start(self, frames) -> None:
        """Take the bus, while the role is active, once the failsafe has let go of it, continuing
        its cadence. A wait longer than a cycle returns, so the next cycle decides afresh."""
        self.worker.beat(ready=True, transmitting=False)
        give_up = time.monotonic() + self.profile.cycle_s
        while not self.worker.stopping.is_set():
            if not self.active():
                self._covered = None
                return
            failsafe = self.worker.state.read("failsafe") or {}
            if not failsafe.get("engaged"):
                break
            self._covered = Schedule.from_dict(failsafe.get("schedule"))
            if time.monotonic() >= give_up:
                return
            self._sleep(self.cfg.watchdog.heartbeat_interval_s, ready=True)
        schedule = self._inherited_schedule(frames, self._covered)
        self._covered = None
        if schedule is None:        # a new cadence: its first ID is due now, or where a takeover puts it
            now = time.monotonic()
            cadence = (self.worker.state.read("role") or {}).get("cadence")
            t0, after = cadence if cadence and now - self.profile.cycle_s < cadence[1] <= now else (now, now - 1e-6)
            schedule = Schedule(t0, self.profile.cycle_s, tuple(f.arbitration_id for f in frames))
        else:
            after = (self.worker.state.read("failsafe") or {}).get("released_at") or time.monotonic()
        if self.bus is None:
            self.bus = open_bus(self.cfg, receive=False)
        sender = CyclicFrameSet(self.bus, schedule)
        if sender.start(frames, after, lambda s: self._sleep(s, ready=True)):
            self.sender = sender
            self.worker.log.info("transmitting %d frames every %.1f s on %s %s", len(frames),
                                 schedule.cycle_s, self.cfg.can.interface, self.cfg.can.channel)

    def _sleep(self, seconds: float, **beat) -> bool:
        """Sleep while beating; True when asked to stop or when the role is no longer active."""
        deadline = time.monotonic() + seconds
        while True:
            self.worker.beat(**beat)
            if not self.active():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return self.worker.stopping.is_set()
            if self.worker.wait(min(left, self.cfg.watchdog.heartbeat_interval_s)):
                return True

    def _persist(self, charge_state: dict, phase: str, now: float) -> None:
        """Keep the engine state for a restart: shared memory always; the file (flash on a GX)
        when the phase changed or at most once a minute."""
        if charge_state == self.worker.state.read("charge_state"):
            return
        self.worker.state.write("charge_state", charge_state)
        if phase != self._persisted_phase or now - self._persisted_at >= PERSIST_EVERY_S:
            write_atomic(self.cfg.state.charge_file, json.dumps(charge_state, indent=1, sort_keys=True))
            self._persisted_phase, self._persisted_at = phase, now

    def stop_sending(self) -> None:
        """The role turned standby: off the bus at once (the bus stays open)."""
        self.sender.stop()
        self.sender = None
        self.worker.log.info("standby: transmitting stopped")

    def close(self) -> None:
        if self.sender is not None:
            self.sender.stop()
            self.sender = None
        if self.bus is not None:
            self.bus.shutdown()
            self.bus = None


def run(worker) -> None:
    tx = BmsTransmitter(worker)
    next_cycle = time.monotonic()
    was_active = False
    try:
        while not worker.stopping.is_set():
            now = time.monotonic()
            active = tx.active()
            if tx.sender is not None and not active:
                tx.stop_sending()
            if active and not was_active:
                next_cycle = now        # a takeover: decide and transmit at once
            was_active = active
            if now >= next_cycle:
                next_cycle = max(next_cycle + tx.profile.cycle_s, now)
                tx.cycle()
                worker.state.write("bms_tx.can", dict(tx.link.read(tx.sender is not None),
                                                      send_failures=tx.send_failures))
            worker.beat(ready=tx.sender is not None, transmitting=tx.sender is not None)
            worker.wait(min(worker.cfg.watchdog.heartbeat_interval_s, max(0.0, next_cycle - time.monotonic())))
    finally:
        tx.close()
