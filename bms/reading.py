"""What the engine may trust from the battery monitor, quantity by quantity.

A battery monitor can report nothing, NaN, nonsense or contradictions for a while, or hang
and repeat itself. None of that is an error of the program, and none of it is a real
under-voltage or a warm battery: it is missing data for that quantity, which the stale
policy handles. The rules:

* **missing**: no valid number (None, NaN, text).
* **implausible**: outside what a real battery can show: pack voltage outside cell count x
  1.5-4.5 V, a cell outside 1.5-4.5 V, SoC outside 0-100 %, temperature outside -50-100 degC.
* **inconsistent**: lowest cell above highest cell (both), or a cell the pack voltage
  contradicts: the pack average more than 0.1 V above the highest cell or below the lowest
  (the cell, not the pack voltage the monitor measures itself, is distrusted).
* **frozen**: voltage and current bit-identical for longer than ``stale.frozen_s`` while the
  current (or the inverter's own power) says something moves: a hung driver; the data is as
  old as its last change.

Voltage, current and SoC are needed for any decision: without one of them the whole
snapshot ages. Temperature (when ``battery.temperature_sensor`` says there is a sensor) and
cell voltages (once the monitor has reported them) are judged on their own: while one is
not valid its last valid value is held, so a protection it set stays set, and it ages from
when it was last valid (never valid: stale at once).
"""
import math
from typing import Dict, FrozenSet, NamedTuple, Optional, Set, Tuple

from bms.snapshot import BatterySnapshot

QUANTITIES = ("voltage_v", "current_a", "soc_pct", "temperature_c", "cell_min_v", "cell_max_v")
CORE = ("voltage_v", "current_a", "soc_pct")
OWN_AGE = ("temperature_c", "cell_min_v", "cell_max_v")   # judged and aged on their own
PROBLEM_KINDS = ("missing", "implausible", "inconsistent", "frozen")

PLAUSIBLE_CELL_V = (1.5, 4.5)              # the range config.py allows for the cell limits
PLAUSIBLE_TEMPERATURE_C = (-50.0, 100.0)
CELL_PACK_TOLERANCE_V = 0.1                # per cell, between the pack average and the cells


class Reading(NamedTuple):
    voltage_v: float
    current_a: float                 # positive = charging
    soc_pct: float
    temperature_c: Optional[float]   # None: no sensor configured, or no valid temperature yet
    cell_min_v: Optional[float]      # None: the monitor reports no cell voltages (or none valid yet)
    cell_max_v: Optional[float]
    cell_average_v: float            # pack voltage / cell count
    cells_reported: FrozenSet[str] = frozenset()   # cell voltages the monitor reports, valid now or not

    @property
    def cell_high_v(self) -> float:
        """The highest cell voltage, or the pack average when cells are not measured."""
        return self.cell_average_v if self.cell_max_v is None else max(self.cell_max_v, self.cell_average_v)

    @property
    def cell_low_v(self) -> float:
        return self.cell_average_v if self.cell_min_v is None else min(self.cell_min_v, self.cell_average_v)

    @property
    def cell_spread_v(self) -> Optional[float]:
        if self.cell_min_v is None or self.cell_max_v is None:
            return None
        return self.cell_max_v - self.cell_min_v

    @property
    def charge_current_a(self) -> float:
        return max(self.current_a, 0.0)

    @property
    def discharge_current_a(self) -> float:
        return max(-self.current_a, 0.0)


class Problem(NamedTuple):
    kind: str    # one of PROBLEM_KINDS
    text: str    # names the quantity, the value and what was expected


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_age(age_s) -> float:
    """The age of data must be a real, non-negative number: anything else is a bug of the caller."""
    if not _finite(age_s) or age_s < 0:
        raise ValueError("age_s = %r is not allowed: expected a finite number of seconds >= 0" % (age_s,))
    return float(age_s)


def _plausible_ranges(cell_count: int) -> Dict[str, Tuple[float, float, str]]:
    low, high = PLAUSIBLE_CELL_V
    return {"voltage_v": (cell_count * low, cell_count * high, "V"), "current_a": (-math.inf, math.inf, "A"),
            "soc_pct": (0.0, 100.0, "%"), "temperature_c": PLAUSIBLE_TEMPERATURE_C + ("degC",),
            "cell_min_v": (low, high, "V"), "cell_max_v": (low, high, "V")}


