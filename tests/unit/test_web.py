"""Web console: the history ring, authentication, the settings form and validator, and the HTTP
handlers on a real socket (bad requests get a clear 4xx and change nothing)."""
import http.client
import json
import os
import threading
import time

import pytest

import config
from bms.engine import BmsEngine
from bms.snapshot import BatterySnapshot
from ipc import shared_state
from ipc.shared_state import SharedState
from web import auth, history, settings as web_settings, view
from web.server import Console, Server, bind_address, recent_log

CFG = config.load()


# -- history ring ---------------------------------------------------------------------------
def sample(t, **values):
    base = {"t": t, "voltage_v": 52.0, "current_a": -3.5, "soc_pct": 60.0, "temperature_c": None,
            "charge_voltage_v": 55.2, "charge_current_a": 100.0, "discharge_current_a": 120.0,
            "phase": "bulk", "freshness": "fresh", "protections": 0, "warnings": 1}
    base.update(values)
    return base


def test_history_round_trips_and_unknown_stays_unknown(tmp_path):
    ring = history.History(str(tmp_path / "h.bin"), 30.0)
    ring.append(sample(1000.0))
    got = ring.samples()
    assert got == [dict(sample(1000.0), temperature_c=None)]
    assert got[0]["temperature_c"] is None      # never 0


def test_history_is_bounded_to_24_hours_and_its_file_size_is_fixed(tmp_path):
    path = str(tmp_path / "h.bin")
    ring = history.History(path, 600.0)          # 144 records
    assert ring.capacity == 144
    for i in range(500):
        ring.append(sample(float(i)))
    got = ring.samples()
    assert len(got) == 144 and got[0]["t"] == 356.0 and got[-1]["t"] == 499.0
    assert os.path.getsize(path) == history.file_size(600.0) == 32 + 144 * 44
    assert history.file_size(30.0) == 32 + 2880 * 44      # the README's 124 KiB


def test_history_survives_a_restart_of_its_writer_and_a_torn_record_is_skipped(tmp_path):
    path = str(tmp_path / "h.bin")
    ring = history.History(path, 60.0)
    for i in range(3):
        ring.append(sample(float(i)))
    ring.close()
    with open(path, "r+b") as handle:          # a kill in the middle of writing record 1
        handle.seek(32 + 44 + 5)
        handle.write(b"\xff\xff")
    again = history.History(path, 60.0)
    assert [s["t"] for s in again.samples()] == [0.0, 2.0]
    again.append(sample(3.0))
    assert [s["t"] for s in again.samples(since_t=1.0)] == [2.0, 3.0]


def test_history_with_another_interval_or_a_foreign_file_starts_empty(tmp_path):
    path = str(tmp_path / "h.bin")
    ring = history.History(path, 60.0)
    ring.append(sample(1.0))
    ring.close()
    assert history.History(path, 30.0).samples() == []
    with open(path, "wb") as handle:
        handle.write(b"not ours" * 100)
    assert history.History(path, 60.0).samples() == []


def test_a_history_sample_before_any_data_is_all_unknown():
    got = history.sample_from(None, None, 5.0)
    assert got["voltage_v"] is None and got["charge_current_a"] is None and got["phase"] is None


# -- authentication -------------------------------------------------------------------------
def test_the_password_is_stored_only_as_a_slow_salted_hash(tmp_path):
    path = str(tmp_path / "pw.json")
    auth.store_password(path, "correct horse")
    stored = auth.load_hash(path)
    assert "correct horse" not in open(path).read()
    assert stored["iterations"] >= 100000 and len(stored["salt"]) == 32
    assert auth.verify("correct horse", stored) and not auth.verify("correct horsf", stored)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="8 to 256 characters"):
        auth.store_password(path, "short")


