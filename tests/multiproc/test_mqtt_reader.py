"""The MQTT battery source against a real broker (mosquitto on a free localhost port) and a
player of a GX's topics: the keep-alive wakes the GX, the system's choice is followed, a null
value or a broker that goes away ages the data, the broker coming back is reconnected to,
credentials are used."""
import logging
import os
import threading
import time
import types

import pytest

import config
from ipc.shared_state import SharedState
from tests.fakes.gx_mqtt import MOSQUITTO, Broker, GxPlayer
from tests.multiproc.daemon import wait_until
from workers.battery_reader import GxMqttReader

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto is not installed "
                                "(dev/bootstrap.sh --dev installs it)")
PORTAL = "c0619ab1d2e3"


def batteries():
    return {256: {"/Dc/0/Voltage": 50.0, "/Dc/0/Current": 1.0, "/Soc": 40.0, "/Dc/0/Temperature": 20.0},
            512: {"/Dc/0/Voltage": 53.12, "/Dc/0/Current": -12.5, "/Soc": 82.7, "/Dc/0/Temperature": 21.5,
                  "/System/MinCellVoltage": 3.31, "/System/MaxCellVoltage": 3.33}}




@pytest.fixture
def run_reader(tmp_path):
    started = []

    def start(port, **mqtt_keys):
        state = SharedState.create("mqtt-test-%d-%d" % (os.getpid(), len(started)))
        keys = dict(host="127.0.0.1", port=port, portal_id=PORTAL, keepalive_s=1.0, refresh_s=1.0,
                    reconnect_max_s=1.0)
        keys.update(mqtt_keys)
        cfg = config.load().replace(battery={"source": "mqtt"}, mqtt=keys)
        stopping = threading.Event()
        worker = types.SimpleNamespace(cfg=cfg, state=state, log=logging.getLogger("test.mqtt"),
                                       stopping=stopping, beat=lambda **info: None, wait=stopping.wait)
        thread = threading.Thread(target=GxMqttReader(worker).run, daemon=True)
        thread.start()
        started.append((stopping, thread, state))
        return state

    yield start
    for stopping, thread, state in started:
        stopping.set()
        thread.join(10)
        assert not thread.is_alive()
        state.close()
        state.unlink()


@pytest.fixture
def broker(tmp_path):
    instance = Broker(tmp_path).start()
    yield instance
    instance.stop()


def slot(state):
    return state.read("battery") or {}


def test_follows_the_systems_monitor_after_waking_the_gx(broker, run_reader):
    gx = GxPlayer(broker.port, PORTAL, batteries(), active=512)
    try:
        state = run_reader(broker.port)
        battery = wait_until(lambda: slot(state).get("updated") and slot(state), what="a reading")
        assert (battery["voltage_v"], battery["current_a"], battery["soc_pct"], battery["temperature_c"],
                battery["cell_min_v"], battery["cell_max_v"]) == (53.12, -12.5, 82.7, 21.5, 3.31, 3.33)
        assert battery["service"] == "mqtt:%s/battery/512" % PORTAL and battery["broker_connected"] is True
        # the keep-alive: a full one first, then quiet ones every keepalive_s
        wait_until(lambda: len(gx.keepalives) >= 3, what="the keep-alive repeated")
        assert gx.keepalives[0] == b"" and all(b"suppress-republish" in k for k in gx.keepalives[1:])
        # values that do not change are not republished: the reader asks for them
        wait_until(lambda: any(t.endswith("/battery/512/Dc/0") for t in gx.reads), what="a read request")
        first = slot(state)["updated"]
        wait_until(lambda: slot(state)["updated"] > first + 0.5, what="a steady monitor kept fresh by reads")
    finally:
        gx.close()


def test_a_null_value_ages_the_data(broker, run_reader):
    gx = GxPlayer(broker.port, PORTAL, batteries(), active=512)
    try:
        state = run_reader(broker.port)
        wait_until(lambda: slot(state).get("updated"), what="a reading")
        gx.set(512, "/Soc", None)
        wait_until(lambda: slot(state)["soc_pct"] is None, what="SoC invalid")
        before = slot(state)["updated"]
        time.sleep(2.5)                          # reads answered with null: still no complete reading
        assert slot(state)["updated"] == before
        gx.set(512, "/Soc", 83.0)
        wait_until(lambda: slot(state)["updated"] > before, what="fresh again")
    finally:
        gx.close()


