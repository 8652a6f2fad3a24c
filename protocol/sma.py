"""SMA's battery protocol (Sunny Island with an external BMS, [SMA-TI] §5-7; PYLON_CAN.md §4.3).

Ranges are the Sunny Island's (values outside them are silently rejected by the SI, so they
are clamped here). Invalid is 0xFFFF unsigned / 0x8000 signed; a clamped value never becomes
one of these codes. The 2-bit alarm items of 0x35A are shared with the Victron reading.
"""
from typing import Any, Dict, FrozenSet, Iterable, Mapping, NamedTuple, Tuple

from protocol import pylon
from protocol.layout import S16, U8, U16, Bits, Field, Layout, Total

INVALID_UNSIGNED = 0xFFFF
INVALID_SIGNED = 0x8000

# 0x351, mandatory: CVL 41-63 V, CCL/DCL 0-1200 A, DVL 41-48 V [SMA-TI] §5.3 table
LIMITS = Layout(0x351, "limits", 8, (
    pylon.CHARGE_VOLTAGE._replace(low=41, high=63, invalid=INVALID_UNSIGNED),
    pylon.CHARGE_CURRENT._replace(low=0, high=1200, invalid=INVALID_SIGNED),
    pylon.DISCHARGE_CURRENT._replace(low=0, high=1200, invalid=INVALID_SIGNED),
    pylon.DISCHARGE_VOLTAGE._replace(low=41, high=48, invalid=INVALID_UNSIGNED)))

# 0x355 with HiResSOC, which the SI prefers when present (optional: a V1.2 Pylon sends 4 bytes)
STATE_OF_CHARGE = Layout(0x355, "state_of_charge", 6, (
    pylon.SOC._replace(invalid=INVALID_UNSIGNED),
    pylon.SOH._replace(invalid=INVALID_UNSIGNED),
    pylon.SOC_HIRES._replace(invalid=INVALID_UNSIGNED)), min_length=pylon.STATE_OF_CHARGE.min_length)

# 0x356: an unknown temperature is sent invalid, the SI then uses its default (25 degC)
TEMPERATURE_OR_INVALID = pylon.TEMPERATURE._replace(missing=INVALID_SIGNED, invalid=INVALID_SIGNED, fallback=None)
MEASUREMENTS = Layout(0x356, "measurements", 6, (
    pylon.VOLTAGE._replace(invalid=INVALID_SIGNED),
    pylon.CURRENT._replace(invalid=INVALID_SIGNED),
    TEMPERATURE_OR_INVALID))

# 0x35F: this bridge knows only the capacity; SMA requires unused fields to be invalid. The
# fields are independent: a shorter frame gives those it holds whole.
SYSTEM_INFO = Layout(0x35F, "system_info", 8, (
    Field("battery_type", 0, U16, 1, missing=INVALID_UNSIGNED, invalid=INVALID_UNSIGNED, sent=False),
    Field("bms_version", 2, U16, 1, missing=INVALID_UNSIGNED, invalid=INVALID_UNSIGNED, sent=False),
    Field("capacity_ah", 4, U16, 1, low=0, missing=INVALID_UNSIGNED, invalid=INVALID_UNSIGNED),
    Field("manufacturer_id", 6, U16, 1, missing=INVALID_UNSIGNED, invalid=INVALID_UNSIGNED, sent=False)),
    min_length=2)

# 0x35A: 16 alarm items in bytes 0-3, the same 16 as warnings in bytes 4-7, two bits each
# ([SMA-TI] §5.3, §7; [MG] §1.4.2). Item k uses bits 2k (raised) and 2k+1 (cleared).
ITEMS = ("general", "high_voltage", "low_voltage", "high_temperature", "low_temperature",
         "high_temperature_charge", "low_temperature_charge", "high_current", "high_charge_current",
         "contactor", "short_circuit", "bms_internal", "cell_imbalance", "reserved_13", "reserved_14",
         "generator")
RAISED = 1   # SMA: "arrive"; Victron/MG: raised
CLEARED = 2  # SMA: "leave"; Victron/MG: OK. 0 = not supported / no change

# The item each report flag raises (PROTECTIONS -> alarm items, ALARMS -> warning items).
PROTECTION_ITEMS = {"over_voltage": "high_voltage", "under_voltage": "low_voltage",
                    "over_temperature": "high_temperature", "under_temperature": "low_temperature",
                    "discharge_over_current": "high_current", "charge_over_current": "high_charge_current",
                    "system_error": "bms_internal"}
ALARM_ITEMS = {"high_voltage": "high_voltage", "low_voltage": "low_voltage",
               "high_temperature": "high_temperature", "low_temperature": "low_temperature",
               "discharge_high_current": "high_current", "charge_high_current": "high_charge_current",
               "internal_comm_fail": "bms_internal"}

Sources = Mapping[str, Tuple[Tuple[str, str], ...]]


def sources(*links: Tuple[str, str, str]) -> Dict[str, Tuple[Tuple[str, str], ...]]:
    """Group (report attribute, flag, item) links by item: item -> ((attribute, flag), ...)."""
    grouped: Dict[str, Tuple[Tuple[str, str], ...]] = {}
    for attribute, flag, item in links:
        grouped[item] = grouped.get(item, ()) + ((attribute, flag),)
    return grouped