def test_failed_logins_are_limited_per_client_and_in_total():
    clock = [0.0]
    limiter = auth.LoginLimiter(lambda: clock[0])
    for _ in range(auth.FAILURES_PER_CLIENT):
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(auth.FAILURE_WINDOW_S)
    assert limiter.retry_after("10.0.0.2") == 0
    for i in range(auth.FAILURES_TOTAL):
        limiter.failed("10.0.1.%d" % i)
    assert limiter.retry_after("10.0.0.9") > 0      # a distributed guess is slowed down too
    clock[0] += auth.FAILURE_WINDOW_S + 1
    assert limiter.retry_after("10.0.0.1") == 0


def test_sessions_expire_and_csrf_must_match():
    clock = [0.0]
    sessions = auth.Sessions(lambda: clock[0])
    token = sessions.create("127.0.0.1")
    csrf = sessions.get(token).csrf
    assert sessions.csrf_ok(token, csrf) and not sessions.csrf_ok(token, "x") and not sessions.csrf_ok(token, None)
    assert not sessions.csrf_ok("forged", csrf)
    clock[0] += auth.SESSION_S + 1
    assert sessions.get(token) is None


def test_bind_address_is_local_without_a_password_and_the_configured_one_otherwise():
    assert bind_address(CFG, password_set=False) == "127.0.0.1"
    assert bind_address(CFG, password_set=True) == "0.0.0.0"
    assert bind_address(CFG.replace(web={"bind": "192.168.1.5"}), password_set=False) == "192.168.1.5"


# -- settings form and validator --------------------------------------------------------------
def test_the_form_comes_from_the_one_schema_with_units_ranges_and_help():
    form = {entry["key"]: entry for entry in web_settings.form(CFG, {"charge.float_voltage_v": 53.0})}
    entry = form["charge.float_voltage_v"]
    rule = config.SCHEMA["charge"]["float_voltage_v"]
    assert (entry["min"], entry["max"], entry["unit"], entry["value"], entry["default"]) == (
        rule.low, rule.high, "V", 53.0, 53.6)
    assert "Float charge voltage limit" in entry["help"]
    assert form["battery.capacity_ah"]["unit"] == "Ah" and form["limits.recovery_ramp_a_per_s"]["unit"] == "A/s"
    assert "Absorption ends" in form["charge.tail_time_s"]["help"]      # a comment above two keys
    assert set(form) == set(__import__("venus.settings", fromlist=["x"]).runtime_keys())


@pytest.mark.parametrize("changes, expected", [
    ({"limits.max_charge_current_a": 99999}, "limits.max_charge_current_a = 99999 is not allowed: expected %s"
     % config._describe(config.SCHEMA["limits"]["max_charge_current_a"])),
    ({"limits.max_charge_current_a": "50"}, "limits.max_charge_current_a = '50' is not allowed"),
    ({"charge.float_voltage_v": 56.0}, "charge.float_voltage_v = 56 is above charge.absorption_voltage_v"),
    ({"can.channel": "can1"}, "can.channel is not a setting that can be changed here"),
    ({"limits.max_charge_current_a": float("nan")}, "expected a finite number"),
    ([1, 2], "expected a JSON object"),
    ({}, "expected a JSON object"),
])
def test_a_bad_setting_is_refused_naming_the_key_and_what_is_allowed(changes, expected):
    checked, problems = web_settings.validate(CFG, {}, changes)
    assert checked is None and any(expected in problem for problem in problems), problems


def test_a_good_setting_is_checked_with_every_setting_in_force():
    checked, problems = web_settings.validate(CFG, {"charge.absorption_voltage_v": 55.0},
                                              {"limits.max_charge_current_a": 42})
    assert problems == [] and checked == {"charge.absorption_voltage_v": 55.0, "limits.max_charge_current_a": 42.0}
    # a change that only fits because of another one in force
    _, problems = web_settings.validate(CFG, {"charge.absorption_voltage_v": 54.0}, {"charge.float_voltage_v": 54.5})
    assert problems and "float must not exceed absorption" in problems[0]


