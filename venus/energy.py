"""The vebus energy counters (kWh): integrated from AC power, persisted, never decreasing.

The inverter's AC input and output power are split into the standard flows of VENUS.md §6.7
(names outside that list are ignored by the GUI and VRM). A counter is published only after
it has been written to disk (temp file, fsync, rename), so whatever a consumer has seen, a
restart or a kill -9 continues from at least that value.
"""
import json
import logging
import math
from typing import Dict, Optional

from ipc.atomic_file import load_or_set_aside
from ipc.flash_writer import FlashWriter

FLOWS = ("AcIn1ToAcOut", "AcIn1ToInverter", "AcIn2ToAcOut", "AcIn2ToInverter", "AcOutToAcIn1",
         "AcOutToAcIn2", "InverterToAcIn1", "InverterToAcIn2", "InverterToAcOut", "OutToInverter")
PATHS = {name: "/Energy/" + name for name in FLOWS}
J_PER_KWH = 3.6e6
SAVE_WAIT_S = 0.2       # a slow disk delays the D-Bus loop this much at most; the value waits in the writer


def split_flows(ac_in_w: float, ac_out_w: float) -> Dict[str, float]:
    """Power (W, each >= 0) of each flow, from the AC input power (+ = drawn from the grid or
    generator) and the AC output power (+ = delivered to the loads; - = AC-coupled PV on the
    output pushing power back). Whatever the input and output do not exchange directly passes
    through the inverter."""
    imported, consumed = max(ac_in_w, 0.0), max(ac_out_w, 0.0)
    exported, returned = max(-ac_in_w, 0.0), max(-ac_out_w, 0.0)
    through = min(imported, consumed)       # grid straight to the loads
    back = min(exported, returned)          # output PV straight to the grid
    return {
        "AcIn1ToAcOut": through,
        "AcIn1ToInverter": imported - through,
        "InverterToAcOut": consumed - through,
        "AcOutToAcIn1": back,
        "OutToInverter": returned - back,
        "InverterToAcIn1": exported - back,
    }


class EnergyCounters:
    """kWh per flow: ``add`` integrates, ``save`` persists, ``published`` is what was persisted.

    Two generations are on disk, the file and ``<file>.previous`` (the one before), and a start
    takes the larger value of each counter from those it can read: a corrupt file costs one save
    interval of energy, never a counter that restarts from 0 (VRM would see a drop).
    """

    def __init__(self, path: str, log: Optional[logging.Logger] = None):
        self.path = path
        self.previous_path = path + ".previous"
        self.log = log or logging.getLogger("pylon-venus.energy")
        self.writer = FlashWriter(self.log)
        self.published: Dict[str, float] = self._load()
        self.kwh: Dict[str, float] = dict(self.published)
        self._submitted = self.published

    def _load(self) -> Dict[str, float]:
        kwh: Dict[str, float] = {}
        for path in (self.path, self.previous_path):
            loaded = load_or_set_aside(path, self._parse, self.log, "the energy counters")
            for name, value in (loaded.value or {}).items():
                kwh[name] = max(kwh.get(name, 0.0), value)
        return kwh

    def _parse(self, document) -> Dict[str, float]:
        counters = document.get("kwh") if isinstance(document, dict) else None
        if not isinstance(counters, dict):
            raise ValueError("no 'kwh' table")
        usable = {name: float(value) for name, value in counters.items()
                  if name in FLOWS and _is_count(value)}
        dropped = sorted(set(counters) - set(usable))
        if dropped:
            self.log.warning("energy counters dropped: %s (expected a flow of %s with a finite kWh value >= 0)",
                             ", ".join("%s = %r" % (name, counters[name]) for name in dropped), ", ".join(FLOWS))
        return usable

    def add(self, flows_w: Dict[str, float], seconds: float) -> None:
        """Integrate; a duration that is not finite and positive, or a power that is not finite and
        >= 0, adds nothing (a measured 0 W makes its flow valid at 0 kWh)."""
        if not (math.isfinite(seconds) and seconds > 0):
            return
        for name, watts in flows_w.items():
            if math.isfinite(watts) and watts >= 0:
                self.kwh[name] = self.kwh.get(name, 0.0) + watts * seconds / J_PER_KWH

    def save(self, wait_s: float = SAVE_WAIT_S) -> bool:
        """Hand what was integrated to the flash writer and wait ``wait_s`` at most (the caller
        beats a heartbeat): True when ``published`` moved on. A value is published once it is on
        disk; a failed write is retried by the writer, counted, and logged once per episode."""
        if self.kwh != self._submitted:
            kwh = self._submitted = dict(self.kwh)
            self.writer.submit(self.path, json.dumps({"kwh": kwh}, indent=1, sort_keys=True), "the energy counters",
                               keep_previous=True, on_written=lambda: setattr(self, "published", kwh))
        before = self.published
        self.writer.flush(wait_s)
        return self.published is not before

    def values(self) -> Dict[str, Optional[float]]:
        """Path -> kWh for publishing; None (invalid) for flows never measured."""
        return {PATHS[name]: self.published.get(name) for name in FLOWS}


def _is_count(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
