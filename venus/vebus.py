"""The inverter on Venus as ``com.victronenergy.vebus.<suffix>`` (VENUS.md §6, checklist §16).

Every path exists, ``/DeviceInstance`` first, before the name is claimed. Values come from
three places: the battery monitor (``/Dc/0/*``, ``/Soc``), the decision bms_tx sends
(``/State``, ``/VebusChargeState``, alarms) and the inverter's own telemetry (AC paths: only
a profile with ``ac_telemetry``, the Sunny Island, has any; for other profiles they stay invalid,
never zero; invalid again while the inverter link is down). What differs per inverter is an
attribute of its profile (``protocol/profile.py``), never a name tested here. Venus writes
the DVCC limits, the user's charge current limit and ``/Mode``; ``on_write(path, value)`` is
told of every accepted write. A limit that expired is withdrawn (``withdraw``): what the
service shows is what is in force.

What systemcalc's delegates read from a vebus (dbus-systemcalc-py v2.256, each delegate's
``get_input``), what we publish and why; the absences are deliberate:

=============================================== ============================================
path                                            we publish
=============================================== ============================================
/Connected, /ProductName, /Mgmt/Connection      0 while the inverter link is down, else 1
                                                (systemcalc takes a vebus only while it is 1),
                                                the profile's product_name, "Pylon CAN <channel>"
/DeviceInstance, /ProductId, /CustomName, /Mode identity, 0xBA50 (no product quirks), the
                                                owner's name; /Mode writeable, carried out with
                                                the charge/discharge permissions
/FirmwareVersion                                0x510: at least 0x422, else DVCC raises
                                                /Dvcc/Alarms/FirmwareInsufficient
/BatteryOperationalLimits/MaxChargeVoltage,     writeable, invalid until DVCC writes; bound
  MaxChargeCurrent, MaxDischargeCurrent         the frames (CVL through the float ramp), invalid
                                                again when expired
/BatteryOperationalLimits/BatteryLowVoltage     writeable; raises the DVL (never above the CVL)
/Dc/0/MaxChargeCurrent                          writeable, 10000 (no limit) until written: with
                                                a value, systemcalc writes the owner's "Limit
                                                charge current" there even without a BMS
/FirmwareFeatures/BolFrame                      1: the CCL written is obeyed, so the GUI shows
                                                the charge current control active
/VebusMainState                                 9 (external control) while a DVCC limit is in
                                                force, else invalid: the system state then shows
                                                "External control" as with a Multi under DVCC
/Dc/0/Voltage, /Dc/0/Current, /Dc/0/Power,      the battery monitor's values (invalid when it
  /Dc/0/Temperature, /Soc                       has none): systemcalc uses the vebus as the
                                                monitor only when no battery service exists
/State                                          off / fault / inverting / charge phase
/Ac/ActiveIn/ActiveInput, /Ac/ActiveIn/Connected the Sunny Island's telemetry, else invalid
  /Ac/NumberOfAcInputs, /Ac/State/AcIn1Available, (never zero)
  /Ac/ActiveIn/L1-3/P, /Ac/Out/L1-3/P
/Ac/ActiveIn/L1-3/I, /Ac/Out/L1-3/I             absent: no inverter sends AC currents
/Ac/Control/IgnoreAcIn1/2, /Ac/State/AcIn2Available absent: no AC input control, one input
/Dc/0/Capacity, /Dc/0/PreferRenewableEnergy     absent: not a battery monitor, no such mode
/Hub4/* (AssistantId, Sustain, DoNotFeedIn...)  absent: no ESS control (systemcalc would treat
                                                the system as ESS and write set-points)
/Hub/ChargeVoltage, /Hub2                       absent: no hub assistant
/Devices/0/Assistants                           absent: systemcalc would write /Soc into us
/ExtraBatteryCurrent                            absent: the vebus is not a battery monitor
                                                that tracks solar current
/BatterySense/Voltage, /BatterySense/Temperature absent: the battery monitor measures them;
  /FirmwareFeatures/BolUBatAndTBatSense         voltage/temperature sense is not supported
/Bms/AllowToCharge, /Bms/AllowToDischarge,      absent: no VE.Bus BMS (its presence would
  /Bms/BmsType, /Devices/Bms/Version            make systemcalc take the charge permission from
                                                here and the GUI lock the limits, §6.8)
/Interfaces/Mk2/Connection, .../ProductName     absent: systemcalc would refuse a vebus on a
                                                USB port as the main Multi (§6.1)
/Hub4/BatteryOvervoltageProtectionActivated     absent (ESS only)
=============================================== ============================================

The battery service (venus/battery_service.py) lists what systemcalc reads from a battery.
"""
import logging
from typing import Callable, Dict, Optional