def test_the_user_file_is_updated_line_by_line_keeping_comments(tmp_path):
    path = tmp_path / "user.toml"
    path.write_text("# my battery\n[charge]\n# float\nfloat_voltage_v = 53.6\n\n[logging]\nlevel = \"INFO\"\n")
    web_settings.write_user_file(str(path), {"charge.float_voltage_v": 53.0, "limits.max_charge_current_a": 42.0,
                                             "charge.tail_current_a": 10.0})
    text = path.read_text()
    assert "# my battery" in text and "# float" in text and 'level = "INFO"' in text
    loaded = config.load(str(path))
    assert (loaded.charge.float_voltage_v, loaded.limits.max_charge_current_a, loaded.charge.tail_current_a) == (
        53.0, 42.0, 10.0)
    assert [name for name in os.listdir(tmp_path)] == ["user.toml"]      # no temporary left


def test_a_user_file_that_cannot_be_updated_line_by_line_is_left_alone(tmp_path):
    path = tmp_path / "user.toml"
    original = "[charge]\nfloat_voltage_v = [\n 1,\n]\n"
    path.write_text(original)
    with pytest.raises(ValueError, match="cannot be updated line by line"):
        web_settings.write_user_file(str(path), {"charge.float_voltage_v": 53.0})
    assert path.read_text() == original


# -- live view --------------------------------------------------------------------------------
def test_the_view_shows_every_limit_with_its_reason_and_unknown_as_none():
    assert all(limit["value"] is None and limit["reason"] is None
               for limit in view.live(None, None, None, None, None)["decision"]["limits"])
    frames = {"report": {"charge_voltage_v": 55.2, "charge_current_a": 30.0, "discharge_current_a": 120.0,
                         "discharge_voltage_v": 48.0, "charge_enable": True, "discharge_enable": True,
                         "force_charge_1": False, "force_charge_2": False, "full_charge": True,
                         "protection": [], "alarm": ["low_temperature"]},
              "decision": {"charge_voltage_v": 55.2, "charge_current_a": 80.0, "discharge_current_a": 120.0,
                           "discharge_voltage_v": 48.0},
              "reasons": {"charge_voltage": "bulk", "charge_current": "temperature taper",
                          "discharge_current": "configured maximum"}, "phase": "bulk"}
    doc = view.live(frames, {"max_charge_current_a": 30.0}, {}, {}, None)
    reasons = {limit["name"]: limit["reason"] for limit in doc["decision"]["limits"]}
    assert reasons == {"CVL": "bulk", "CCL": "lowered by Venus (DVCC/ESS) to 30 (engine: temperature taper)",
                       "DCL": "configured maximum", "DVL": "configured (limits.discharge_voltage_v)"}
    assert doc["decision"]["requests"]["full_charge"] is True and doc["decision"]["warnings"] == ["low_temperature"]
    assert doc["status_stale"] is True and doc["battery"] is None


# -- the full-charge request reaches the engine -------------------------------------------------
def test_a_full_charge_request_makes_the_full_charge_due_at_the_next_step():
    engine = BmsEngine(CFG)
    snapshot = BatterySnapshot(52.0, -5.0, 60.0, 20.0, age_s=0.0, cell_min_v=3.25, cell_max_v=3.26)
    assert not engine.step(snapshot, 100.0).report.full_charge
    engine.request_full_charge()
    decision = engine.step(snapshot, 101.0)
    assert decision.report.full_charge and decision.report.charge_voltage_v == CFG.charge.full_charge_voltage_v
    off = BmsEngine(CFG.replace(charge={"full_charge_interval_days": 0.0}))
    off.request_full_charge()
    assert not off.step(snapshot, 1.0).report.full_charge


