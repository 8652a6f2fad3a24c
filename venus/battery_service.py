"""Battery services we publish (VENUS.md §7).

* ``SimulatedBatteryService``: the simulator's battery monitor, with the paths a SmartShunt or
  BMS publishes, so the simulation reads its battery exactly as a real system does.
* ``BmsBatteryService``: our BMS decision as a battery service with ``/Info/*`` (what makes it a
  BMS for DVCC), ``/Io/AllowTo*`` and alarms; the measurements are the followed monitor's.

It is a BMS, not a battery monitor, and says so with ``/Connected`` = 0: systemcalc's automatic
battery monitor choice takes only connected services and prefers one with ``/Info/MaxChargeVoltage``,
so with 1 it would pick this service over the SmartShunt and the monitor's time-to-go, consumed Ah
and history would vanish from the GUI and VRM. DVCC's BMS choice does not look at ``/Connected``:
"Controlling BMS" (automatic or chosen) still finds this service. What systemcalc's delegates read
from a battery (dbus-systemcalc-py v2.256) and what this service publishes:

* ``/Info/MaxChargeVoltage``, ``MaxChargeCurrent``, ``MaxDischargeCurrent``, ``BatteryLowVoltage``:
  our decision before DVCC (publishing the bounded one would ratchet), invalid before the first;
  ``/Info/ChargeRequest``: force charge requested.
* ``/Dc/0/Voltage``, ``Current``, ``Power``, ``Temperature``, ``/Soc``, ``/System/MinCellVoltage``,
  ``/System/MaxCellVoltage``: the followed monitor's values (DVCC's quirks and the GUI read them).
* identity (``/DeviceInstance``, ``/ProductId`` 0xBA50 so no product quirk applies, ``/ProductName``,
  ``/Mgmt/Connection``), ``/InstalledCapacity``, ``/Soh``; ``/Connected`` 0 (above).
* absent: ``/ConsumedAmphours``, ``/TimeToGo``, ``/Capacity``, ``/History/*`` (the monitor's, which
  stays the battery monitor), ``/Dc/1/Voltage``, ``/Capabilities/ChargeVoltageControl`` (our CVL is
  a plain limit), ``/Sense/*`` (we take no sense values), ``/Settings/DischargeFloor``, ``/State``,
  ``/CustomName``, ``/Mgmt/InsecureConnection``.
"""
from typing import Dict, Optional

from venus.busitem import BusService
from venus.identity import add_identity

CLASS = "com.victronenergy.battery"
MEASUREMENTS = ("/Dc/0/Voltage", "/Dc/0/Current", "/Dc/0/Power", "/Dc/0/Temperature", "/Soc",
                "/System/MinCellVoltage", "/System/MaxCellVoltage")
SMARTSHUNT_PRODUCT_ID = 0xA389   # SmartShunt 500A/50mV


def measurements(voltage_v: Optional[float], current_a: Optional[float], soc_pct: Optional[float],
                 temperature_c: Optional[float], cell_min_v: Optional[float],
                 cell_max_v: Optional[float]) -> Dict[str, Optional[float]]:
    """The measurement paths; None (invalid) for what is not known. Current + = charging."""
    power = None if voltage_v is None or current_a is None else voltage_v * current_a
    return dict(zip(MEASUREMENTS, (voltage_v, current_a, power, temperature_c, soc_pct, cell_min_v, cell_max_v)))


def _battery_service(bus, name: str, process_version: str, connection: str, device_instance: int,
                     product_id: int, product_name: str) -> BusService:
    service = BusService(bus, name)
    add_identity(service, process_version, connection, device_instance, product_id, product_name, None)
    for path in MEASUREMENTS:
        service.add_path(path, None)
    return service


class SimulatedBatteryService:
    """A simulated battery monitor on the bus: ``update(...)`` once per simulation step."""

    def __init__(self, bus, name: str = CLASS + ".simulated", device_instance: int = 512):
        self.service = _battery_service(bus, name, "simulation", "Simulation", device_instance,
                                        SMARTSHUNT_PRODUCT_ID, "SmartShunt 500A/50mV (simulated)")
        self.service.register()

    def update(self, voltage_v: Optional[float], current_a: Optional[float], soc_pct: Optional[float],
               temperature_c: Optional[float] = None, cell_min_v: Optional[float] = None,
               cell_max_v: Optional[float] = None) -> None:
        """Publish one reading (one ItemsChanged); None marks a value the monitor does not have."""
        self.service.update(measurements(voltage_v, current_a, soc_pct, temperature_c, cell_min_v, cell_max_v))

    def close(self) -> None:
        self.service.close()


