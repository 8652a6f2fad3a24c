"""The BMS engine: one decision per cycle from the latest battery snapshot.

Fresh data (not older than ``stale.hold_s``) is decided from: alarms, charge phase, CVL,
CCL and DCL. Older or unusable data falls back on the last fresh decision made
conservative by ``bms.stale.degrade``; the phase timers do not run on it. A temperature or
cell voltage that is not valid (``bms.reading``) is held at its last valid value and the
decision is degraded for its own age. Until the first
real data nothing is decided at all (``step`` returns None), so nothing can be sent from
defaults. Time is passed in; the engine keeps no clock of its own. Everything that must
survive a restart (phase and timers, alarm latches, the hold-and-ramp of both limits, which
cell voltages the monitor reports) is in
``state``, so an engine made from a saved state continues where the last one stopped.
"""
import math
from typing import Dict, NamedTuple, Optional

from protocol.report import BatteryReport

from bms import alarms, limits, phases
from bms.external import consistent
from bms.reading import MonitorMemory, Reading
from bms.snapshot import BatterySnapshot
from bms.stale import degrade
from bms.state import ChargeState


class Decision(NamedTuple):
    report: BatteryReport
    phase: str                 # "bulk", "absorption" or "float"
    reasons: Dict[str, str]    # "charge_current", "discharge_current", "charge_voltage": why each value
    freshness: str             # "fresh", "hold" or "stale"


