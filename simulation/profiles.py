"""Deterministic profiles over a simulated day: PV power, load power, ambient temperature.

Each profile is a function of simulated time in seconds since a midnight (any day).
"""
import math
from typing import Callable

Profile = Callable[[float], float]

_DAY_S = 86400.0


def _hour(t_s: float) -> float:
    return (t_s % _DAY_S) / 3600.0


def constant(value: float) -> Profile:
    return lambda t_s: value


def sunny_pv(peak_w: float, sunrise_h: float = 6.0, sunset_h: float = 18.0) -> Profile:
    """A clear-sky day: a half sine from sunrise to sunset peaking at ``peak_w``."""
    def power(t_s: float) -> float:
        hour = _hour(t_s)
        if not sunrise_h < hour < sunset_h:
            return 0.0
        return peak_w * math.sin(math.pi * (hour - sunrise_h) / (sunset_h - sunrise_h))
    return power


def cloudy_pv(peak_w: float, clear_fraction: float = 0.35) -> Profile:
    """Passing clouds: the clear-sky curve dimmed to between 10 % and ``clear_fraction`` + 10 %, changing within minutes."""
    clear = sunny_pv(peak_w)

    def power(t_s: float) -> float:
        clouds = 0.5 + 0.5 * math.sin(2 * math.pi * t_s / 1500.0) * math.sin(2 * math.pi * t_s / 4100.0)
        return clear(t_s) * (0.1 + clear_fraction * clouds)
    return power


def daily_temperature(coldest_c: float, warmest_c: float, coldest_h: float = 6.0) -> Profile:
    """A sine between the night's minimum at ``coldest_h`` and the afternoon maximum 12 h later."""
    middle, swing = (warmest_c + coldest_c) / 2.0, (warmest_c - coldest_c) / 2.0
    return lambda t_s: middle - swing * math.cos(2 * math.pi * (_hour(t_s) - coldest_h) / 24.0)
