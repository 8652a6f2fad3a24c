"""Byte layouts of CAN frames: each part of a frame encodes and decodes itself.

A frame is a fixed-length byte string built from parts at fixed offsets, little endian unless
the profile's ``byte_order`` is big.
Numbers are rounded to the field's resolution and clamped to its range, never wrapped (a
profile first replaces a limit that clamping would loosen, see ``Profile.encode``). A
missing value (None, NaN or infinite) becomes the field's "not available" code, or a
ValueError where the protocol has none. The same parts read a frame back into a dict, so a
profile's encoder and decoder cannot drift apart.

Every part has ``end`` (bytes a frame needs for the part to be decoded), ``pack(values,
data, label)`` and ``unpack(data, fields)``; ``values`` maps report attribute names to values.
"""
import math
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from protocol.decoded import DecodeError
from protocol.frame import Frame


class Kind(NamedTuple):
    """An integer type on the wire."""

    size: int
    signed: bool

    @property
    def low(self) -> int:
        return -(1 << (8 * self.size - 1)) if self.signed else 0

    @property
    def high(self) -> int:
        return (1 << (8 * self.size - int(self.signed))) - 1

    def from_pattern(self, pattern: int) -> int:
        """The integer a bit pattern (as read, unsigned) stands for."""
        return pattern - (1 << 8 * self.size) if self.signed and pattern > self.high else pattern


U8 = Kind(1, False)
U16 = Kind(2, False)
S16 = Kind(2, True)


