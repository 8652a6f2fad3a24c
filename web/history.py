"""The console's 24 h history: a fixed-size ring of samples in one file.

The file is made once at its full size (header + ``capacity`` records of ``RECORD.size``
bytes), so memory and disk use are bounded and known in advance: 24 h at one sample every
``interval_s``. Each record carries its own CRC, written before the header's next-index word
moves on, so a web worker killed mid-write loses at most that one sample; a restarted worker
opens the same file and continues. Plain positioned reads and writes, not a memory map: some
file systems (a network or shared folder) refuse to map a file. Keep it on a RAM file system (/tmp on Venus): it then costs
no flash writes and survives every restart of the worker and the daemon, though not a reboot.
Values that were unknown are stored as NaN and read back as None.
"""
import math
import os
import struct
import zlib
from typing import Dict, List, Optional

MAGIC = b"PVHIST01"
SPAN_S = 24 * 3600.0
_HEADER = struct.Struct("<8sIIdQ")     # magic, capacity, record size, interval, records written
_COUNT = struct.Struct("<Q")           # the header's last word: records written
_COUNT_AT = _HEADER.size - _COUNT.size
# wall time; V, I, SoC, T, CVL, CCL, DCL; phase, freshness, protections, warnings; CRC32
RECORD = struct.Struct("<d7f4BI")
FIELDS = ("voltage_v", "current_a", "soc_pct", "temperature_c",
          "charge_voltage_v", "charge_current_a", "discharge_current_a")
PHASES = (None, "bulk", "absorption", "float")
FRESHNESS = (None, "fresh", "hold", "stale")


def capacity_for(interval_s: float) -> int:
    """Records that hold 24 h at one sample every ``interval_s``."""
    return int(math.ceil(SPAN_S / interval_s))


def file_size(interval_s: float) -> int:
    return _HEADER.size + capacity_for(interval_s) * RECORD.size


def _code(table, value) -> int:
    return table.index(value) if value in table else 0


def _float(value) -> float:
    return float("nan") if value is None else float(value)


class History:
    """``append`` one sample, ``samples`` the last 24 h oldest first. One writer (the web worker)."""

    def __init__(self, path: str, interval_s: float):
        self.path = path
        self.interval_s = interval_s
        self.capacity = capacity_for(interval_s)
        size = file_size(interval_s)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(self._fd).st_size != size or not self._header_fits(self._fd):
                # missing, another interval, or not ours: start empty
                os.ftruncate(self._fd, 0)
                os.ftruncate(self._fd, size)
                os.pwrite(self._fd, _HEADER.pack(MAGIC, self.capacity, RECORD.size, interval_s, 0), 0)
        except BaseException:
            os.close(self._fd)
            raise

    def _header_fits(self, fd: int) -> bool:
        header = os.pread(fd, _HEADER.size, 0)
        if len(header) != _HEADER.size:
            return False
        magic, capacity, record_size, interval_s, _ = _HEADER.unpack(header)
        return (magic, capacity, record_size, interval_s) == (MAGIC, self.capacity, RECORD.size, self.interval_s)

    @property
    def written(self) -> int:
        return _COUNT.unpack(os.pread(self._fd, _COUNT.size, _COUNT_AT))[0]

    def append(self, sample: Dict[str, object]) -> None:
        """``sample``: ``t`` (epoch s), the FIELDS (None when unknown), ``phase``, ``freshness``,
        ``protections`` and ``warnings`` (counts)."""
        values = (float(sample["t"]),) + tuple(_float(sample.get(name)) for name in FIELDS) + (
            _code(PHASES, sample.get("phase")), _code(FRESHNESS, sample.get("freshness")),
            min(int(sample.get("protections") or 0), 255), min(int(sample.get("warnings") or 0), 255))
        body = RECORD.pack(*values, 0)[:-4]
        written = self.written
        offset = _HEADER.size + (written % self.capacity) * RECORD.size
        os.pwrite(self._fd, body + struct.pack("<I", zlib.crc32(body)), offset)
        os.pwrite(self._fd, _COUNT.pack(written + 1), _COUNT_AT)

    def samples(self, since_t: Optional[float] = None) -> List[Dict[str, object]]:
        """Every whole sample, oldest first (those after ``since_t`` only, when given)."""
        written = self.written
        count = min(written, self.capacity)
        result = []
        records = os.pread(self._fd, self.capacity * RECORD.size, _HEADER.size)
        for index in range(written - count, written):
            offset = (index % self.capacity) * RECORD.size
            raw = records[offset:offset + RECORD.size]
            if len(raw) != RECORD.size or zlib.crc32(raw[:-4]) != struct.unpack("<I", raw[-4:])[0]:
                continue        # torn by a kill mid-write (or the file cut short under us)
            values = RECORD.unpack(raw)
            if since_t is not None and values[0] <= since_t:
                continue
            sample = {"t": values[0]}
            sample.update((name, None if math.isnan(v) else round(v, 3)) for name, v in zip(FIELDS, values[1:8]))
            sample.update(phase=PHASES[values[8]] if values[8] < len(PHASES) else None,
                          freshness=FRESHNESS[values[9]] if values[9] < len(FRESHNESS) else None,
                          protections=values[10], warnings=values[11])
            result.append(sample)
        return result

    def close(self) -> None:
        os.close(self._fd)


def sample_from(frames_slot: Optional[dict], battery_slot: Optional[dict], wall_t: float) -> Dict[str, object]:
    """One history sample from the frames slot (what was sent) and the battery slot (what was read)."""
    frames_slot = frames_slot or {}
    battery = battery_slot or {}
    report = frames_slot.get("report") or {}
    sample = {"t": wall_t, "phase": frames_slot.get("phase"), "freshness": frames_slot.get("freshness"),
              "protections": len(report.get("protection") or ()), "warnings": len(report.get("alarm") or ())}
    for name in FIELDS[:4]:
        sample[name] = battery.get(name) if battery.get("updated") is not None else None
    for name in FIELDS[4:]:
        sample[name] = report.get(name)
    return sample
