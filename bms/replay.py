"""Replay a recorded battery trace through the engine, row by row, to see what it would decide.

The trace is CSV with a header naming the columns ``t`` (seconds), ``voltage_v``,
``current_a``, ``soc_pct``, ``temperature_c`` and optionally ``cell_min_v``, ``cell_max_v``;
blank lines and lines starting with ``#`` are skipped. An empty cell in one of the five
required columns means the monitor gave no fresh value at that time: the row repeats the
last complete values, aged by the time since they were read, which exercises the stale
policy. An empty cell in an optional column means the monitor has no valid value for it in
that row: once the trace has given one, that quantity is stale data (``bms.reading``).
A row that cannot be used (not a number, time not increasing, implausible value) yields a
``ReplayError`` and is skipped.
"""
import csv
import math
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Union

from bms.engine import BmsEngine, Decision
from bms.reading import read
from bms.snapshot import BatterySnapshot

REQUIRED = ("t", "voltage_v", "current_a", "soc_pct", "temperature_c")
OPTIONAL = ("cell_min_v", "cell_max_v")
MEASURED = REQUIRED[1:] + OPTIONAL

# Keys of an output row besides "reasons" (a dict with the keys of REASONS).
ROW_KEYS = ("t", "phase", "freshness", "charge_voltage_v", "charge_current_a", "discharge_current_a",
            "discharge_voltage_v", "charge_enable", "discharge_enable", "force_charge", "full_charge", "alarms")
REASONS = ("charge_current", "discharge_current", "charge_voltage")


class ReplayError(NamedTuple):
    line: int
    problem: str

    def __str__(self) -> str:
        return "line %d: %s" % (self.line, self.problem)


class _BadRow(Exception):
    pass


def _header(fields: List[str]) -> List[str]:
    names = [field.strip() for field in fields]
    problems = []
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        problems.append("missing column(s) %s" % ", ".join(missing))
    unknown = [name for name in names if name not in REQUIRED + OPTIONAL]
    if unknown:
        problems.append("unknown column(s) %s" % ", ".join(unknown))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append("repeated column(s) %s" % ", ".join(repeated))
    if problems:
        raise _BadRow("header: %s; allowed are %s" % ("; ".join(problems), ", ".join(REQUIRED + OPTIONAL)))
    return names


def _number(name: str, text: str) -> Optional[float]:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _BadRow("%s = %r is not a finite number" % (name, text))
    return value


def _values(names: List[str], fields: List[str]) -> Dict[str, Optional[float]]:
    if len(fields) != len(names):
        raise _BadRow("%d fields, the header has %d" % (len(fields), len(names)))
    values = {name: _number(name, text) for name, text in zip(names, fields)}
    if values["t"] is None:
        raise _BadRow("t is empty: every row needs its time")
    return values


def _snapshot(values: Dict[str, Optional[float]], age_s: float) -> BatterySnapshot:
    return BatterySnapshot(age_s=age_s, **{name: values.get(name) for name in MEASURED})


def decision_row(t: float, decision: Optional[Decision]) -> Dict[str, Any]:
    """One output row; None values where the engine decided nothing yet."""
    if decision is None:
        row = dict.fromkeys(ROW_KEYS)
        row.update(t=t, alarms=[], reasons={})
        return row
    report = decision.report
    return {"t": t, "phase": decision.phase, "freshness": decision.freshness,
            "charge_voltage_v": report.charge_voltage_v, "charge_current_a": report.charge_current_a,
            "discharge_current_a": report.discharge_current_a, "discharge_voltage_v": report.discharge_voltage_v,
            "charge_enable": report.charge_enable, "discharge_enable": report.discharge_enable,
            "force_charge": report.force_charge_1 or report.force_charge_2, "full_charge": report.full_charge,
            "alarms": sorted(report.protection | report.alarm), "reasons": dict(decision.reasons)}


def replay(lines: Iterable[str], cfg) -> Iterator[Union[Dict[str, Any], ReplayError]]:
    """One output row per trace row, or a ReplayError for a row that was skipped (a bad header ends it)."""
    engine = BmsEngine(cfg)
    names = None
    last_complete = None            # (t, values) of the last row with every required value
    previous_t = None
    number = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = next(csv.reader([line]))
        try:
            if names is None:
                names = _header(fields)
                continue
            values = _values(names, fields)
            t = values["t"]
            if previous_t is not None and t <= previous_t:
                raise _BadRow("t = %g is not after the previous row's t = %g" % (t, previous_t))
            if all(values[name] is not None for name in REQUIRED):
                snapshot = _snapshot(values, 0.0)
                usable, problem = read(snapshot, cfg.battery.cell_count)
                if usable is None:
                    raise _BadRow(problem)
                last_complete = (t, values)
            elif last_complete is not None:
                age_s = t - last_complete[0]
                if not math.isfinite(age_s):
                    raise _BadRow("t = %g is too far after the last complete row's t = %g: the data's age is not "
                                  "a finite number of seconds" % (t, last_complete[0]))
                snapshot = _snapshot(last_complete[1], age_s)
            else:
                snapshot = None
        except _BadRow as error:
            yield ReplayError(number, str(error))
            if names is None:
                return
            continue
        previous_t = t
        yield decision_row(t, engine.step(snapshot, t))
    if names is None:
        yield ReplayError(max(number, 1), "no header: expected the columns %s" % ", ".join(REQUIRED))
