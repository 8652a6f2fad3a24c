"""The vebus energy counters (kWh): integrated from AC power, persisted, never decreasing.

The inverter's AC input and output power are split into the standard flows of VENUS.md §6.7
(names outside that list are ignored by the GUI and VRM). A counter is published only after
it has been written to disk (temp file, fsync, rename), so whatever a consumer has seen, a
restart or a kill -9 continues from at least that value.
"""
import json
import logging
import math
import os
from typing import Dict, Optional

from ipc.atomic_file import read_json, write_atomic

FLOWS = ("AcIn1ToAcOut", "AcIn1ToInverter", "AcIn2ToAcOut", "AcIn2ToInverter", "AcOutToAcIn1",
         "AcOutToAcIn2", "InverterToAcIn1", "InverterToAcIn2", "InverterToAcOut", "OutToInverter")
PATHS = {name: "/Energy/" + name for name in FLOWS}
J_PER_KWH = 3.6e6


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
    """kWh per flow: ``add`` integrates, ``save`` persists, ``published`` is what was persisted."""

    def __init__(self, path: str, log: Optional[logging.Logger] = None):
        self.path = path
        self.log = log or logging.getLogger("pylon-venus.energy")
        self.published: Dict[str, float] = self._load()
        self.kwh: Dict[str, float] = dict(self.published)

    def _load(self) -> Dict[str, float]:
        try:
            document = read_json(self.path)
        except (OSError, ValueError) as error:
            self.log.error("energy counters in %s unreadable (%s): kept as %s.unreadable, counting from zero",
                           self.path, error, self.path)
            try:
                os.replace(self.path, self.path + ".unreadable")
            except OSError:
                pass
            return {}
        if document is None:
            return {}
        counters = document.get("kwh") if isinstance(document, dict) else None
        if not isinstance(counters, dict):
            self.log.error("energy counters in %s have no 'kwh' table: ignored", self.path)
            return {}
        return {name: float(value) for name, value in counters.items()
                if name in FLOWS and isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value) and value >= 0}

    def add(self, flows_w: Dict[str, float], seconds: float) -> None:
        for name, watts in flows_w.items():
            self.kwh[name] = self.kwh.get(name, 0.0) + watts * seconds / J_PER_KWH

    def save(self) -> bool:
        """Persist what was integrated; True when ``published`` moved on."""
        if self.kwh == self.published:
            return False
        write_atomic(self.path, json.dumps({"kwh": self.kwh}, indent=1, sort_keys=True))
        self.published = dict(self.kwh)
        return True

    def values(self) -> Dict[str, Optional[float]]:
        """Path -> kWh for publishing; None (invalid) for flows never measured."""
        return {PATHS[name]: self.published.get(name) for name in FLOWS}
