"""The console's HTTP server (stdlib only): the page, its live data, settings and actions.

``Console`` holds the logic and is tested without sockets; ``Handler`` maps requests onto it.
Everything the console changes goes into its own shared-memory slot ("web"), which bms_tx
reads every cycle (settings, force charge, full charge) and the supervisor every loop (restart
a faulted worker), or, on Venus, into localsettings. It never opens the bus for sending.
Requests are bounded: ``MAX_CONNECTIONS`` at once (more get 503 at once), ``MAX_BODY``
bytes a body, ``REQUEST_TIMEOUT_S`` for a slow client.
"""
import copy
import gzip
import http.server
import io
import json
import logging
import os
import socket
import socketserver
import tarfile
import threading
import time
from http import HTTPStatus
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import config
from ipc.atomic_file import read_json
from web import auth, history, settings as web_settings, view

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"), "/icon.svg": ("icon.svg", "image/svg+xml")}
MAX_BODY = 16384
MAX_CONNECTIONS = 24
REQUEST_TIMEOUT_S = 10.0
EVENT_INTERVAL_S = 1.0
LIVE_CACHE_S = 0.5          # one live document serves every client within this
ACTIONS_KEPT = 10
DIAGNOSTICS_RECORD_S = 2.0
DIAGNOSTICS_LOG_S = 3600.0
DIAGNOSTICS_LOG_BYTES = 4 << 20
SECRET_WORDS = ("password", "token", "secret", "key_file")
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"))
COOKIE = "pv_session"
ACTIONS = {"full_charge": "request a full charge now", "force_charge_start": "start a force charge",
           "force_charge_stop": "stop the force charge", "restart_worker": "restart worker %s"}