from protocol import profiles
from protocol.profile import Profile
from venus import dvcc
from venus.busitem import BusService
from venus.energy import PATHS as ENERGY_PATHS
from venus.identity import add_identity

CLASS = "com.victronenergy.vebus"
log = logging.getLogger("pylon-venus.vebus")
# At least VEBUS_FIRMWARE_REQUIRED (0x422), or DVCC raises /Dvcc/Alarms/FirmwareInsufficient and
# writes no limits (§6.8); 0x510 is what the multiplus emulator known to work with DVCC reports.
FIRMWARE_VERSION = 0x510
# /State (§6.5)
STATE_OFF, STATE_FAULT, STATE_INVERTING = 0, 2, 9
PHASE_STATES = {"bulk": 3, "absorption": 4, "float": 5}
# /VebusChargeState (§6.5)
PHASE_CHARGE_STATES = {"bulk": 1, "absorption": 2, "float": 3}
# /VebusMainState of a Multi under DVCC: systemcalc's system state is then "External control" (252)
MAIN_STATE_EXTERNAL_CONTROL = 9
# battery current (A) below minus this counts as the inverter inverting, not as measurement noise
DISCHARGE_DEADBAND_A = 1.0
ACTIVE_INPUT_1, ACTIVE_INPUT_DISCONNECTED = 0, 240
SI_OPERATING_FAILURE = 4   # 0x306 byte 3 (PYLON_CAN.md §4.3)
LINES = (1, 2, 3)
# vebus alarm path -> (report alarms that make it a warning, report protections that make it an alarm)
ALARM_PATHS = (
    ("/Alarms/LowBattery", ("low_voltage",), ("under_voltage",)),
    ("/Alarms/HighDcVoltage", ("high_voltage",), ("over_voltage",)),
    ("/Alarms/HighDcCurrent", ("charge_high_current", "discharge_high_current"),
     ("charge_over_current", "discharge_over_current")),
)
AC_PATHS = tuple(
    ["/Ac/ActiveIn/L%d/%s" % (line, what) for line in LINES for what in ("V", "F", "P")]
    + ["/Ac/Out/L%d/%s" % (line, what) for line in LINES for what in ("V", "F", "P")]
    + ["/Ac/ActiveIn/P", "/Ac/Out/P", "/Ac/ActiveIn/Connected", "/Ac/ActiveIn/ActiveInput",
       "/Ac/State/AcIn1Available", "/Ac/NumberOfPhases", "/Ac/NumberOfAcInputs"])
MEASURED_PATHS = ("/Dc/0/Voltage", "/Dc/0/Current", "/Dc/0/Power", "/Dc/0/Temperature", "/Soc",
                  "/State", "/VebusChargeState", "/VebusMainState") + tuple(path for path, _, _ in ALARM_PATHS)


def mode_adjustable(profile: Profile) -> bool:
    """An inverter that ignores a zero limit (Deye LV) cannot carry out a mode that forbids a direction."""
    return not profile.ignores_zero_limits


def vebus_state(link: str, frames: dict, current_a: Optional[float], fields: dict) -> Optional[int]:
    """/State: off while the inverter is silent, fault, inverting while discharging, else the charge phase."""
    if link == "down":
        return STATE_OFF
    report, phase = frames.get("report"), frames.get("phase")
    if report is None or phase is None:
        return None
    if "system_error" in report.get("protection", ()) or fields.get("operating_state") == SI_OPERATING_FAILURE:
        return STATE_FAULT
    if current_a is not None and current_a < -DISCHARGE_DEADBAND_A:
        return STATE_INVERTING
    return PHASE_STATES.get(phase)


