"""Charge and discharge current limits: the lowest of several candidates, then hold-and-ramp.

Each candidate is a small pure function of the reading and the configuration and carries
the reason it gives; the lowest wins (ties go to the earlier candidate, so an unlimited
battery reads "configured maximum" and a cut names its alarm rather than a taper at 0). Reductions act at once;
a limit rises again only after its target has stayed above it for ``recovery_hold_s`` (the
hold starts when the cause clears, not at the cut), then at ``recovery_ramp_a_per_s``, so a
condition that comes and goes does not make the limit oscillate.
"""
from typing import FrozenSet, List, NamedTuple, Optional, Tuple

from bms.alarms import CHARGE_CUTS, DISCHARGE_CUTS
from bms.reading import Reading


class Limit(NamedTuple):
    current_a: float
    reason: str


def toward_high_limit(value: float, start: float, limit: float) -> float:
    """1 up to ``start``, falling linearly to 0 at ``limit`` and beyond (``start`` <= ``limit``)."""
    if value >= limit:
        return 0.0
    if value <= start:
        return 1.0
    return (limit - value) / (limit - start)


def toward_low_limit(value: float, start: float, limit: float) -> float:
    """1 down to ``start``, falling linearly to 0 at ``limit`` and below (``start`` >= ``limit``)."""
    return toward_high_limit(-value, -start, -limit)


def _soc_candidate(maximum: float, fraction: float, soc_pct: float, floor_pct: float) -> Limit:
    floor = floor_pct / 100.0
    return Limit(maximum * (floor + (1.0 - floor) * fraction), "SoC %.1f %% taper" % soc_pct)


def _cell_candidate(maximum: float, fraction: float, voltage: float, measured: bool, side: str) -> Limit:
    source = "%s cell" % side if measured else "pack average"
    return Limit(maximum * fraction, "%s %.3f V taper" % (source, voltage))


def _temperature_candidate(maximum: float, reading: Reading, low: float, high: float, band: float) -> List[Limit]:
    temperature = reading.temperature_c
    if temperature is None:
        return []
    fraction = min(toward_high_limit(temperature, high - band, high), toward_low_limit(temperature, low + band, low))
    return [Limit(maximum * fraction, "temperature %.1f degC taper" % temperature)]


def _cut_candidates(active: FrozenSet[str], cuts: Tuple[str, ...]) -> List[Limit]:
    return [Limit(0.0, "cut by %s" % name) for name in cuts if name in active]


def charge_candidates(reading: Reading, active: FrozenSet[str], cfg) -> List[Limit]:
    lim, b = cfg.limits, cfg.battery
    maximum = lim.max_charge_current_a
    soc = toward_high_limit(reading.soc_pct, lim.charge_taper_soc_pct, 100.0)
    cell = toward_high_limit(reading.cell_high_v, lim.charge_taper_cell_v, b.cell_voltage_max_v)
    return ([Limit(maximum, "configured maximum")]
            + _cut_candidates(active, CHARGE_CUTS)
            + [_soc_candidate(maximum, soc, reading.soc_pct, lim.taper_floor_pct),
               _cell_candidate(maximum, cell, reading.cell_high_v, reading.cell_max_v is not None, "highest")]
            + _temperature_candidate(maximum, reading, lim.charge_min_temperature_c, lim.charge_max_temperature_c,
                                     lim.temperature_taper_c))


def discharge_candidates(reading: Reading, active: FrozenSet[str], cfg) -> List[Limit]:
    lim, b = cfg.limits, cfg.battery
    maximum = lim.max_discharge_current_a
    soc = toward_low_limit(reading.soc_pct, lim.discharge_taper_soc_pct, 0.0)
    cell = toward_low_limit(reading.cell_low_v, lim.discharge_taper_cell_v, b.cell_voltage_min_v)
    return ([Limit(maximum, "configured maximum")]
            + _cut_candidates(active, DISCHARGE_CUTS)
            + [_soc_candidate(maximum, soc, reading.soc_pct, lim.taper_floor_pct),
               _cell_candidate(maximum, cell, reading.cell_low_v, reading.cell_min_v is not None, "lowest")]
            + _temperature_candidate(maximum, reading, lim.discharge_min_temperature_c, lim.discharge_max_temperature_c,
                                     lim.temperature_taper_c))


def lowest(candidates: List[Limit]) -> Limit:
    """The winning candidate: the lowest current, the earliest of equals."""
    return min(candidates, key=lambda limit: limit.current_a)


class Governor(NamedTuple):
    """The hold-and-ramp memory of one limit."""

    current_a: float     # the limit last given out
    hold_left_s: float   # time left before it may rise again


def govern(previous: Optional[Governor], target: Limit, dt_s: float, limits_cfg) -> Tuple[Governor, Limit]:
    """The limit to give out now on the way to ``target``: never above it; rising only once the
    target has stayed above it for the whole hold (the hold starts when the cause clears and
    starts over whenever the target falls back), then along the ramp. The first limit counts
    as just set, so an engine that starts in a cut holds after it too."""
    hold_s = limits_cfg.recovery_hold_s
    if (previous is None or target.current_a < previous.current_a
            or (target.current_a == previous.current_a and previous.hold_left_s > 0)):
        return Governor(target.current_a, hold_s), target
    if target.current_a == previous.current_a:
        return previous, target
    if dt_s <= previous.hold_left_s:
        hold_left = previous.hold_left_s - dt_s
        return (Governor(previous.current_a, hold_left),
                Limit(previous.current_a, "recovery hold %.0f s (then %s)" % (hold_left, target.reason)))
    ramped = previous.current_a + limits_cfg.recovery_ramp_a_per_s * (dt_s - previous.hold_left_s)
    if ramped >= target.current_a:
        return Governor(target.current_a, 0.0), target
    return Governor(ramped, 0.0), Limit(ramped, "recovery ramp to %.1f A (%s)" % (target.current_a, target.reason))
