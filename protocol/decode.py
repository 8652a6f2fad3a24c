"""The core of ``supervisor.py decode``: ``candump -l`` log lines to one dict per frame.

A line looks like ``(1700000000.123456) can0 351#1402C012C012C201``; ids have 3 hex digits
(11-bit) or 8 (29-bit). Each frame gives ``{"t", "id", "name", "fields"}`` (plus
``"extended": True`` for a 29-bit id and ``"data"`` in hex for an unknown id). A line that
cannot be decoded gives ``{"t", "id", "error"}`` with as much as is known, and decoding goes on;
lines read as bytes must be UTF-8, so a damaged one is one error too, not the end of the file.
"""
import math
import re
from typing import Any, Dict, Iterable, Iterator, Union

from protocol.decoded import DecodeError
from protocol.frame import Frame
from protocol.inverter import MAX_STANDARD_ID
from protocol.profile import Profile

LINE = re.compile(r"^\s*\((?P<t>[^)]*)\)\s+(?P<interface>\S+)\s+(?P<frame>\S+)(?:\s+[RT])?\s*$")  # python-can adds R/T
MAX_DATA_BYTES = 8
MAX_EXTENDED_ID = 0x1FFFFFFF


def decode_line(line: str, profile: Profile) -> Dict[str, Any]:
    """One ``candump -l`` line decoded with ``profile``."""
    match = LINE.match(line)
    if match is None:
        return {"error": "not a candump -l line, expected '(TIME) INTERFACE ID#DATA': %r" % line.strip()}
    record: Dict[str, Any] = {}
    try:
        record["t"] = float(match.group("t"))
    except ValueError:
        return {"error": "timestamp %r is not a number" % match.group("t")}
    if not math.isfinite(record["t"]):
        return {"error": "timestamp %r is not a finite number" % match.group("t")}
    text = match.group("frame")
    if "##" in text:
        return dict(record, error="CAN FD frame %r: only classic CAN frames are decoded" % text)
    if "#" not in text:
        return dict(record, error="frame %r has no '#' between id and data" % text)
    id_text, data_text = text.split("#", 1)
    if len(id_text) not in (3, 8) or not _is_hex(id_text):
        return dict(record, error="CAN id %r: expected 3 hex digits (11-bit) or 8 (29-bit)" % id_text)
    record["id"] = int(id_text, 16)
    extended = len(id_text) == 8
    if extended:
        record["extended"] = True
        if record["id"] > MAX_EXTENDED_ID:
            return dict(record, error="29-bit CAN id 0x%s is above 0x1FFFFFFF" % id_text)
    elif record["id"] > MAX_STANDARD_ID:
        return dict(record, error="11-bit CAN id 0x%s is above 0x7FF" % id_text)
    if data_text.upper().startswith("R"):
        return dict(record, error="remote frame (RTR) %r carries no data to decode" % text)
    data_text = data_text.replace(".", "")
    if len(data_text) % 2 or not _is_hex(data_text):
        return dict(record, error="data %r: expected pairs of hex digits" % data_text)
    data = bytes.fromhex(data_text)
    if len(data) > MAX_DATA_BYTES:
        return dict(record, error="%d data bytes: a classic CAN frame has at most 8" % len(data))
    try:
        decoded = profile.decode(Frame(record["id"], data, extended))
    except DecodeError as error:
        return dict(record, error=str(error))
    record["name"] = decoded.name
    record["fields"] = decoded.fields
    if decoded.name == "unknown":
        record["data"] = data.hex().upper()
    return record


def decode_lines(lines: Iterable[Union[str, bytes]], profile: Profile) -> Iterator[Dict[str, Any]]:
    """Every non-blank line decoded; error records also carry the 1-based ``line`` number."""
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as error:
                yield {"line": number, "error": "not UTF-8 text: byte 0x%02x at column %d: %r" % (
                    line[error.start], error.start + 1, line.decode("utf-8", "backslashreplace").strip())}
                continue
        if line.strip():
            record = decode_line(line, profile)
            if "error" in record:
                record["line"] = number
            yield record


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdefABCDEF" for char in text)
