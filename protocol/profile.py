"""One inverter family: the BMS frames it reads, the frames it sends, and its quirks."""
import copy
from typing import Any, Dict, List, Sequence, Tuple

from protocol.decoded import Decoded
from protocol.frame import Frame
from protocol.layout import Layout
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

NAME_LENGTH = 8


class Profile:
    """Encodes a BatteryReport into the profile's BMS frame set and decodes frames of both directions.

    ``frames``: the BMS frames in send order, each sent once per ``cycle_s``.
    ``inverter_frames``: what the inverter sends; ``rx_filters`` let exactly those through.
    ``manufacturer_prefix``: what every 0x35E name must start with (Deye: "PYLON").
    ``min_keepalive_timeout_s``: the shortest link-supervision timeout the inverter tolerates.
    """

    def __init__(self, name: str, frames: Sequence[Layout], inverter_frames: Sequence[Layout],
                 rx_filters: Sequence[Dict[str, Any]], default_manufacturer: str = "PYLON",
                 cycle_s: float = 1.0, manufacturer_prefix: str = "", min_keepalive_timeout_s: float = 0.0):
        self.name = name
        self.cycle_s = cycle_s
        self.manufacturer_prefix = manufacturer_prefix
        self.min_keepalive_timeout_s = min_keepalive_timeout_s
        self._frames = tuple(frames)
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

    def check_manufacturer(self, manufacturer: str) -> str:
        """The 0x35E name to send: ``manufacturer``, or the profile's default when empty.

        ValueError when it is not printable ASCII of at most 8 characters or lacks the prefix.
        """
        if not isinstance(manufacturer, str):
            raise ValueError("manufacturer = %r is not allowed: expected a string" % (manufacturer,))
        return self._validated(manufacturer or self.default_manufacturer)

    def _validated(self, name: str) -> str:
        if not (0 < len(name) <= NAME_LENGTH and all(" " <= char <= "~" for char in name)):
            raise ValueError("manufacturer = %r is not allowed: expected 1 to %d printable ASCII characters"
                             % (name, NAME_LENGTH))
        if not name.startswith(self.manufacturer_prefix):
            raise ValueError("manufacturer = %r is not allowed for profile %s: the inverter only accepts "
                             "names starting with %r" % (name, self.name, self.manufacturer_prefix))
        return name

    def encode(self, report: BatteryReport, manufacturer: str = "") -> List[Frame]:
        """The whole BMS frame set, always the same ids in the same order."""
        if not isinstance(report, BatteryReport):
            raise TypeError("encode needs a BatteryReport, not %s" % type(report).__name__)
        for attribute, allowed in (("protection", PROTECTIONS), ("alarm", ALARMS)):
            unknown = sorted(repr(flag) for flag in getattr(report, attribute) if flag not in allowed)
            if unknown:
                raise ValueError("report.%s has unknown flags %s: allowed are %s"
                                 % (attribute, ", ".join(unknown), ", ".join(allowed)))
        values = report._asdict()
        values["manufacturer"] = self.check_manufacturer(manufacturer)
        values["soc_hires_pct"] = report.soc_pct
        return [layout.encode(values) for layout in self._frames]

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
