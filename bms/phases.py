"""The charge phase state machine and the charge voltage limit (CVL) it asks for.

bulk -> absorption  when the pack reaches the charge voltage (within voltage_tolerance_v), or
                    the battery monitor reports 100 % (a Victron monitor has synchronised:
                    charged voltage and tail current reached), so a full pack that the
                    inverter's own setpoint or a cable drop keeps below the CVL is not left in
                    bulk for ever;
absorption -> float when the tail current held for tail_time_s with balanced cells, or after
                    absorption_max_s, at the voltage or at 100 %; this end of absorption is the
                    full charge;
absorption -> bulk  and
float -> bulk       when SoC or voltage stayed below the rebulk thresholds for rebulk_confirm_s;
float -> bulk       at once when a force charge is latched or a full charge is due.

One transition per step at most. The CVL falls at no more than float_ramp_v_per_s, so the
step down into float becomes a gentle ramp (Deye discharges into the grid on a sudden drop).
The full charge is due after full_charge_interval_days of engine time (``elapse``), never by
a step of the wall clock.
"""
from typing import Optional

from bms.reading import Reading
from bms.state import ChargeState

TRANSITIONS = frozenset({("bulk", "absorption"), ("absorption", "float"), ("absorption", "bulk"), ("float", "bulk")})

_DAY_S = 86400.0
SYNCHRONISED_SOC_PCT = 100.0      # a Victron monitor shows 100 % only once it has synchronised
EARLIEST_WALL_T = 1577836800.0    # 2020-01-01: a wall clock before this was never set (no RTC, no NTP yet)


def elapse(state: ChargeState, dt_s: float, wall_t: Optional[float]) -> ChargeState:
    """The time since the last full charge counted on by ``dt_s`` of engine time (from 0 at the
    first data), and its wall-clock time re-derived from ``wall_t`` when that clock is set, so
    that setting the clock moves the time shown but never the time counted.

    A state saved by a version that kept only the wall-clock time starts from it, unless that
    time is in the future or from a clock that was not set: then the interval starts now."""
    clock_set = wall_t is not None and wall_t >= EARLIEST_WALL_T
    since = state.since_full_charge_s
    last_t = state.last_full_charge_t
    if since is not None:
        since += dt_s
    elif last_t is not None and clock_set and EARLIEST_WALL_T <= last_t <= wall_t:
        since = wall_t - last_t
    else:
        since, last_t = 0.0, None
    return state._replace(since_full_charge_s=since, last_full_charge_t=wall_t - since if clock_set else last_t)


def full_charge_due(state: ChargeState, charge_cfg) -> bool:
    """True when the last full charge is older than full_charge_interval_days (0: never due)."""
    interval_days = charge_cfg.full_charge_interval_days
    if interval_days == 0 or state.since_full_charge_s is None:
        return False
    return state.since_full_charge_s >= interval_days * _DAY_S


def target_voltage(state: ChargeState, charge_cfg) -> float:
    if state.phase == "float":
        return charge_cfg.float_voltage_v
    if full_charge_due(state, charge_cfg):
        return charge_cfg.full_charge_voltage_v
    return charge_cfg.absorption_voltage_v


def force_charge_latch(latched: bool, soc_pct: float, charge_cfg) -> bool:
    """Set at or below force_charge_soc_pct, reset at or above force_charge_recover_soc_pct, kept between."""
    if soc_pct <= charge_cfg.force_charge_soc_pct:
        return True
    if soc_pct >= charge_cfg.force_charge_recover_soc_pct:
        return False
    return latched


def _held(previous_s: Optional[float], condition: bool, dt_s: float) -> Optional[float]:
    """How long a condition has held: None while false, 0 when it starts, then growing by dt."""
    if not condition:
        return None
    return 0.0 if previous_s is None else previous_s + dt_s


def _balanced(reading: Reading, charge_cfg) -> bool:
    spread = reading.cell_spread_v
    return spread is None or spread <= charge_cfg.balanced_cell_spread_v


def advance(state: ChargeState, reading: Reading, dt_s: float, charge_cfg) -> ChargeState:
    """The state after one fresh reading, ``dt_s`` seconds after the previous one."""
    c = charge_cfg
    full = (reading.voltage_v >= target_voltage(state, c) - c.voltage_tolerance_v
            or reading.soc_pct >= SYNCHRONISED_SOC_PCT)
    rebulk = _held(state.rebulk_s, reading.soc_pct < c.rebulk_soc_pct or reading.voltage_v < c.rebulk_voltage_v, dt_s)
    state = state._replace(rebulk_s=rebulk, force_charge=force_charge_latch(state.force_charge, reading.soc_pct, c))
    rebulk_confirmed = rebulk is not None and rebulk >= c.rebulk_confirm_s
    to_bulk = state._replace(phase="bulk", absorption_s=0.0, tail_s=None, rebulk_s=None)

    if state.phase == "bulk":
        return state._replace(phase="absorption", absorption_s=0.0, tail_s=None) if full else state
    if state.phase == "absorption":
        if rebulk_confirmed:
            return to_bulk
        absorption_s = state.absorption_s + (dt_s if full else 0.0)
        tail = _held(state.tail_s, full and reading.current_a <= c.tail_current_a and _balanced(reading, c), dt_s)
        if (tail is not None and tail >= c.tail_time_s) or absorption_s >= c.absorption_max_s:
            return state._replace(phase="float", absorption_s=absorption_s, tail_s=None,
                                  since_full_charge_s=0.0, last_full_charge_t=None)
        return state._replace(absorption_s=absorption_s, tail_s=tail)
    if rebulk_confirmed or state.force_charge or full_charge_due(state, c):
        return to_bulk
    return state


def ramp_voltage(previous_v: Optional[float], target_v: float, dt_s: float, charge_cfg) -> float:
    """The CVL to send: up to the target at once, down at most float_ramp_v_per_s, never above the maximum."""
    if previous_v is None:
        return target_v
    lowest_allowed = previous_v - charge_cfg.float_ramp_v_per_s * dt_s
    return min(max(target_v, lowest_allowed), charge_cfg.full_charge_voltage_v)


def voltage_reason(state: ChargeState, charge_voltage_v: float, target_v: float, charge_cfg) -> str:
    if charge_voltage_v > target_v:
        return "%s: ramping down to %.2f V" % (state.phase, target_v)
    if state.phase != "float" and full_charge_due(state, charge_cfg):
        return "%s: full charge due" % state.phase
    return state.phase