def judge(snapshot: BatterySnapshot, cell_count: int) -> Tuple[Dict[str, float], Dict[str, Problem]]:
    """(the valid values of ``snapshot``, what is wrong with each other quantity)."""
    if not isinstance(snapshot, BatterySnapshot):
        raise TypeError("snapshot must be a bms.snapshot.BatterySnapshot or None, not %s" % type(snapshot).__name__)
    check_age(snapshot.age_s)
    values, problems = {}, {}
    for name, (low, high, unit) in _plausible_ranges(cell_count).items():
        value = getattr(snapshot, name)
        if value is None:
            problems[name] = Problem("missing", "%s missing" % name)
        elif not _finite(value):
            problems[name] = Problem("missing", "%s = %r is not a number" % (name, value))
        elif not low <= value <= high:
            problems[name] = Problem("implausible", "%s = %g is implausible: expected %g to %g %s"
                                     % (name, value, low, high, unit))
        else:
            values[name] = float(value)
    cell_min, cell_max, voltage = (values.get(name) for name in ("cell_min_v", "cell_max_v", "voltage_v"))
    if cell_min is not None and cell_max is not None and cell_min > cell_max:
        problems["cell_min_v"] = Problem("inconsistent", "cell_min_v = %g is above cell_max_v = %g" % (cell_min, cell_max))
        problems["cell_max_v"] = Problem("inconsistent", "cell_max_v = %g is below cell_min_v = %g" % (cell_max, cell_min))
    elif voltage is not None:
        average = voltage / cell_count
        if cell_min is not None and cell_min > average + CELL_PACK_TOLERANCE_V:
            problems["cell_min_v"] = Problem("inconsistent", "cell_min_v = %g is above the pack voltage / cell count "
                                                             "= %.3f V" % (cell_min, average))
        if cell_max is not None and cell_max < average - CELL_PACK_TOLERANCE_V:
            problems["cell_max_v"] = Problem("inconsistent", "cell_max_v = %g is below the pack voltage / cell count "
                                                             "= %.3f V" % (cell_max, average))
    for name in problems:
        values.pop(name, None)
    return values, problems


def _reading(values: Dict[str, Optional[float]], cell_count: int, reported: FrozenSet[str] = frozenset()) -> Reading:
    return Reading(cell_average_v=values["voltage_v"] / cell_count, cells_reported=reported,
                   **{name: values.get(name) for name in QUANTITIES})


def read(snapshot: BatterySnapshot, cell_count: int) -> Tuple[Optional[Reading], str]:
    """(reading, "") when voltage, current and SoC are usable, else (None, what is wrong with them).

    One snapshot on its own: a temperature or cell voltage that is not valid is None here.
    """
    values, problems = judge(snapshot, cell_count)
    core = [problems[name].text for name in CORE if name in problems]
    if core:
        return None, core[0]
    return _reading(values, cell_count), ""


class Observation(NamedTuple):
    reading: Optional[Reading]   # None: voltage, current or SoC not valid now
    problem: str                 # why the whole snapshot is not fresh: a core problem, or frozen data
    age_s: float                 # how old voltage, current and SoC are (frozen: since they last changed)
    own_age_s: float             # how old the oldest temperature / cell voltage is (0: all valid now)
    own_problem: str             # which one, and why