class Refused(Exception):
    """A request answered with a 4xx: its status and a message naming what is wrong."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.extra = extra


def bind_address(cfg, password_set: bool) -> str:
    """``web.bind``, or when empty: every interface with a password set, else this machine only."""
    if cfg.web.bind:
        return cfg.web.bind
    return "0.0.0.0" if password_set else "127.0.0.1"


def redacted(values: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {section: {key: "<removed>" if any(word in key for word in SECRET_WORDS) else value
                      for key, value in keys.items()} for section, keys in values.items()}


class Console:
    """The console's state and operations, shared by every request thread."""

    def __init__(self, cfg, state, log: logging.Logger, history_ring: Optional[history.History] = None,
                 localsettings_writer=None):
        self.cfg = cfg
        self.state = state
        self.log = log
        self.history = history_ring
        self.localsettings_writer = localsettings_writer
        self.sessions = auth.Sessions()
        self.limiter = auth.LoginLimiter()
        self.lock = threading.Lock()        # sessions, limiter, slot and cache
        slot = state.read("web") or {}      # a restarted console continues what the last one asked for
        self.slot = {"settings": dict(slot.get("settings") or {}), "force_charge": bool(slot.get("force_charge")),
                     "full_charge_id": int(slot.get("full_charge_id") or 0),
                     "restart": slot.get("restart"), "actions": list(slot.get("actions") or [])}
        self._live: Tuple[float, Optional[dict]] = (0.0, None)

    # -- reading ----------------------------------------------------------------------
    @property
    def password_set(self) -> bool:
        return auth.load_hash(self.cfg.web.password_file) is not None

    @property
    def read_open(self) -> bool:
        return self.cfg.web.read_without_login or not self.password_set

    def live(self) -> dict:
        """The live document, made at most every LIVE_CACHE_S whatever the number of clients."""
        now = time.monotonic()
        with self.lock:
            made, document = self._live
            if document is not None and now - made < LIVE_CACHE_S:
                return document
        try:
            status = read_json(self.cfg.status.file)
        except (OSError, ValueError):
            status = None
        document = view.live(self.state.read("frames"), self.state.read("dvcc"), self.state.read("inverter"),
                             self.slot_copy(), status)
        with self.lock:
            self._live = (now, document)
        return document

    def slot_copy(self) -> dict:
        with self.lock:
            return copy.deepcopy(self.slot)

    def in_force(self) -> Dict[str, Any]:
        """The runtime settings changed since the start: the console's, then Venus's (which win)."""
        merged = dict(self.slot_copy()["settings"])
        merged.update((self.state.read("dvcc") or {}).get("settings") or {})
        return merged

    def settings_form(self) -> dict:
        return {"settings": web_settings.form(self.cfg, self.in_force()), "where": self.settings_home()}

    def history_samples(self, since_t: Optional[float]) -> dict:
        if self.history is None:
            return {"interval_s": None, "samples": []}
        return {"interval_s": self.history.interval_s, "samples": self.history.samples(since_t)}

    def localsettings_present(self) -> bool:
        return bool((self.state.read("heartbeat.dbus_publisher") or {}).get("localsettings"))

    def user_file(self) -> Optional[str]:
        return self.cfg.sources[1] if len(self.cfg.sources) > 1 and self.cfg.sources[1] != "<override>" else None

    def settings_home(self) -> str:
        if self.localsettings_present() and self.localsettings_writer is not None:
            return "Venus localsettings"
        path = self.user_file()
        return path if path else "memory only (the daemon runs without --config FILE: not kept over a restart)"

    # -- authentication ---------------------------------------------------------------
    def session_info(self, token: Optional[str]) -> dict:
        with self.lock:
            session = self.sessions.get(token)
        return {"authenticated": session is not None, "csrf": session.csrf if session else None,
                "password_set": self.password_set, "read_open": self.read_open}

    def login(self, body: Any, client: str) -> Tuple[str, str]:
        """(session token, CSRF token), or Refused."""
        with self.lock:
            wait = self.limiter.retry_after(client)
        if wait > 0:
            self.log.warning("web console: login from %s refused: too many failed logins", client)
            raise Refused(HTTPStatus.TOO_MANY_REQUESTS, "too many failed logins: try again in %d s" % (wait + 1),
                          retry_after=int(wait) + 1)
        stored = auth.load_hash(self.cfg.web.password_file)
        if stored is None:
            raise Refused(HTTPStatus.FORBIDDEN, "no password is set: set one with `supervisor.py web-password`")
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(password, str):
            raise Refused(HTTPStatus.BAD_REQUEST, "expected a JSON object {\"password\": \"...\"}")
        if not auth.verify(password, stored):
            with self.lock:
                self.limiter.failed(client)
            self.log.warning("web console: failed login from %s", client)
            raise Refused(HTTPStatus.UNAUTHORIZED, "wrong password")
        with self.lock:
            self.limiter.succeeded(client)
            token = self.sessions.create(client)
            session = self.sessions.get(token)
        self.log.info("web console: session %d logged in from %s", session.number, client)
        return token, session.csrf

    def logout(self, token: Optional[str]) -> None:
        with self.lock:
            self.sessions.end(token)

    def authorize_change(self, token: Optional[str], csrf: Optional[str]) -> auth.Session:
        with self.lock:
            session = self.sessions.get(token)
            csrf_ok = self.sessions.csrf_ok(token, csrf)
        if session is None:
            raise Refused(HTTPStatus.UNAUTHORIZED, "log in first: changes need the console password")
        if not csrf_ok:
            raise Refused(HTTPStatus.FORBIDDEN, "missing or wrong X-CSRF-Token header")
        return session

    def authorize_read(self, token: Optional[str]) -> None:
        if self.read_open:
            return
        with self.lock:
            session = self.sessions.get(token)
        if session is None:
            raise Refused(HTTPStatus.UNAUTHORIZED, "log in first: reading needs the console password "
                                                   "(web.read_without_login = false)")

    # -- changes ----------------------------------------------------------------------
    def _publish(self) -> None:
        """The slot as changed under the lock."""
        self.state.write("web", self.slot)
        self._live = (0.0, None)

    def _record(self, what: str, session: auth.Session) -> None:
        """An action for the log and the page: who (session, address) and when."""
        self.log.warning("web console: %s (session %d from %s)", what, session.number, session.client)
        self.slot["actions"] = (self.slot["actions"] + [{"t": time.time(), "what": what,
                                                         "who": "session %d from %s" % (session.number, session.client)}
                                                        ])[-ACTIONS_KEPT:]

    def change_settings(self, body: Any, session: auth.Session) -> dict:
        in_force = self.in_force()
        checked, problems = web_settings.validate(self.cfg, in_force, body)
        if problems:
            raise Refused(HTTPStatus.BAD_REQUEST, "; ".join(problems), errors=problems)
        changes = {key: checked[key] for key in body}
        home = self.settings_home()
        if self.localsettings_present() and self.localsettings_writer is not None:
            try:
                self.localsettings_writer(changes)
            except Exception as error:      # noqa: BLE001 - D-Bus errors come in many types
                raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "localsettings did not take the change: %s" % error)
        else:
            path = self.user_file()
            if path is not None:
                try:
                    with self.lock:     # one writer of the file at a time
                        web_settings.write_user_file(path, changes)
                except (OSError, ValueError) as error:
                    raise Refused(HTTPStatus.CONFLICT, "%s was not changed: %s" % (path, error))
            with self.lock:
                self.slot["settings"].update(changes)
                self._publish()
        with self.lock:
            self._record("settings changed: %s" % ", ".join("%s = %r" % item for item in sorted(changes.items())),
                         session)
            self._publish()
        return {"applied": changes, "written_to": home}

    def action(self, body: Any, session: auth.Session) -> dict:
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            raise Refused(HTTPStatus.BAD_REQUEST, "expected {\"action\": one of %s, \"confirm\": true}"
                          % ", ".join(sorted(ACTIONS)))
        if body.get("confirm") is not True:
            raise Refused(HTTPStatus.BAD_REQUEST, "an action must be confirmed: add \"confirm\": true")
        name = body["action"]
        what = ACTIONS[name]
        if name == "full_charge":
            interval = self.in_force().get("charge.full_charge_interval_days",
                                           self.cfg.charge.full_charge_interval_days)
            if interval == 0:
                raise Refused(HTTPStatus.CONFLICT, "full charges are off (charge.full_charge_interval_days = 0)")
        elif name == "restart_worker":
            worker = body.get("worker")
            workers = (self.live().get("workers") or {})
            if not isinstance(worker, str) or worker not in workers:
                raise Refused(HTTPStatus.BAD_REQUEST, "expected \"worker\": one of %s" % ", ".join(sorted(workers)))
            if workers[worker].get("state") not in ("fault", "backoff"):
                raise Refused(HTTPStatus.CONFLICT, "worker %s is %s: only a faulted or waiting worker is restarted"
                              % (worker, workers[worker].get("state")))
            what = what % worker
        with self.lock:
            if name == "full_charge":
                self.slot["full_charge_id"] += 1
            elif name == "force_charge_start":
                self.slot["force_charge"] = True
            elif name == "force_charge_stop":
                self.slot["force_charge"] = False
            else:
                self.slot["restart"] = {"worker": body["worker"], "id": ((self.slot.get("restart") or {}).get("id", 0)
                                                                         + 1)}
            self._record(what, session)
            self._publish()
        return {"done": what}

    # -- diagnostics ------------------------------------------------------------------
    def diagnostics(self, session: auth.Session) -> bytes:
        """A .tar.gz: status, live view, history, the config without secrets, the last hour of the
        log (``web.log_file``) and a short candump -l recording of the bus."""
        with self.lock:
            self._record("diagnostics bundle downloaded", session)
            self._publish()
        values = self.cfg.as_dict()
        for key, value in self.in_force().items():
            section, name = key.split(".", 1)
            values[section][name] = value
        files = [("status.json", json.dumps(read_json(self.cfg.status.file), indent=1)),
                 ("live.json", json.dumps(self.live(), indent=1)),
                 ("config.toml", "".join("[%s]\n%s\n" % (section, "".join(
                     "%s = %s\n" % (key, web_settings.toml_value(value)) for key, value in keys.items()))
                     for section, keys in redacted(values).items())),
                 ("history.json", json.dumps(self.history_samples(None))),
                 ("log.txt", recent_log(self.cfg.web.log_file, time.time() - DIAGNOSTICS_LOG_S)),
                 ("candump.log", record_bus(self.cfg, DIAGNOSTICS_RECORD_S))]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
            for name, text in files:
                data = text.encode()
                info = tarfile.TarInfo("pylon-venus-diagnostics/" + name)
                info.size, info.mtime = len(data), int(time.time())
                bundle.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def recent_log(path: str, since_wall: float) -> str:
    """The lines of ``path`` from ``since_wall`` on (lines start "YYYY-mm-dd HH:MM:SS", after
    multilog's "@<TAI64N> " on Venus; one that does not goes with the line before), read from at
    most its last DIAGNOSTICS_LOG_BYTES."""
    if not path:
        return "no log file: set web.log_file to the daemon's log to include it\n"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - DIAGNOSTICS_LOG_BYTES))
            lines = handle.read().decode("utf-8", "replace").splitlines(True)
    except OSError as error:
        return "the log %s cannot be read: %s\n" % (path, error.strerror)
    kept, keep = [], False
    for line in lines:
        stamp = line.split(" ", 1)[-1] if line.startswith("@") else line      # multilog's TAI64N label first
        try:
            keep = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) >= since_wall
        except ValueError:
            pass
        if keep:
            kept.append(line)
    return "".join(kept)


