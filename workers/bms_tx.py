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
from bms.external import ExternalVoltageRamp, apply_external_limits
from bms.snapshot import BatterySnapshot
from bms.state import ChargeState
from canbus.bus import open_bus
from canbus.cyclic import CyclicFrameSet, Schedule, known_sent_until
from canbus.responder import PollResponder, answer_allowed
from config import ConfigError
from ipc.atomic_file import load_or_set_aside
from ipc.flash_writer import FlashWriter
from protocol import profiles
from protocol.report import from_json, to_json
from workers.link import LinkMonitor

SNAPSHOT_FIELDS = ("voltage_v", "current_a", "soc_pct", "temperature_c")
LOG_EVERY_S = 10.0
PERSIST_EVERY_S = 60.0
FLUSH_AT_STOP_S = 2.0       # the last charge state to disk, within the supervisor's 3 s for a stop


def read_snapshot(state, now: float):
    """The battery slot as a BatterySnapshot aged to ``now``, or None before any real data; with
    the power the inverter reports while its link is up (it tells a frozen monitor from a battery
    at rest)."""
    battery = state.read("battery")
    if not battery or battery.get("updated") is None:
        return None
    inverter = state.read("inverter") or {}
    fields = (inverter.get("fields") or {}) if inverter.get("link") == "up" else {}
    return BatterySnapshot(
        *(battery.get(name) for name in SNAPSHOT_FIELDS),
        age_s=max(0.0, now - battery["updated"]),
        cell_min_v=battery.get("cell_min_v"),
        cell_max_v=battery.get("cell_max_v"),
        inverter_power_w=fields.get("inverter_power_w"),
    )


