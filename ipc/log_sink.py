"""Log lines to the inherited stdout without ever waiting: a stalled sink costs lines, never the frames.

Every process (the supervisor and each forked worker) writes its own records through the
handler it inherited, one write per record, to a private non-blocking handle on stdout.
Nothing is shared between the processes but the pipe itself, so a process killed while
logging holds nothing that another one needs. (A shared queue, as multiprocessing-logging
uses, has a lock that a killed worker can take with it, and a receiver that a full pipe
stops: then every process waits on logging, and so does an orderly stop.)

A record that does not fit into the sink (multilog stalled, a slow console) is dropped and
counted; the next one that gets through is preceded by a line saying how many were lost.
Lines up to PIPE_BUF bytes (4096 on Linux) go into a pipe whole or not at all, so the lines
of different processes never interleave.
"""
import logging
import os
import socket
import stat
from typing import Optional, Tuple


def _private_nonblocking(fd: int) -> Tuple[int, Optional[socket.socket]]:
    """A handle on ``fd``'s file whose writes never wait: (fd to write, or a socket to send on).

    O_NONBLOCK belongs to the open file, which ``fd`` shares with the process that started us
    (a shell's terminal, supervise's pipe): a pipe or terminal is opened again instead, a
    socket (systemd's journal stream) is sent to with MSG_DONTWAIT, and a regular file never
    waits for a reader anyway.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return -1, None     # stdout closed: every line is dropped (and counted)
    if stat.S_ISSOCK(mode):
        return -1, socket.socket(fileno=os.dup(fd))
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            return os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY), None
        except OSError:
            pass            # no reader left: writes fail at once, they cannot wait
    return os.dup(fd), None


class NonBlockingHandler(logging.Handler):
    """Formats a record and writes it at once, or drops and counts it."""

    def __init__(self, fd: int):
        super().__init__()
        self._fd, self._socket = _private_nonblocking(fd)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
        except Exception:
            self.handleError(record)
            return
        if self.dropped and self._write(b"%d log lines dropped: the log output was not taken\n" % self.dropped):
            self.dropped = 0
        if not self._write(line):
            self.dropped += 1

    def _write(self, data: bytes) -> bool:
        """True when all of ``data`` went out; a long record (a traceback) may go in parts."""
        while data:
            try:
                sent = self._socket.send(data, socket.MSG_DONTWAIT) if self._socket else os.write(self._fd, data)
            except OSError:         # full (EAGAIN), no reader (EPIPE), a hung-up terminal (EIO)
                return False
            data = data[sent:]
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd, self._socket = -1, None
        super().close()