def record_bus(cfg, seconds: float) -> str:
    """Every frame on the bus for ``seconds``, in candump -l format, from a socket that only listens."""
    import can
    from canbus.bus import open_bus
    channel = cfg.can.channel if cfg.can.interface == "socketcan" else "sim0"
    lines = []
    try:
        bus = open_bus(cfg)
    except (OSError, can.CanError) as error:
        return "# the bus could not be opened: %s\n" % error
    try:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = bus.recv(left)
            if message is not None and not message.is_error_frame:
                lines.append("(%.6f) %s %s#%s\n" % (message.timestamp, channel, (
                    "%08X" if message.is_extended_id else "%03X") % message.arbitration_id, message.data.hex().upper()))
    finally:
        bus.shutdown()
    return "".join(lines)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """At most MAX_CONNECTIONS requests at once; more are answered 503 without a thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, console: Console):
        self.console = console
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.clients_stop = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6        # web.bind = "::" or an IPv6 address
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 2\r\n"
                                b"Connection: close\r\n\r\ntoo many connections\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        self.console.log.debug("web console: request from %s failed", client_address[0], exc_info=True)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "pylon-venus"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S

    @property
    def console(self) -> Console:
        return self.server.console

    def log_message(self, format, *args):      # noqa: A002 - the stdlib's name
        """Requests are not logged (no token ever reaches a log); errors are, at debug level."""

    # -- responses --------------------------------------------------------------------
    def _headers(self, status: int, content_type: str, length: Optional[int], extra=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS + tuple(extra):
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, extra=()) -> None:
        """``body``, gzipped when the client takes it and it is worth it (a day of history is ~1 MB)."""
        if len(body) > 1024 and "gzip" in self.headers.get("Accept-Encoding", "") and content_type != "application/gzip":
            body = gzip.compress(body, 6)
            extra = tuple(extra) + (("Content-Encoding", "gzip"),)
        self._headers(status, content_type, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, document: Any, extra=()) -> None:
        self._send(status, json.dumps(document).encode(), "application/json", extra)

    def _refused(self, error: Refused) -> None:
        document = {"error": str(error)}
        document.update((k, v) for k, v in error.extra.items() if k != "retry_after")
        extra = (("Retry-After", str(error.extra["retry_after"])),) if "retry_after" in error.extra else ()
        self._json(error.status, document, extra)

    def _token(self) -> Optional[str]:
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value
        return None

    def _client(self) -> str:
        return self.client_address[0]

    def _body(self) -> Any:
        if self.headers.get("Transfer-Encoding"):
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted: send Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise Refused(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if length > MAX_BODY or length < 0:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body has %d bytes, at most %d are accepted"
                          % (length, MAX_BODY))
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/json, not %r"
                          % content_type)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise Refused(HTTPStatus.BAD_REQUEST, "the body is not JSON: %s" % error) from None

    def _same_origin(self) -> None:
        """A change from another site's page is refused even before its CSRF token is looked at."""
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host", ""):
            raise Refused(HTTPStatus.FORBIDDEN, "cross-origin request refused (Origin %s)" % origin)

    # -- routes -----------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._answer(self._get, urlsplit(self.path))

    def do_POST(self):
        self._answer(self._post, urlsplit(self.path).path)

    def _answer(self, route, target) -> None:
        try:
            route(target)
        except Refused as error:
            self._refused(error)
        except OSError:         # the client went away or stalled past REQUEST_TIMEOUT_S
            self.close_connection = True
        except Exception:       # a fault of the console itself: a 500 for the client, the trace in the log
            self.console.log.exception("web console: %s %s failed", self.command, urlsplit(self.path).path[:200])
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "the console failed; the log has the details"})

    def _method_not_allowed(self):
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method %s not allowed here" % self.command},
                   (("Allow", "GET, HEAD, POST"),))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _get(self, url) -> None:
        path = url.path
        if path in STATIC:
            name, content_type = STATIC[path]
            with open(os.path.join(STATIC_DIR, name), "rb") as handle:
                body = handle.read()
            return self._send(HTTPStatus.OK, body, content_type)
        console = self.console
        if path == "/api/session":
            return self._json(HTTPStatus.OK, console.session_info(self._token()))
        if not path.startswith("/api/"):
            raise Refused(HTTPStatus.NOT_FOUND, "no such page: %s" % path[:200])
        console.authorize_read(self._token())
        if path == "/api/status":
            return self._json(HTTPStatus.OK, console.live())
        if path == "/api/events":
            return self._events()
        if path == "/api/history":
            since = parse_qs(url.query).get("since", [None])[0]
            try:
                since_t = None if since is None else float(since)
            except ValueError:
                raise Refused(HTTPStatus.BAD_REQUEST, "since=%r is not a number (epoch seconds)" % since[:50]) from None
            return self._json(HTTPStatus.OK, console.history_samples(since_t))
        if path == "/api/settings":
            return self._json(HTTPStatus.OK, console.settings_form())
        raise Refused(HTTPStatus.NOT_FOUND, "no such API: %s" % path[:200])

    def _post(self, path: str) -> None:
        console = self.console
        routes = ("/api/login", "/api/logout", "/api/settings", "/api/action", "/api/diagnostics")
        if path not in routes:
            raise Refused(HTTPStatus.NOT_FOUND, "no such API: %s (POST goes to %s)" % (path[:200], ", ".join(routes)))
        self._same_origin()
        if path == "/api/login":
            token, csrf = console.login(self._body(), self._client())
            return self._json(HTTPStatus.OK, {"csrf": csrf}, (
                ("Set-Cookie", "%s=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d"
                 % (COOKIE, token, auth.SESSION_S)),))
        session = console.authorize_change(self._token(), self.headers.get("X-CSRF-Token"))
        if path == "/api/logout":
            console.logout(self._token())
            return self._json(HTTPStatus.OK, {"logged_out": True},
                              (("Set-Cookie", "%s=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0" % COOKIE),))
        body = self._body()
        if path == "/api/settings":
            return self._json(HTTPStatus.OK, console.change_settings(body, session))
        if path == "/api/diagnostics":
            if not isinstance(body, dict) or body.get("confirm") is not True:
                raise Refused(HTTPStatus.BAD_REQUEST,
                              "a diagnostics bundle must be confirmed: send {\"confirm\": true}")
            return self._send(HTTPStatus.OK, console.diagnostics(session), "application/gzip",
                              (("Content-Disposition", "attachment; filename=pylon-venus-diagnostics.tar.gz"),))
        return self._json(HTTPStatus.OK, console.action(body, session))

    def _events(self) -> None:
        """Server-sent events: the live document every EVENT_INTERVAL_S until the client goes."""
        self._headers(HTTPStatus.OK, "text/event-stream", None, (("X-Accel-Buffering", "no"),))
        if self.command == "HEAD":
            return
        self.wfile.write(b"retry: 1000\n\n")
        stop = self.server.clients_stop
        while not stop.is_set():
            self.wfile.write(b"data: " + json.dumps(self.console.live()).encode() + b"\n\n")
            self.wfile.flush()
            if stop.wait(EVENT_INTERVAL_S):
                break


def localsettings_writer(log: logging.Logger):
    """A function that writes runtime settings to Venus's localsettings (D-Bus SetValue), or None
    where dbus-python is missing."""
    try:
        import dbus
    except ImportError:
        return None
    from venus.busitem import BUSITEM
    from venus.settings import SETTINGS_SERVICE, _typed, setting_path

    def write(changes: Dict[str, Any]) -> None:
        bus = dbus.SystemBus(private=True)
        try:
            for key, value in changes.items():
                section, name = key.split(".", 1)
                code = bus.get_object(SETTINGS_SERVICE, setting_path(key), introspect=False).SetValue(
                    _typed(config.SCHEMA[section][name].kind, value), dbus_interface=BUSITEM, timeout=5.0)
                if code != 0:
                    raise RuntimeError("SetValue of %s returned %d" % (setting_path(key), code))
                log.info("web console: %s written to localsettings", key)
        finally:
            bus.close()
    return write
