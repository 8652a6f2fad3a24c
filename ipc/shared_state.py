"""Shared memory owned by the supervisor: latest values in fixed slots, one writer each.

One file in /dev/shm holds a header and a fixed table of slots. Each slot has a sequence
number and two buffers: the writer fills the buffer the sequence does not point at (its
payload, length and a CRC32 over them and the new sequence), then publishes it by storing the
new sequence, one aligned 32-bit word (a single access on a 32-bit ARM too). A writer killed
at any point (SIGKILL, the OOM killer) therefore leaves the previous value published and
whole: there is no half-written state to repair, and a reader never waits for anyone. A reader
copies the published buffer and keeps it only when its checksum and sequence match; after a
bounded number of failed tries (a writer publishing faster than it copies, a corrupted
buffer) it returns the last good value it read from that slot and counts the failure.
Payloads are small JSON documents, so a slot can carry nested values (a frame set with its
decision) while the layout itself stays fixed. Every piece of state outlives the worker that
wrote it because the supervisor creates the file before it spawns anyone.
"""
import collections
import json
import mmap
import os
import struct
import time
import zlib
from typing import Any, Dict, Optional

MAGIC = b"PYLVENUS"
LAYOUT_VERSION = 4
SHM_DIR = "/dev/shm"

# name -> payload capacity in bytes; order fixes the offsets.
SLOTS = (
    ("battery", 1024),          # dbus_publisher (or battery_reader): the battery monitor's last real values
    ("inverter", 4096),         # can_rx: decoded inverter state, link, counters
    ("frames", 8192),           # bms_tx (or the failsafe): the frame set on the bus and its decision
    ("charge_state", 2048),     # bms_tx: the engine's persistent state, so a restart resumes it
    ("dvcc", 4096),             # dbus_publisher: limits written by Venus (DVCC/ESS) and settings
    ("bms_tx.can", 1024),       # bms_tx: its CAN link state and counters
    ("failsafe", 4096),         # supervisor: whether its failsafe transmitter holds the bus
    ("role", 512),              # supervisor: hot-standby role; bms_tx transmits only while "active"
    ("heartbeat.can_rx", 256),
    ("heartbeat.bms_tx", 256),
    ("heartbeat.dbus_publisher", 1024),  # carries D-Bus names found on the bus (at most 255 bytes each)
    ("heartbeat.simulator", 256),
    ("web", 8192),              # web console: settings and requests for bms_tx and the supervisor, its actions
    ("heartbeat.web", 256),
    ("heartbeat.battery_reader", 256),
)

_HEADER = struct.Struct("<8sII")          # magic, layout version, owner pid
_SEQUENCE_SIZE = 8                        # the slot's sequence (32-bit, aligned) and padding
_BUFFER_HEADER = struct.Struct("<IIII")   # the sequence it was written for, payload length, CRC32, padding
_SEQUENCE_WRAP = 1 << 32
READ_ATTEMPTS = 100                       # a reader's tries before it falls back to the last good value


def _layout():
    """slot -> (offset of its sequence, payload capacity), and the segment's size."""
    offsets, offset = {}, _HEADER.size
    for name, capacity in SLOTS:
        offsets[name] = (offset, capacity)
        offset += _SEQUENCE_SIZE + 2 * (_BUFFER_HEADER.size + capacity)
    return offsets, offset


def _buffer_offset(offset: int, capacity: int, sequence: int) -> int:
    """Where the buffer written for ``sequence`` starts: odd and even sequences alternate."""
    return offset + _SEQUENCE_SIZE + (sequence % 2) * (_BUFFER_HEADER.size + capacity)


def _checksum(sequence: int, payload: bytes) -> int:
    """CRC32 over the sequence, the length and the payload: a buffer is whole or it is refused."""
    return zlib.crc32(payload, zlib.crc32(struct.pack("<II", sequence, len(payload))))


OFFSETS, TOTAL_SIZE = _layout()


class SlotTooSmall(ValueError):
    pass


class StateInUse(RuntimeError):
    """Another live supervisor owns the segment."""


