"""Who may change things on the console: one password, sessions, CSRF tokens, login rate limit.

The password is set with ``supervisor.py web-password`` and stored only as a PBKDF2-HMAC-SHA256
hash (a random salt, ``ITERATIONS`` rounds: slow on purpose, and in every Python's hashlib).
A login makes a session: a random token in an HttpOnly, SameSite=Strict cookie, and a second
random token the page must send back in the X-CSRF-Token header of every change. Sessions live
in the web worker's memory only (a restarted worker asks for a new login). Failed logins are
limited per client address and in total, so guessing costs hours, not seconds.
"""
import collections
import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Dict, NamedTuple, Optional

from ipc.atomic_file import write_atomic

ITERATIONS = 200000
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
SESSION_S = 12 * 3600.0
MAX_SESSIONS = 32
FAILURES_PER_CLIENT = 5         # within FAILURE_WINDOW_S, then that client waits
FAILURES_TOTAL = 20             # within FAILURE_WINDOW_S from everyone, then every login waits
FAILURE_WINDOW_S = 300.0


def hash_password(password: str, salt: Optional[bytes] = None, iterations: int = ITERATIONS) -> dict:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return {"kdf": "pbkdf2_hmac_sha256", "iterations": iterations, "salt": salt.hex(), "hash": digest.hex()}


def password_problem(password: str) -> Optional[str]:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return "the password must have %d to %d characters, it has %d" % (
            MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH, len(password))
    return None


def store_password(path: str, password: str) -> None:
    """Write the hash (never the password) atomically, readable by the owner only."""
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    write_atomic(path, json.dumps(hash_password(password)) + "\n")
    os.chmod(path, 0o600)


def load_hash(path: str) -> Optional[dict]:
    """The stored hash, or None when no password is set (or the file is not one of ours)."""
    try:
        with open(path) as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("kdf") != "pbkdf2_hmac_sha256":
        return None
    return stored


def verify(password: str, stored: dict) -> bool:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(stored["salt"]),
                                 int(stored["iterations"]))
    return hmac.compare_digest(digest.hex(), stored["hash"])


class Session(NamedTuple):
    number: int         # shown in logs as "session N" (the token itself never is)
    csrf: str
    expires: float
    client: str


class LoginLimiter:
    """Failed logins per client address and in total within a sliding window."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.failures: Dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.everyone = collections.deque()

    def _trim(self, times: collections.deque, now: float) -> None:
        while times and now - times[0] > FAILURE_WINDOW_S:
            times.popleft()

    def retry_after(self, client: str) -> float:
        """0 when ``client`` may try now, else seconds to wait."""
        now = self.clock()
        mine = self.failures.get(client, collections.deque())
        self._trim(mine, now)
        self._trim(self.everyone, now)
        waits = [0.0]
        if len(mine) >= FAILURES_PER_CLIENT:
            waits.append(mine[0] + FAILURE_WINDOW_S - now)
        if len(self.everyone) >= FAILURES_TOTAL:
            waits.append(self.everyone[0] + FAILURE_WINDOW_S - now)
        return max(waits)

    def failed(self, client: str) -> None:
        now = self.clock()
        self.failures[client].append(now)
        self.everyone.append(now)
        if len(self.failures) > 1000:       # a flood from many addresses must not grow memory
            self.failures.pop(next(iter(self.failures)))

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)


class Sessions:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._sessions: Dict[str, Session] = {}
        self._numbers = 0

    def create(self, client: str) -> str:
        now = self.clock()
        self._sessions = {token: s for token, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(min(self._sessions, key=lambda token: self._sessions[token].expires))
        self._numbers += 1
        token = secrets.token_urlsafe(32)
        self._sessions[token] = Session(self._numbers, secrets.token_urlsafe(32), now + SESSION_S, client)
        return token

    def get(self, token: Optional[str]) -> Optional[Session]:
        session = self._sessions.get(token or "")
        if session is None or session.expires <= self.clock():
            return None
        return session

    def end(self, token: Optional[str]) -> None:
        self._sessions.pop(token or "", None)

    def csrf_ok(self, token: Optional[str], csrf: Optional[str]) -> bool:
        session = self.get(token)
        return session is not None and csrf is not None and hmac.compare_digest(session.csrf, csrf)
