"""The web console served by the real daemon (the simulation), driven by a real headless Chromium.

One daemon and one browser serve the whole module; the tests run in file order (each flow
leaves the daemon as the next one expects). Every change is judged where it matters: on the
recorded bus. Screenshots of the main views go to tests/multiproc/results/screenshots/ (copies of
them are in docs/screenshots/, one in the README).
Needs Debian's chromium, chromium-driver and python3-selenium (dev/bootstrap.sh --dev); the
system chromedriver is used, never a downloaded one.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import can

import config
from canbus.bus import open_bus, to_frame
from protocol import DecodeError, profiles
from tests.multiproc.daemon import ROOT, Daemon, gaps, tree_cpu_seconds

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
if not (os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)):
    pytest.skip("needs chromium and chromium-driver (sh dev/bootstrap.sh --dev)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs python3-selenium (sh dev/bootstrap.sh --dev)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

PERIOD = 1.0
PASSWORD = "a long test password"
# A test run never rewrites tracked files: docs/screenshots/ holds copies taken from such a run.
SCREENSHOTS = os.environ.get("PYLON_SCREENSHOTS", os.path.join(ROOT, "tests", "multiproc", "results", "screenshots"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    d = Daemon(folder, web={"bind": "127.0.0.1", "history_interval_s": 1.0},
               watchdog={"restart_intensity": 1})
    result = subprocess.run([sys.executable, os.path.join(ROOT, "supervisor.py"), "web-password", "--config",
                             d.config_path], input=PASSWORD + "\n", universal_newlines=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=30)
    assert result.returncode == 0 and "password stored (hashed)" in result.stdout, result.stderr
    assert PASSWORD not in open(os.path.join(folder, "web-password.json")).read()
    cfg = config.load(d.config_path)
    d.listener = BusListener(cfg)
    d.start()
    d.wait_sending(40)
    d.port = cfg.web.port
    d.url = "http://127.0.0.1:%d/" % d.port
    yield d
    d.stop()
    d.listener.close()
    assert PASSWORD not in d.log()          # no secret in the log


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=15.0, what="condition"):
    """The page re-renders its tables every second: an element found may be gone when read."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(
        StaleElementReferenceException,)).until(lambda d: condition(d), what)


def limit_row(driver, name):
    """The cells of one limit's row (CVL, CCL, ...), read at once in the page."""
    return driver.execute_script(
        "var rows = document.querySelectorAll('#limits tbody tr');"
        "for (var i = 0; i < rows.length; i++) { var cells = Array.prototype.map.call(rows[i].cells,"
        " function (c) { return c.textContent; }); if (cells[0] === arguments[0]) return cells; }"
        "return null;", name)


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def view(driver, name):
    driver.find_element(By.CSS_SELECTOR, "nav button[data-view=%s]" % name).click()


class BusListener(can.Listener):
    """The bus as this test hears it, decoded at once (the daemon's --record file is written in
    blocks, seconds late); the times are the kernel's receive stamps, whatever this process does."""

    def __init__(self, cfg):
        self.profile = profiles.get(cfg.inverter.profile)
        self.records = []
        self.lock = threading.Lock()
        self.bus = open_bus(cfg)
        self.notifier = can.Notifier(self.bus, [self], timeout=0.2)

    def on_message_received(self, msg):
        try:
            decoded = self.profile.decode(to_frame(msg))
        except DecodeError:
            return
        with self.lock:
            self.records.append({"t": msg.timestamp, "id": msg.arbitration_id, "fields": decoded.fields})

    def frames(self, frame_id):
        with self.lock:
            return [r for r in self.records if r["id"] == frame_id]

    def close(self):
        self.notifier.stop()
        self.bus.shutdown()


def frames_since(daemon, frame_id, since_wall):
    return [r for r in daemon.listener.frames(frame_id) if r["t"] >= since_wall]


