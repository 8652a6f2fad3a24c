"""An emulated USB-CAN adapter with stock slcan firmware (a CANable), on a pseudo-terminal.

It speaks the Lawicel ASCII protocol the firmware speaks, one command per ``\\r``: ``S0``-``S8``
set the bit rate (only while closed), ``O`` (or ``L``, listen only) opens the channel (again:
no error), ``C`` closes it, ``tIIILDD..`` / ``TIIIIIIIILDD..`` send an 11-bit / 29-bit frame
(only while open and not listening), ``V``/``N``/``F`` ask version, serial number and status flags. Success is
answered ``\\r`` (``z\\r`` / ``Z\\r`` for a frame), an error with BEL (``\\a``). Frames from the
bus (``inject``) reach the host as ``t``/``T`` lines while the channel is open.

Whatever opens ``path`` (python-can's slcan interface, or slcand attaching the kernel's slcan
line discipline) talks to it as to the real adapter.
"""
import os
import pty
import threading
import time
import tty
from typing import List, NamedTuple, Optional

BITRATES = {"S0": 10000, "S1": 20000, "S2": 50000, "S3": 100000, "S4": 125000, "S5": 250000,
            "S6": 500000, "S7": 750000, "S8": 1000000}
OK, ERROR = b"\r", b"\a"


class SentFrame(NamedTuple):
    t: float             # time.monotonic() when the adapter got it
    arbitration_id: int
    data: bytes
    is_extended_id: bool


class EmulatedSlcanAdapter:
    def __init__(self):
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)         # a USB CDC port: no echo, no line editing
        self.path = os.ttyname(self._slave)
        self.bitrate: Optional[int] = None
        self.mode: Optional[str] = None    # None (closed), "open" or "listen"
        self.commands: List[str] = []      # every command line, in order
        self.sent: List[SentFrame] = []    # frames the host put on the bus
        self.errors = 0                    # commands answered with BEL
        self._write_lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="slcan-adapter", daemon=True)
        self._thread.start()

    def inject(self, arbitration_id: int, data: bytes, is_extended_id: bool = False) -> bool:
        """A frame from the bus; the host sees it only while the channel is open."""
        if self.mode is None:
            return False
        line = ("T%08X" if is_extended_id else "t%03X") % arbitration_id + "%d%s" % (len(data), data.hex().upper())
        self._reply(line.encode() + OK)
        return True

    def close(self) -> None:
        self._closing = True
        for fd in (self._slave, self._master):
            try:
                os.close(fd)
            except OSError:
                pass
        self._thread.join(timeout=2)

    def _serve(self) -> None:
        line = bytearray()
        while not self._closing:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:     # the pty closed
                return
            for byte in chunk:
                if byte == OK[0]:
                    self._command(line.decode("ascii", "replace"))
                    line.clear()
                else:
                    line.append(byte)

    def _command(self, command: str) -> None:
        self.commands.append(command)
        answer = self._answer(command)
        if answer == ERROR:
            self.errors += 1
        self._reply(answer)

    def _answer(self, command: str) -> bytes:
        if command == "":
            return OK       # python-can sends an empty data bit rate on classic CAN
        kind = command[0]
        if kind == "S":
            if self.mode is not None or command not in BITRATES:
                return ERROR
            self.bitrate = BITRATES[command]
            return OK
        if kind in "OL" and len(command) == 1:
            if self.bitrate is None:
                return ERROR        # a second O is accepted, as by CANable's firmware (python-can sends two)
            self.mode = "open" if kind == "O" else "listen"
            return OK
        if command == "C":
            self.mode = None
            return OK
        if kind in "tT":
            frame = self._parse_frame(command)
            if frame is None or self.mode != "open":
                return ERROR
            self.sent.append(frame)
            return b"z\r" if kind == "t" else b"Z\r"
        if command in ("V", "v"):
            return b"V1013\r"
        if command == "N":
            return b"NEMU1\r"
        if command == "F":
            return b"F00\r"
        return ERROR

    @staticmethod
    def _parse_frame(command: str) -> Optional[SentFrame]:
        extended = command[0] == "T"
        id_digits = 8 if extended else 3
        try:
            arbitration_id = int(command[1:1 + id_digits], 16)
            length = int(command[1 + id_digits])
            data = bytes.fromhex(command[2 + id_digits:])
        except (ValueError, IndexError):
            return None
        if length > 8 or len(data) != length or arbitration_id >= (1 << (29 if extended else 11)):
            return None
        return SentFrame(time.monotonic(), arbitration_id, data, extended)

    def _reply(self, data: bytes) -> None:
        with self._write_lock:
            try:
                os.write(self._master, data)
            except OSError:
                pass
