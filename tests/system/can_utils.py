"""can-utils (candump, cansend, cangen) driven from tests: the kernel's own view of the bus.

candump is the independent witness of what reached a CAN interface, with kernel receive
timestamps; it shares no code with python-can, which the daemon uses.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

from protocol.frame import Frame

# x86_64 syscall numbers a process sleeps in while it waits for input (select, poll, epoll,
# recvmsg and their variants); /proc/<pid>/syscall names the one a sleeping process is in.
_WAITING_SYSCALLS = {7, 23, 47, 232, 270, 271, 281, 441}

_CANDUMP_LINE = re.compile(r"^\((\d+\.\d+)\)\s+(\S+)\s+([0-9A-Fa-f]{3}|[0-9A-Fa-f]{8})#([0-9A-Fa-f]*)$")
_CANDUMP_DROPS = re.compile(r"^DROPCOUNT: dropped (\d+) CAN frame")


class CapturedFrame(NamedTuple):
    timestamp: float   # kernel receive time, seconds since the epoch
    channel: str
    frame: Frame


def parse_candump_line(line: str) -> CapturedFrame:
    """One line of ``candump -L`` output, e.g. ``(1700000000.123456) vcan0 351#14022C01``."""
    match = _CANDUMP_LINE.match(line.strip())
    if match is None or len(match.group(4)) % 2 or len(match.group(4)) > 16:
        raise ValueError("not a classic CAN data frame in candump -L format "
                         "'(seconds.micros) iface ID#HEXDATA' with a 3- or 8-digit ID and at "
                         "most 8 data bytes: %r" % line)
    timestamp, channel, can_id, data = match.groups()
    frame = Frame(int(can_id, 16), bytes.fromhex(data), is_extended_id=len(can_id) == 8)
    return CapturedFrame(float(timestamp), channel, frame)


class CandumpRecorder:
    """``candump -L`` of one interface into a log file; ``stop()`` returns what it saw.

    candump writes to a scratch file on the guest's own tmpfs and the log is copied to
    log_path at stop: the VM's shared folder is mounted sync, far too slow for a flood.
    """

    def __init__(self, channel: str, log_path: Path, receive_buffer_bytes: int = 8 << 20):
        self.channel = channel
        self.log_path = log_path
        self.receive_buffer_bytes = receive_buffer_bytes
        self.dropped = 0   # frames the kernel dropped because candump did not keep up
        self._process = None  # type: Optional[subprocess.Popen]
        self._scratch = None  # type: Optional[Path]

    def start(self, ready_timeout_s: float = 10.0) -> "CandumpRecorder":
        """Returns once candump's socket is bound, so no frame sent after this is missed."""
        handle, scratch = tempfile.mkstemp(prefix="candump-%s-" % self.channel, suffix=".log")
        self._scratch = Path(scratch)
        with os.fdopen(handle, "wb") as log:
            self._process = subprocess.Popen(
                # -D: go on recording when the interface goes down and comes back up
                ["candump", "-L", "-d", "-D", "-r", str(self.receive_buffer_bytes), self.channel],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE)
        _wait_until_waiting_for_input(self._process, ready_timeout_s, "candump %s" % self.channel)
        return self

    def stop(self, drain_timeout_s: float = 30.0) -> List[CapturedFrame]:
        """Stop candump after it has read every frame already queued to it, and parse its log."""
        process, scratch = self._process, self._scratch
        if process is None or scratch is None:
            raise RuntimeError("candump on %s was not started, or was already stopped" % self.channel)
        self._process = self._scratch = None
        _wait_until_waiting_for_input(process, drain_timeout_s, "candump %s" % self.channel)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=drain_timeout_s)
        if process.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError("candump %s exited %d: %s"
                               % (self.channel, process.returncode, stderr.decode(errors="replace")))
        frames = self._parse_log(scratch)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), str(self.log_path))
        return frames

    def running(self) -> bool:
        return self._process is not None

    def _parse_log(self, log: Path) -> List[CapturedFrame]:
        frames = []
        for line in log.read_text().splitlines():
            drops = _CANDUMP_DROPS.match(line)
            if drops:
                self.dropped += int(drops.group(1))
            elif line.strip():
                frames.append(parse_candump_line(line))
        return frames


def cansend(channel: str, frame: Frame) -> None:
    """Send one frame with can-utils' cansend (its own process and raw socket)."""
    done = subprocess.run(["cansend", channel, str(frame)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError("cansend %s %s exited %d: %s" % (
            channel, frame, done.returncode, done.stdout.decode(errors="replace").strip()))


def cangen(channel: str, options: Sequence[str]) -> subprocess.Popen:
    """Start can-utils' cangen; give it ``-n COUNT`` so that it ends by itself."""
    if "-n" not in options:
        raise ValueError("cangen needs -n COUNT in %r, so that the traffic it makes is bounded"
                         % (options,))
    return subprocess.Popen(["cangen", channel] + list(options), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_until_waiting_for_input(process: subprocess.Popen, timeout_s: float, name: str) -> None:
    """Wait until the process sleeps in a syscall that waits for input.

    A sleeping candump has set up its socket and read everything queued to it so far.
    """
    deadline = time.monotonic() + timeout_s
    syscall_file = Path("/proc/%d/syscall" % process.pid)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            raise RuntimeError("%s exited %d: %s"
                               % (name, process.returncode, stderr.decode(errors="replace")))
        try:
            first_field = syscall_file.read_text().split()[0]
        except (OSError, IndexError):
            first_field = "running"
        if first_field.isdigit() and int(first_field) in _WAITING_SYSCALLS:
            return
        time.sleep(0.01)
    process.kill()
    raise RuntimeError("%s did not start waiting for frames within %.0f s" % (name, timeout_s))