def wait_on_bus(daemon, frame_id, since_wall, predicate, timeout=10.0, what="frame"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in frames_since(daemon, frame_id, since_wall):
            if predicate(record["fields"]):
                return record
        time.sleep(0.2)
    raise AssertionError("no %s on the bus within %g s; last: %s" % (
        what, timeout, frames_since(daemon, frame_id, since_wall)[-1:]))


def save_settings(driver, key, value):
    loads = driver.execute_script("return window.pvMetrics.settingsLoads")
    view(driver, "settings")
    try:
        wait(driver, lambda d: d.execute_script("return window.pvMetrics.settingsLoads") > loads)
    except Exception:
        raise AssertionError("the settings form did not load: loads %s, message %r, logs %s" % (
            loads, text(driver, "message"), driver.get_log("browser"))) from None
    field = driver.find_element(By.ID, "setting-" + key)
    field.clear()
    field.send_keys(str(value))
    driver.execute_script("document.getElementById('message').textContent = ''")
    started = time.time()
    driver.find_element(By.CSS_SELECTOR, "#settings button[type=submit]").click()
    wait(driver, lambda d: d.find_element(By.ID, "message").text, what="the answer")
    return started


def http_call(daemon, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload) if payload[:1] == b"{" else payload, response


# -- flows ----------------------------------------------------------------------------------------
def test_the_log_prints_the_url_and_the_page_shows_live_values_within_a_second(daemon, browser):
    assert "web console at http://127.0.0.1:%d/" % daemon.port in daemon.log()
    browser.get(daemon.url)
    wait(browser, lambda d: text(d, "phase") not in ("", "unknown"), 5, "the phase")
    first_data_ms = browser.execute_script("return window.pvMetrics.firstData")     # since the navigation
    navigation = browser.execute_script("var n = performance.getEntriesByType('navigation')[0];"
                                        "return [n.domContentLoadedEventEnd, n.transferSize];")
    resources = browser.execute_script("return performance.getEntriesByType('resource')"
                                       ".map(function (r) { return [r.name, r.transferSize]; });")
    weight = navigation[1] + sum(size for _, size in resources)
    print("web console: first data %.0f ms after navigation, DOM ready %.0f ms, page weight %d bytes (%s)"
          % (first_data_ms, navigation[0], weight, resources))
    assert first_data_ms < 1000
    assert all(name.startswith(daemon.url) for name, _ in resources)        # nothing external
    assert weight < 40000
    for name in ("CVL", "CCL", "DCL", "DVL"):
        row = limit_row(browser, name)
        assert "unknown" not in row[1] and len(row[2]) > 3, row
    assert " V" in browser.find_element(By.ID, "battery").text
    # live: the uptime and the number of events move on without a reload
    uptime, events = text(browser, "uptime"), browser.execute_script("return window.pvMetrics.events")
    wait(browser, lambda d: text(d, "uptime") != uptime, 3, "a live update")
    assert browser.execute_script("return window.pvMetrics.events") > events
    assert text(browser, "connection") == "live"
    browser.save_screenshot(os.path.join(SCREENSHOTS, "status.png"))
    browser.set_window_size(390, 844)         # a phone
    time.sleep(0.3)
    browser.save_screenshot(os.path.join(SCREENSHOTS, "status-phone.png"))
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 400
    browser.set_window_size(1280, 1000)


def test_changes_need_a_login_in_the_browser(daemon, browser):
    assert browser.find_element(By.ID, "login").is_displayed()
    save_settings(browser, "limits.max_charge_current_a", 42)
    assert "log in first" in text(browser, "message")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(browser, lambda d: d.find_element(By.ID, "session").is_displayed(), 10, "the login")


def test_a_bad_value_shows_the_error_and_changes_nothing(daemon, browser):
    before = open(daemon.config_path).read()
    started = save_settings(browser, "limits.max_charge_current_a", 99999)
    message = text(browser, "message")
    assert "not saved, nothing changed" in message and \
        "limits.max_charge_current_a = 99999 is not allowed: expected %s" % config._describe(
            config.SCHEMA["limits"]["max_charge_current_a"]) in message
    assert "invalid" in browser.find_element(By.ID, "field-limits.max_charge_current_a").get_attribute("class")
    browser.save_screenshot(os.path.join(SCREENSHOTS, "settings-error.png"))
    time.sleep(2.5 * PERIOD)
    assert open(daemon.config_path).read() == before
    assert {r["fields"]["charge_current_a"] for r in frames_since(daemon, 0x351, started)} == {100.0}


def test_a_good_value_reaches_the_next_frame_set_on_the_bus(daemon, browser):
    started = save_settings(browser, "limits.max_charge_current_a", 42)
    assert "saved: limits.max_charge_current_a = 42" in text(browser, "message")
    record = wait_on_bus(daemon, 0x351, started, lambda f: f["charge_current_a"] == 42.0, 5, "CCL 42 A")
    assert record["t"] - started < 2.5 * PERIOD
    assert "max_charge_current_a = 42.0" in open(daemon.config_path).read()
    assert "settings changed: limits.max_charge_current_a = 42.0 (session" in daemon.log()
    browser.save_screenshot(os.path.join(SCREENSHOTS, "settings.png"))


def confirm_action(browser, selector):
    browser.find_element(By.CSS_SELECTOR, selector).click()
    wait(browser, lambda d: d.switch_to.alert, 5, "the confirmation").accept()
    wait(browser, lambda d: text(d, "message").startswith(("done", "diagnostics")), 10, "the action")
    return text(browser, "message")


def test_a_full_charge_request_shows_on_the_wire(daemon, browser):
    view(browser, "actions")
    started = time.time()
    assert confirm_action(browser, "button[data-action=full_charge]") == "done: request a full charge now"
    wait_on_bus(daemon, 0x35C, started, lambda f: f["full_charge"], 5, "0x35C bit 3 (full charge)")
    view(browser, "status")
    wait(browser, lambda d: "full_charge" in text(d, "requests"), 5, "the request on the page")


def test_a_force_charge_starts_and_stops(daemon, browser):
    view(browser, "actions")
    started = time.time()
    confirm_action(browser, "button[data-action=force_charge_start]")
    wait_on_bus(daemon, 0x35C, started, lambda f: f["force_charge_1"], 5, "force charge on")
    stopped = time.time()
    confirm_action(browser, "button[data-action=force_charge_stop]")
    wait_on_bus(daemon, 0x35C, stopped + PERIOD * 1.2, lambda f: not f["force_charge_1"], 5, "force charge off")
    assert "start a force charge (session" in daemon.log()
    browser.save_screenshot(os.path.join(SCREENSHOTS, "actions.png"))


def test_a_reason_changes_when_a_limit_is_cut_by_the_cold(daemon, browser):
    view(browser, "status")
    reason = limit_row(browser, "CCL")[2]
    assert "temperature" not in reason
    started = save_settings(browser, "limits.charge_min_temperature_c", 25)     # the simulated battery has 20 degC
    wait_on_bus(daemon, 0x351, started, lambda f: f["charge_current_a"] == 0.0, 5, "CCL 0 A")
    view(browser, "status")
    cut = wait(browser, lambda d: [r for r in [limit_row(d, "CCL")[2]] if "cold" in r or "temperature" in r],
               5, "the new reason")[0]
    print("web console: CCL reason %r became %r" % (reason, cut))
    browser.save_screenshot(os.path.join(SCREENSHOTS, "status-cold.png"))
    save_settings(browser, "limits.charge_min_temperature_c", 0)


def test_history_charts_draw_the_last_samples(daemon, browser):
    view(browser, "history")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#charts svg")) == 4, 10, "the charts")
    assert browser.find_elements(By.CSS_SELECTOR, "#charts polyline")
    chart_ms = browser.execute_script("return window.pvMetrics.chartMs")
    print("web console: charts drawn in %.1f ms" % chart_ms)
    assert chart_ms < 500
    browser.save_screenshot(os.path.join(SCREENSHOTS, "history.png"))
    # a full day at the default interval (30 s): 2880 samples drawn
    day_ms = browser.execute_script("""
        var samples = [], t1 = Date.now() / 1000, phases = ["bulk", "absorption", "float"];
        for (var i = 0; i < 2880; i++) {
          var t = t1 - (2879 - i) * 30, x = i / 2880 * 6.28;
          samples.push({t: t, voltage_v: 52 + Math.sin(x), current_a: 40 * Math.sin(x), soc_pct: 50 + 40 * Math.sin(x),
            temperature_c: i % 500 === 0 ? null : 20 + Math.cos(x), charge_voltage_v: 55.2, charge_current_a: 100,
            discharge_current_a: 120, phase: phases[Math.floor(i / 960)], freshness: "fresh",
            protections: i > 2000 && i < 2010 ? 1 : 0, warnings: 0});
        }
        window.pvDrawHistory({interval_s: 30, samples: samples});
        return window.pvMetrics.chartMs;""")
    print("web console: a day of history (2880 samples) drawn in %.0f ms" % day_ms)
    assert day_ms < 1000
    browser.save_screenshot(os.path.join(SCREENSHOTS, "history-day.png"))


def test_csrf_and_the_login_rate_limit_are_enforced(daemon):
    status, document, response = http_call(daemon, "POST", "/api/login", {"password": PASSWORD})
    cookie = response.getheader("Set-Cookie").split(";")[0]
    change = {"limits.max_charge_current_a": 50}
    assert http_call(daemon, "POST", "/api/settings", change)[0] == 401
    assert http_call(daemon, "POST", "/api/settings", change, {"Cookie": cookie})[0] == 403
    assert http_call(daemon, "POST", "/api/settings", change, {"Cookie": cookie, "X-CSRF-Token": "x" * 43})[0] == 403
    assert "max_charge_current_a = 42.0" in open(daemon.config_path).read()
    for _ in range(5):
        assert http_call(daemon, "POST", "/api/login", {"password": "not the password"})[0] == 401
    status, document, response = http_call(daemon, "POST", "/api/login", {"password": PASSWORD})
    assert status == 429 and response.getheader("Retry-After")
    assert "failed login from 127.0.0.1" in daemon.log() and "not the password" not in daemon.log()


def test_a_faulted_worker_is_restarted_from_the_console(daemon, browser):
    for _ in range(2):
        pid = daemon.worker_pid("can_rx")
        os.kill(pid, signal.SIGKILL)
        daemon.wait_for(lambda s: s["workers"]["can_rx"]["pid"] != pid or s["workers"]["can_rx"]["state"] == "fault",
                        10, "can_rx restarted or in fault")
    daemon.wait_for(lambda s: s["workers"]["can_rx"]["state"] == "fault", 10, "can_rx in fault")
    # the login is rate limited now (the test before): the worker is restarted by a new console's session
    restart_web(daemon, browser)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(browser, lambda d: d.find_element(By.ID, "session").is_displayed(), 10, "the login")
    view(browser, "actions")
    wait(browser, lambda d: d.execute_script(      # found and clicked at once: the buttons are redrawn every second
        "var b = document.querySelector('button[data-worker=can_rx]:not([disabled])');"
        "if (b) setTimeout(function () { b.click(); }, 0); return !!b;"),
        5, "the restart button")
    wait(browser, lambda d: d.switch_to.alert, 5, "the confirmation").accept()
    daemon.wait_for(lambda s: s["workers"]["can_rx"]["state"] == "running", 5, "can_rx running again")
    assert "worker can_rx: restart requested on the web console" in daemon.log()


def restart_web(daemon, browser):
    """Kill the web worker: the page notices, reconnects by itself and goes on updating."""
    view(browser, "status")
    pid = daemon.worker_pid("web")
    events = browser.execute_script("return window.pvMetrics.events")
    os.kill(pid, signal.SIGKILL)
    wait(browser, lambda d: text(d, "connection") == "reconnecting", 5, "the page to notice")
    daemon.wait_for(lambda s: s["workers"]["web"]["alive"] and s["workers"]["web"]["pid"] != pid, 10, "a new web")
    wait(browser, lambda d: text(d, "connection") == "live", 10, "the page to reconnect")
    wait(browser, lambda d: d.execute_script("return window.pvMetrics.events") > events + 2, 10, "live again")
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed(), 10, "the login form (new console)")