# -- the HTTP handlers on a real socket -------------------------------------------------------
@pytest.fixture
def console(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_state, "SHM_DIR", str(tmp_path))
    state = SharedState.create("webtest")
    user = tmp_path / "user.toml"
    user.write_text("[status]\nfile = %s\n" % json.dumps(str(tmp_path / "status.json")))
    cfg = config.load(str(user)).replace(web={"password_file": str(tmp_path / "pw.json"),
                                              "history_file": str(tmp_path / "h.bin")})
    cfg.sources = (config.DEFAULT_PATH, str(user))
    (tmp_path / "status.json").write_text(json.dumps({
        "written_at": time.time(), "workers": {"can_rx": {"state": "fault"}, "bms_tx": {"state": "running"}}}))
    auth.store_password(cfg.web.password_file, "secret password")
    log = __import__("logging").getLogger("test-web")
    app = Console(cfg, state, log, history.History(cfg.web.history_file, 60.0))
    server = Server(("127.0.0.1", 0), app)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield app, server.server_address[1], user
    server.clients_stop.set()
    server.shutdown()
    server.server_close()
    state.unlink()
    state.close()


def call(port, method, path, body=None, headers=None, raw=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = dict(headers or {})
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    try:
        document = json.loads(payload)
    except ValueError:
        document = payload
    return response.status, document, response


def login(port, password="secret password"):
    status, document, response = call(port, "POST", "/api/login", {"password": password})
    assert status == 200, document
    cookie = response.getheader("Set-Cookie").split(";")[0]
    assert "HttpOnly" in response.getheader("Set-Cookie") and "SameSite=Strict" in response.getheader("Set-Cookie")
    return {"Cookie": cookie, "X-CSRF-Token": document["csrf"]}


def test_every_response_has_the_security_headers_and_the_page_needs_nothing_external(console):
    _, port, _ = console
    status, page, response = call(port, "GET", "/")
    assert status == 200
    assert "default-src 'none'" in response.getheader("Content-Security-Policy")
    assert response.getheader("X-Frame-Options") == "DENY" and response.getheader("X-Content-Type-Options") == "nosniff"
    for name in ("index.html", "app.js", "style.css"):
        text = open(os.path.join(os.path.dirname(history.__file__), "static", name)).read()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, name


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/../config.toml", 404), ("GET", "/static/../../config.py", 404), ("GET", "/%2e%2e/config.toml", 404),
    ("GET", "/api/nothing", 404), ("POST", "/api/nothing", 404), ("PUT", "/api/settings", 405),
    ("GET", "/api/history?since=abc", 400)])
def test_unknown_paths_traversal_and_wrong_methods_get_a_clear_4xx(console, method, path, status):
    _, port, _ = console
    got, document, _ = call(port, method, path)
    assert got == status and document["error"]


def test_changes_need_a_session_and_its_csrf_token_and_a_same_origin(console):
    app, port, user = console
    before = user.read_text()
    change = {"limits.max_charge_current_a": 42}
    assert call(port, "POST", "/api/settings", change)[0] == 401
    headers = login(port)
    assert call(port, "POST", "/api/settings", change, {"Cookie": headers["Cookie"]})[0] == 403
    assert call(port, "POST", "/api/settings", change, dict(headers, **{"X-CSRF-Token": "forged"}))[0] == 403
    assert call(port, "POST", "/api/settings", change, dict(headers, Origin="http://evil.example"))[0] == 403
    assert user.read_text() == before and (app.state.read("web") or {}).get("settings") in (None, {})
    status, document, _ = call(port, "POST", "/api/settings", change, headers)
    assert status == 200 and document["applied"] == {"limits.max_charge_current_a": 42.0}
    assert config.load(str(user)).limits.max_charge_current_a == 42.0
    assert app.state.read("web")["settings"] == {"limits.max_charge_current_a": 42.0}
    assert "settings changed: limits.max_charge_current_a = 42.0" in app.state.read("web")["actions"][-1]["what"]


