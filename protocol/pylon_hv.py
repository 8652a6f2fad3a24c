"""Pylontech high-voltage CAN protocol: the inverter polls 0x4200, the battery answers (PYLON_HV.md).

29-bit identifiers, 8 data bytes, request/response: 0x4200 with B0 = 0x00 is answered with the
ensemble frames 0x4210...0x4290, B0 = 0x02 with the equipment frames 0x7310...0x7340 (each
id + the reply address); other values are ignored. By default every 16-bit field is little
endian, currents are 0.1 A + 30000 and temperatures 0.1 degC + 1000 (§3.2, §8).

What real inverters disagree on (§6) is a setting of the profile (``HvSettings``), not code:
the reply address, the sign of the discharge limit (C2), the byte order (C1), the current
offset (C3), the manufacturer name and the frames that carry it (C8). Each profile module
under ``protocol/profiles`` names the inverters that need its settings.

One declarative table of parts (below) drives both encode and decode, as in ``layout.py``;
the parts here add what the LV fields lack: an offset, a negated sign, big-endian bytes.
"""
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from protocol.frame import Frame
from protocol.inverter import MAX_EXTENDED_ID
from protocol.layout import U8, U16, Constant, Field, Kind, Layout, is_missing
from protocol.profile import Profile
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

REQUEST_ID = 0x4200
ENSEMBLE_REQUEST = 0x00           # B0 of 0x4200: answered with 0x4210...0x4290
EQUIPMENT_REQUEST = 0x02          # B0 of 0x4200: answered with 0x7310...0x7340
SLEEP_ID, COMMAND_ID, MASK_ID, MASK_REPLY_ID = 0x8200, 0x8210, 0x8240, 0x8250
MARK = 0xAA                       # "effect" in 0x4280 and the control commands
ENTER_SLEEP = 0x55
CURRENT_BIAS = 30000              # 0.1 A: raw 30000 is 0 A
TEMPERATURE_BIAS = 1000           # 0.1 degC: raw 1000 is 0 degC
NOMINAL_CELL_V = 3.2              # LFP, for 0x7320's "voltage level"
IDLE_CURRENT_A = 0.5              # 0x4250's basic status: below this the pile is idle
MAX_ADDRESS = 15
NAME_LENGTH = 16                  # two frames of 8 ASCII bytes


class HvSettings(NamedTuple):
    """The variants of the protocol that real inverters need (PYLON_HV.md §6)."""

    address: int = 0                      # replies on base + address, 0..15 (Sofar: 1)
    discharge_limit_negative: bool = True  # 0x4220 B6-7 = 30000 - 10*I (C2); False: 30000 + 10*I
    big_endian: bool = False              # 16-bit fields of the 0x42x0 frames (C1; 0x7320 stays LE, as BE-INV)
    current_offset: bool = True           # +30000 on currents (C3; Solxpow: none, signed 0.1 A)
    manufacturer: str = "PYLONTECH"       # 0x7330/0x7340 (and 0x42E0/0x42F0 with ``name_in_ensemble``)
    name_frames: bool = True              # send 0x7330/0x7340 at all (Ferroamp: none)
    name_in_ensemble: bool = False        # the name also in 0x42E0/0x42F0 after 0x4290 (Deye V1.17, C8)