def segment_path(name: str) -> str:
    return os.path.join(SHM_DIR, "pylon-venus.%s" % name)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedState:
    """The supervisor's shared memory; ``create`` in the parent, ``attach`` in a worker."""

    def __init__(self, path: str, fd: int, owner: bool):
        self.path = path
        self._fd = fd
        self._map = mmap.mmap(fd, TOTAL_SIZE)
        # Sequences are read and written as whole aligned 32-bit words, which every CPU this
        # runs on (a Cerbo GX's 32-bit ARM too) does in one access.
        self._words = memoryview(self._map).cast("I")
        self._last_good: Dict[str, bytes] = {}
        self.read_failures = collections.Counter()     # slot -> reads answered with the last good value
        self.owner = owner

    @classmethod
    def create(cls, name: str) -> "SharedState":
        """Create the segment; a leftover one of a dead owner is removed first."""
        path = segment_path(name)
        stale = cls._owner_of(path)
        if stale is not None:
            if _pid_alive(stale) and stale != os.getpid():
                raise StateInUse("%s belongs to the running process %d: another pylon-venus already runs "
                                 "on this CAN bus (and standby node)" % (path, stale))
            os.unlink(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, TOTAL_SIZE)
        state = cls(path, fd, owner=True)
        _HEADER.pack_into(state._map, 0, MAGIC, LAYOUT_VERSION, os.getpid())
        return state

    @classmethod
    def attach(cls, path: str) -> "SharedState":
        fd = os.open(path, os.O_RDWR)
        state = cls(path, fd, owner=False)
        magic, version, _ = _HEADER.unpack_from(state._map, 0)
        if magic != MAGIC or version != LAYOUT_VERSION:
            state.close()
            raise ValueError("%s is not a pylon-venus segment of layout %d" % (path, LAYOUT_VERSION))
        return state

    @staticmethod
    def _owner_of(path: str) -> Optional[int]:
        try:
            with open(path, "rb") as handle:
                magic, _, pid = _HEADER.unpack(handle.read(_HEADER.size).ljust(_HEADER.size, b"\0"))
        except FileNotFoundError:
            return None
        return pid if magic == MAGIC else 0

    def write(self, slot: str, value: Dict[str, Any]) -> None:
        """Publish ``value`` (JSON-able) in ``slot``; only the slot's one writer calls this."""
        offset, capacity = OFFSETS[slot]
        payload = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        if len(payload) > capacity:
            raise SlotTooSmall("slot %s holds %d bytes, the value needs %d" % (slot, capacity, len(payload)))
        sequence = self._words[offset // 4] + 1
        if sequence == _SEQUENCE_WRAP:
            sequence = 2            # 0 means "never written"; 2 keeps the buffers alternating
        start = _buffer_offset(offset, capacity, sequence)
        self._map[start + _BUFFER_HEADER.size:start + _BUFFER_HEADER.size + len(payload)] = payload
        _BUFFER_HEADER.pack_into(self._map, start, sequence, len(payload), _checksum(sequence, payload), 0)
        self._words[offset // 4] = sequence

    def read(self, slot: str) -> Optional[Dict[str, Any]]:
        """The last value written to ``slot``, or None before the first write.

        Never waits: after ``READ_ATTEMPTS`` tries without a whole copy it returns the last good
        value this process read from the slot (None if there is none) and counts the failure.
        """
        offset, capacity = OFFSETS[slot]
        for _ in range(READ_ATTEMPTS):
            sequence = self._words[offset // 4]
            if sequence == 0:
                return None
            start = _buffer_offset(offset, capacity, sequence)
            written_for, length, crc, _ = _BUFFER_HEADER.unpack_from(self._map, start)
            if written_for == sequence and length <= capacity:
                payload = bytes(self._map[start + _BUFFER_HEADER.size:start + _BUFFER_HEADER.size + length])
                if _checksum(sequence, payload) == crc and self._words[offset // 4] == sequence:
                    self._last_good[slot] = payload
                    return json.loads(payload)
            time.sleep(0)
        self.read_failures[slot] += 1
        last = self._last_good.get(slot)
        return None if last is None else json.loads(last)

    def close(self) -> None:
        self._words.release()
        self._map.close()
        os.close(self._fd)

    def unlink(self) -> None:
        """Remove the segment (the owner, at an orderly stop)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
