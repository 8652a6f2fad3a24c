"""Limits from outside the engine: Venus DVCC/ESS and an inverter's shutdown command.

The frame set is bounded by the minimum of our BMS decision and what the system wrote to
/BatteryOperationalLimits, so the user's DVCC and ESS limits hold on the inverter too. An
inverter's battery shutdown command (Luxpower 0x300) cannot switch a battery off; the
nearest safe answer is to allow neither charge nor discharge.
"""
from typing import Optional

from protocol.report import BatteryReport

# report field -> the dvcc slot key that bounds it from above
_BOUNDS = (
    ("charge_voltage_v", "max_charge_voltage_v"),
    ("charge_current_a", "max_charge_current_a"),
    ("discharge_current_a", "max_discharge_current_a"),
)


def apply_external_limits(report: BatteryReport, dvcc: Optional[dict], shutdown: bool) -> BatteryReport:
    changes = {}
    for field, key in _BOUNDS:
        limit = (dvcc or {}).get(key)
        if limit is not None and limit < getattr(report, field):
            changes[field] = max(0.0, float(limit))
    if shutdown:
        changes.update(charge_current_a=0.0, discharge_current_a=0.0, charge_enable=False, discharge_enable=False)
    return report._replace(**changes) if changes else report
