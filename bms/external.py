"""Limits from outside the engine: Venus DVCC/ESS and an inverter's shutdown command.

The frame set is bounded by the minimum of our BMS decision and what the system wrote to
/BatteryOperationalLimits, so the user's DVCC and ESS limits hold on the inverter too. An
inverter's battery shutdown command (Luxpower 0x300) cannot switch a battery off; the
nearest safe answer is to allow neither charge nor discharge. After every bound the
permissions are derived again (``consistent``): a CCL of 0 with charging still enabled, or
a force-charge request while charging is not allowed, makes a Deye charge anyway. DVCC's
battery low voltage raises the DVL (below the CVL only); a lower DVCC charge voltage goes
through the float ramp (``ExternalVoltageRamp``).
"""
from typing import Optional

from bms.phases import ramp_voltage
from protocol.report import BatteryReport

# report field -> the dvcc slot key that bounds it from above
_BOUNDS = (
    ("charge_voltage_v", "max_charge_voltage_v"),
    ("charge_current_a", "max_charge_current_a"),
    ("discharge_current_a", "max_discharge_current_a"),
)


def consistent(report: BatteryReport) -> BatteryReport:
    """``report`` with each enable only while its current is above 0, and the requests to
    charge (force charge, full charge) only while charging is enabled; never more permissive."""
    charge_enable = report.charge_enable and report.charge_current_a > 0
    return report._replace(
        charge_enable=charge_enable,
        discharge_enable=report.discharge_enable and report.discharge_current_a > 0,
        force_charge_1=report.force_charge_1 and charge_enable,
        force_charge_2=report.force_charge_2 and charge_enable,
        full_charge=report.full_charge and charge_enable)


def apply_external_limits(report: BatteryReport, dvcc: Optional[dict], shutdown: bool) -> BatteryReport:
    """``report`` bounded by the DVCC slot's limits and the inverter's shutdown command."""
    changes = {}
    for field, key in _BOUNDS:
        limit = (dvcc or {}).get(key)
        if limit is not None and limit < getattr(report, field):
            changes[field] = max(0.0, float(limit))
    low = (dvcc or {}).get("battery_low_voltage_v")
    if low is not None and report.discharge_voltage_v < low < changes.get("charge_voltage_v", report.charge_voltage_v):
        changes["discharge_voltage_v"] = float(low)     # a higher DVL stops discharging sooner
    if shutdown:
        changes.update(charge_current_a=0.0, discharge_current_a=0.0)
    return consistent(report._replace(**changes))


class ExternalVoltageRamp:
    """A charge voltage limit from outside (DVCC) below ours reaches the inverter through the
    float ramp, as a drop of our own does, instead of as one step: the CVL sent is
    ``min(our CVL, ramp_voltage(CVL sent last, bounded CVL))``. Never above our own decision,
    so a drop the engine makes at once (a protection) is not delayed."""

    def __init__(self):
        self.sent_v: Optional[float] = None
        self.sent_at: Optional[float] = None

    def apply(self, report: BatteryReport, own_v: float, now: float, charge_cfg) -> BatteryReport:
        """``report`` bounded by the external limits, ``own_v`` our decision's CVL, ``now`` monotonic s."""
        voltage = report.charge_voltage_v
        if self.sent_v is not None and voltage < own_v:
            voltage = min(own_v, ramp_voltage(self.sent_v, voltage, max(0.0, now - self.sent_at), charge_cfg))
        self.sent_v, self.sent_at = voltage, now
        return report._replace(charge_voltage_v=voltage)