class Number(NamedTuple):
    """A number on the wire as ``bias + raw`` (``negated``: ``bias - raw``), ``physical = raw * resolution``.

    Clamped to what the wire and ``low``/``high`` allow, never wrapped. ``fallbacks`` name the
    report attributes used in turn when this one is missing; ``missing`` is the raw sent when
    all are (None: a value is required).
    """

    name: str
    offset: int
    resolution: float
    size: int = 2
    bias: int = 0
    negated: bool = False
    signed: bool = False
    big_endian: bool = False
    low: Optional[float] = None
    high: Optional[float] = None
    fallbacks: Tuple[str, ...] = ()
    missing: Optional[int] = None
    sent: bool = True

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def _kind(self) -> Kind:
        return Kind(self.size, self.signed)

    @property
    def _sign(self) -> int:
        return -1 if self.negated else 1

    def raw_range(self) -> Tuple[int, int]:
        """The raw values the wire can carry within ``low``/``high``."""
        ends = sorted((wire - self.bias) * self._sign for wire in (self._kind.low, self._kind.high))
        lows, highs = [ends[0]], [ends[1]]
        if self.low is not None:
            lows.append(round(self.low / self.resolution))
        if self.high is not None:
            highs.append(round(self.high / self.resolution))
        return max(lows), min(highs)

    def physical_range(self) -> Tuple[float, float]:
        low, high = self.raw_range()
        return self._physical(low), self._physical(high)

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        value = values[self.name]
        for name in self.fallbacks:
            if is_missing(value):
                value = values.get(name)
        if not is_missing(value):
            try:
                scaled = float(value) / self.resolution
            except (TypeError, ValueError):
                raise ValueError("%s %s: %r is not a number" % (label, self.name, value)) from None
            low, high = self.raw_range()
            raw = low if scaled <= low else high if scaled >= high else round(scaled)
            wire = self.bias + self._sign * raw
        elif self.missing is not None:
            wire = self.missing
        else:
            raise ValueError("%s %s: %r is not a finite number and the Pylon HV protocol has no 'not available' "
                             "code for it: a value is required" % (label, self.name, value))
        pattern = wire & ((1 << 8 * self.size) - 1)
        data[self.offset:self.end] = pattern.to_bytes(self.size, "big" if self.big_endian else "little")

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        pattern = int.from_bytes(data[self.offset:self.end], "big" if self.big_endian else "little")
        fields[self.name] = self._physical((self._kind.from_pattern(pattern) - self.bias) * self._sign)

    def _physical(self, raw: int):
        return Field(self.name, self.offset, U16, self.resolution).physical(raw)


class BitValue(NamedTuple):
    """A small unsigned number in bits ``shift``.. of one byte (0x4250's basic status)."""

    name: str
    offset: int
    shift: int
    width: int

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        data[self.offset] |= (int(values[self.name]) & ((1 << self.width) - 1)) << self.shift

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        fields[self.name] = data[self.offset] >> self.shift & ((1 << self.width) - 1)


class FlagSet(NamedTuple):
    """Flags of the report as bits anywhere in the frame: ``positions`` maps a flag to the
    (byte, bit) pairs it sets (the report does not tell charge from discharge temperature, so
    one flag may set several); decoded raised when any of its bits is."""

    name: str
    allowed: Tuple[str, ...]
    positions: Mapping[str, Tuple[Tuple[int, int], ...]]

    @property
    def end(self) -> int:
        return max(byte for pairs in self.positions.values() for byte, _ in pairs) + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        for flag in values[self.name]:
            for byte, bit in self.positions.get(flag, ()):
                data[byte] |= 1 << bit

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        fields[self.name] = [flag for flag in self.allowed
                             if any(data[byte] >> bit & 1 for byte, bit in self.positions.get(flag, ()))]


