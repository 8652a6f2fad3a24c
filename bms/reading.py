"""A snapshot checked for use: every value the engine decides from is real and plausible.

A battery monitor can report nothing, NaN or nonsense for a while; such a snapshot is not
an error of the program but missing data, which the stale policy handles. ``read`` says
which value was unusable so the decision can name it.
"""
import math
from typing import NamedTuple, Optional, Tuple

from bms.snapshot import BatterySnapshot


class Reading(NamedTuple):
    voltage_v: float
    current_a: float                 # positive = charging
    soc_pct: float
    temperature_c: Optional[float]   # None: the monitor has no temperature sensor
    cell_min_v: Optional[float]
    cell_max_v: Optional[float]
    cell_average_v: float            # pack voltage / cell count

    @property
    def cell_high_v(self) -> float:
        """The highest cell voltage, or the pack average when cells are not measured."""
        return self.cell_average_v if self.cell_max_v is None else max(self.cell_max_v, self.cell_average_v)

    @property
    def cell_low_v(self) -> float:
        return self.cell_average_v if self.cell_min_v is None else min(self.cell_min_v, self.cell_average_v)

    @property
    def cell_spread_v(self) -> Optional[float]:
        if self.cell_min_v is None or self.cell_max_v is None:
            return None
        return self.cell_max_v - self.cell_min_v

    @property
    def charge_current_a(self) -> float:
        return max(self.current_a, 0.0)

    @property
    def discharge_current_a(self) -> float:
        return max(-self.current_a, 0.0)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_age(age_s) -> float:
    """The age of data must be a real, non-negative number: anything else is a bug of the caller."""
    if not _finite(age_s) or age_s < 0:
        raise ValueError("age_s = %r is not allowed: expected a finite number of seconds >= 0" % (age_s,))
    return float(age_s)


def _problem(name: str, value, plausible, allowed: str) -> str:
    if value is None:
        return "%s missing" % name
    if not _finite(value):
        return "%s = %r is not a number" % (name, value)
    if not plausible(value):
        return "%s = %g is implausible: expected %s" % (name, value, allowed)
    return ""


def read(snapshot: BatterySnapshot, cell_count: int) -> Tuple[Optional[Reading], str]:
    """(reading, "") when the snapshot is usable, else (None, what is wrong with it)."""
    if not isinstance(snapshot, BatterySnapshot):
        raise TypeError("snapshot must be a bms.snapshot.BatterySnapshot or None, not %s" % type(snapshot).__name__)
    check_age(snapshot.age_s)
    problem = (_problem("voltage_v", snapshot.voltage_v, lambda v: v > 0, "above 0 V")
               or _problem("current_a", snapshot.current_a, lambda a: True, "")
               or _problem("soc_pct", snapshot.soc_pct, lambda s: 0 <= s <= 100, "0 to 100 %"))
    if problem:
        return None, problem
    temperature = float(snapshot.temperature_c) if _finite(snapshot.temperature_c) else None
    cell_min, cell_max = (float(v) if _finite(v) and v > 0 else None for v in (snapshot.cell_min_v, snapshot.cell_max_v))
    return Reading(voltage_v=float(snapshot.voltage_v), current_a=float(snapshot.current_a),
                   soc_pct=float(snapshot.soc_pct), temperature_c=temperature,
                   cell_min_v=cell_min, cell_max_v=cell_max,
                   cell_average_v=snapshot.voltage_v / cell_count), ""