class BmsEngine:
    """Decides from snapshots; ``state`` is what must be saved to survive a restart."""

    def __init__(self, cfg, state: Optional[ChargeState] = None):
        if state is not None and not isinstance(state, ChargeState):
            raise TypeError("state must be a bms.state.ChargeState or None, not %s" % type(state).__name__)
        self._cfg = cfg
        self._state = state if state is not None else ChargeState()
        self._latch_rules = alarms.latches(cfg)
        self._last_fresh: Optional[BatteryReport] = None  # the basis of the stale policy
        self._data_seen = None                          # (now, age_s) of the last usable snapshot
        self._monitor = MonitorMemory(self._state.cells_reported)   # per quantity: last valid value, rejections
        self._last_now: Optional[float] = None

    @property
    def state(self) -> ChargeState:
        return self._state

    def data_quality(self) -> dict:
        """Rejected monitor values by kind (missing, implausible, inconsistent, frozen) and what is wrong now."""
        return self._monitor.quality()

    def reconfigure(self, cfg) -> None:
        """New settings from the next step on; phase, latches and limit ramps carry over.

        A lower limit acts at once, a higher one comes by hold and ramp, and the CVL still
        falls no faster than the (new) float ramp.
        """
        self._cfg = cfg
        self._latch_rules = alarms.latches(cfg)

    def request_full_charge(self) -> None:
        """A full charge asked for now (on the web console): due from the next step on, as if
        charge.full_charge_interval_days had passed (0: full charges are off, nothing changes);
        it ends, and the interval restarts, like any full charge."""
        due_s = self._cfg.charge.full_charge_interval_days * 86400.0
        self._state = self._state._replace(since_full_charge_s=max(self._state.since_full_charge_s or 0.0, due_s))

    def resume_below(self, sent: BatteryReport) -> None:
        """The inverter was last sent ``sent`` by another sender (the failsafe, which made the last
        frames conservative with age while no engine decided): neither limit rises from what it
        sent but by hold and ramp."""
        hold_s = self._cfg.limits.recovery_hold_s

        def lowered(governor: Optional[limits.Governor], sent_a: float) -> limits.Governor:
            return governor if governor is not None and governor.current_a <= sent_a else limits.Governor(sent_a, hold_s)

        self._state = self._state._replace(charge_limit=lowered(self._state.charge_limit, sent.charge_current_a),
                                           discharge_limit=lowered(self._state.discharge_limit, sent.discharge_current_a))

    def step(self, snapshot: Optional[BatterySnapshot], now: float,
             wall_t: Optional[float] = None) -> Optional[Decision]:
        """The decision at time ``now``; None until real data was seen.

        ``now``: seconds of a clock that does not step (bms_tx: time.monotonic()); every timer
        runs on it. ``wall_t``: the wall clock (epoch seconds), only to show when the last full
        charge was; None where there is none (replay, simulation).
        """
        now = _seconds("now", now)
        wall_t = None if wall_t is None else _seconds("wall_t", wall_t)
        dt_s = 0.0 if self._last_now is None else max(now - self._last_now, 0.0)   # a clock step back counts 0
        self._last_now = now
        seen = self._monitor.observe(snapshot, now, self._cfg)
        self._state = self._state._replace(cells_reported=self._monitor.reported)
        reading, problem = seen.reading, seen.problem
        if reading is not None:
            self._data_seen = (now, seen.age_s)
        elif self._data_seen is None:
            return None
        self._state = phases.elapse(self._state, dt_s, wall_t)
        seen_now, seen_age = self._data_seen
        age_s = seen_age + max(now - seen_now, 0.0)
        hold_s = self._cfg.stale.hold_s
        if reading is not None and (age_s <= hold_s or self._last_fresh is None):
            decision = self._decide(reading, dt_s)
            self._last_fresh = decision.report
            if age_s <= hold_s and seen.own_age_s <= hold_s:
                return decision
            dt_s = 0.0   # old data: decided once as the basis, then degraded at the same instant
        if seen.own_age_s > age_s:   # a temperature or cell voltage is older than the rest
            return self._degraded(seen.own_age_s, dt_s, seen.own_problem)
        return self._degraded(age_s, dt_s, "battery data %.0f s old%s" % (age_s, " (%s)" % problem if problem else ""))

    def _decide(self, reading: Reading, dt_s: float) -> Decision:
        cfg = self._cfg
        active = alarms.update(self._state.latches, reading, self._latch_rules)
        state = phases.advance(self._state, reading, dt_s, cfg.charge)
        target_v = phases.target_voltage(state, cfg.charge)
        charge_voltage_v = phases.ramp_voltage(self._state.charge_voltage_v, target_v, dt_s, cfg.charge)
        charge_limit, charge = limits.govern(
            state.charge_limit, limits.lowest(limits.charge_candidates(reading, active, cfg)), dt_s, cfg.limits)
        discharge_limit, discharge = limits.govern(
            state.discharge_limit, limits.lowest(limits.discharge_candidates(reading, active, cfg)), dt_s, cfg.limits)
        self._state = state._replace(charge_voltage_v=charge_voltage_v, latches=active,
                                     charge_limit=charge_limit, discharge_limit=discharge_limit)
        protection, alarm = alarms.report_flags(active)
        # No temperature (no sensor configured, or none valid yet): temperature_c stays None, so
        # a profile with a "not available" code sends it; the Pylon family has none and sends
        # temperature_max_c instead, which then carries the configured assumed temperature.
        announced_temperature_c = (reading.temperature_c if reading.temperature_c is not None
                                   else cfg.battery.assumed_temperature_c)
        report = consistent(BatteryReport(
            charge_voltage_v=charge_voltage_v,
            charge_current_a=charge.current_a,
            discharge_current_a=discharge.current_a,
            discharge_voltage_v=cfg.limits.discharge_voltage_v,
            soc_pct=reading.soc_pct if state.phase == "float" else min(reading.soc_pct, cfg.charge.soc_cap_pct),
            soh_pct=cfg.battery.soh_pct,
            voltage_v=reading.voltage_v,
            current_a=reading.current_a,
            temperature_c=reading.temperature_c,
            charge_enable=True,              # consistent(): enabled while the limit is above 0, and
            discharge_enable=True,           # the requests only while charging is (Deye ignores CCL 0)
            force_charge_1=state.force_charge,
            force_charge_2=state.force_charge,
            full_charge=phases.full_charge_due(state, cfg.charge),
            protection=protection,
            alarm=alarm,
            modules=cfg.battery.modules,
            capacity_ah=cfg.battery.capacity_ah,
            cell_min_v=reading.cell_min_v,
            cell_max_v=reading.cell_max_v,
            temperature_min_c=announced_temperature_c,
            temperature_max_c=announced_temperature_c))
        reasons = {"charge_current": charge.reason, "discharge_current": discharge.reason,
                   "charge_voltage": phases.voltage_reason(state, charge_voltage_v, target_v, cfg.charge)}
        return Decision(report, state.phase, reasons, "fresh")

    def _degraded(self, age_s: float, dt_s: float, what: str) -> Decision:
        """The last fresh decision made conservative for its age (``what`` is old, and why); the
        phase timers stop meanwhile."""
        report = degrade(self._last_fresh, age_s, self._cfg)
        charge_limit, charge = limits.govern(
            self._state.charge_limit, limits.Limit(report.charge_current_a, ""), dt_s, self._cfg.limits)
        discharge_limit, discharge = limits.govern(
            self._state.discharge_limit, limits.Limit(report.discharge_current_a, ""), dt_s, self._cfg.limits)
        report = consistent(report._replace(charge_current_a=charge.current_a, discharge_current_a=discharge.current_a))
        self._state = self._state._replace(tail_s=None, rebulk_s=None,
                                           charge_limit=charge_limit, discharge_limit=discharge_limit)
        freshness = "stale" if age_s >= self._cfg.stale.stale_s else "hold"
        why = "%s: %s" % (freshness, what)
        reasons = {"charge_current": why, "discharge_current": why, "charge_voltage": why + ", held"}
        return Decision(report, self._state.phase, reasons, freshness)


def _seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("%s = %r is not allowed: expected finite seconds" % (name, value))
    return float(value)
