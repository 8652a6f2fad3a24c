"""What the engine must remember across a restart: the charge phase, its timers and latches.

Timers are kept as durations observed by the engine (seconds the condition has held),
not as clock times, so a restart or a clock step does not count time nobody watched. The
same holds for the time since the last full charge (it spans days): it is counted from the
engine's steady clock, so setting the wall clock (NTP after a boot without RTC) neither
brings a full charge forward nor puts it off; time while bms_tx is not running does not
count. Its wall-clock time is kept for display only. The alarm latches and the
hold-and-ramp of both current limits are kept too: a restart neither clears a protection
inside its hysteresis nor skips a recovery hold.
"""
import math
from typing import Any, Dict, FrozenSet, NamedTuple, Optional

from bms.limits import Governor

PHASES = ("bulk", "absorption", "float")
LATEST_WALL_T = 253402300800.0   # the year 10000 in epoch seconds: a saved wall-clock time beyond is not a time


class ChargeState(NamedTuple):
    phase: str = "bulk"
    absorption_s: float = 0.0                   # time spent at the absorption voltage in this absorption
    tail_s: Optional[float] = None              # how long the tail condition has held; None: it does not
    rebulk_s: Optional[float] = None            # how long the rebulk condition has held; None: it does not
    last_full_charge_t: Optional[float] = None  # wall-clock epoch seconds of the last full charge, for display
    force_charge: bool = False                  # force-charge request latched (low SoC until recovery SoC)
    charge_voltage_v: Optional[float] = None    # last CVL sent: the float ramp continues from it
    since_full_charge_s: Optional[float] = None  # engine time since the last full charge; None: no data yet
    latches: FrozenSet[str] = frozenset()       # alarm latches set (bms.alarms names)
    charge_limit: Optional[Governor] = None     # hold-and-ramp of the CCL; None: nothing decided yet
    discharge_limit: Optional[Governor] = None  # hold-and-ramp of the DCL
    cells_reported: FrozenSet[str] = frozenset()  # cell voltages the monitor reports: missing later, they are stale

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able: only str, float, bool, None, lists and dicts of them."""
        values = self._asdict()
        values["latches"] = sorted(self.latches)
        values["cells_reported"] = sorted(self.cells_reported)
        for key in ("charge_limit", "discharge_limit"):
            values[key] = None if values[key] is None else dict(values[key]._asdict())
        return values

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ChargeState":
        """The state saved by ``to_dict``; keys it lacks take their defaults (a state saved by an
        older version). Raises ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("charge state must be a dict, not %s" % type(data).__name__)
        unknown = sorted(set(data) - set(cls._fields))
        if unknown:
            raise ValueError("charge state has unknown keys %s: allowed are %s" % (", ".join(unknown), ", ".join(cls._fields)))
        values = dict(cls._field_defaults)
        values.update(data)
        if values["phase"] not in PHASES:
            raise ValueError("charge state phase = %r is not allowed: expected one of %s" % (values["phase"], ", ".join(PHASES)))
        if not isinstance(values["force_charge"], bool):
            raise ValueError("charge state force_charge = %r is not allowed: expected true or false" % (values["force_charge"],))
        for key in ("absorption_s", "tail_s", "rebulk_s", "since_full_charge_s", "charge_voltage_v"):
            values[key] = _number(key, values[key], optional=key != "absorption_s")
        values["last_full_charge_t"] = _number("last_full_charge_t", values["last_full_charge_t"], optional=True,
                                               below=LATEST_WALL_T)
        values["latches"] = _names("latches", values["latches"])
        values["cells_reported"] = _names("cells_reported", values["cells_reported"])
        for key in ("charge_limit", "discharge_limit"):
            values[key] = _governor(key, values[key])
        return cls(**values)


def _number(key: str, value: Any, optional: bool, below: float = math.inf) -> Optional[float]:
    """A finite number >= 0 (and below ``below``), or None where optional."""
    if value is None and optional:
        return None
    allowed = "a finite number >= 0%s%s" % ("" if below == math.inf else " and < %.0f" % below,
                                            " or null" if optional else "")
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0 <= value < below):
        raise ValueError("charge state %s = %r is not allowed: expected %s" % (key, value, allowed))
    return float(value)


def _names(key: str, value: Any) -> FrozenSet[str]:
    if isinstance(value, (list, tuple, frozenset)) and all(isinstance(name, str) and name for name in value):
        return frozenset(value)
    raise ValueError("charge state %s = %r is not allowed: expected a list of names" % (key, value))


def _governor(key: str, value: Any) -> Optional[Governor]:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != set(Governor._fields):
        raise ValueError("charge state %s = %r is not allowed: expected null or {%s}"
                         % (key, value, ", ".join('"%s": number' % field for field in Governor._fields)))
    return Governor(*(_number("%s.%s" % (key, field), value[field], optional=False) for field in Governor._fields))
