"""What the engine must remember across a restart: the charge phase, its timers and latches.

Timers are kept as durations observed by the engine (seconds the condition has held),
not as clock times, so a restart or a clock step does not count time nobody watched.
Only the last full charge is a wall-clock time, because it spans days.
"""
import math
from typing import Any, Dict, NamedTuple, Optional

PHASES = ("bulk", "absorption", "float")


class ChargeState(NamedTuple):
    phase: str = "bulk"
    absorption_s: float = 0.0                   # time spent at the absorption voltage in this absorption
    tail_s: Optional[float] = None              # how long the tail condition has held; None: it does not
    rebulk_s: Optional[float] = None            # how long the rebulk condition has held; None: it does not
    last_full_charge_t: Optional[float] = None  # epoch seconds of the last end of absorption
    force_charge: bool = False                  # force-charge request latched (low SoC until recovery SoC)
    charge_voltage_v: Optional[float] = None    # last CVL sent: the float ramp continues from it

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able: only str, float, bool and None values."""
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ChargeState":
        """The state saved by ``to_dict``; keys it lacks take their defaults (a state saved by an older version)."""
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
        for key in ("absorption_s", "tail_s", "rebulk_s", "last_full_charge_t", "charge_voltage_v"):
            values[key] = _number(key, values[key], optional=key != "absorption_s",
                                  non_negative=key not in ("last_full_charge_t",))
        return cls(**values)


def _number(key: str, value: Any, optional: bool, non_negative: bool) -> Optional[float]:
    if value is None and optional:
        return None
    allowed = "a finite number%s%s" % (" >= 0" if non_negative else "", " or null" if optional else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("charge state %s = %r is not allowed: expected %s" % (key, value, allowed))
    if non_negative and value < 0:
        raise ValueError("charge state %s = %r is not allowed: expected %s" % (key, value, allowed))
    return float(value)
