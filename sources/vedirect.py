"""The VE.Direct text protocol of Victron battery monitors (SmartShunt, BMV), pure: bytes in, blocks out.

A monitor sends, at 19200 8N1, blocks of ``\\r\\n<label>\\t<value>`` fields ending with the field
``\\r\\nChecksum\\t<one byte>`` chosen so that every byte of the block sums to 0 modulo 256. Answers
of the HEX protocol (``:`` ... ``\\n``) may come in between; they are not part of any block's
sum and are skipped. A block whose sum is wrong, or that is not well formed, is dropped whole
and counted: no field of it is ever used. ``battery_values`` turns a block's text into the
"battery" slot's units, exactly (an integer number of mV, mA or per mille divided once).
"""
from fractions import Fraction
from typing import Dict, List, NamedTuple, Optional, Tuple

BAUD_RATE = 19200
CHECKSUM_LABEL = b"Checksum"
MAX_LABEL = 16          # the longest label is 9 characters; more is noise
MAX_VALUE = 64          # the longest value (a product description) is about 33 characters
MAX_FIELDS = 40         # a block carries at most about 26 fields

# label -> (slot field, divisor to the slot's unit); values are integers on the wire
NUMBERS = {
    "V": ("voltage_v", 1000),            # mV
    "VS": ("starter_voltage_v", 1000),   # mV, auxiliary (starter) battery
    "VM": ("midpoint_v", 1000),          # mV, mid-point of the bank
    "DM": ("midpoint_deviation_pct", 10),  # per mille
    "I": ("current_a", 1000),            # mA, positive = charging
    "P": ("power_w", 1),                 # W
    "CE": ("consumed_ah", 1000),         # mAh, negative = drawn
    "SOC": ("soc_pct", 10),              # per mille
    "T": ("temperature_c", 1),           # degC
    "TTG": ("time_to_go_min", 1),        # min, -1 = infinite (battery not discharging)
    "AR": ("alarm_reason", 1),           # bit field
}
# history block: label -> (name, divisor); mAh and mV to Ah and V, 0.01 kWh to kWh
HISTORY = {
    "H1": ("deepest_discharge_ah", 1000), "H2": ("last_discharge_ah", 1000),
    "H3": ("average_discharge_ah", 1000), "H4": ("charge_cycles", 1), "H5": ("full_discharges", 1),
    "H6": ("cumulative_drawn_ah", 1000), "H7": ("min_voltage_v", 1000), "H8": ("max_voltage_v", 1000),
    "H9": ("since_full_charge_s", 1), "H10": ("automatic_syncs", 1), "H11": ("low_voltage_alarms", 1),
    "H12": ("high_voltage_alarms", 1), "H13": ("low_starter_voltage_alarms", 1),
    "H14": ("high_starter_voltage_alarms", 1), "H15": ("min_starter_voltage_v", 1000),
    "H16": ("max_starter_voltage_v", 1000), "H17": ("discharged_energy_kwh", 100),
    "H18": ("charged_energy_kwh", 100),
}
FLAGS = {"Alarm": "alarm", "Relay": "relay"}    # ON / OFF
NOT_AVAILABLE = "---"                            # e.g. SOC before the first synchronisation


class Counters(NamedTuple):
    blocks: int           # blocks with a good checksum, handed out
    bad_checksum: int     # complete blocks whose sum was wrong: dropped
    malformed: int        # blocks broken off by noise (a line too long, no tab, too many fields): dropped
    hex_frames: int       # HEX protocol frames skipped


