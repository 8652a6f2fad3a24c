"""Files written on a thread of their own, so that storage never sits on the path of a frame.

An SD card or a GX's flash can stall for seconds, fill up or turn read-only. The status file
and the charge state are bookkeeping: the caller hands the text over and goes on at once. One
value waits per file and the latest wins; a failed write is retried after ``retry_s`` (unless a
newer value comes first), counted, and logged once per episode.
"""
import logging
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional

from ipc.atomic_file import remove_temporaries, write_atomic

RETRY_S = 5.0
ERROR_CHARS = 200       # a last error fits a shared-memory slot whatever path it names


class WriteHealth:
    """How writing one file goes: what the status shows and `check` warns about."""

    def __init__(self, path: str, what: str, log: logging.Logger):
        self.path, self.what, self.log = path, what, log
        self.written = 0                            # successful writes since start
        self.failures = 0                           # failed writes since start
        self.last_error: Optional[str] = None
        self.failing_since: Optional[float] = None  # monotonic start of the current episode of failures

    def failed(self, error: Exception) -> None:
        self.failures += 1
        self.last_error = (str(error) or type(error).__name__)[:ERROR_CHARS]
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            self.log.error("cannot write %s to %s (%s): retrying; the frames are not affected",
                           self.what, self.path, self.last_error)

    def succeeded(self) -> None:
        if self.failing_since is not None:
            self.log.warning("%s written again to %s after %.0f s of failures", self.what, self.path,
                             time.monotonic() - self.failing_since)
        self.failing_since = None
        self.written += 1

    def as_dict(self) -> dict:
        return {"written": self.written, "failures": self.failures, "last_error": self.last_error,
                "failing_since": self.failing_since}


class _Write(NamedTuple):
    text: str
    keep_previous: bool                             # see write_atomic
    on_written: Optional[Callable[[], None]]        # called once the text is on disk


class FlashWriter:
    """``submit`` never waits for the disk; ``flush`` does, for a stop and for tests."""

    def __init__(self, log: logging.Logger, retry_s: float = RETRY_S):
        self.log = log
        self.retry_s = retry_s
        self._changed = threading.Condition()
        self._pending: Dict[str, _Write] = {}
        self._retry_at: Dict[str, float] = {}
        self._health: Dict[str, WriteHealth] = {}
        self._writing: Optional[str] = None
        self._thread: Optional[threading.Thread] = None

    def submit(self, path: str, text: str, what: str, keep_previous: bool = False,
               on_written: Optional[Callable[[], None]] = None) -> None:
        """Write ``text`` to ``path`` soon, replacing any value still waiting for it; ``what`` names
        it in the log."""
        with self._changed:
            if path not in self._health:
                self._health[path] = WriteHealth(path, what, self.log)
            self._pending[path] = _Write(text, keep_previous, on_written)
            self._retry_at.pop(path, None)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flash-writer", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def health(self, path: str) -> dict:
        """The counters of ``path`` (all zero before its first submit)."""
        with self._changed:
            health = self._health.get(path)
            return health.as_dict() if health is not None else WriteHealth(path, "", self.log).as_dict()

    def flush(self, timeout: float) -> bool:
        """Wait until every value is on disk; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._writing is not None or self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _next(self) -> str:
        """The next file due (lock held): a new value at once, a failed one after ``retry_s``."""
        while True:
            now = time.monotonic()
            due = [path for path in self._pending if self._retry_at.get(path, now) <= now]
            if due:
                return due[0]
            retry = min(self._retry_at.values(), default=None)
            self._changed.wait(None if retry is None else retry - now)

    def _run(self) -> None:
        cleaned = set()
        while True:
            with self._changed:
                path = self._next()
                write = self._pending.pop(path)
                self._retry_at.pop(path, None)
                self._writing = path
            if path not in cleaned:
                remove_temporaries(path, self.log)
                cleaned.add(path)
            try:
                write_atomic(path, write.text, write.keep_previous)
                if write.on_written is not None:
                    write.on_written()
                error = None
            except Exception as failure:        # whatever it is, the writer must live on
                error = failure
            with self._changed:
                self._writing = None
                health = self._health[path]
                if error is None:
                    health.succeeded()
                else:
                    health.failed(error)
                    if path not in self._pending:
                        self._pending[path] = write
                        self._retry_at[path] = time.monotonic() + self.retry_s
                self._changed.notify_all()