def word_bits(offset: int, bits: Mapping[str, Tuple[int, ...]], big_endian: bool,
              extra: Mapping[str, Tuple[Tuple[int, int], ...]]) -> Dict[str, Tuple[Tuple[int, int], ...]]:
    """(byte, bit) pairs of bit numbers in the u16 at ``offset``, plus ``extra`` pairs."""
    positions = {}
    for flag in set(bits) | set(extra):
        pairs = tuple((offset + (1 - bit // 8 if big_endian else bit // 8), bit % 8) for bit in bits.get(flag, ()))
        positions[flag] = pairs + tuple(extra.get(flag, ()))
    return positions


class Flag(NamedTuple):
    """A bool as one bit of a byte (0x4250's force-charge and balance requests)."""

    name: str
    offset: int
    bit: int

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        if values[self.name]:
            data[self.offset] |= 1 << self.bit

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        fields[self.name] = bool(data[self.offset] >> self.bit & 1)


class ForbidMark(NamedTuple):
    """0x4280: 0xAA = forbidden, anything else = allowed; stored as the report's enable bit."""

    name: str
    offset: int

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        data[self.offset] = 0 if values[self.name] else MARK

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        fields[self.name] = data[self.offset] != MARK


class Name(NamedTuple):
    """ASCII ``length`` bytes from character ``start`` of the name, zero-padded (0x7330/0x7340)."""

    name: str
    start: int
    length: int = 8
    offset: int = 0

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        text = values[self.name].encode("ascii")[self.start:self.start + self.length]
        data[self.offset:self.offset + self.length] = text.ljust(self.length, b"\x00")

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        fields[self.name] = bytes(data[self.offset:self.offset + self.length]).decode("ascii", "replace").rstrip("\x00")


class SleepCommand(NamedTuple):
    """0x8200 B0: 0x55 "enter sleep" (a battery opens its relay) is the inverter's shutdown command,
    0xAA "quit sleep" clears it; other values say nothing. Decode only (the inverter sends it)."""

    offset: int = 0

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        pass

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        meaning = {ENTER_SLEEP: True, MARK: False}.get(data[self.offset])
        if meaning is not None:
            fields["shutdown_requested"] = meaning


# 0x4250 alarm and protection words (§3.2, all sources agree): a report flag sets every bit it covers.
ALARM_BITS = {"low_voltage": (2,), "high_voltage": (3,), "low_temperature": (4, 6), "high_temperature": (5, 7),
              "charge_high_current": (8,), "discharge_high_current": (9,)}
PROTECTION_BITS = {"under_voltage": (2,), "over_voltage": (3,), "under_temperature": (4, 6),
                   "over_temperature": (5, 7), "charge_over_current": (8,), "discharge_over_current": (9,)}
# 0x4250 B3 errors (byte, bit): internal communication error (bit 2), "other error" (bit 7).
ERROR_ALARMS = {"internal_comm_fail": ((3, 2),)}
ERROR_PROTECTIONS = {"system_error": ((3, 7),)}
VERSIONS = bytes.fromhex("0100020101020000")   # 0x7310: HW ver A, V2.R1, SW V1.2 (BE's constant)


def ensemble_layouts(settings: HvSettings) -> Tuple[Layout, ...]:
    """0x4210...0x4290 (+ address) with the settings' byte order, offsets and sign."""
    order = settings.big_endian
    if settings.current_offset:
        current = dict(bias=CURRENT_BIAS)
        discharge_limit = dict(bias=CURRENT_BIAS, negated=settings.discharge_limit_negative)
    else:
        current = dict(signed=True)
        discharge_limit = dict(signed=True, negated=settings.discharge_limit_negative)
    temperature = dict(resolution=0.1, bias=TEMPERATURE_BIAS, big_endian=order)

    def layout(base: int, name: str, parts) -> Layout:
        return Layout(base + settings.address, name, 8, tuple(parts), extended=True)

    return (
        layout(0x4210, "pile_status", (
            Number("voltage_v", 0, 0.1, big_endian=order, low=0),
            Number("current_a", 2, 0.1, big_endian=order, **current),
            Number("temperature_c", 4, fallbacks=("temperature_max_c", "temperature_min_c"), **temperature),
            Number("soc_pct", 6, 1, size=1, low=0, high=100),
            Number("soh_pct", 7, 1, size=1, low=0, high=100))),
        layout(0x4220, "limits", (
            Number("charge_voltage_v", 0, 0.1, big_endian=order, low=0),
            Number("discharge_voltage_v", 2, 0.1, big_endian=order, low=0),
            Number("charge_current_a", 4, 0.1, big_endian=order, low=0, **current),
            Number("discharge_current_a", 6, 0.1, big_endian=order, low=0, **discharge_limit))),
        layout(0x4230, "cell_voltages", (
            Number("cell_max_v", 0, 0.001, big_endian=order, fallbacks=("cell_average_v",), missing=0),
            Number("cell_min_v", 2, 0.001, big_endian=order, fallbacks=("cell_average_v",), missing=0),
            Constant(4, bytes(4)))),
        layout(0x4240, "cell_temperatures", (
            Number("temperature_max_c", 0, fallbacks=("temperature_c", "temperature_min_c"), **temperature),
            Number("temperature_min_c", 2, fallbacks=("temperature_c", "temperature_max_c"), **temperature),
            Constant(4, bytes(4)))),
        layout(0x4250, "status", (
            BitValue("pile_state", 0, 0, 3), Flag("force_charge_1", 0, 3), Flag("full_charge", 0, 4),
            Constant(1, bytes(2)),
            FlagSet("alarm", ALARMS, word_bits(4, ALARM_BITS, order, ERROR_ALARMS)),
            FlagSet("protection", PROTECTIONS, word_bits(6, PROTECTION_BITS, order, ERROR_PROTECTIONS)))),
        layout(0x4260, "module_voltages", (
            Number("module_max_v", 0, 0.001, big_endian=order, missing=0),
            Number("module_min_v", 2, 0.001, big_endian=order, missing=0),
            Constant(4, bytes(4)))),
        layout(0x4270, "module_temperatures", (
            Number("module_max_temperature_c", 0, fallbacks=("temperature_max_c", "temperature_c",
                                                              "temperature_min_c"), **temperature),
            Number("module_min_temperature_c", 2, fallbacks=("temperature_min_c", "temperature_c",
                                                              "temperature_max_c"), **temperature),
            Constant(4, bytes(4)))),
        layout(0x4280, "forbidden", (ForbidMark("charge_enable", 0), ForbidMark("discharge_enable", 1))),
        layout(0x4290, "fault_extension", (Constant(0, bytes(8)),)),
    ) + ((layout(0x42E0, "manufacturer", (Name("manufacturer", 0),)),
          layout(0x42F0, "manufacturer_more", (Name("manufacturer", 8),)))
         if settings.name_in_ensemble and settings.name_frames else ())


def equipment_layouts(settings: HvSettings) -> Tuple[Layout, ...]:
    """0x7310...0x7340 (+ address). 0x7320 B0-1 carries the total series cell count (C6)."""
    def layout(base: int, name: str, parts) -> Layout:
        return Layout(base + settings.address, name, 8, tuple(parts), extended=True)

    return (
        layout(0x7310, "versions", (Constant(0, VERSIONS),)),
        layout(0x7320, "geometry", (
            Number("cell_count", 0, 1, low=0, missing=0),
            Number("modules", 2, 1, size=1, low=0),
            Number("cells_per_module", 3, 1, size=1, low=0, missing=0),
            Number("nominal_voltage_v", 4, 1, low=0, missing=0),
            Number("capacity_ah", 6, 1, low=0, missing=0))),
    ) + ((layout(0x7330, "manufacturer", (Name("manufacturer", 0),)),
          layout(0x7340, "manufacturer_more", (Name("manufacturer", 8),)))
         if settings.name_frames else ())


def request_layouts(settings: HvSettings) -> Tuple[Layout, ...]:
    """The inverter's frames: the poll (no address) and the control commands (DIY addresses them,
    ORB does not: both are accepted)."""
    byte0 = Field("poll_request", 0, U8, 1)
    ids = sorted({0, settings.address})
    return (Layout(REQUEST_ID, "request", 8, (byte0,), min_length=1, extended=True),) + tuple(
        Layout(base + address, name, 8, parts, min_length=1, extended=True)
        for base, name, parts in (
            (SLEEP_ID, "sleep_command", (Field("sleep_command", 0, U8, 1), SleepCommand())),
            (COMMAND_ID, "relay_command", (Field("relay_charge_command", 0, U8, 1),
                                           Field("relay_discharge_command", 1, U8, 1))),
            (MASK_ID, "mask_comm_loss", (Field("mask_comm_loss", 0, U8, 1),)))
        for address in ids)


class PylonHvProfile(Profile):
    """A Pylon HV inverter family: polled transport, 29-bit ids, the family's ``HvSettings``.

    ``cell_count`` (total cells in series; 0 = not known) fills 0x7320 and the average cell
    voltage where the source has no cell voltages; ``for_pack`` gives a copy for a pack.
    """

    transport = "polled"
    name_length = NAME_LENGTH
    bitrates = (500000, 250000)     # §1: 500 kbit/s, 250 on request

    def __init__(self, name: str, settings: HvSettings = HvSettings(), cell_count: int = 0,
                 product_name: str = ""):
        if not 0 <= settings.address <= MAX_ADDRESS:
            raise ValueError("profile %s: address %r is not allowed: expected 0 to %d"
                             % (name, settings.address, MAX_ADDRESS))
        self.settings = settings
        self.cell_count = cell_count
        self.ensemble = ensemble_layouts(settings)
        self.equipment = equipment_layouts(settings)
        requests = request_layouts(settings)
        # the 0x4280 forbid marks stop a direction even where the inverter ignores a 0 A limit
        super().__init__(name, self.ensemble + self.equipment, requests,
                         [{"can_id": layout.frame_id, "can_mask": MAX_EXTENDED_ID, "extended": True}
                          for layout in requests], default_manufacturer=settings.manufacturer,
                         product_name=product_name, byte_order="big" if settings.big_endian else "little")

    def for_pack(self, cell_count: int) -> "PylonHvProfile":
        return PylonHvProfile(self.name, self.settings, cell_count, self.product_name)

    def _derived(self, report: BatteryReport) -> Dict[str, Any]:
        modules = max(1, int(report.modules or 1))
        cells = self.cell_count or None
        # averages from the pile voltage as 0x4210 carries it, so a peer can rebuild them from the frames
        pile_v = round(report.voltage_v, 1)
        charging, discharging = report.current_a > IDLE_CURRENT_A, report.current_a < -IDLE_CURRENT_A
        return {
            "pile_state": 1 if charging else 2 if discharging else 3,
            "force_charge_1": report.force_charge_1 or report.force_charge_2,
            # forbidden whenever charge or discharge is not allowed: some inverters ignore a 0 A limit
            "charge_enable": report.charge_enable and _sent_positive(report.charge_current_a),
            "discharge_enable": report.discharge_enable and _sent_positive(report.discharge_current_a),
            "cell_average_v": pile_v / cells if cells else None,
            "module_max_v": pile_v / modules, "module_min_v": pile_v / modules,
            "module_max_temperature_c": None, "module_min_temperature_c": None,
            "cell_count": cells, "cells_per_module": cells // modules if cells else None,
            "nominal_voltage_v": cells * NOMINAL_CELL_V if cells else None,
        }

    def answer(self, request: Frame, report: BatteryReport, manufacturer: str = "") -> List[Frame]:
        """The frames a battery sends in reply to the inverter's ``request`` (empty: none)."""
        kind = self.request_kind(request)
        if kind == "ensemble":
            return self._encode(report, manufacturer, self.ensemble)
        if kind == "equipment":
            return self._encode(report, manufacturer, self.equipment)
        if kind == "mask":      # this bridge keeps nothing on without comms: "will not act"
            return [Frame(MASK_REPLY_ID + self.settings.address, bytes(8), True)]
        return []

    def request_kind(self, frame: Frame) -> str:
        """What an inverter frame asks: "ensemble", "equipment", "sleep", "wake", "relay", "mask",
        or "ignored" (an unknown 0x4200 value, a control command without effect, a foreign id)."""
        decoded = self.decode(frame)
        fields = decoded.fields
        if decoded.name == "request":
            return {ENSEMBLE_REQUEST: "ensemble", EQUIPMENT_REQUEST: "equipment"}.get(fields["poll_request"], "ignored")
        if decoded.name == "sleep_command":
            return {ENTER_SLEEP: "sleep", MARK: "wake"}.get(fields["sleep_command"], "ignored")
        if decoded.name == "relay_command" and MARK in (fields["relay_charge_command"],
                                                        fields.get("relay_discharge_command")):
            return "relay"
        if decoded.name == "mask_comm_loss" and fields["mask_comm_loss"] == MARK:
            return "mask"
        return "ignored"


def _sent_positive(current_a: float) -> bool:
    """A current limit that is above 0 A as its 0.1 A field carries it."""
    return not is_missing(current_a) and round(current_a * 10) > 0


class PollSession:
    """What the battery answers to the inverter's frames, and how many of each kind it saw.
    Pure: the caller supplies the report (None: no decision yet, nothing is answered) and
    sends the frames returned.

    No command loosens the report: sleep is the inverter's shutdown command, which can_rx keeps
    and the BMS decision obeys (``SleepCommand``); the relay command (0x8210: close the relay in
    protection) is counted, never obeyed."""

    def __init__(self, profile: PylonHvProfile):
        self.profile = profile
        self.counts: Dict[str, int] = {}

    def handle(self, frame: Frame, report: Optional[BatteryReport], manufacturer: str = "") -> List[Frame]:
        kind = self.profile.request_kind(frame)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if report is None:
            return []
        return self.profile.answer(frame, report, manufacturer)