class BmsTransmitter:
    def __init__(self, worker):
        self.worker = worker
        self.cfg = worker.cfg
        self.profile = profiles.get(self.cfg.inverter.profile).for_pack(self.cfg.battery.cell_count)
        self._answering = None           # polled profiles: the report the inverter's polls are answered from
        self.writer = FlashWriter(worker.log)
        self.engine = BmsEngine(self.cfg, self._restore_state())
        covered = (worker.state.read("failsafe") or {}).get("report")
        if covered is not None:      # the failsafe sent meanwhile, made conservative with age
            self.engine.resume_below(from_json(covered))
        self.settings = {}
        self._full_charge_id = None      # the web console's last full-charge request, seen
        self.bus = None
        self.sender = None
        self.link = LinkMonitor(self.cfg)
        self._logged_state, self._logged_at = None, 0.0
        self.send_failures = 0
        self._persisted_decisive, self._persisted_at = None, 0.0
        self._covered = False        # the failsafe held the bus while we waited: continue from its record
        self._decided: Optional[dict] = None         # this cycle's frames slot, without cadence and wire
        self._frames = None
        self._wire: Optional[dict] = None            # our last sender's wire record
        self._external_ramp = ExternalVoltageRamp()  # a lower DVCC CVL through the float ramp

    def _restore_state(self) -> Optional[ChargeState]:
        """The engine's state from shared memory (a worker restart) or the file (a daemon restart).
        A file that cannot be read is set aside and counted: the engine starts as on a first start."""
        slot = self.worker.state.read("charge_state")
        if slot:
            self._unreadable, self._published = slot["storage"]["unreadable"], slot
            return ChargeState.from_dict(slot["state"]) if slot["state"] else None
        loaded = load_or_set_aside(self.cfg.state.charge_file, self._parse_charge_state, self.worker.log,
                                   "the charge state")
        self._unreadable = 0 if loaded.unreadable is None else 1
        self._published = None
        self._publish_charge_state(loaded.value.to_dict() if loaded.value is not None else None)
        return loaded.value

    def _parse_charge_state(self, document) -> ChargeState:
        """A state saved by a newer version loses the keys this one does not know, with a warning."""
        if isinstance(document, dict):
            unknown = sorted(set(document) - set(ChargeState._fields))
            if unknown:
                self.worker.log.warning("the charge state in %s has keys this version does not know (%s): ignored",
                                        self.cfg.state.charge_file, ", ".join(unknown))
            document = {key: value for key, value in document.items() if key in ChargeState._fields}
        return ChargeState.from_dict(document)

    def _apply_settings(self, dvcc: dict, web: dict) -> None:
        """Settings changed on Venus or on the web console (Venus's win) and a full charge asked
        for on the console take effect at the next cycle, the settings validated like the file."""
        requested = web.get("full_charge_id", 0)
        if self._full_charge_id is not None and requested != self._full_charge_id:
            self.worker.log.warning("full charge requested on the web console")
            self.engine.request_full_charge()
        self._full_charge_id = requested
        settings = dict(web.get("settings") or {}, **((dvcc or {}).get("settings") or {}))
        if settings == self.settings:
            return
        sections = {}
        for dotted, value in settings.items():
            section, key = dotted.split(".", 1)
            sections.setdefault(section, {})[key] = value
        try:
            cfg = self.worker.cfg.replace(**sections)
        except ConfigError as error:
            self.worker.log.error("settings from Venus or the web console refused, keeping the previous ones: %s",
                                  "; ".join(error.problems))
        else:
            self.worker.log.info("settings from Venus or the web console applied: %s", settings)
            self.cfg = cfg
            self.engine.reconfigure(cfg)
        self.settings = settings

    def cycle(self) -> None:
        state = self.worker.state
        dvcc = state.read("dvcc")
        web = state.read("web") or {}
        self._apply_settings(dvcc, web)
        now = time.monotonic()
        snapshot = read_snapshot(state, now)
        # Every engine timer runs on the monotonic clock: setting the wall clock (NTP after a
        # boot without RTC) must not end an absorption, drop the CVL or bring a full charge
        # forward. The wall clock only dates the last full charge, read afresh each cycle.
        decision = self.engine.step(snapshot, now, wall_t=time.time())
        if decision is None:
            return
        inverter = state.read("inverter") or {}
        # A force charge started on the web console is requested until stopped there (consistent()
        # still drops it while charging is not allowed).
        requested = decision.report._replace(force_charge_1=True, force_charge_2=True) \
            if web.get("force_charge") else decision.report
        report = apply_external_limits(requested, dvcc, inverter.get("shutdown_requested", False))
        report = self._external_ramp.apply(report, decision.report.charge_voltage_v, now, self.cfg.charge)
        frames = self.profile.encode(report, self.cfg.inverter.manufacturer)
        self._persist(self.engine.state.to_dict(), decision.phase, now)
        self._log_decision(decision, report, frames, now)
        self._frames = frames
        self._decided = {
            "source": "bms_tx", "pid": os.getpid(), "written": now,
            "report": to_json(report), "decision": to_json(decision.report),
            "phase": decision.phase, "reasons": decision.reasons,
            "freshness": decision.freshness, "data_age_s": snapshot.age_s if snapshot is not None else None,
            "data_quality": self.engine.data_quality(),
            "frames": [[f.arbitration_id, f.data.hex(), f.is_extended_id] for f in frames],
        }
        try:
            if self.profile.transport == "polled":
                self._answer_polls(report)
            elif self.sender is not None and not self.sender.update(frames):
                self.worker.log.warning("the frames' lease lapsed (this process was stopped): they start again")
                self.sender = None
            if self.sender is None and self.active() and self.profile.transport == "broadcast":
                self._start(frames)
        except (can.CanError, OSError) as error:
            self.send_failures += 1
            self.worker.log.error("sending failed (%s); the bus is reopened next cycle", error)
            self.close()
        self._publish_frames()

    def _publish_frames(self, sender: Optional[CyclicFrameSet] = None) -> None:
        """This cycle's frame set and decision, with the cadence and the wire record it is sent
        with, in the frames slot, where the failsafe finds them if this process dies. A starting
        or stopping ``sender`` calls this at each change of its wire record, so the record says
        at every moment which IDs are on the wire and up to when the others were sent."""
        if self._decided is None:
            return
        sender = sender or self.sender
        if sender is not None:
            schedule, self._wire = sender.schedule, sender.wire
        else:
            schedule = self._inherited_schedule(self._frames)
        self.worker.state.write("frames", dict(self._decided, wire=self._wire,
                                               schedule=schedule.as_dict() if schedule is not None else None))

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

    @property
    def beat_period_s(self) -> float:
        """How often the idle main loop wakes: with hot standby every heartbeat_interval_s, so a
        role turned standby takes our frames off the bus within one; without it the role never
        changes, and bms_tx beats as seldom as any worker (issue 19)."""
        return self.cfg.watchdog.heartbeat_interval_s if self.cfg.standby.enabled else self.worker.beat_period_s

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
                self._covered = False
                return
            failsafe = self.worker.state.read("failsafe") or {}
            if not failsafe.get("engaged"):
                break
            self._covered = True
            if time.monotonic() >= give_up:
                return
            self._sleep(self.cfg.watchdog.heartbeat_interval_s, ready=True)
        # Where the last sender left off: the failsafe's record when it held the bus, else our own.
        failsafe = self.worker.state.read("failsafe") or {}
        record = failsafe if self._covered else (self.worker.state.read("frames") or {})
        self._covered = False
        schedule = self._inherited_schedule(frames, Schedule.from_dict(record.get("schedule")))
        if schedule is None:        # a new cadence: its first ID is due now, or where a takeover puts it
            now = time.monotonic()
            cadence = (self.worker.state.read("role") or {}).get("cadence")
            t0, after = cadence if cadence and now - self.profile.cycle_s < cadence[1] <= now else (now, now - 1e-6)
            schedule = Schedule(t0, self.profile.cycle_s, tuple(f.arbitration_id for f in frames))
            sent_until = [after] * len(frames)
        else:
            sent_until = known_sent_until(record.get("wire")) or [
                failsafe.get("released_at") or time.monotonic()] * len(frames)
        if self.bus is None:
            self.bus = open_bus(self.cfg, receive=False)
        sender = CyclicFrameSet(self.bus, schedule, paced=self.profile.min_frame_spacing_s > 0,
                                on_change=lambda: self._publish_frames(sender), lease_s=self.cfg.can.frame_lease_s)
        if sender.start(frames, sent_until, lambda s: self._sleep(s, ready=True)):
            self.sender = sender
            self.worker.log.info("transmitting %d frames every %.1f s on %s %s", len(frames),
                                 schedule.cycle_s, self.cfg.can.interface, self.cfg.can.channel)

    def _answer_polls(self, report) -> None:
        """A polled profile (Pylon HV): the inverter's requests are answered from this decision,
        while the role is active and the failsafe does not hold the bus (it answers then)."""
        self._answering = report
        if self.sender is None and self.active():
            self.sender = PollResponder(self.cfg, self.profile, lambda: self._answering, self.worker.log,
                                        may_answer=self._holds_bus)
            self.worker.log.info("answering the inverter's polls on %s %s", self.cfg.can.interface,
                                 self.cfg.can.channel)

    def poll_stats(self) -> dict:
        """A polled profile's requests and answers, for the status (``polls`` of the CAN link)."""
        return {"polls": self.sender.stats()} if isinstance(self.sender, PollResponder) else {}

    def _holds_bus(self) -> bool:
        """Asked at each poll, from the responder's thread: a hung main loop has the failsafe answer;
        a hot standby's lease must hold (``answer_allowed``)."""
        return (answer_allowed(self.worker.state.read("role"), time.monotonic())
                and not (self.worker.state.read("failsafe") or {}).get("engaged"))

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
        """Keep the engine state for a restart: shared memory always; the file (flash on a GX) at
        once when the phase, a protection latch or the force charge changed (a power cut must not
        forget them), else at most once a minute, by the flash writer: a slow or failing disk
        never delays a frame, and its failures are counted in the slot for the status."""
        changed = charge_state != (self._published or {}).get("state")
        self._publish_charge_state(charge_state)
        decisive = (phase, charge_state.get("latches"), charge_state.get("force_charge"))
        if changed and (decisive != self._persisted_decisive or now - self._persisted_at >= PERSIST_EVERY_S):
            self.writer.submit(self.cfg.state.charge_file, json.dumps(charge_state, indent=1, sort_keys=True),
                               "the charge state")
            self._persisted_decisive, self._persisted_at = decisive, now

    def _publish_charge_state(self, charge_state: Optional[dict]) -> None:
        """The state and how its file fares, in shared memory, when either changed."""
        slot = {"state": charge_state,
                "storage": dict(self.writer.health(self.cfg.state.charge_file), unreadable=self._unreadable)}
        if slot != self._published:
            self.worker.state.write("charge_state", slot)
            self._published = slot

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
                                                      send_failures=tx.send_failures, **tx.poll_stats()))
            worker.beat(ready=tx.sender is not None, transmitting=tx.sender is not None)
            worker.wait(min(tx.beat_period_s, max(0.0, next_cycle - time.monotonic())))
    finally:
        tx.close()
        tx.writer.flush(FLUSH_AT_STOP_S)
