"""Engine, inverter and battery in one loop: the inverter's current moves the battery, the
battery's state drives the engine, the engine's report bounds the inverter.

A battery monitor sits between battery and engine; taking it offline freezes the last
snapshot while its age grows, as the D-Bus reader does when the monitor goes silent.
"""
from typing import NamedTuple, Optional

from bms.engine import BmsEngine, Decision
from bms.snapshot import BatterySnapshot

from simulation.battery import BatteryModel
from simulation.inverter import InverterModel
from simulation.profiles import Profile


class Sample(NamedTuple):
    t_s: float
    snapshot: BatterySnapshot        # what the engine was given
    decision: Optional[Decision]
    current_a: float                 # what the inverter then did
    soc_pct: float                   # the battery's true SoC after the step


class ClosedLoop:
    def __init__(self, cfg, battery: BatteryModel, inverter: InverterModel, ambient_c: Profile,
                 engine: Optional[BmsEngine] = None, start_s: float = 0.0):
        self.battery = battery
        self.inverter = inverter
        self.ambient_c = ambient_c
        self.engine = engine if engine is not None else BmsEngine(cfg)
        self.t_s = start_s
        self._published: Optional[BatterySnapshot] = None
        self._published_t = start_s

    def step(self, dt_s: float, monitor_online: bool = True) -> Sample:
        """One cycle at the current time, then the battery carries the chosen current for ``dt_s``."""
        if monitor_online or self._published is None:
            self._published, self._published_t = self.battery.snapshot(), self.t_s
        snapshot = self._published._replace(age_s=self.t_s - self._published_t)
        decision = self.engine.step(snapshot, self.t_s)
        report = decision.report if decision is not None else None
        current = self.inverter.current(report, self.battery.voltage_v, self.t_s)
        self.battery.step(current, dt_s, self.ambient_c(self.t_s))
        sample = Sample(self.t_s, snapshot, decision, current, self.battery.soc_pct)
        self.t_s += dt_s
        return sample
