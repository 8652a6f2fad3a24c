"""Logging never waits for its output: a full pipe costs lines (counted), never a blocked process."""
import fcntl
import logging
import os
import socket
import time

from ipc.log_sink import NonBlockingHandler


def _record(message):
    return logging.LogRecord("pylon-venus.test", logging.INFO, __file__, 1, message, None, None)


def _full_pipe():
    reader, writer = os.pipe()
    fcntl.fcntl(writer, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)   # the constant is new in 3.10
    os.write(writer, b"x" * 4096)           # exactly the capacity: the pipe is full
    return reader, writer


def test_a_full_pipe_drops_and_counts_lines_then_says_how_many_were_lost():
    reader, writer = _full_pipe()
    handler = NonBlockingHandler(writer)
    started = time.monotonic()
    for number in range(50):
        handler.emit(_record("line %d" % number))
    assert time.monotonic() - started < 1.0 and handler.dropped == 50
    assert not fcntl.fcntl(writer, fcntl.F_GETFL) & os.O_NONBLOCK, "the inherited stdout keeps blocking writes"
    assert os.read(reader, 8192) == b"x" * 4096
    handler.emit(_record("after the stall"))
    assert os.read(reader, 8192) == b"50 log lines dropped: the log output was not taken\nafter the stall\n"
    assert handler.dropped == 0
    handler.close()
    for fd in (reader, writer):
        os.close(fd)


def test_a_socket_sink_full_drops_instead_of_waiting():
    """systemd gives the service a stream socket to the journal as stdout."""
    ours, journal = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    handler = NonBlockingHandler(ours.fileno())
    started = time.monotonic()
    for number in range(2000):
        handler.emit(_record("line %d %s" % (number, "y" * 100)))
    assert time.monotonic() - started < 2.0 and handler.dropped > 0
    assert ours.getblocking()
    handler.close()
    ours.close()
    journal.close()