def test_the_history_survived_the_web_worker_restart(daemon, browser):
    status, document, _ = http_call(daemon, "GET", "/api/history")
    samples = document["samples"]
    assert status == 200 and len(samples) > 20 and samples[0]["t"] < time.time() - 20


def test_load_and_a_request_flood_do_not_move_the_frame_cadence(daemon):
    """20 live clients and a bounded flood of good and bad requests, only against 127.0.0.1."""
    stop = threading.Event()
    counts = {"events": 0, "requests": 0, "refused": 0}
    lock = threading.Lock()

    def listener():
        connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        while not stop.is_set():
            line = response.fp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                with lock:
                    counts["events"] += 1
        connection.close()

    def flooder(n):
        paths = [("GET", "/api/status"), ("GET", "/"), ("GET", "/api/history"), ("POST", "/api/settings"),
                 ("GET", "/../../etc/passwd"), ("POST", "/api/login")]
        for i in range(n):
            method, path = paths[i % len(paths)]
            try:
                status = http_call(daemon, method, path, {"x": 1} if method == "POST" else None)[0]
            except OSError:
                status = None
            with lock:
                counts["requests"] += 1
                counts["refused"] += status in (503, None)

    listeners = [threading.Thread(target=listener, daemon=True) for _ in range(20)]
    floods = [threading.Thread(target=flooder, args=(150,), daemon=True) for _ in range(8)]
    started = time.time()
    for thread in listeners + floods:
        thread.start()
    for thread in floods:
        thread.join(60)
    time.sleep(2)
    stop.set()
    ended = time.time()
    for thread in listeners:
        thread.join(5)
    print("web console load: %s in %.1f s" % (counts, ended - started))
    assert counts["requests"] == 1200 and counts["events"] > 20
    time.sleep(1.5 * PERIOD)
    for frame_id in (0x351, 0x355, 0x35C):
        intervals = gaps(frames_since(daemon, frame_id, started - PERIOD))
        assert intervals and max(intervals) < 1.5 * PERIOD and min(intervals) > 0.5 * PERIOD, (hex(frame_id), intervals)
    status = daemon.status()
    assert status["workers"]["bms_tx"]["restarts"] == 0 and not status["failsafe"]["engaged"]


def test_idle_without_clients_the_console_costs_almost_no_cpu(daemon):
    pid = daemon.worker_pid("web")
    before = tree_cpu_seconds(pid, children=False)
    time.sleep(5)
    used = tree_cpu_seconds(pid, children=False) - before
    print("web console idle: %.3f s CPU in 5 s" % used)
    assert used < 0.1


def test_frames_kept_their_cadence_through_every_flow(daemon):
    for frame_id in (0x351, 0x35C):
        intervals = gaps(daemon.listener.frames(frame_id))
        assert len(intervals) > 30 and max(intervals) < 1.5 * PERIOD, (hex(frame_id), max(intervals))