def is_missing(value: Any) -> bool:
    """None, NaN and infinities carry no usable number."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


class Field(NamedTuple):
    """A number: ``physical = raw * resolution`` (a negative resolution flips the sign).

    ``low``/``high`` bound the physical value (None: the wire type's limit). ``missing`` is
    the raw pattern sent when there is no value (None: the value is mandatory), ``invalid``
    the pattern that decodes as None. ``fallback`` names the report attribute used when this
    one is missing. ``sent=False``: the protocol defines the field but this bridge has no
    value for it, so it always carries ``missing``. ``big_endian``: set by a profile whose
    byte order is big (``Profile.byte_order``), never by hand.
    """

    name: str
    offset: int
    kind: Kind
    resolution: float
    low: Optional[float] = None
    high: Optional[float] = None
    missing: Optional[int] = None
    invalid: Optional[int] = None
    fallback: Optional[str] = None
    sent: bool = True
    big_endian: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.kind.size

    def raw_range(self) -> Tuple[int, int]:
        """Raw limits: the physical range within the wire type, never the ``invalid`` code."""
        lows, highs = [self.kind.low], [self.kind.high]
        for bound, is_low in ((self.low, True), (self.high, False)):
            if bound is not None:
                # a negative resolution turns the physical low end into the raw high end
                (lows if is_low == (self.resolution > 0) else highs).append(round(bound / self.resolution))
        low, high = max(lows), min(highs)
        if self.invalid is not None:
            invalid = self.kind.from_pattern(self.invalid)
            if invalid == low:
                low += 1
            if invalid == high:
                high -= 1
        return low, high

    def physical_range(self) -> Tuple[float, float]:
        """The lowest and highest value the field can carry."""
        return tuple(sorted(self.physical(raw) for raw in self.raw_range()))

    def to_raw(self, value: float) -> int:
        low, high = self.raw_range()
        scaled = value / self.resolution
        if scaled <= low:
            return low
        if scaled >= high:
            return high
        return round(scaled)

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        value = values[self.name] if self.sent else None
        if is_missing(value) and self.fallback:
            value = values[self.fallback]
        if not is_missing(value):
            try:
                raw = self.to_raw(float(value))
            except (TypeError, ValueError):
                raise ValueError("%s %s: %r is not a number" % (label, self.name, value)) from None
        elif self.missing is not None:
            raw = self.kind.from_pattern(self.missing)
        else:
            also = " and %s" % self.fallback if self.fallback else ""
            raise ValueError("%s %s%s: %r is not a finite number, and this profile has no 'not available' "
                             "encoding for it: a value is required" % (label, self.name, also, value))
        pattern = raw & ((1 << 8 * self.kind.size) - 1)
        data[self.offset:self.end] = pattern.to_bytes(self.kind.size, self._order)

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        pattern = int.from_bytes(data[self.offset:self.end], self._order)
        if pattern == self.invalid:
            fields[self.name] = None
        else:
            fields[self.name] = self.physical(self.kind.from_pattern(pattern))

    @property
    def _order(self) -> str:
        return "big" if self.big_endian else "little"

    def physical(self, raw: int):
        """An int for whole-number resolutions, else a float rounded to the resolution's digits."""
        if isinstance(self.resolution, int):
            return raw * self.resolution
        digits = max(0, round(-math.log10(abs(self.resolution))))
        return round(raw * self.resolution, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


class Bits(NamedTuple):
    """Booleans in one byte: ``bits`` pairs a bit number with a report attribute."""

    offset: int
    bits: Tuple[Tuple[int, str], ...]

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        for bit, name in self.bits:
            if values[name]:
                data[self.offset] |= 1 << bit

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        for bit, name in self.bits:
            fields[name] = bool(data[self.offset] >> bit & 1)


class FlagBits(NamedTuple):
    """A set of flag names as single bits; decoded as a list in the order of ``allowed``.

    ``positions`` maps each allowed flag to its (byte, bit).
    """

    name: str
    allowed: Tuple[str, ...]
    positions: Mapping[str, Tuple[int, int]]

    @property
    def end(self) -> int:
        return max(byte for byte, _ in self.positions.values()) + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        for flag in values[self.name]:  # names were checked against ``allowed`` by the profile
            byte, bit = self.positions[flag]
            data[byte] |= 1 << bit

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        fields[self.name] = [flag for flag in self.allowed
                             if data[self.positions[flag][0]] >> self.positions[flag][1] & 1]


class Text(NamedTuple):
    """ASCII text padded with spaces; decoded without trailing spaces and NULs."""

    name: str
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + 1

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        text = values[self.name].encode("ascii")
        if len(text) > self.length:
            raise ValueError("%s %s: %r is longer than %d characters" % (label, self.name, values[self.name],
                                                                        self.length))
        data[self.offset:self.offset + self.length] = text.ljust(self.length, b" ")

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        raw = bytes(data[self.offset:self.offset + self.length])
        fields[self.name] = raw.decode("ascii", errors="replace").rstrip(" \x00")


class Constant(NamedTuple):
    """Fixed bytes the protocol requires (Pylon's "PN"); not decoded."""

    offset: int
    value: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.value)

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        data[self.offset:self.end] = self.value

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        pass


class Total(NamedTuple):
    """Decode-only sum of fields decoded before it (e.g. the power of all phases)."""

    name: str
    parts: Tuple[str, ...]
    end: int = 0

    def pack(self, values: Mapping[str, Any], data: bytearray, label: str) -> None:
        pass

    def unpack(self, data: bytes, fields: Dict[str, Any]) -> None:
        parts = [fields.get(part) for part in self.parts]
        if None not in parts:
            fields[self.name] = sum(parts)


class Layout(NamedTuple):
    """One frame id: ``length`` data bytes sent, made of ``parts``.

    A received frame needs ``min_length`` bytes (default: ``length``); parts beyond what a
    shorter frame holds are left out of the decoded fields.
    """

    frame_id: int
    name: str
    length: int
    parts: Tuple[Any, ...]
    min_length: Optional[int] = None
    extended: bool = False

    @property
    def label(self) -> str:
        return "0x%03X" % self.frame_id

    def encode(self, values: Mapping[str, Any]) -> Frame:
        data = bytearray(self.length)
        for part in self.parts:
            part.pack(values, data, self.label)
        return Frame(self.frame_id, bytes(data), self.extended)

    def decode(self, data: bytes) -> Dict[str, Any]:
        needed = self.length if self.min_length is None else self.min_length
        if len(data) < needed:
            raise DecodeError("%s (%s) has %d data bytes; at least %d are needed"
                              % (self.label, self.name, len(data), needed))
        fields: Dict[str, Any] = {}
        for part in self.parts:
            if part.end <= len(data):
                part.unpack(data, fields)
        return fields
