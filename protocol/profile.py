"""One inverter family: the BMS frames it reads, the frames it sends, and its quirks."""
import copy
import math
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from protocol.decoded import Decoded
from protocol.frame import Frame
from protocol.layout import Field, Layout
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

NAME_LENGTH = 8
BYTE_ORDERS = ("little", "big")
# what a frame set must carry for a report to be rebuilt from it
REBUILT_REQUIRED = ("charge_voltage_v", "charge_current_a", "discharge_current_a", "discharge_voltage_v", "soc_pct",
                    "soh_pct", "voltage_v", "current_a")


class Profile:
    """Encodes a BatteryReport into the profile's BMS frame set and decodes frames of both directions.

    ``frames``: the BMS frames in send order, each sent once per ``cycle_s``.
    ``inverter_frames``: what the inverter sends; ``rx_filters`` let exactly those through.
    ``manufacturer_prefix``: what every 0x35E name must start with (Deye: "PYLON").
    ``min_keepalive_timeout_s``: the shortest link-supervision timeout the inverter tolerates.
    ``min_frame_spacing_s``: the shortest interval the inverter accepts between two BMS frames
    (SMA's inhibit time); the frames spread evenly over the cycle must keep it, and a sender
    taking over then shifts the cadence instead of catching up back-to-back.
    ``transport``: "broadcast" (the frame set on a cadence) or "polled" (answers to the
    inverter's requests, see ``protocol/pylon_hv.py``).
    ``byte_order``: "little" or "big", of every multi-byte number of its frames.
    ``bitrates``: the CAN bit rates the inverter speaks (the configuration is refused at any other).

    The inverter's quirks, for the parts of the bridge beyond the frames:

    ``product_name``: what Venus shows as the inverter (``/ProductName`` of the vebus service).
    ``ignores_zero_limits``: a charge or discharge limit of 0 does not stop the inverter and the
    frames carry nothing else it obeys, so a mode that forbids a direction cannot be carried out.
    ``ac_telemetry``: the inverter broadcasts its AC values (``INVERTER_FIELDS``' ac_* names),
    which Venus then shows; otherwise the AC paths stay invalid.
    """

    transport = "broadcast"
    name_length = NAME_LENGTH       # the longest manufacturer name its frames carry
    bitrates: Tuple[int, ...] = (500000,)   # Pylon LV: 500 kbit/s (PYLON_CAN.md §1)

    def __init__(self, name: str, frames: Sequence[Layout], inverter_frames: Sequence[Layout],
                 rx_filters: Sequence[Dict[str, Any]], default_manufacturer: str = "PYLON",
                 cycle_s: float = 1.0, manufacturer_prefix: str = "", min_keepalive_timeout_s: float = 0.0,
                 min_frame_spacing_s: float = 0.0, product_name: str = "", byte_order: str = "little",
                 ignores_zero_limits: bool = False, ac_telemetry: bool = False):
        self.name = name
        self.cycle_s = cycle_s
        self.min_frame_spacing_s = min_frame_spacing_s
        if cycle_s / len(frames) < min_frame_spacing_s * (1 - 1e-9):
            raise ValueError("profile %s: %d frames every %g s are closer than its minimum spacing of %g s"
                             % (name, len(frames), cycle_s, min_frame_spacing_s))
        if byte_order not in BYTE_ORDERS:
            raise ValueError("profile %s: byte_order = %r is not allowed: expected %s"
                             % (name, byte_order, " or ".join(BYTE_ORDERS)))
        self.manufacturer_prefix = manufacturer_prefix
        self.min_keepalive_timeout_s = min_keepalive_timeout_s
        self.product_name = product_name
        self.byte_order = byte_order
        self.ignores_zero_limits = ignores_zero_limits
        self.ac_telemetry = ac_telemetry
        self._frames = tuple(_in_byte_order(layout, byte_order) for layout in frames)
        self._rx_filters = [dict(entry) for entry in rx_filters]
        self._by_id: Dict[Tuple[int, bool], Layout] = {}
        for layout in self._frames + tuple(inverter_frames):
            key = (layout.frame_id, layout.extended)
            if key in self._by_id:
                raise ValueError("profile %s: two layouts for %s" % (name, layout.label))
            self._by_id[key] = layout
        self.default_manufacturer = self._validated(default_manufacturer)

    @property
    def frame_ids(self) -> Tuple[int, ...]:
        return tuple(layout.frame_id for layout in self._frames)

    @property
    def rx_filters(self) -> List[Dict[str, Any]]:
        """python-can receive filters for the inverter frames (a fresh copy each time)."""
        return copy.deepcopy(self._rx_filters)

    def sendable_range(self, attribute: str) -> Tuple[float, float]:
        """The lowest and highest value of report ``attribute`` that this profile's frames carry."""
        ranges = [part.physical_range() for layout in self._frames for part in layout.parts
                  if hasattr(part, "physical_range") and part.name == attribute and part.sent]
        if not ranges:
            raise ValueError("profile %s sends no %s" % (self.name, attribute))
        return max(low for low, _ in ranges), min(high for _, high in ranges)

    def check_manufacturer(self, manufacturer: str) -> str:
        """The 0x35E name to send: ``manufacturer``, or the profile's default when empty.

        ValueError when it is not printable ASCII of at most 8 characters or lacks the prefix.
        """
        if not isinstance(manufacturer, str):
            raise ValueError("manufacturer = %r is not allowed: expected a string" % (manufacturer,))
        return self._validated(manufacturer or self.default_manufacturer)

    def _validated(self, name: str) -> str:
        if not (0 < len(name) <= self.name_length and all(" " <= char <= "~" for char in name)):
            raise ValueError("manufacturer = %r is not allowed: expected 1 to %d printable ASCII characters"
                             % (name, self.name_length))
        if not name.startswith(self.manufacturer_prefix):
            raise ValueError("manufacturer = %r is not allowed for profile %s: the inverter only accepts "
                             "names starting with %r" % (name, self.name, self.manufacturer_prefix))
        return name

    def for_pack(self, cell_count: int) -> "Profile":
        """This profile for a pack of ``cell_count`` cells in series (the LV frames do not carry it)."""
        return self

    def encode(self, report: BatteryReport, manufacturer: str = "") -> List[Frame]:
        """The whole BMS frame set, always the same ids in the same order."""
        return self._encode(report, manufacturer, self._frames)

    def _encode(self, report: BatteryReport, manufacturer: str, layouts: Sequence[Layout]) -> List[Frame]:
        if not isinstance(report, BatteryReport):
            raise TypeError("encode needs a BatteryReport, not %s" % type(report).__name__)
        for attribute, allowed in (("protection", PROTECTIONS), ("alarm", ALARMS)):
            unknown = sorted(repr(flag) for flag in getattr(report, attribute) if flag not in allowed)
            if unknown:
                raise ValueError("report.%s has unknown flags %s: allowed are %s"
                                 % (attribute, ", ".join(unknown), ", ".join(allowed)))
        safe = self._never_loosened(report)
        values = safe._asdict()
        values["manufacturer"] = self.check_manufacturer(manufacturer)
        values.update(self._derived(safe))
        return [layout.encode(values) for layout in layouts]

    def _derived(self, report: BatteryReport) -> Dict[str, Any]:
        """Values the frames carry beyond the report's attributes."""
        return {"soc_hires_pct": report.soc_pct}

    def _never_loosened(self, report: BatteryReport) -> BatteryReport:
        """Fields clamp out-of-range values to what they carry, which tightens every limit but two:
        a CVL below the lowest sendable one would be raised and a DVL above the highest one
        lowered. Such a report is sent as the nearest safe frame instead: that CVL with charging
        stopped (and its requests withdrawn), that DVL with discharging stopped."""
        changes: Dict[str, Any] = {}
        lowest_cvl = self.sendable_range("charge_voltage_v")[0]
        if _is_number(report.charge_voltage_v) and report.charge_voltage_v < lowest_cvl:
            changes.update(charge_voltage_v=lowest_cvl, charge_current_a=0.0, charge_enable=False,
                           force_charge_1=False, force_charge_2=False, full_charge=False)
        highest_dvl = self.sendable_range("discharge_voltage_v")[1]
        if _is_number(report.discharge_voltage_v) and report.discharge_voltage_v > highest_dvl:
            changes.update(discharge_voltage_v=highest_dvl, discharge_current_a=0.0, discharge_enable=False)
        return report._replace(**changes) if changes else report

    @property
    def temperature_not_available(self) -> Optional[int]:
        """The raw code its frames send for an unknown battery temperature; None where the protocol
        has none (the temperature then falls back to another one, or a value is required)."""
        codes = [part.missing for layout in self._frames for part in layout.parts
                 if getattr(part, "name", None) == "temperature_c"]
        return codes[0] if codes else None

    def report_from_frames(self, frames: Sequence[Frame]) -> BatteryReport:
        """The BatteryReport behind a whole frame set of this profile; encoding it gives the same
        frames (a hot standby sends a silent peer's last frames again this way).

        Flags come from the frame that carries them as report flags (0x359, 0x4250) or else from
        the alarm items (SMA's 0x35A); enable bits the frames do not carry follow the current
        limits. ValueError naming what is missing.
        """
        fields: Dict[str, Any] = {}
        for frame in frames:
            fields.update(self.decode(frame).fields)
        hires = fields.get("soc_hires_pct")
        if hires is not None and fields.get("soc_pct") is not None:
            # The 0.01 % field carries the value, the 1 % field how it was rounded: a value between
            # the two (within the 0.01 % step) encodes to both.
            whole = fields["soc_pct"]
            fields["soc_pct"] = hires if round(hires) == whole else hires + math.copysign(0.004, whole - hires)
        missing = [name for name in REBUILT_REQUIRED if fields.get(name) is None]
        if missing:
            raise ValueError("the frame set lacks %s" % ", ".join(missing))
        values = {name: fields[name] for name in BatteryReport._fields if name in fields}
        values.setdefault("temperature_c", None)
        if "protection" not in fields:
            values.update(self._flags_from_items(fields))
        values["protection"] = frozenset(values["protection"])
        values["alarm"] = frozenset(values["alarm"])
        values.setdefault("charge_enable", values["charge_current_a"] > 0)
        values.setdefault("discharge_enable", values["discharge_current_a"] > 0)
        return BatteryReport(**values)

    def _flags_from_items(self, fields: Dict[str, Any]) -> Dict[str, FrozenSet[str]]:
        for layout in self._frames:
            for part in layout.parts:
                if hasattr(part, "report_flags"):
                    return part.report_flags(fields)
        raise ValueError("profile %s: its frames carry no protection or alarm flags" % self.name)

    def decode(self, frame: Frame) -> Decoded:
        """A BMS or inverter frame of this profile; a foreign id gives the name "unknown".

        Raises protocol.DecodeError when the frame is too short for its id.
        """
        layout = self._by_id.get((frame.arbitration_id, bool(frame.is_extended_id)))
        if layout is None:
            return Decoded("unknown", {})
        return Decoded(layout.name, layout.decode(frame.data))

    def __repr__(self) -> str:
        return "Profile(%r)" % self.name


def _in_byte_order(layout: Layout, byte_order: str) -> Layout:
    """``layout`` with its numbers in ``byte_order`` (the parts are little endian as written)."""
    if byte_order == "little":
        return layout
    return layout._replace(parts=tuple(part._replace(big_endian=True) if isinstance(part, Field) else part
                                       for part in layout.parts))


def _is_number(value: Any) -> bool:
    """A finite number; anything else is left to the field, which refuses it or sends "not available"."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
