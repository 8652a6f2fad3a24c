"""Shared memory owned by the supervisor: latest values in fixed slots, one writer each.

One file in /dev/shm holds a header and a fixed table of slots. Each slot has a sequence
counter (a seqlock): the writer makes it odd, writes, makes it even; a reader copies the
payload and retries when the counter moved, so it never sees a torn write and never blocks
the writer. Payloads are small JSON documents, so a slot can carry nested values (a frame
set with its decision) while the layout itself stays fixed. Every piece of state outlives
the worker that wrote it because the supervisor creates the file before it spawns anyone.
"""
import json
import mmap
import os
import struct
import time
from typing import Any, Dict, Optional

MAGIC = b"PYLVENUS"
LAYOUT_VERSION = 2
SHM_DIR = "/dev/shm"

# name -> payload capacity in bytes; order fixes the offsets.
SLOTS = (
    ("battery", 1024),          # dbus_publisher: the battery monitor's last real values
    ("inverter", 4096),         # can_rx: decoded inverter state, link, counters
    ("frames", 8192),           # bms_tx (or the failsafe): the frame set on the bus and its decision
    ("charge_state", 2048),     # bms_tx: the engine's persistent state, so a restart resumes it
    ("dvcc", 4096),             # dbus_publisher: limits written by Venus (DVCC/ESS) and settings
    ("bms_tx.can", 1024),       # bms_tx: its CAN link state and counters
    ("failsafe", 4096),         # supervisor: whether its failsafe transmitter holds the bus
    ("role", 512),              # supervisor: hot-standby role; bms_tx transmits only while "active"
    ("heartbeat.can_rx", 256),
    ("heartbeat.bms_tx", 256),
    ("heartbeat.dbus_publisher", 256),
    ("heartbeat.simulator", 256),
)

_HEADER = struct.Struct("<8sII")          # magic, layout version, owner pid
_SLOT_HEADER_SIZE = 16                    # two aligned 64-bit words: sequence, payload length


def _layout():
    offsets, offset = {}, _HEADER.size
    for name, capacity in SLOTS:
        offsets[name] = (offset, capacity)
        offset += _SLOT_HEADER_SIZE + capacity
    return offsets, offset


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
        # Sequence and length are read and written as whole aligned 64-bit words, which the
        # CPU does in one access: a reader never sees half of a counter.
        self._words = memoryview(self._map).cast("Q")
        self.owner = owner

    @classmethod
    def create(cls, name: str) -> "SharedState":
        """Create the segment; a leftover one of a dead owner is removed first."""
        path = segment_path(name)
        stale = cls._owner_of(path)
        if stale is not None:
            if _pid_alive(stale) and stale != os.getpid():
                raise StateInUse("%s belongs to the running process %d: is another pylon-venus using this "
                                 "configuration?" % (path, stale))
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
        word = offset // 8
        sequence = self._words[word]
        self._words[word] = sequence + 1
        self._words[word + 1] = len(payload)
        start = offset + _SLOT_HEADER_SIZE
        self._map[start:start + len(payload)] = payload
        self._words[word] = sequence + 2

    def read(self, slot: str) -> Optional[Dict[str, Any]]:
        """The last value written to ``slot``, or None before the first write."""
        offset, _ = OFFSETS[slot]
        word, start = offset // 8, offset + _SLOT_HEADER_SIZE
        while True:
            sequence = self._words[word]
            if sequence == 0:
                return None
            if sequence % 2:
                time.sleep(0)
                continue
            payload = bytes(self._map[start:start + self._words[word + 1]])
            if self._words[word] == sequence:
                return json.loads(payload)

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
