"""The battery state the engine decides from, as read from the battery monitor."""
from typing import NamedTuple, Optional


class BatterySnapshot(NamedTuple):
    """Last real values of the battery monitor; None where the monitor has no valid value.

    ``age_s`` is the time since the last real update, measured by the I/O shell that read it.
    ``inverter_power_w`` is the power the inverter itself reports (None: not known); it only
    serves to tell a frozen monitor from a battery at rest (``bms.reading``).
    """

    voltage_v: Optional[float]
    current_a: Optional[float]          # positive = charging
    soc_pct: Optional[float]
    temperature_c: Optional[float]
    age_s: float
    cell_min_v: Optional[float] = None
    cell_max_v: Optional[float] = None
    inverter_power_w: Optional[float] = None
