"""Warnings and protections with hysteresis, and the limits each protection cuts.

Every condition is a latch: it trips beyond its threshold and clears only once the value
is back inside by the hysteresis, so a value hovering at a threshold does not flap.
Temperatures are judged per direction (charge and discharge have their own ranges): one
direction blocked is a warning, both blocked is a protection.
"""
from typing import Callable, FrozenSet, NamedTuple, Optional, Tuple

from bms.reading import Reading


class Latch(NamedTuple):
    name: str
    measure: Callable[[Reading], Optional[float]]
    trip: float        # beyond this the latch sets
    clear: float       # it resets once the value is back past this
    rising: bool       # True: trips above `trip`; False: trips below


def _temperature(reading: Reading) -> Optional[float]:
    return reading.temperature_c


def _cell_high(reading: Reading) -> Optional[float]:
    """Unknown while a reported cell voltage has no valid value (after a restart): the pack
    average must not stand in for it and clear a latch."""
    if reading.cell_max_v is None and "cell_max_v" in reading.cells_reported:
        return None
    return reading.cell_high_v


def _cell_low(reading: Reading) -> Optional[float]:
    if reading.cell_min_v is None and "cell_min_v" in reading.cells_reported:
        return None
    return reading.cell_low_v


def _charge_current(reading: Reading) -> float:
    return reading.charge_current_a


def _discharge_current(reading: Reading) -> float:
    return reading.discharge_current_a


def latches(cfg) -> Tuple[Latch, ...]:
    """All conditions watched, with thresholds from the configuration."""
    b, lim = cfg.battery, cfg.limits
    margin, v_hyst, t_hyst = lim.cell_voltage_warning_margin_v, lim.cell_voltage_hysteresis_v, lim.temperature_hysteresis_c
    rules = [
        Latch("over_voltage", _cell_high, b.cell_voltage_max_v, b.cell_voltage_max_v - v_hyst, True),
        Latch("high_voltage", _cell_high, b.cell_voltage_max_v - margin, b.cell_voltage_max_v - margin - v_hyst, True),
        Latch("under_voltage", _cell_low, b.cell_voltage_min_v, b.cell_voltage_min_v + v_hyst, False),
        Latch("low_voltage", _cell_low, b.cell_voltage_min_v + margin, b.cell_voltage_min_v + margin + v_hyst, False),
    ]
    for direction in ("charge", "discharge") if b.temperature_sensor else ():   # no sensor: nothing to watch
        low, high = getattr(lim, direction + "_min_temperature_c"), getattr(lim, direction + "_max_temperature_c")
        rules.append(Latch(direction + "_too_cold", _temperature, low, low + t_hyst, False))
        rules.append(Latch(direction + "_too_hot", _temperature, high, high - t_hyst, True))
    for direction, measure, maximum in (("charge", _charge_current, lim.max_charge_current_a),
                                        ("discharge", _discharge_current, lim.max_discharge_current_a)):
        rules.append(Latch(direction + "_high_current", measure, maximum * lim.current_warning_pct / 100, maximum, True))
        rules.append(Latch(direction + "_over_current", measure, maximum * lim.current_protection_pct / 100, maximum, True))
    return tuple(rules)


def update(active: FrozenSet[str], reading: Reading, rules: Tuple[Latch, ...]) -> FrozenSet[str]:
    """The latches set after this reading; one whose measure is unknown keeps its state (a
    protection never clears because its measure went missing, and an unknown value sets none)."""
    now_active = set()
    for rule in rules:
        value = rule.measure(reading)
        if value is None:
            if rule.name in active:
                now_active.add(rule.name)
            continue
        sign = 1.0 if rule.rising else -1.0
        threshold = rule.clear if rule.name in active else rule.trip
        if sign * value > sign * threshold:
            now_active.add(rule.name)
    return frozenset(now_active)


# Latches that cut one limit to zero while they are set.
CHARGE_CUTS = ("over_voltage", "charge_too_cold", "charge_too_hot", "charge_over_current")
DISCHARGE_CUTS = ("under_voltage", "discharge_too_cold", "discharge_too_hot", "discharge_over_current")

# Report flag -> the latch names that raise it, all of them (protection) or any (warning).
_PROTECTIONS_ALL = {"under_temperature": ("charge_too_cold", "discharge_too_cold"),
                    "over_temperature": ("charge_too_hot", "discharge_too_hot")}
_ALARMS_ANY = {"low_temperature": ("charge_too_cold", "discharge_too_cold"),
               "high_temperature": ("charge_too_hot", "discharge_too_hot")}
_SAME_NAME_PROTECTIONS = ("over_voltage", "under_voltage", "charge_over_current", "discharge_over_current")
_SAME_NAME_ALARMS = ("high_voltage", "low_voltage", "charge_high_current", "discharge_high_current")


def report_flags(active: FrozenSet[str]) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    """(protection, alarm) flag names of protocol.report PROTECTIONS and ALARMS."""
    protection = {name for name in _SAME_NAME_PROTECTIONS if name in active}
    protection.update(flag for flag, names in _PROTECTIONS_ALL.items() if all(n in active for n in names))
    alarm = {name for name in _SAME_NAME_ALARMS if name in active}
    alarm.update(flag for flag, names in _ALARMS_ANY.items() if any(n in active for n in names))
    return frozenset(protection), frozenset(alarm)