class VeDirectParser:
    """Feed it bytes as they come; it returns the fields of every good block completed by them.

    A parser that starts in the middle of a block (a port just opened) drops that first block:
    its sum cannot be right. The checksum byte may be any byte (a ``:`` there is no HEX frame).
    """

    def __init__(self):
        self._state = self._idle
        self._before_hex = self._idle
        self._sum = 0
        self._fields: List[Tuple[bytes, bytes]] = []
        self._label = bytearray()
        self._value = bytearray()
        self._blocks = self._bad_checksum = self._malformed = self._hex_frames = 0
        self._done: List[Dict[str, str]] = []

    @property
    def counters(self) -> Counters:
        return Counters(self._blocks, self._bad_checksum, self._malformed, self._hex_frames)

    def feed(self, data: bytes) -> List[Dict[str, str]]:
        for byte in data:
            if byte == 0x3A and self._state not in (self._checksum, self._hex):    # ':'
                self._before_hex, self._state = self._state, self._hex
                continue
            if self._state != self._hex:
                self._sum = (self._sum + byte) & 0xFF
            self._state(byte)
        done, self._done = self._done, []
        return done

    # ---- states: each takes one byte (already summed) ----------------------------------------

    def _restart(self, byte: int) -> None:
        """Forget the block so far; a ``\\r`` or ``\\n`` may begin the next one."""
        self._fields, self._label, self._value = [], bytearray(), bytearray()
        self._sum = byte if byte in (0x0D, 0x0A) else 0
        self._state = self._line_start if byte == 0x0A else self._idle

    def _idle(self, byte: int) -> None:
        """Outside a block: wait for the ``\\r\\n`` that starts one."""
        if byte == 0x0D:
            self._sum = byte
        elif byte == 0x0A:
            self._state = self._line_start
        else:
            self._sum = 0

    def _line_start(self, byte: int) -> None:
        if byte in (0x0D, 0x0A, 0x09):
            self._broken(byte)
        else:
            self._label = bytearray([byte])
            self._state = self._in_label

    def _in_label(self, byte: int) -> None:
        if byte == 0x09:
            label = bytes(self._label)
            if label == CHECKSUM_LABEL:
                self._state = self._checksum
                return
            if any(label == seen for seen, _ in self._fields):
                # a label twice: this block lost its end (a damaged Checksum line); a new one starts here
                self._malformed += 1
                self._fields = []
                self._sum = (0x0D + 0x0A + sum(label) + 0x09) & 0xFF
            self._value = bytearray()
            self._state = self._in_value
        elif byte in (0x0D, 0x0A) or len(self._label) >= MAX_LABEL:
            self._broken(byte)
        else:
            self._label.append(byte)

    def _in_value(self, byte: int) -> None:
        if byte == 0x0D and len(self._fields) < MAX_FIELDS:
            self._fields.append((bytes(self._label), bytes(self._value)))
            self._state = self._after_cr
        elif byte == 0x0D or byte == 0x0A or byte == 0x09 or len(self._value) >= MAX_VALUE:
            self._broken(byte)
        else:
            self._value.append(byte)

    def _after_cr(self, byte: int) -> None:
        if byte == 0x0A:
            self._state = self._line_start
        else:
            self._broken(byte)

    def _checksum(self, byte: int) -> None:
        if self._sum == 0:
            self._blocks += 1
            self._done.append({label.decode("latin-1"): value.decode("latin-1") for label, value in self._fields})
        else:
            self._bad_checksum += 1
        self._fields, self._sum, self._state = [], 0, self._idle

    def _broken(self, byte: int) -> None:
        self._malformed += 1
        self._restart(byte)

    def _hex(self, byte: int) -> None:
        if byte == 0x0A:
            self._hex_frames += 1
            self._state = self._before_hex


def _integer(text: str) -> Optional[int]:
    text = text.strip()
    if text == NOT_AVAILABLE:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _scaled(text: str, divisor: int) -> Optional[float]:
    """The value in the slot's unit, the nearest float to the exact quotient (one rounding)."""
    number = _integer(text)
    if number is None:
        return None
    return float(Fraction(number, divisor)) if divisor != 1 else float(number)


def battery_values(fields: Dict[str, str]) -> Dict[str, object]:
    """One block's measurements in the slot's units; a quantity absent or ``---`` is None.

    Only a block that carries the main voltage ``V`` is a reading of the battery: its absent
    quantities are missing now (a probe removed), never carried over from an earlier block.
    """
    values: Dict[str, object] = {name: _scaled(fields[label], divisor) if label in fields else None
                                 for label, (name, divisor) in NUMBERS.items()}
    if values["time_to_go_min"] == -1.0:
        values["time_to_go_min"] = None         # infinite: not discharging
    for label, name in FLAGS.items():
        values[name] = fields[label].strip().upper() == "ON" if label in fields else None
    return values


def history_values(fields: Dict[str, str]) -> Dict[str, float]:
    """The history fields a block carries (H1-H18), in Ah, V, s, kWh and counts."""
    history = {}
    for label, (name, divisor) in HISTORY.items():
        if label in fields:
            value = _scaled(fields[label], divisor)
            if value is not None:
                history[name] = value
    return history


def is_reading(fields: Dict[str, str]) -> bool:
    """A block with the battery's main voltage: the one that carries the measurements."""
    return "V" in fields
