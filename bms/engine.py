"""The BMS engine: one decision per cycle from the latest battery snapshot.

Fresh data (not older than ``stale.hold_s``) is decided from: alarms, charge phase, CVL,
CCL and DCL. Older or unusable data falls back on the last fresh decision made
conservative by ``bms.stale.degrade``; the phase timers do not run on it. Until the first
real data nothing is decided at all (``step`` returns None), so nothing can be sent from
defaults. Time is passed in; the engine keeps no clock of its own.
"""
import math
from typing import Dict, NamedTuple, Optional

from protocol.report import BatteryReport

from bms import alarms, limits, phases
from bms.reading import Reading, read
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
        self._active = frozenset()                      # alarm latches set
        self._charge = None                             # limits.Governor of the CCL
        self._discharge = None                          # limits.Governor of the DCL
        self._last_fresh: Optional[BatteryReport] = None  # the basis of the stale policy
        self._data_seen = None                          # (now, age_s) of the last usable snapshot
        self._last_now: Optional[float] = None

    @property
    def state(self) -> ChargeState:
        return self._state

    def reconfigure(self, cfg) -> None:
        """New settings from the next step on; phase, latches and limit ramps carry over.

        A lower limit acts at once, a higher one comes by hold and ramp, and the CVL still
        falls no faster than the (new) float ramp.
        """
        self._cfg = cfg
        self._latch_rules = alarms.latches(cfg)

    def step(self, snapshot: Optional[BatterySnapshot], now: float) -> Optional[Decision]:
        """The decision at wall-clock time ``now`` (epoch seconds); None until real data was seen."""
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError("now = %r is not allowed: expected finite epoch seconds" % (now,))
        now = float(now)
        dt_s = 0.0 if self._last_now is None else max(now - self._last_now, 0.0)   # a clock step back counts 0
        self._last_now = now
        reading, problem = (None, "no battery data") if snapshot is None else read(snapshot, self._cfg.battery.cell_count)
        if reading is not None:
            self._data_seen = (now, snapshot.age_s)
        elif self._data_seen is None:
            return None
        seen_now, seen_age = self._data_seen
        age_s = seen_age + max(now - seen_now, 0.0)
        if reading is not None and (age_s <= self._cfg.stale.hold_s or self._last_fresh is None):
            decision = self._decide(reading, now, dt_s)
            self._last_fresh = decision.report
            if age_s <= self._cfg.stale.hold_s:
                return decision
            dt_s = 0.0   # old data seen first: decided once as the basis, then degraded at the same instant
        return self._degraded(age_s, dt_s, problem)

    def _decide(self, reading: Reading, now: float, dt_s: float) -> Decision:
        cfg = self._cfg
        self._active = alarms.update(self._active, reading, self._latch_rules)
        state = phases.advance(self._state, reading, now, dt_s, cfg.charge)
        target_v = phases.target_voltage(state, now, cfg.charge)
        charge_voltage_v = phases.ramp_voltage(self._state.charge_voltage_v, target_v, dt_s, cfg.charge)
        self._state = state._replace(charge_voltage_v=charge_voltage_v)
        self._charge, charge = limits.govern(
            self._charge, limits.lowest(limits.charge_candidates(reading, self._active, cfg)), dt_s, cfg.limits)
        self._discharge, discharge = limits.govern(
            self._discharge, limits.lowest(limits.discharge_candidates(reading, self._active, cfg)), dt_s, cfg.limits)
        protection, alarm = alarms.report_flags(self._active)
        charge_enable = charge.current_a > 0
        # Pylon frames have no "not available" temperature: without a sensor the configured
        # value is announced, and no temperature derating applies (the reading stays None).
        announced_temperature_c = (reading.temperature_c if reading.temperature_c is not None
                                   else cfg.battery.assumed_temperature_c)
        report = BatteryReport(
            charge_voltage_v=charge_voltage_v,
            charge_current_a=charge.current_a,
            discharge_current_a=discharge.current_a,
            discharge_voltage_v=cfg.limits.discharge_voltage_v,
            soc_pct=reading.soc_pct if state.phase == "float" else min(reading.soc_pct, cfg.charge.soc_cap_pct),
            soh_pct=cfg.battery.soh_pct,
            voltage_v=reading.voltage_v,
            current_a=reading.current_a,
            temperature_c=announced_temperature_c,
            charge_enable=charge_enable,
            discharge_enable=discharge.current_a > 0,
            force_charge_1=state.force_charge and charge_enable,   # a request to charge is void while
            force_charge_2=state.force_charge and charge_enable,   # charging is not allowed (Deye ignores CCL 0)
            full_charge=phases.full_charge_due(state, now, cfg.charge) and charge_enable,
            protection=protection,
            alarm=alarm,
            modules=cfg.battery.modules,
            capacity_ah=cfg.battery.capacity_ah,
            cell_min_v=reading.cell_min_v,
            cell_max_v=reading.cell_max_v,
            temperature_min_c=announced_temperature_c,
            temperature_max_c=announced_temperature_c)
        reasons = {"charge_current": charge.reason, "discharge_current": discharge.reason,
                   "charge_voltage": phases.voltage_reason(state, now, charge_voltage_v, target_v, cfg.charge)}
        return Decision(report, state.phase, reasons, "fresh")

    def _degraded(self, age_s: float, dt_s: float, problem: str) -> Decision:
        """The last fresh decision made conservative for its age; the phase timers stop meanwhile."""
        report = degrade(self._last_fresh, age_s, self._cfg)
        self._charge, charge = limits.govern(self._charge, limits.Limit(report.charge_current_a, ""), dt_s, self._cfg.limits)
        self._discharge, discharge = limits.govern(
            self._discharge, limits.Limit(report.discharge_current_a, ""), dt_s, self._cfg.limits)
        report = report._replace(charge_current_a=charge.current_a, discharge_current_a=discharge.current_a,
                                 charge_enable=report.charge_enable and charge.current_a > 0,
                                 discharge_enable=report.discharge_enable and discharge.current_a > 0)
        self._state = self._state._replace(tail_s=None, rebulk_s=None)
        freshness = "stale" if age_s >= self._cfg.stale.stale_s else "hold"
        why = "%s: battery data %.0f s old%s" % (freshness, age_s, " (%s)" % problem if problem else "")
        reasons = {"charge_current": why, "discharge_current": why, "charge_voltage": why + ", held"}
        return Decision(report, self._state.phase, reasons, freshness)
