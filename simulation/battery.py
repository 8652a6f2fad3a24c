"""An LFP battery as a battery monitor sees it: SoC by coulomb counting, voltage from an
open-circuit-voltage curve plus internal resistance, a temperature that follows the
ambient, and a cell spread that widens near full and empty (a runner cell at the top).
"""
import math
from typing import Optional, Sequence, Tuple

from bms.snapshot import BatterySnapshot

# LiFePO4 open-circuit voltage per cell (SoC %, V): flat in the middle, steep at both ends.
LFP_OCV: Tuple[Tuple[float, float], ...] = (
    (0.0, 2.60), (3.0, 2.95), (6.0, 3.10), (10.0, 3.19), (20.0, 3.24), (30.0, 3.26), (40.0, 3.28),
    (50.0, 3.29), (60.0, 3.30), (70.0, 3.31), (80.0, 3.32), (90.0, 3.34), (95.0, 3.36), (98.0, 3.40),
    (99.5, 3.45), (100.0, 3.60))


def interpolate(table: Sequence[Tuple[float, float]], x: float) -> float:
    """Linear interpolation in an increasing table, clamped to its end points."""
    if x <= table[0][0]:
        return table[0][1]
    for (x0, y0), (x1, y1) in zip(table, table[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return table[-1][1]


def _ramp(value: float, start: float, end: float) -> float:
    """0 at ``start``, 1 at ``end``, linear between, clamped."""
    return min(max((value - start) / (end - start), 0.0), 1.0)


def _checked(name: str, value: float, low: float = -math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise ValueError("%s = %r is not allowed: expected a finite number >= %g" % (name, value, low))
    return float(value)


class BatteryModel:
    """``step(current_a, dt_s)`` moves the battery; positive current charges it."""

    def __init__(self, capacity_ah: float, cell_count: int, soc_pct: float, temperature_c: float,
                 resistance_ohm: float = 0.02, cell_spread_v: float = 0.01, thermal_time_constant_s: float = 3600.0):
        self.capacity_ah = _checked("capacity_ah", capacity_ah, 1e-3)
        if isinstance(cell_count, bool) or not isinstance(cell_count, int) or cell_count < 1:
            raise ValueError("cell_count = %r is not allowed: expected an integer >= 1" % (cell_count,))
        self.cell_count = cell_count
        self.soc_pct = min(max(_checked("soc_pct", soc_pct), 0.0), 100.0)
        self.temperature_c = _checked("temperature_c", temperature_c)
        self.resistance_ohm = _checked("resistance_ohm", resistance_ohm, 0.0)   # whole pack at 25 degC
        self.cell_spread_v = _checked("cell_spread_v", cell_spread_v, 0.0)      # mid-SoC highest - lowest cell
        self.thermal_time_constant_s = _checked("thermal_time_constant_s", thermal_time_constant_s, 1e-3)
        self.current_a = 0.0

    @classmethod
    def from_config(cls, cfg) -> "BatteryModel":
        return cls(cfg.battery.capacity_ah, cfg.battery.cell_count, cfg.simulation.start_soc_pct,
                   cfg.simulation.temperature_c)

    def resistance_at_temperature(self) -> float:
        """LFP resistance rises in the cold: +3 % per degC below 25 degC."""
        return self.resistance_ohm * (1.0 + 0.03 * max(25.0 - self.temperature_c, 0.0))

    @property
    def voltage_v(self) -> float:
        return self.cell_count * interpolate(LFP_OCV, self.soc_pct) + self.current_a * self.resistance_at_temperature()

    def step(self, current_a: float, dt_s: float, ambient_c: Optional[float] = None) -> BatterySnapshot:
        """Carry ``current_a`` for ``dt_s`` seconds; the temperature moves toward ``ambient_c`` if given."""
        self.current_a = _checked("current_a", current_a)
        dt_s = _checked("dt_s", dt_s, 0.0)
        self.soc_pct = min(max(self.soc_pct + 100.0 * current_a * dt_s / 3600.0 / self.capacity_ah, 0.0), 100.0)
        if ambient_c is not None:
            approach = 1.0 - math.exp(-dt_s / self.thermal_time_constant_s)
            self.temperature_c += (_checked("ambient_c", ambient_c) - self.temperature_c) * approach
        return self.snapshot()

    def snapshot(self) -> BatterySnapshot:
        """What a battery monitor reads now (age 0)."""
        voltage = self.voltage_v
        average = voltage / self.cell_count
        top = _ramp(self.soc_pct, 98.0, 100.0)        # a runner cell leads near full
        bottom = _ramp(-self.soc_pct, -10.0, 0.0)     # a weak cell trails near empty
        return BatterySnapshot(
            voltage_v=voltage, current_a=self.current_a, soc_pct=self.soc_pct, temperature_c=self.temperature_c,
            age_s=0.0,
            cell_min_v=average - self.cell_spread_v * (0.5 + 2.0 * bottom),
            cell_max_v=average + self.cell_spread_v * (0.5 + 2.0 * top))