def test_a_broker_that_goes_away_ages_the_data_and_is_reconnected(tmp_path, run_reader):
    brokers = [Broker(tmp_path).start()]
    gx = GxPlayer(brokers[0].port, PORTAL, batteries(), active=512)
    try:
        state = run_reader(brokers[0].port)
        wait_until(lambda: slot(state).get("updated"), what="a reading")
        brokers[0].stop()
        wait_until(lambda: slot(state)["broker_connected"] is False, what="the broker seen lost")
        lost = slot(state)["updated"]
        time.sleep(2.0)
        assert slot(state)["updated"] == lost
        keepalives = len(gx.keepalives)
        brokers.append(Broker(tmp_path, port=brokers[0].port).start())
        wait_until(lambda: slot(state)["broker_connected"] and slot(state)["updated"] > lost, "reconnected and fresh")
        assert b"" in gx.keepalives[keepalives:]       # a full keep-alive after the reconnect
    finally:
        gx.close()
        for broker in brokers:
            broker.stop()


def test_credentials_are_used_and_a_refusal_is_no_reading(tmp_path, run_reader):
    broker = Broker(tmp_path, users={"pylon": "s3cret", "gx": "gxpass"}).start()
    gx = GxPlayer(broker.port, PORTAL, batteries(), active=512, username="gx", password="gxpass")
    try:
        refused = run_reader(broker.port, username="pylon", password="wrong")
        accepted = run_reader(broker.port, username="pylon", password="s3cret")
        wait_until(lambda: slot(accepted).get("updated"), what="a reading with the right password")
        assert slot(refused)["broker_connected"] is False and slot(refused)["updated"] is None
    finally:
        gx.close()
        broker.stop()


def test_the_daemon_decides_on_the_gx_battery_and_stops_charging_when_the_broker_goes(tmp_path):
    from tests.multiproc.daemon import Daemon
    broker = Broker(tmp_path).start()
    gx = GxPlayer(broker.port, PORTAL, batteries(), active=512)
    d = Daemon(tmp_path, battery={"source": "mqtt"}, stale={"hold_s": 1.0, "stale_s": 3.0},
               mqtt={"host": "127.0.0.1", "port": broker.port, "portal_id": PORTAL, "refresh_s": 1.0})

    def charge_current(status):
        return [f for f in status["frames"] if f["id"] == "0x351"][0]["fields"]["charge_current_a"]

    try:
        d.start()
        d.wait_sending(60)
        status = d.wait_for(lambda s: s["battery"]["voltage_v"] == 53.12 and charge_current(s) > 0, 30,
                            "the GX's battery deciding")
        assert status["battery"]["service"] == "mqtt:%s/battery/512" % PORTAL
        assert "battery_reader" in status["workers"]
        broker.stop()
        d.wait_for(lambda s: charge_current(s) == 0 and s["battery"]["age_s"] > 3.0, 20, "no charging on stale data")
        assert "MQTT broker 127.0.0.1:%d lost" % broker.port in d.log()
    finally:
        d.stop()
        gx.close()
        broker.stop()


def test_tls_with_the_brokers_ca_and_a_refusal_of_an_unknown_one(tmp_path, run_reader):
    broker = Broker(tmp_path, tls=True).start()
    gx = GxPlayer(broker.port, PORTAL, batteries(), active=512, ca_file=broker.ca_file)
    try:
        trusted = run_reader(broker.port, tls=True, ca_file=broker.ca_file)
        untrusted = run_reader(broker.port, tls=True)            # the system's CAs do not know the test's
        wait_until(lambda: slot(trusted).get("updated"), what="a reading over TLS")
        assert slot(untrusted)["broker_connected"] is False and slot(untrusted)["updated"] is None
    finally:
        gx.close()
        broker.stop()
