"""The stale-data policy: what may still be sent when the decision rests on old battery data.

One function, used both by the engine (battery data ages) and by the failsafe (the last
frame set ages). With age it only ever tightens: up to ``stale.hold_s`` the report stands;
until ``stale.stale_s`` the charge current falls linearly to 0 and the discharge current
toward ``stale.safe_discharge_current_a``; from then on charging is disabled, the
requests to charge are withdrawn and ``internal_comm_fail`` is raised (and
``system_error`` too once discharging is not allowed either). The charge voltage is
never raised and measured values are left as they were: never a placeholder.
"""
from protocol.report import BatteryReport

from bms.reading import check_age


def degrade(report: BatteryReport, age_s: float, cfg) -> BatteryReport:
    """``report`` made conservative for data ``age_s`` seconds old; never more permissive than ``report``."""
    age = check_age(age_s)
    hold, stale = cfg.stale.hold_s, cfg.stale.stale_s
    if age <= hold:
        return report
    safe_discharge_a = min(report.discharge_current_a, cfg.stale.safe_discharge_current_a)
    if age < stale:
        left = (stale - age) / (stale - hold)
        return report._replace(
            charge_current_a=report.charge_current_a * left,
            discharge_current_a=safe_discharge_a + (report.discharge_current_a - safe_discharge_a) * left)
    discharge_enable = report.discharge_enable and safe_discharge_a > 0
    return report._replace(
        charge_current_a=0.0, charge_enable=False,
        discharge_current_a=safe_discharge_a, discharge_enable=discharge_enable,
        force_charge_1=False, force_charge_2=False, full_charge=False,
        alarm=report.alarm | {"internal_comm_fail"},
        protection=report.protection if discharge_enable else report.protection | {"system_error"})