def links(attribute: str, items: Mapping[str, str]) -> Iterable[Tuple[str, str, str]]:
    """(attribute, flag, item) for each flag -> item of ``items``."""
    return ((attribute, flag, item) for flag, item in items.items())


class AlarmItems(NamedTuple):
    """0x35A: an item with sources is RAISED when any source flag is set, else CLEARED; an item
    without sources is sent as 0 (ignored by the SI, "not supported" for Victron)."""

    alarm_sources: Sources
    warning_sources: Sources
    end: int = 8

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        for offset, item_sources in ((0, self.alarm_sources), (4, self.warning_sources)):
            word = 0
            for index, item in enumerate(ITEMS):
                if item in item_sources:
                    raised = any(flag in values[attribute] for attribute, flag in item_sources[item])
                    word |= (RAISED if raised else CLEARED) << 2 * index
            data[offset:offset + 4] = word.to_bytes(4, "little")

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        for offset, kind in ((0, "alarms"), (4, "warnings")):
            word = int.from_bytes(data[offset:offset + 4], "little")
            states = [word >> 2 * index & 3 for index in range(len(ITEMS))]
            fields[kind + "_raised"] = [item for item, state in zip(ITEMS, states) if state == RAISED]
            fields[kind + "_cleared"] = [item for item, state in zip(ITEMS, states) if state == CLEARED]

    def report_flags(self, fields: Mapping[str, Any]) -> Dict[str, FrozenSet[str]]:
        """The report's flag sets behind decoded ``fields``: every source of each raised item
        (a frame set without 0x359 carries its flags only here)."""
        flags: Dict[str, set] = {"protection": set(), "alarm": set()}
        for kind, item_sources in (("alarms", self.alarm_sources), ("warnings", self.warning_sources)):
            for item in fields.get(kind + "_raised", ()):
                for attribute, flag in item_sources.get(item, ()):
                    flags[attribute].add(flag)
        return {attribute: frozenset(names) for attribute, names in flags.items()}


ALARMS_WARNINGS = Layout(0x35A, "alarms_warnings", 8, (
    AlarmItems(sources(*links("protection", PROTECTION_ITEMS)), sources(*links("alarm", ALARM_ITEMS))),))

FRAMES = (LIMITS, STATE_OF_CHARGE, MEASUREMENTS, ALARMS_WARNINGS, pylon.MANUFACTURER, SYSTEM_INFO)


# What the Sunny Island broadcasts every second (§4.3): 0x305-0x307 from [SMA-TI] §6, the rest
# reverse-engineered by SMAVenusDriver. Cluster master = L1, slave 1 = L2, slave 2 = L3.
def _power(frame_id: int, name: str, l1: str, l2: str, total: str) -> Layout:
    """Master (L1) and slave (L2) power in 0.1 kW (0.1 kvar) steps, and their total."""
    return Layout(frame_id, name, 4, (Field(l1, 0, S16, 100), Field(l2, 2, S16, 100), Total(total, (l1, l2))))


def _voltages(frame_id: int, name: str, l1: str, l2: str, l3: str, frequency: str) -> Layout:
    """Voltage of master, slave 1, slave 2 in 0.1 V and the frequency in 0.01 Hz."""
    return Layout(frame_id, name, 8, (Field(l1, 0, S16, 0.1), Field(l2, 2, S16, 0.1), Field(l3, 4, S16, 0.1),
                                      Field(frequency, 6, U16, 0.01)))


SI_TELEMETRY = (
    _power(0x300, "si_external_power", "ac_in_l1_power_w", "ac_in_l2_power_w", "ac_in_power_w"),
    _power(0x301, "si_inverter_power", "inverter_l1_power_w", "inverter_l2_power_w", "inverter_power_w"),
    _power(0x302, "si_external_reactive_power", "ac_in_l1_reactive_power_var", "ac_in_l2_reactive_power_var",
           "ac_in_reactive_power_var"),
    _power(0x303, "si_inverter_reactive_power", "inverter_l1_reactive_power_var", "inverter_l2_reactive_power_var",
           "inverter_reactive_power_var"),
    _voltages(0x304, "si_output_voltage", "ac_out_l1_voltage_v", "ac_out_l2_voltage_v", "ac_out_l3_voltage_v",
              "ac_out_frequency_hz"),
    # the SI counts charging current negative; the resolution -0.1 makes it + = charging
    Layout(0x305, "si_battery", 8, (
        Field("battery_voltage_v", 0, U16, 0.1), Field("battery_current_a", 2, S16, -0.1),
        Field("battery_temperature_c", 4, S16, 0.1), Field("soc_pct", 6, S16, 0.1))),
    Layout(0x306, "si_status", 8, (
        Field("soh_pct", 0, U16, 1), Field("charging_procedure", 2, U8, 1), Field("operating_state", 3, U8, 1),
        Field("error_code", 4, U16, 1), Field("charge_voltage_setpoint_v", 6, U16, 0.1))),
    Layout(0x307, "si_relays", 3, (
        Field("relay_state", 0, U16, 1), Bits(2, ((7, "ac_in_relay_closed"), (6, "ac_in_voltage_valid")))),
        min_length=2),
    Layout(0x308, "si_load_power", 2, (Field("ac_out_power_w", 0, S16, 100),)),  # meaning guessed
    _voltages(0x309, "si_input_voltage", "ac_in_l1_voltage_v", "ac_in_l2_voltage_v", "ac_in_l3_voltage_v",
              "ac_in_frequency_hz"),
)