# battery alarm path (§7) -> (report alarms that make it a warning, report protections that make it an alarm)
BMS_ALARMS = (
    ("/Alarms/HighVoltage", ("high_voltage",), ("over_voltage",)),
    ("/Alarms/LowVoltage", ("low_voltage",), ("under_voltage",)),
    ("/Alarms/HighTemperature", ("high_temperature",), ("over_temperature",)),
    ("/Alarms/LowTemperature", ("low_temperature",), ("under_temperature",)),
    ("/Alarms/HighChargeCurrent", ("charge_high_current",), ("charge_over_current",)),
    ("/Alarms/HighDischargeCurrent", ("discharge_high_current",), ("discharge_over_current",)),
    ("/Alarms/InternalFailure", ("internal_comm_fail",), ("system_error",)),
)
# /Info path -> BatteryReport field
INFO = (
    ("/Info/MaxChargeVoltage", "charge_voltage_v"),
    ("/Info/MaxChargeCurrent", "charge_current_a"),
    ("/Info/MaxDischargeCurrent", "discharge_current_a"),
    ("/Info/BatteryLowVoltage", "discharge_voltage_v"),
)


def _level(decision: dict, warnings, alarms) -> int:
    if set(alarms) & set(decision.get("protection", ())):
        return 2
    return 1 if set(warnings) & set(decision.get("alarm", ())) else 0


class BmsBatteryService:
    """Our BMS decision for Venus. ``refresh(battery, decision)`` takes the engine's decision
    *before* DVCC limits were applied: publishing the bounded one would feed DVCC's share back
    into DVCC and ratchet the charge current down to zero."""

    def __init__(self, bus, cfg, process_version: str, device_instance: int):
        self.service = _battery_service(bus, "%s.%s" % (CLASS, cfg.venus.service_suffix), process_version,
                                        "Pylon CAN %s" % cfg.can.channel, device_instance, cfg.venus.product_id,
                                        "pylon-venus BMS")
        for path, _ in INFO:
            self.service.add_path(path, None)
        for path in ("/Info/ChargeRequest", "/Io/AllowToCharge", "/Io/AllowToDischarge", "/Alarms/Alarm"):
            self.service.add_path(path, None)
        for path, _, _ in BMS_ALARMS:
            self.service.add_path(path, None)
        self.service.add_path("/InstalledCapacity", cfg.battery.capacity_ah)
        self.service.add_path("/Soh", cfg.battery.soh_pct)
        self.service["/Connected"] = 0          # a BMS, not the battery monitor (module docstring)

    @property
    def name(self) -> str:
        return self.service.name

    def register(self) -> None:
        self.service.register()

    def refresh(self, battery: Optional[dict], decision: Optional[dict]) -> None:
        battery = battery or {}
        values = measurements(*(battery.get(field) for field in (
            "voltage_v", "current_a", "soc_pct", "temperature_c", "cell_min_v", "cell_max_v")))
        for path, field in INFO:
            values[path] = None if decision is None else decision.get(field)
        if decision is None:
            values.update(dict.fromkeys(("/Info/ChargeRequest", "/Io/AllowToCharge", "/Io/AllowToDischarge",
                                         "/Alarms/Alarm") + tuple(path for path, _, _ in BMS_ALARMS)))
        else:
            values["/Info/ChargeRequest"] = int(bool(decision.get("force_charge_1") or decision.get("force_charge_2")))
            values["/Io/AllowToCharge"] = int(bool(decision.get("charge_enable")))
            values["/Io/AllowToDischarge"] = int(bool(decision.get("discharge_enable")))
            levels = {path: _level(decision, warnings, alarms) for path, warnings, alarms in BMS_ALARMS}
            values.update(levels)
            values["/Alarms/Alarm"] = max(levels.values())
        self.service.update(values)

    def close(self) -> None:
        self.service.close()
