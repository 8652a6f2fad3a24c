"""A hybrid inverter that obeys the BMS: PV feeds the load first, the surplus charges the battery
and a deficit discharges it, within CCL/DCL, the enable bits, DVL, and a CV controller that
backs the charge current off as the pack voltage reaches CVL. Whatever the battery may not
take or give is exchanged with the grid. A force- or full-charge request makes it charge
from the grid at up to CCL. It sends its keep-alive once a second (the lead's simulator
puts that on the bus when ``keepalive_due`` says so); an HV inverter polls instead (``requests``).
"""
import math
from typing import List, Optional

from protocol.frame import Frame
from protocol.pylon_hv import ENSEMBLE_REQUEST, EQUIPMENT_REQUEST, REQUEST_ID
from protocol.report import BatteryReport

from simulation.profiles import Profile, constant, sunny_pv


class InverterModel:
    def __init__(self, pv_w: Profile, load_w: Profile, cv_gain_a_per_v: float = 25.0,
                 keepalive_interval_s: float = 1.0):
        self.pv_w = pv_w
        self.load_w = load_w
        self.cv_gain_a_per_v = cv_gain_a_per_v      # charge current change per volt below/above CVL per call
        self.keepalive_interval_s = keepalive_interval_s
        self.current_a = 0.0
        self._next_keepalive_t: Optional[float] = None
        self.ticks = 0                                  # keep-alives due so far

    @classmethod
    def from_config(cls, cfg) -> "InverterModel":
        """A clear day with pv_peak_w and a constant load_w from [simulation]."""
        return cls(sunny_pv(cfg.simulation.pv_peak_w), constant(cfg.simulation.load_w))

    def current(self, report: Optional[BatteryReport], battery_voltage_v: float, t_s: float) -> float:
        """Battery current (A, + = charging) for simulated time ``t_s``; 0 without a BMS report.

        ``report`` may be any object with BatteryReport's limit and flag attributes (e.g. decoded frames).
        """
        if not math.isfinite(battery_voltage_v) or battery_voltage_v <= 0:
            raise ValueError("battery_voltage_v = %r is not allowed: expected a positive number" % (battery_voltage_v,))
        if report is None:
            self.current_a = 0.0
            return self.current_a
        wanted_a = (self.pv_w(t_s) - self.load_w(t_s)) / battery_voltage_v
        if report.force_charge_1 or report.force_charge_2 or report.full_charge:
            wanted_a = max(wanted_a, report.charge_current_a)
        if wanted_a > 0:
            self.current_a = self._charge(report, wanted_a, battery_voltage_v)
        elif report.discharge_enable and battery_voltage_v > report.discharge_voltage_v:
            self.current_a = max(wanted_a, -report.discharge_current_a)
        else:
            self.current_a = 0.0
        return self.current_a

    def _charge(self, report: BatteryReport, wanted_a: float, battery_voltage_v: float) -> float:
        if not report.charge_enable:
            return 0.0
        constant_voltage_a = max(self.current_a, 0.0) + self.cv_gain_a_per_v * (report.charge_voltage_v - battery_voltage_v)
        return max(min(wanted_a, report.charge_current_a, constant_voltage_a), 0.0)

    def keepalive_due(self, t_s: float) -> bool:
        """True once per keep-alive interval: the caller then sends one keep-alive."""
        if self._next_keepalive_t is not None and t_s < self._next_keepalive_t:
            return False
        self._next_keepalive_t = t_s + self.keepalive_interval_s
        self.ticks += 1
        return True


KEEPALIVE = Frame(0x305, bytes(8))
EQUIPMENT_EVERY = 5         # an HV inverter asks for the pack's equipment data now and then


def requests(transport: str, tick: int) -> List[Frame]:
    """What the inverter sends at keep-alive number ``tick`` (from 1): a broadcast profile's
    0x305, or a polled profile's 0x4200 poll, one a second as BE's inverter side does: the
    equipment data at the first tick and every ``EQUIPMENT_EVERY``-th, else the ensemble
    (PYLON_HV.md §3.1, §4; 29-bit, 8 bytes)."""
    if transport != "polled":
        return [KEEPALIVE]
    request = EQUIPMENT_REQUEST if tick % EQUIPMENT_EVERY == 1 else ENSEMBLE_REQUEST
    return [Frame(REQUEST_ID, bytes([request]) + bytes(7), True)]
