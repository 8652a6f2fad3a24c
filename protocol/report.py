"""What a battery tells the inverter every cycle: the input of every profile's encoder.

The BMS engine produces it, the failsafe degrades it, a profile turns it into frames.
Optional values are None when the source has no such value; encoders then leave the field
at the profile's "not available" encoding, never a placeholder number.
"""
from typing import FrozenSet, NamedTuple, Optional

# Flag names shared by the 0x359 bit maps, the 0x35A 2-bit items and the decode tool.
PROTECTIONS = ("over_voltage", "under_voltage", "over_temperature", "under_temperature",
               "discharge_over_current", "charge_over_current", "system_error")
ALARMS = ("high_voltage", "low_voltage", "high_temperature", "low_temperature",
          "discharge_high_current", "charge_high_current", "internal_comm_fail")


class BatteryReport(NamedTuple):
    charge_voltage_v: float
    charge_current_a: float
    discharge_current_a: float
    discharge_voltage_v: float
    soc_pct: float
    soh_pct: float
    voltage_v: float
    current_a: float            # positive = charging the battery
    temperature_c: Optional[float]
    charge_enable: bool
    discharge_enable: bool
    force_charge_1: bool = False
    force_charge_2: bool = False
    full_charge: bool = False
    protection: FrozenSet[str] = frozenset()   # names from PROTECTIONS
    alarm: FrozenSet[str] = frozenset()        # names from ALARMS
    modules: int = 1
    capacity_ah: Optional[float] = None
    cell_min_v: Optional[float] = None
    cell_max_v: Optional[float] = None
    temperature_min_c: Optional[float] = None
    temperature_max_c: Optional[float] = None
    cycle_count: Optional[int] = None


def to_json(report: BatteryReport) -> dict:
    """The report as shared memory and the status file carry it (flag sets as sorted lists)."""
    return dict(report._asdict(), protection=sorted(report.protection), alarm=sorted(report.alarm))


def from_json(values: dict) -> BatteryReport:
    return BatteryReport(**dict(values, protection=frozenset(values["protection"]), alarm=frozenset(values["alarm"])))