@pytest.mark.parametrize("body, headers, status, message", [
    ({"limits.max_charge_current_a": 99999}, {}, 400,
     "expected " + config._describe(config.SCHEMA["limits"]["max_charge_current_a"])),
    ({"battery.cell_count": 8}, {}, 400, "battery.cell_count is not a setting that can be changed here"),
    (None, {"Content-Type": "text/plain"}, 415, "expected Content-Type: application/json"),
    (None, {"Content-Length": "100000"}, 413, "at most 16384"),
    ("raw", {}, 400, "the body is not JSON"),
])
def test_bad_setting_requests_get_a_clear_4xx_and_change_nothing(console, body, headers, status, message):
    app, port, user = console
    before = user.read_text()
    auth_headers = login(port)
    auth_headers.update(headers)
    raw = b"{not json" if body == "raw" else (b"x" * 10 if body is None else None)
    got, document, _ = call(port, "POST", "/api/settings", None if body in (None, "raw") else body, auth_headers, raw)
    assert got == status and message in document["error"], document
    assert user.read_text() == before and (app.state.read("web") or {}).get("settings") in (None, {})


def test_logins_are_rate_limited(console):
    _, port, _ = console
    for _ in range(auth.FAILURES_PER_CLIENT):
        assert call(port, "POST", "/api/login", {"password": "wrong password"})[0] == 401
    status, document, response = call(port, "POST", "/api/login", {"password": "secret password"})
    assert status == 429 and int(response.getheader("Retry-After")) > 0
    assert "too many failed logins" in document["error"]


def test_actions_must_be_confirmed_and_are_logged_with_who(console, caplog):
    app, port, _ = console
    headers = login(port)
    status, document, _ = call(port, "POST", "/api/action", {"action": "full_charge"}, headers)
    assert status == 400 and "confirmed" in document["error"]
    assert call(port, "POST", "/api/action", {"action": "reboot", "confirm": True}, headers)[0] == 400
    with caplog.at_level("WARNING"):
        assert call(port, "POST", "/api/action", {"action": "full_charge", "confirm": True}, headers)[0] == 200
        assert call(port, "POST", "/api/action", {"action": "force_charge_start", "confirm": True}, headers)[0] == 200
    slot = app.state.read("web")
    assert slot["full_charge_id"] == 1 and slot["force_charge"] is True
    assert "request a full charge now (session 1 from 127.0.0.1)" in caplog.text
    status, document, _ = call(port, "POST", "/api/action", {"action": "restart_worker", "worker": "bms_tx",
                                                             "confirm": True}, headers)
    assert status == 409 and "only a faulted or waiting worker" in document["error"]
    assert call(port, "POST", "/api/action", {"action": "restart_worker", "worker": "can_rx", "confirm": True},
                headers)[0] == 200
    assert app.state.read("web")["restart"] == {"worker": "can_rx", "id": 1}


def test_a_restarted_console_continues_the_requests_of_the_last_one(console):
    app, port, _ = console
    headers = login(port)
    call(port, "POST", "/api/action", {"action": "force_charge_start", "confirm": True}, headers)
    again = Console(app.cfg, app.state, app.log)
    assert again.slot["force_charge"] is True


def test_reading_can_be_closed_to_those_without_the_password(console):
    app, port, _ = console
    assert call(port, "GET", "/api/status")[0] == 200
    app.cfg = app.cfg.replace(web={"read_without_login": False})
    assert call(port, "GET", "/api/status")[0] == 401
    assert call(port, "GET", "/api/status", headers={"Cookie": login(port)["Cookie"]})[0] == 200


def test_the_diagnostics_bundle_has_everything_but_secrets(console, tmp_path):
    import io
    import tarfile
    _, port, _ = console
    headers = login(port)
    status, payload, _ = call(port, "POST", "/api/diagnostics", {"confirm": True}, headers)
    assert status == 200
    bundle = tarfile.open(fileobj=io.BytesIO(payload))
    names = sorted(name.split("/")[-1] for name in bundle.getnames())
    assert names == ["candump.log", "config.toml", "history.json", "live.json", "log.txt", "status.json"]
    config_text = bundle.extractfile("pylon-venus-diagnostics/config.toml").read().decode()
    assert 'password_file = "<removed>"' in config_text and "[charge]" in config_text