def alarm_levels(report: Optional[dict]) -> Dict[str, Optional[int]]:
    """0 ok, 1 warning, 2 alarm per vebus alarm path; invalid before the first decision."""
    levels = {}
    for path, warnings, alarms in ALARM_PATHS:
        if report is None:
            levels[path] = None
        elif set(alarms) & set(report.get("protection", ())):
            levels[path] = 2
        elif set(warnings) & set(report.get("alarm", ())):
            levels[path] = 1
        else:
            levels[path] = 0
    return levels


def sunny_island_ac(fields: dict) -> Dict[str, Optional[float]]:
    """The AC paths from the Sunny Island's broadcast (PYLON_CAN.md §4.3); invalid where it said nothing."""
    values: Dict[str, Optional[float]] = dict.fromkeys(AC_PATHS)
    if not fields:
        return values
    phases = sum(1 for line in LINES if (fields.get("ac_out_l%d_voltage_v" % line) or 0) > 0)
    for line in LINES[:phases]:
        values["/Ac/Out/L%d/V" % line] = fields.get("ac_out_l%d_voltage_v" % line)
        values["/Ac/Out/L%d/F" % line] = fields.get("ac_out_frequency_hz")
        values["/Ac/ActiveIn/L%d/V" % line] = fields.get("ac_in_l%d_voltage_v" % line)
        values["/Ac/ActiveIn/L%d/F" % line] = fields.get("ac_in_frequency_hz")
        values["/Ac/ActiveIn/L%d/P" % line] = fields.get("ac_in_l%d_power_w" % line)
    if phases == 1:
        values["/Ac/Out/L1/P"] = fields.get("ac_out_power_w")
    values["/Ac/ActiveIn/P"] = fields.get("ac_in_power_w")
    values["/Ac/Out/P"] = fields.get("ac_out_power_w")
    closed = fields.get("ac_in_relay_closed")
    if closed is not None:
        values["/Ac/ActiveIn/Connected"] = int(bool(closed))
        values["/Ac/ActiveIn/ActiveInput"] = ACTIVE_INPUT_1 if closed else ACTIVE_INPUT_DISCONNECTED
    available = fields.get("ac_in_voltage_valid")
    values["/Ac/State/AcIn1Available"] = None if available is None else int(bool(available))
    values["/Ac/NumberOfPhases"] = phases or None
    values["/Ac/NumberOfAcInputs"] = 1
    return values


