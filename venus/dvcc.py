"""What Venus asks of the inverter, as the "dvcc" slot bms_tx applies with min(BMS decision, DVCC).

systemcalc's DVCC writes the battery operational limits into the vebus service every 3 s
(VENUS.md §6.8, §8.3) and the user's charge current limit into ``/Dc/0/MaxChargeCurrent``; the
GUI writes ``/Mode``. A limit that DVCC stops refreshing (DVCC switched off, systemcalc gone)
expires after ``dbus.dvcc_timeout_s``, so a stale value cannot hold the inverter back forever.
The mode is carried out with the only levers a battery has: charge and discharge permission.
"""
import math
from typing import Dict, Optional, Tuple

LIMITS = {
    "/BatteryOperationalLimits/MaxChargeVoltage": "max_charge_voltage_v",
    "/BatteryOperationalLimits/MaxChargeCurrent": "max_charge_current_a",
    "/BatteryOperationalLimits/MaxDischargeCurrent": "max_discharge_current_a",
    "/BatteryOperationalLimits/BatteryLowVoltage": "battery_low_voltage_v",
}
USER_CHARGE_CURRENT = "/Dc/0/MaxChargeCurrent"
UNLIMITED_A = 10000.0       # what systemcalc writes to /Dc/0/MaxChargeCurrent for "no limit"
MAX_VOLTAGE_V = 1000.0
MAX_CURRENT_A = UNLIMITED_A

# /Mode (VENUS.md §6.5) -> (charging allowed, discharging allowed)
MODE_CHARGER_ONLY, MODE_INVERTER_ONLY, MODE_ON, MODE_OFF = 1, 2, 3, 4
MODE_PERMITS = {
    MODE_CHARGER_ONLY: (True, False),
    MODE_INVERTER_ONLY: (False, True),
    MODE_ON: (True, True),
    MODE_OFF: (False, False),
}

Written = Dict[str, Tuple[Optional[float], float]]   # path -> (value, time.monotonic() of the write)


def valid_limit(path: str, value) -> bool:
    """A write Venus may make: invalid (no limit), or a finite non-negative number in range."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    high = MAX_VOLTAGE_V if path.endswith("Voltage") else MAX_CURRENT_A
    return 0 <= value <= high


def _lowest(*values: Optional[float]) -> Optional[float]:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def dvcc_slot(written: Written, mode: int, settings: Dict[str, object], now: float, timeout_s: float) -> dict:
    """The "dvcc" slot: each limit None when absent or expired; the mode folded into the currents."""
    slot = {}
    for path, field in LIMITS.items():
        value, at = written.get(path, (None, now))
        expired = timeout_s > 0 and now - at > timeout_s
        slot[field] = None if expired else value
    user_charge = written.get(USER_CHARGE_CURRENT, (None, now))[0]
    if user_charge is not None and user_charge < UNLIMITED_A:
        slot["max_charge_current_a"] = _lowest(slot["max_charge_current_a"], user_charge)
    charge_allowed, discharge_allowed = MODE_PERMITS[mode]
    if not charge_allowed:
        slot["max_charge_current_a"] = 0.0
    if not discharge_allowed:
        slot["max_discharge_current_a"] = 0.0
    slot.update(mode=mode, settings=dict(settings))
    return slot
