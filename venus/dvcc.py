"""What Venus asks of the inverter, as the "dvcc" slot bms_tx applies with min(BMS decision, DVCC).

systemcalc's DVCC writes the battery operational limits into the vebus service every 3 s
(VENUS.md §6.8, §8.3) and the user's charge current limit into ``/Dc/0/MaxChargeCurrent``; the
GUI writes ``/Mode``. A limit that DVCC stops refreshing (DVCC switched off, systemcalc gone)
expires after ``dbus.dvcc_timeout_s``, so a stale value cannot hold the inverter back forever;
the user's charge current limit too (systemcalc rewrites it every 3 s while it applies).
The mode is carried out with the only levers a battery has: charge and discharge permission.
"""
import math
from typing import Dict, List, Optional, Tuple

LIMITS = {
    "/BatteryOperationalLimits/MaxChargeVoltage": "max_charge_voltage_v",
    "/BatteryOperationalLimits/MaxChargeCurrent": "max_charge_current_a",
    "/BatteryOperationalLimits/MaxDischargeCurrent": "max_discharge_current_a",
    "/BatteryOperationalLimits/BatteryLowVoltage": "battery_low_voltage_v",
}
USER_CHARGE_CURRENT = "/Dc/0/MaxChargeCurrent"
USER_CHARGE_FIELD = "user_max_charge_current_a"
# every path Venus writes a limit to -> its name in the dvcc slot and the status
FIELDS = dict(LIMITS, **{USER_CHARGE_CURRENT: USER_CHARGE_FIELD})
# What systemcalc writes to /Dc/0/MaxChargeCurrent for "no limit", and what we publish there
# while no limit is in force: systemcalc only writes the user's limit to a path holding a value.
UNLIMITED_A = 10000.0
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


def valid_mode(value) -> bool:
    """One of the four /Mode numbers, as an int (a D-Bus boolean is no mode)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in MODE_PERMITS


def _lowest(*values: Optional[float]) -> Optional[float]:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def limiting(path: str, value: Optional[float]) -> bool:
    """Whether ``value`` at ``path`` limits anything (invalid and the user's "unlimited" do not)."""
    return value is not None and (path != USER_CHARGE_CURRENT or value < UNLIMITED_A)


def expired(written: Written, now: float, timeout_s: float) -> List[str]:
    """The paths holding a limit that Venus has not rewritten for longer than ``timeout_s`` (0: never)."""
    return sorted(path for path, (value, at) in written.items()
                  if limiting(path, value) and timeout_s > 0 and now - at > timeout_s)


def dvcc_slot(written: Written, mode: int, settings: Dict[str, object], now: float, timeout_s: float) -> dict:
    """The "dvcc" slot: each limit None when absent or expired; the mode folded into the currents."""
    gone = expired(written, now, timeout_s)
    slot = {}
    for path, field in FIELDS.items():
        value = written.get(path, (None, now))[0]
        slot[field] = value if limiting(path, value) and path not in gone else None
    user_charge = slot[USER_CHARGE_FIELD]
    if user_charge is not None:
        slot["max_charge_current_a"] = _lowest(slot["max_charge_current_a"], user_charge)
    charge_allowed, discharge_allowed = MODE_PERMITS[mode]
    if not charge_allowed:
        slot["max_charge_current_a"] = 0.0
    if not discharge_allowed:
        slot["max_discharge_current_a"] = 0.0
    slot.update(mode=mode, settings=dict(settings))
    return slot


def status(slot: Optional[dict], now: float) -> dict:
    """The status's "dvcc" section: the limits in force (after the mode), how long ago Venus
    wrote each limit it holds, and which limits expired (withdrawn until Venus writes them again)."""
    slot = slot or {}
    written, written_at = slot.get("written") or {}, slot.get("written_at") or {}
    return {
        "limits": {field: slot.get(field) for field in FIELDS.values()},
        "mode": slot.get("mode"),
        "age_s": {field: round(now - written_at[path], 1) for path, field in FIELDS.items()
                  if limiting(path, written.get(path)) and isinstance(written_at.get(path), (int, float))},
        "expired": slot.get("expired", []),
    }