class VebusService:
    def __init__(self, bus, cfg, process_version: str, device_instance: int, custom_name: str, mode: int,
                 restored_limits: Dict[str, Optional[float]], on_write: Callable[[str, object], None]):
        self.profile = profiles.get(cfg.inverter.profile)
        self.on_write = on_write
        self.service = BusService(bus, "%s.%s" % (CLASS, cfg.venus.service_suffix))
        add_identity(self.service, process_version, "Pylon CAN %s" % cfg.can.channel, device_instance,
                     cfg.venus.product_id, self.profile.product_name, FIRMWARE_VERSION)
        self.service.add_path("/CustomName", custom_name, writeable=True, kind=str, check=self._accept_name)
        for path in MEASURED_PATHS + AC_PATHS:
            self.service.add_path(path, None)
        adjustable = mode_adjustable(self.profile)
        self.service.add_path("/Mode", mode if adjustable else dvcc.MODE_ON, writeable=adjustable, kind=int,
                              check=self._accept_mode)
        self.service.add_path("/ModeIsAdjustable", int(adjustable))
        for path in dvcc.LIMITS:
            self.service.add_path(path, restored_limits.get(path), writeable=True, kind=float, check=self._accept_limit)
        user_limit = restored_limits.get(dvcc.USER_CHARGE_CURRENT)
        self.service.add_path(dvcc.USER_CHARGE_CURRENT, dvcc.UNLIMITED_A if user_limit is None else user_limit,
                              writeable=True, kind=float, check=self._accept_limit)
        self.service.add_path("/FirmwareFeatures/BolFrame", 1)
        for path in ENERGY_PATHS.values():
            self.service.add_path(path, None)

    @property
    def name(self) -> str:
        return self.service.name

    def register(self) -> None:
        self.service.register()

    def _accept(self, path: str, value) -> bool:
        self.on_write(path, value)
        return True

    def _accept_name(self, path: str, value) -> bool:
        if value is None:
            log.warning("write of invalid to %s refused: expected a text (empty for none)", path)
            return False
        return self._accept(path, value)

    def _accept_mode(self, path: str, value) -> bool:
        if not dvcc.valid_mode(value):
            log.warning("write of %r to %s refused: allowed are %s", value, path, sorted(dvcc.MODE_PERMITS))
            return False
        return self._accept(path, value)

    def _accept_limit(self, path: str, value) -> bool:
        if not dvcc.valid_limit(path, value):
            log.warning("write of %r to %s refused: expected invalid (no limit) or a number from 0 to %g",
                        value, path, dvcc.MAX_VOLTAGE_V if path.endswith("Voltage") else dvcc.MAX_CURRENT_A)
            return False
        return self._accept(path, value)

    @property
    def mode(self) -> int:
        return self.service["/Mode"]

    def set_local(self, path: str, value) -> None:
        """A value changed elsewhere (localsettings) for a writeable path: publish it."""
        if path == "/Mode" and not mode_adjustable(self.profile):
            return
        self.service[path] = value

    def withdraw(self, paths) -> None:
        """Expired limits are no longer in force: a DVCC limit becomes invalid, the user's charge
        current "unlimited" (a value, so systemcalc can write a new limit there)."""
        self.service.update({path: dvcc.UNLIMITED_A if path == dvcc.USER_CHARGE_CURRENT else None for path in paths})
        self.service["/VebusMainState"] = self._main_state()

    def _main_state(self) -> Optional[int]:
        return MAIN_STATE_EXTERNAL_CONTROL if any(self.service[path] is not None for path in dvcc.LIMITS) else None

    def written(self, restored_at: Dict[str, float], started: float) -> dvcc.Written:
        """The DVCC and user limits as Venus wrote them, with the time of the last write: for a
        value restored from a previous worker, its write time then (``restored_at``, else ``started``),
        so a restart never renews a limit."""
        written = {}
        for path in tuple(dvcc.LIMITS) + (dvcc.USER_CHARGE_CURRENT,):
            at = self.service.written_at(path)
            written[path] = (self.service[path], restored_at.get(path, started) if at is None else at)
        return written

    def refresh(self, battery: Optional[dict], frames: Optional[dict], inverter: Optional[dict],
                energy: Dict[str, Optional[float]]) -> None:
        battery, frames, inverter = battery or {}, frames or {}, inverter or {}
        voltage, current = battery.get("voltage_v"), battery.get("current_a")
        fields = inverter.get("fields") or {}
        link = inverter.get("link", "unknown")
        values = {
            "/Dc/0/Voltage": voltage,
            "/Dc/0/Current": current,
            "/Dc/0/Power": None if voltage is None or current is None else voltage * current,
            "/Dc/0/Temperature": battery.get("temperature_c"),
            "/Soc": battery.get("soc_pct"),
            "/Connected": 0 if link == "down" else 1,
            "/State": vebus_state(link, frames, current, fields),
            "/VebusChargeState": PHASE_CHARGE_STATES.get(frames.get("phase")),
            "/VebusMainState": self._main_state(),
        }
        values.update(alarm_levels(frames.get("report")))
        if self.profile.ac_telemetry:     # a silent inverter's last values are no measurement: invalid
            values.update(sunny_island_ac(fields if link != "down" else {}))
        values.update(energy)
        self.service.update(values)

    def close(self) -> None:
        self.service.close()
