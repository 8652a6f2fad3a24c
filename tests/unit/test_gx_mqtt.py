"""Following a GX's battery monitor through its MQTT topics (dbus-flashmq conventions), pure."""
import json

from sources.gx_mqtt import KEEPALIVE_FULL, KEEPALIVE_QUIET, GxBatteryFollower

PORTAL = "c0619ab1d2e3"


def value(v):
    return json.dumps({"value": v}).encode()


def publish(follower, instance, now, voltage=53.1, current=-12.5, soc=82.0, temperature=21.0):
    for path, v in (("Dc/0/Voltage", voltage), ("Dc/0/Current", current), ("Soc", soc),
                    ("Dc/0/Temperature", temperature)):
        follower.message("N/%s/battery/%d/%s" % (PORTAL, instance, path), value(v), now)


def test_subscribes_to_the_battery_paths_and_the_systems_choice():
    topics = GxBatteryFollower(PORTAL).subscriptions()
    assert "N/%s/system/0/ActiveBatteryService" % PORTAL in topics
    assert {"N/%s/battery/+/Dc/0/Voltage" % PORTAL, "N/%s/battery/+/Soc" % PORTAL,
            "N/%s/battery/+/System/MinCellVoltage" % PORTAL} <= set(topics)


def test_keepalive_first_full_then_quiet_and_full_again_after_a_reconnect():
    follower = GxBatteryFollower(PORTAL, keepalive_s=30)
    assert follower.requests(0.0) == [("R/%s/keepalive" % PORTAL, KEEPALIVE_FULL)]
    assert follower.requests(29.0) == []
    assert follower.requests(30.0) == [("R/%s/keepalive" % PORTAL, KEEPALIVE_QUIET)]
    assert json.loads(KEEPALIVE_QUIET.decode()) == {"keepalive-options": ["suppress-republish"]}
    follower.reconnected()
    assert follower.requests(31.0) == [("R/%s/keepalive" % PORTAL, KEEPALIVE_FULL)]


def test_values_and_age_like_the_dbus_monitor():
    follower = GxBatteryFollower(PORTAL)
    publish(follower, 256, 10.0)
    snapshot = follower.snapshot()
    assert snapshot == {"voltage_v": 53.1, "current_a": -12.5, "soc_pct": 82.0, "temperature_c": 21.0,
                        "cell_min_v": None, "cell_max_v": None, "service": "mqtt:%s/battery/256" % PORTAL,
                        "updated": 10.0}
    follower.message("N/%s/battery/256/Soc" % PORTAL, value(None), 11.0)        # invalid on the GX
    follower.message("N/%s/battery/256/Dc/0/Voltage" % PORTAL, value(53.2), 12.0)
    assert follower.snapshot()["soc_pct"] is None and follower.snapshot()["updated"] == 10.0
    follower.message("N/%s/battery/256/Soc" % PORTAL, value(83.0), 13.0)
    assert follower.snapshot()["updated"] == 13.0
    follower.message("N/%s/battery/256/Dc/0/Current" % PORTAL, b"", 14.0)       # the device left
    assert follower.snapshot()["current_a"] is None and follower.snapshot()["updated"] == 13.0
    for junk in (b"not json", b"[1]", b'{"value": "text"}', b'{"value": true}', b"\xff"):
        follower.message("N/%s/battery/256/Dc/0/Current" % PORTAL, junk, 15.0)
        assert follower.snapshot()["current_a"] is None


def test_the_systems_active_battery_service_wins_over_the_lowest_instance():
    follower = GxBatteryFollower(PORTAL)
    publish(follower, 256, 1.0, voltage=50.0)
    publish(follower, 512, 1.0, voltage=53.0)
    assert follower.snapshot()["voltage_v"] == 50.0
    follower.message("N/%s/system/0/ActiveBatteryService" % PORTAL, value("com.victronenergy.battery/512"), 2.0)
    assert follower.snapshot()["voltage_v"] == 53.0 and follower.snapshot()["updated"] is None  # not read since
    publish(follower, 512, 3.0, voltage=53.5)
    assert follower.snapshot()["updated"] == 3.0
    publish(follower, 256, 4.0)                       # the other monitor's messages do not refresh ours
    assert follower.snapshot()["updated"] == 3.0
    follower.message("N/%s/system/0/ActiveBatteryService" % PORTAL, value("com.victronenergy.vebus/276"), 5.0)
    assert follower.snapshot()["service"].endswith("/battery/256")


def test_configured_instance_and_foreign_topics():
    follower = GxBatteryFollower(PORTAL, preferred_instance=512)
    publish(follower, 256, 1.0, voltage=50.0)
    publish(follower, 512, 1.0, voltage=53.0)
    assert follower.snapshot()["voltage_v"] == 53.0
    for topic in ("N/otherportal/battery/512/Soc", "N/%s/solarcharger/279/Dc/0/Voltage" % PORTAL,
                  "N/%s/battery/x/Soc" % PORTAL, "N/%s/battery/512/Dc/0/Power" % PORTAL, "W/%s/battery/512/Soc" % PORTAL):
        assert follower.message(topic, value(1.0), 2.0) is False
    assert follower.snapshot()["soc_pct"] == 82.0


def test_a_silent_monitor_is_read_again():
    follower = GxBatteryFollower(PORTAL, refresh_s=5, keepalive_s=1000)
    follower.requests(0.0)
    publish(follower, 256, 1.0)
    assert follower.requests(3.0) == []
    reads = follower.requests(6.0)
    assert reads == [("R/%s/battery/256/Dc/0" % PORTAL, b""), ("R/%s/battery/256/Soc" % PORTAL, b""),
                     ("R/%s/battery/256/System" % PORTAL, b"")]
    assert follower.requests(7.0) == []               # one read per refresh_s, not a flood
    assert follower.requests(11.0) == reads


def test_a_restarted_reader_keeps_the_last_values_and_their_true_age():
    previous = {"voltage_v": 53.0, "current_a": 1.0, "soc_pct": 80.0, "temperature_c": 20.0, "cell_min_v": None,
                "cell_max_v": None, "service": "mqtt:%s/battery/256" % PORTAL, "updated": 100.0}
    follower = GxBatteryFollower(PORTAL, previous=previous)
    assert follower.snapshot() == previous
    publish(follower, 512, 120.0, soc=None)           # another monitor, incomplete: no reading
    assert follower.snapshot()["updated"] is None