def test_the_log_of_the_last_hour_only(tmp_path):
    path = tmp_path / "log"
    old = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 7200))
    new = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 60))
    path.write_text("%s,1 INFO old\n%s,2 INFO new\ncontinued traceback\n" % (old, new))
    assert recent_log(str(path), time.time() - 3600) == "%s,2 INFO new\ncontinued traceback\n" % new
    multilog = "@400000006560a1b2 %s,1 INFO old\n@400000006560a1b3 %s,2 INFO new\n" % (old, new)
    path.write_text(multilog)
    assert recent_log(str(path), time.time() - 3600) == multilog.splitlines(True)[1]



def test_a_faulted_console_is_a_warning_not_a_reason_to_restart_the_daemon():
    """A monitor that restarts an unhealthy daemon would stop the frames for the console's sake."""
    from health.check import problems, warnings
    from tests.unit.test_health_check import healthy_status
    status = healthy_status()
    status["workers"]["web"] = {"state": "fault", "alive": False, "restarts": 6, "recent_restarts": 6}
    assert problems(status, CFG) == []
    assert any("web console" in warning and "fault" in warning for warning in warnings(status))


def test_on_venus_a_setting_goes_to_localsettings_not_to_the_file(console):
    app, port, user = console
    written = []
    app.localsettings_writer = written.append
    app.state.write("heartbeat.dbus_publisher", {"pid": 1, "t": 0.0, "localsettings": True})
    before = user.read_text()
    headers = login(port)
    status, document, _ = call(port, "POST", "/api/settings", {"limits.max_charge_current_a": 42}, headers)
    assert status == 200 and document["written_to"] == "Venus localsettings"
    assert written == [{"limits.max_charge_current_a": 42.0}] and user.read_text() == before
    assert app.state.read("web")["settings"] == {}      # bms_tx gets it from localsettings (the "dvcc" slot)

    def refuse(changes):
        raise RuntimeError("SetValue returned -1")
    app.localsettings_writer = refuse
    status, document, _ = call(port, "POST", "/api/settings", {"limits.max_charge_current_a": 43}, headers)
    assert status == 503 and "localsettings did not take the change" in document["error"]


def test_head_answers_headers_only_even_for_the_live_stream(console):
    import socket
    _, port, _ = console
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"HEAD /api/events HTTP/1.0\r\n\r\n")
        time.sleep(1.5)
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.0 200") and b"text/event-stream" in answer
    assert answer.endswith(b"\r\n\r\n")        # no event after the headers


def test_an_ipv6_bind_address_listens_on_ipv6(console):
    app, _, _ = console
    server = Server(("::1", 0), app)
    try:
        assert server.socket.family == __import__("socket").AF_INET6
    finally:
        server.server_close()


def test_a_fault_of_the_console_itself_is_a_500_and_logged(console, caplog):
    app, port, _ = console

    def broken():
        raise KeyError("bug")
    app.settings_form = broken
    with caplog.at_level("ERROR"):
        status, document, _ = call(port, "GET", "/api/settings")
    assert status == 500 and "the log has the details" in document["error"]
    assert "web console: GET /api/settings failed" in caplog.text and "KeyError" in caplog.text


def test_big_answers_are_gzipped_for_clients_that_take_it(console):
    import gzip
    app, port, _ = console
    for i in range(200):
        app.history.append(sample(float(i)))
    status, payload, response = call(port, "GET", "/api/history", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and response.getheader("Content-Encoding") == "gzip"
    assert len(json.loads(gzip.decompress(payload))["samples"]) == 200
    status, document, response = call(port, "GET", "/api/history")
    assert response.getheader("Content-Encoding") is None and len(document["samples"]) == 200