class MonitorMemory:
    """What the engine remembers of the monitor between steps (pure: time is passed in).

    Per quantity the last valid value and when it was real; since when voltage and current
    have not moved; how many values were rejected (``rejected``, by kind) and what is wrong
    now (``problems``, by quantity).
    """

    def __init__(self, reported: FrozenSet[str] = frozenset()):
        self._last: Dict[str, Tuple[float, float]] = {}   # quantity -> (value, ``now`` it was real)
        self._reported: Set[str] = set(reported)          # cell voltages the monitor has ever reported
        self._still: Optional[Tuple[float, float, float]] = None   # (voltage, current, real since)
        self.rejected = dict.fromkeys(PROBLEM_KINDS, 0)
        self.problems: Dict[str, str] = {}

    @property
    def reported(self) -> FrozenSet[str]:
        """The cell voltages the monitor has reported (kept across a restart by the engine's state)."""
        return frozenset(self._reported)

    def _expected(self, name: str, cfg) -> bool:
        if name == "temperature_c":
            return cfg.battery.temperature_sensor
        return name in CORE or name in self._reported

    def observe(self, snapshot: Optional[BatterySnapshot], now: float, cfg) -> Observation:
        """Judge ``snapshot`` at time ``now`` (s, the engine's clock) against what was seen before."""
        if snapshot is None:
            self.problems = {}
            own_age, own_problem = self._oldest_own(dict.fromkeys(OWN_AGE, "missing"), now, cfg)
            return Observation(None, "no battery data", 0.0, own_age, own_problem)
        values, problems = judge(snapshot, cfg.battery.cell_count)
        if not cfg.battery.temperature_sensor:
            values.pop("temperature_c", None)
        self._reported.update(name for name in ("cell_min_v", "cell_max_v") if getattr(snapshot, name) is not None)
        problems = {name: problem for name, problem in problems.items() if self._expected(name, cfg)}
        real_at = now - snapshot.age_s
        core = [problems[name].text for name in CORE if name in problems]
        if not core:    # without the pack voltage a cell cannot be checked: nothing is valid then
            for name, value in values.items():
                self._last[name] = (value, real_at)
        frozen = "" if core else self._frozen(values["voltage_v"], values["current_a"], snapshot.inverter_power_w,
                                              real_at, now, cfg)
        if frozen:
            problems["voltage_v"] = Problem("frozen", frozen)
        for problem in problems.values():
            self.rejected[problem.kind] += 1
        self.problems = {name: problem.text for name, problem in problems.items()}
        wrong = OWN_AGE if core else [name for name in OWN_AGE if name in problems]
        own_age, own_problem = self._oldest_own(
            {name: problems[name].kind if name in problems else "not valid" for name in wrong}, now, cfg)
        if core:
            return Observation(None, core[0], snapshot.age_s, own_age, own_problem)
        held = {name: self._last[name][0] for name in OWN_AGE if name in self._last and self._expected(name, cfg)}
        held.update((name, values[name]) for name in CORE)
        age = max(snapshot.age_s, now - self._still[2]) if frozen else snapshot.age_s
        return Observation(_reading(held, cfg.battery.cell_count, self.reported), frozen, age, own_age, own_problem)

    def _oldest_own(self, wrong: Dict[str, str], now: float, cfg) -> Tuple[float, str]:
        """(age, description) of the oldest expected temperature / cell voltage among ``wrong``
        (name -> kind of problem): the time since it was valid; never valid counts as just stale."""
        oldest = (0.0, "")
        for name, kind in wrong.items():
            if not self._expected(name, cfg):
                continue
            if name in self._last:
                age = max(now - self._last[name][1], 0.0)
                candidate = (age, "%s %s for %.0f s" % (name, kind, age))
            else:
                candidate = (cfg.stale.stale_s, "%s %s, never valid" % (name, kind))
            oldest = max(oldest, candidate)
        return oldest

    def _frozen(self, voltage: float, current: float, power: Optional[float], real_at: float, now: float,
                cfg) -> str:
        """What is frozen ("" if nothing): voltage and current unchanged too long while something moves."""
        if self._still is None or self._still[:2] != (voltage, current):
            self._still = (voltage, current, real_at)
            return ""
        unchanged_s = now - self._still[2]
        moving = cfg.stale.frozen_current_a
        something_moves = abs(current) >= moving or (_finite(power) and abs(power) >= moving * voltage)
        if cfg.stale.frozen_s <= 0 or not something_moves or unchanged_s <= cfg.stale.frozen_s:
            return ""
        return ("voltage_v and current_a unchanged for %.0f s while %s" %
                (unchanged_s, "%.1f A flow" % current if abs(current) >= moving else "the inverter reports %.0f W" % power))

    def quality(self) -> dict:
        """Counters of rejected values by kind and what is wrong now, for the status."""
        return {"rejected": dict(self.rejected), "now": dict(self.problems)}
