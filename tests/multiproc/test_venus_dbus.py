"""The dbus_publisher worker on a private dbus-daemon, read the way Victron's consumers read it.

The worker is forked exactly as the supervisor forks it (``workers.runtime.main``) and shares a
SharedState segment with the test, which plays bms_tx and can_rx by writing their slots. The
fakes (SmartShunts, com.victronenergy.system, localsettings) and a DbusMonitor-like consumer
live in a peer process (tests/fakes/peer.py), so the test process holds no D-Bus connection
when it forks.
"""
import itertools
import json
import math
import multiprocessing
import os
import signal
import time

import pytest

import config
from ipc.private_dbus import PrivateDbus
from ipc.shared_state import SharedState
from protocol.report import BatteryReport
from tests.fakes.peer import Peer
from tests.multiproc.daemon import wait_until
from venus import vebus
from workers.runtime import main

VEBUS = "com.victronenergy.vebus.test"
OUR_BATTERY = "com.victronenergy.battery.test"
SHUNT = "com.victronenergy.battery.ttyS5"
OTHER_SHUNT = "com.victronenergy.battery.ttyS6"
SETTINGS = "com.victronenergy.settings"
DEVICE = "/Settings/Devices/pylonvenus_test"
FLOAT_SETTING = "/Settings/PylonVenus/charge/float_voltage_v"
BOL = "/BatteryOperationalLimits/"
READING = {"/Dc/0/Voltage": 52.0, "/Dc/0/Current": 12.5, "/Soc": 75.0, "/Dc/0/Temperature": 21.0}
_segments = itertools.count()




@pytest.fixture(scope="module")
def bus():
    daemon = PrivateDbus()
    yield daemon
    daemon.stop()


@pytest.fixture
def peer(bus):
    peer = Peer(bus.address)
    yield peer
    peer.stop()


class Publisher:
    """The worker in its own process, on the private bus, with a shared-memory segment of its own."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.state = SharedState.create("venus-test-%d-%d" % (os.getpid(), next(_segments)))
        self.process = None

    def start(self) -> "Publisher":
        self.process = multiprocessing.get_context("fork").Process(
            target=main, args=("dbus_publisher", self.cfg, self.state.path))
        self.process.start()
        return self

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(5)

    def stop(self) -> int:
        self.process.terminate()
        self.process.join(10)
        return self.process.exitcode

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.kill()
        self.state.close()
        self.state.unlink()

    def slot(self, name: str):
        return self.state.read(name) or {}


@pytest.fixture
def publisher(bus, tmp_path, monkeypatch):
    """``publisher(section={...})``: a configured, not yet started worker; stopped after the test."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    made = []

    def make(**sections):
        merged = {"battery": {"source": "dbus", "service": ""},
                  "venus": {"service_suffix": "test", "energy_file": str(tmp_path / "energy.json"),
                            "dvcc_file": str(tmp_path / "dvcc-limits.json"),
                            "energy_save_interval_s": 0.2},
                  "dbus": {"refresh_s": 1.0}}
        for section, keys in sections.items():
            merged.setdefault(section, {}).update(keys)
        made.append(Publisher(config.load().replace(**merged)))
        return made[-1]

    yield make
    for worker in made:
        worker.close()


def vebus_view(peer, name=VEBUS):
    view = peer.view(name=name)
    return view if view["present"] else None


def set_value(peer, path, value, name=VEBUS):
    return peer.call(name=name, path=path, method="SetValue", args=[value])["result"]


def report(**changes) -> dict:
    """A BatteryReport as bms_tx puts it in the frames slot."""
    fields = BatteryReport(charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0,
                           discharge_voltage_v=48.0, soc_pct=75.0, soh_pct=100.0, voltage_v=52.0, current_a=12.5,
                           temperature_c=21.0, charge_enable=True, discharge_enable=True)._replace(**changes)._asdict()
    fields["protection"], fields["alarm"] = sorted(fields["protection"]), sorted(fields["alarm"])
    return fields


# ---- registration and identity ----------------------------------------------------------------

def test_the_vebus_service_is_complete_before_its_name_appears(peer, publisher):
    peer.localsettings()
    taken = peer.call(name=SETTINGS, path="/", method="AddSettings", interface="com.victronenergy.Settings",
                      signature="aa{sv}", args=[[{"path": "/Settings/Devices/mk2_ttyO1/ClassAndVrmInstance",
                                                  "default": "vebus:276"}]])["result"]
    assert taken == [{"path": "/Settings/Devices/mk2_ttyO1/ClassAndVrmInstance", "error": 0, "value": "vebus:276"}]
    peer.watch(name=VEBUS)
    publisher().start()
    view = wait_until(lambda: vebus_view(peer), "the vebus service")
    first_sight = view["first_scans"][0]
    items = peer.call(name=VEBUS, path="/", method="GetItems")["result"]
    assert first_sight == sorted(items), "GetItems at the first NameOwnerChanged missed paths"
    values = view["values"]
    assert values["/DeviceInstance"] == 277                              # 276 was taken: the next free one
    assert values["/ProductName"] == "Inverter (Pylon CAN)" and values["/ProductId"] == 0xBA50
    assert values["/FirmwareVersion"] >= 0x422 and values["/Mgmt/ProcessName"] == "pylon-venus"
    assert values["/Mode"] == 3 and values["/ModeIsAdjustable"] == 1
    assert not [path for path in first_sight if path.startswith(("/Interfaces/Mk2", "/Hub4", "/Devices"))]
    assert {BOL + name for name in ("MaxChargeVoltage", "MaxChargeCurrent", "MaxDischargeCurrent",
                                    "BatteryLowVoltage")} <= set(first_sight)
    assert peer.call(name=VEBUS, path="/ProductId", method="GetText")["result"] == "0xBA50"
    assert peer.call(name=VEBUS, path="/State", method="GetText")["result"] == "---"
    assert peer.call(name=VEBUS, path="/Mode", method="GetDescription", signature="si",
                     args=["en", 0])["result"] == "No description given"
    tree = peer.call(name=VEBUS, path="/Dc/0", method="GetValue")["result"]
    assert set(tree) == {"Voltage", "Current", "Power", "Temperature", "MaxChargeCurrent"}
    # our runtime settings now exist in localsettings with the config default and the SCHEMA range
    for method, expected in (("GetValue", 53.6), ("GetMin", 16 * 2.8), ("GetMax", 16 * 3.65), ("GetDefault", 53.6)):
        assert peer.call(name=SETTINGS, path=FLOAT_SETTING, method=method)["result"] == expected


def test_the_service_leaves_the_bus_on_sigterm_and_returns_with_the_same_instance(peer, publisher):
    peer.localsettings()
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    assert worker.stop() == 0
    wait_until(lambda: not peer.view(name=VEBUS)["present"], "the name to leave")
    worker.start()
    view = wait_until(lambda: vebus_view(peer), "the vebus service again")
    assert view["values"]["/DeviceInstance"] == 276
    assert len(view["first_scans"]) == 2


# ---- the battery monitor ----------------------------------------------------------------------

def test_invalid_values_stay_invalid_and_zero_stays_zero(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values={"/Dc/0/Voltage": 52.0, "/Dc/0/Current": 0.0, "/Soc": 75.0})
    peer.watch(name=VEBUS)
    worker = publisher().start()
    view = wait_until(lambda: (vebus_view(peer) or {}).get("values", {}).get("/Dc/0/Voltage") == 52.0
                      and vebus_view(peer), "the battery voltage on the vebus service")
    battery = worker.slot("battery")
    assert battery["service"] == SHUNT and battery["current_a"] == 0.0 and battery["temperature_c"] is None
    kinds, values = view["kinds"], view["values"]
    assert (kinds["/Dc/0/Current"], values["/Dc/0/Current"]) == ("d", 0.0)
    for path in ("/Dc/0/Temperature", "/Ac/Out/P", "/Ac/ActiveIn/L1/V", "/Ac/NumberOfPhases",
                 "/Energy/InverterToAcOut", "/State"):
        assert kinds[path] == "ai:0" and values[path] is None and view["texts"][path] == "---", path
    peer.set(name=SHUNT, values={"/Dc/0/Temperature": 0.0})
    wait_until(lambda: worker.slot("battery").get("temperature_c") == 0.0, "a real 0 degC in the battery slot")
    wait_until(lambda: peer.view(name=VEBUS)["kinds"].get("/Dc/0/Temperature") == "d", "0 degC on the vebus")


def test_the_system_choice_wins_then_the_lowest_instance(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    peer.shunt(name=OTHER_SHUNT, instance=513, values=dict(READING, **{"/Dc/0/Voltage": 51.0}))
    worker = publisher().start()
    wait_until(lambda: worker.slot("battery").get("service") == SHUNT, "the lowest instance to be followed")
    peer.system(active="com.victronenergy.battery/513", service=OTHER_SHUNT)
    wait_until(lambda: worker.slot("battery").get("voltage_v") == 51.0, "the system's choice to be followed")
    peer.set(name=OTHER_SHUNT, values={"/Dc/0/Voltage": 50.5, "/Soc": 70.0}, batch=True)     # ItemsChanged
    wait_until(lambda: worker.slot("battery").get("voltage_v") == 50.5, "a batched change")
    assert worker.slot("battery")["soc_pct"] == 70.0
    peer.set(name="com.victronenergy.system", values={"/ActiveBatteryService": "com.victronenergy.vebus/276"})
    wait_until(lambda: worker.slot("battery").get("service") == SHUNT, "a vebus choice to be ignored")


def test_the_configured_service_is_followed_when_the_system_names_none(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    peer.shunt(name=OTHER_SHUNT, instance=513, values=dict(READING, **{"/Dc/0/Voltage": 51.0}))
    worker = publisher(battery={"service": OTHER_SHUNT}).start()
    wait_until(lambda: worker.slot("battery").get("voltage_v") == 51.0, "the configured service")


def test_a_monitor_lost_and_regained(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: worker.slot("battery").get("voltage_v") == 52.0, "the first reading")
    wait_until(lambda: (vebus_view(peer) or {}).get("values", {}).get("/Dc/0/Voltage") == 52.0, "the vebus")
    peer.close(name=SHUNT)
    lost = wait_until(lambda: worker.slot("battery").get("service") is None and worker.slot("battery"),
                      "the monitor to be given up")
    assert lost["voltage_v"] is None and lost["soc_pct"] is None               # missing, not zero
    updated = lost["updated"]
    wait_until(lambda: peer.view(name=VEBUS)["kinds"].get("/Dc/0/Voltage") == "ai:0", "the vebus to go invalid")
    time.sleep(1.5)
    assert worker.slot("battery")["updated"] == updated                        # the age keeps growing
    peer.shunt(name=SHUNT, instance=512, values=dict(READING, **{"/Dc/0/Voltage": 52.4}))
    back = wait_until(lambda: worker.slot("battery").get("voltage_v") == 52.4 and worker.slot("battery"),
                      "the monitor to be followed again")
    assert back["service"] == SHUNT and back["updated"] > updated


def test_a_restarted_worker_keeps_the_reading_and_its_age(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    worker = publisher().start()
    before = wait_until(lambda: worker.slot("battery").get("updated") and worker.slot("battery"), "a reading")
    assert worker.stop() == 0
    worker.start()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:                  # never "no data" while the same monitor is chosen again
        slot = worker.slot("battery")
        assert slot["service"] == SHUNT and slot["voltage_v"] == 52.0 and slot["updated"] >= before["updated"]
        time.sleep(0.02)
    assert worker.slot("battery")["updated"] > before["updated"]


def test_a_monitor_older_than_getitems_is_read_through_its_tree(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING), get_items=False)
    worker = publisher().start()
    wait_until(lambda: worker.slot("battery").get("voltage_v") == 52.0, "the first reading")
    assert worker.slot("battery")["temperature_c"] == 21.0
    peer.set(name=SHUNT, values={"/Dc/0/Voltage": 52.2})                      # PropertiesChanged
    wait_until(lambda: worker.slot("battery").get("voltage_v") == 52.2, "a change")


def test_a_silent_monitor_is_reread_so_steady_values_stay_fresh(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    worker = publisher(dbus={"refresh_s": 0.5}).start()
    first = wait_until(lambda: worker.slot("battery").get("updated"), "the first reading")
    wait_until(lambda: worker.slot("battery")["updated"] > first + 1.0, "a re-read of the unchanged monitor")


def test_the_worker_reads_the_simulators_battery_service(peer, publisher):
    name = "com.victronenergy.battery.simulated"
    peer.simulated_battery(name=name)
    peer.simulated_update(name=name, voltage_v=53.1, current_a=-8.0, soc_pct=64.0, temperature_c=19.5,
                          cell_min_v=3.30, cell_max_v=3.33)
    worker = publisher(battery={"source": "simulated"}).start()
    battery = wait_until(lambda: worker.slot("battery").get("cell_max_v") == 3.33 and worker.slot("battery"),
                         "the simulated battery")
    assert battery["service"] == name and battery["current_a"] == -8.0 and battery["cell_min_v"] == 3.30
    peer.simulated_update(name=name, voltage_v=53.2, current_a=-8.0, soc_pct=64.0)
    battery = wait_until(lambda: worker.slot("battery").get("voltage_v") == 53.2 and worker.slot("battery"),
                         "the next step")
    assert battery["temperature_c"] is None                                   # gone, not held at 19.5
    assert set_value(peer, "/Dc/0/Voltage", 1.0, name=name) == 1             # a monitor is not writeable


# ---- what bms_tx and can_rx wrote, on the vebus service ------------------------------------------

def test_state_and_alarms_follow_the_decision_and_the_link(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    peer.watch(name=VEBUS)
    worker = publisher().start()
    worker.state.write("inverter", {"link": "up", "last_seen_age_s": 0.2, "fields": {}})
    worker.state.write("frames", {"report": report(alarm=frozenset({"low_voltage"})), "phase": "absorption",
                                  "reasons": {}, "freshness": "fresh"})
    values = lambda: (vebus_view(peer) or {}).get("values", {})  # noqa: E731
    wait_until(lambda: values().get("/State") == 4, "absorption")
    assert values()["/VebusChargeState"] == 2 and values()["/Alarms/LowBattery"] == 1
    assert values()["/Alarms/HighDcVoltage"] == 0 and values()["/Connected"] == 1
    worker.state.write("inverter", {"link": "down", "last_seen_age_s": 30.0, "fields": {}})
    wait_until(lambda: values().get("/State") == 0 and values().get("/Connected") == 0, "off while the link is down")


def test_sunny_island_ac_values_go_invalid_with_the_link(peer, publisher):
    peer.watch(name=VEBUS)
    worker = publisher(inverter={"profile": "sma_si", "keepalive_timeout_s": 10.0}).start()
    fields = {"ac_in_power_w": 500.0, "ac_out_power_w": 3000.0, "ac_out_l1_voltage_v": 230.0,
              "ac_out_frequency_hz": 50.0, "ac_in_relay_closed": True, "ac_in_voltage_valid": True}
    worker.state.write("inverter", {"link": "up", "last_seen_age_s": 0.2, "fields": fields})
    values = lambda: (vebus_view(peer) or {}).get("values", {})  # noqa: E731
    wait_until(lambda: values().get("/Ac/Out/P") == 3000.0, "the SI's AC values")
    worker.state.write("inverter", {"link": "down", "last_seen_age_s": 30.0, "fields": fields})
    wait_until(lambda: values().get("/Connected") == 0, "the link down")
    time.sleep(1.5)
    stale = {path: values()[path] for path in vebus.AC_PATHS if values()[path] is not None}
    assert stale == {}, "the silent SI's values are still published: %r" % stale


def test_periodic_work_failing_every_second_ends_the_worker_and_its_heartbeat(peer, publisher):
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    wait_until(lambda: worker.slot("heartbeat.dbus_publisher"), "the first heartbeat")
    worker.state.write("frames", {"report": report(), "phase": ["not", "a", "phase"]})    # every refresh raises
    broken = time.monotonic()
    worker.process.join(10)
    assert worker.process.exitcode == 1, "the worker kept running while its work failed every second"
    assert time.monotonic() - broken < 6.0
    assert worker.slot("heartbeat.dbus_publisher")["t"] < broken + 4.0
    worker.state.write("frames", {"report": report(), "phase": "bulk"})
    worker.start()                                                      # as the supervisor restarts it
    wait_until(lambda: (vebus_view(peer) or {}).get("values", {}).get("/VebusChargeState") == 1, "bulk")
    time.sleep(1.5)
    assert worker.process.is_alive()


# ---- DVCC, mode, bad writes -------------------------------------------------------------------

def test_dvcc_limits_and_the_mode_reach_the_shared_memory(peer, publisher):
    peer.localsettings()
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    for name, value in (("MaxChargeVoltage", 55.0), ("MaxChargeCurrent", 42.0), ("MaxDischargeCurrent", 80.0),
                        ("BatteryLowVoltage", 46.0)):
        assert set_value(peer, BOL + name, value) == 0
    expected = {"max_charge_voltage_v": 55.0, "max_charge_current_a": 42.0, "max_discharge_current_a": 80.0,
                "battery_low_voltage_v": 46.0, "mode": 3, "settings": {}}
    wait_until(lambda: {key: worker.slot("dvcc").get(key) for key in expected} == expected, "the DVCC limits")
    assert peer.view(name=VEBUS)["values"][BOL + "MaxChargeCurrent"] == 42.0     # signalled to consumers
    assert set_value(peer, "/Dc/0/MaxChargeCurrent", 30) == 0                     # the user's limit, lower
    wait_until(lambda: worker.slot("dvcc").get("max_charge_current_a") == 30.0, "the user's charge limit")
    assert set_value(peer, "/Dc/0/MaxChargeCurrent", 10000.0) == 0                # "unlimited"
    wait_until(lambda: worker.slot("dvcc").get("max_charge_current_a") == 42.0, "the DVCC limit again")
    assert set_value(peer, BOL + "MaxChargeVoltage", None) == 0                   # invalid: no limit
    wait_until(lambda: worker.slot("dvcc").get("max_charge_voltage_v", 0) is None, "no charge voltage limit")
    assert set_value(peer, "/Mode", 1) == 0                                       # charger only
    wait_until(lambda: worker.slot("dvcc").get("max_discharge_current_a") == 0.0, "no discharge in charger mode")
    assert worker.slot("dvcc")["mode"] == 1
    wait_until(lambda: peer.call(name=SETTINGS, path=DEVICE + "/Mode", method="GetValue")["result"] == 1,
               "the mode stored in localsettings")
    assert set_value(peer, "/Mode", 3) == 0
    wait_until(lambda: worker.slot("dvcc").get("max_discharge_current_a") == 80.0, "discharge allowed again")


def test_bad_writes_are_refused_with_the_busitem_codes(peer, publisher):
    peer.localsettings()
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    wait_until(lambda: worker.slot("dvcc"), "the first dvcc slot")
    before = worker.slot("dvcc")
    assert set_value(peer, "/Dc/0/Voltage", 1.0) == 1                       # not writeable
    assert set_value(peer, BOL + "MaxChargeCurrent", "lots") == 1           # not a number
    assert set_value(peer, BOL + "MaxChargeCurrent", -5.0) == 2             # refused by the check
    assert set_value(peer, BOL + "MaxChargeVoltage", 2000.0) == 2
    assert set_value(peer, "/Mode", 7) == 2                                 # no such mode
    assert set_value(peer, "/Mode", "on") == 1
    # localsettings' own bounds refuse an out-of-range setting: -1, nothing changes
    assert set_value(peer, FLOAT_SETTING, 99.0, name=SETTINGS) == -1
    assert set_value(peer, FLOAT_SETTING, "53", name=SETTINGS) == -1
    time.sleep(1.5)
    assert worker.slot("dvcc") == before
    assert peer.view(name=VEBUS)["values"][BOL + "MaxChargeCurrent"] is None


def test_writes_of_the_wrong_type_are_refused_and_change_nothing(peer, publisher):
    peer.localsettings()
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    assert set_value(peer, BOL + "MaxChargeCurrent", 42.0) == 0
    wait_until(lambda: worker.slot("dvcc").get("max_charge_current_a") == 42.0, "the first limit")
    before = worker.slot("dvcc")
    assert set_value(peer, BOL + "MaxChargeCurrent", True) == 1             # a boolean is no current
    assert set_value(peer, BOL + "MaxChargeVoltage", True) == 1
    assert set_value(peer, "/Mode", True) == 1                              # nor a mode
    assert set_value(peer, "/Mode", 3.9) == 1                               # never truncated to 3
    assert set_value(peer, "/Mode", 1.0e300) == 2                           # integral, but no mode
    assert set_value(peer, "/Mode", float("inf")) == 1                      # no OverflowError over D-Bus
    assert set_value(peer, "/Mode", float("nan")) == 1
    assert set_value(peer, "/CustomName", 5) == 1                           # not turned into "5"
    assert set_value(peer, "/CustomName", None) == 2
    time.sleep(1.5)
    assert worker.slot("dvcc") == before
    values = peer.view(name=VEBUS)["values"]
    assert values["/Mode"] == 3 and values[BOL + "MaxChargeCurrent"] == 42.0 and values["/CustomName"] == ""
    assert values[BOL + "MaxChargeVoltage"] is None
    assert set_value(peer, "/Mode", 1.0) == 0                               # an integral double is the int
    wait_until(lambda: worker.slot("dvcc").get("mode") == 1, "mode 1")
    assert set_value(peer, BOL + "MaxDischargeCurrent", -0.0) == 0          # stored and published as 0.0
    wait_until(lambda: peer.view(name=VEBUS)["values"].get(BOL + "MaxDischargeCurrent") == 0.0, "a zero limit")
    assert math.copysign(1.0, peer.view(name=VEBUS)["values"][BOL + "MaxDischargeCurrent"]) == 1.0
    assert math.copysign(1.0, worker.slot("dvcc")["written"][BOL + "MaxDischargeCurrent"]) == 1.0


def test_a_profile_that_ignores_zero_limits_refuses_mode_writes(peer, publisher):
    peer.watch(name=VEBUS)
    publisher(inverter={"profile": "deye", "keepalive_timeout_s": 10.0}).start()
    view = wait_until(lambda: vebus_view(peer), "the vebus service")
    assert view["values"]["/ModeIsAdjustable"] == 0 and view["values"]["/Mode"] == 3
    assert set_value(peer, "/Mode", 1) == 1


def test_dvcc_limits_expire_unless_rewritten(peer, publisher):
    peer.watch(name=VEBUS)
    worker = publisher(dbus={"dvcc_timeout_s": 2.5}).start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    for _ in range(8):                                                      # DVCC rewrites the same value
        assert set_value(peer, BOL + "MaxChargeCurrent", 42.0) == 0
        time.sleep(0.5)
        assert worker.slot("dvcc")["max_charge_current_a"] == 42.0
    stopped = time.monotonic()
    wait_until(lambda: worker.slot("dvcc").get("max_charge_current_a", 0) is None, "the limit to expire", 6.0)
    assert time.monotonic() - stopped >= 2.0


def test_a_restarted_worker_does_not_renew_an_old_limit(peer, publisher):
    peer.watch(name=VEBUS)
    worker = publisher(dbus={"dvcc_timeout_s": 5.0})
    stale, fresh = BOL + "MaxChargeCurrent", BOL + "MaxDischargeCurrent"
    worker.state.write("dvcc", {"written": {stale: 42.0, fresh: 80.0},       # what a crashed worker left
                                "written_at": {stale: time.monotonic() - 100.0, fresh: time.monotonic() - 1.0}})
    worker.start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    slot = wait_until(lambda: "mode" in worker.slot("dvcc") and worker.slot("dvcc"), "the first dvcc slot")
    assert slot["max_charge_current_a"] is None, "a limit DVCC wrote 100 s ago was taken as current"
    assert slot["max_discharge_current_a"] == 80.0
    wait_until(lambda: worker.slot("dvcc").get("max_discharge_current_a", 0) is None, "the other to expire", 8.0)


def test_a_restarted_daemon_takes_the_limits_file_with_each_limits_age(peer, publisher, tmp_path):
    """Fresh shared memory (a daemon restart): the limits come from venus.dvcc_file, in the dvcc
    slot before any battery reading, each only for what is left of its lease."""
    charge, discharge = BOL + "MaxChargeCurrent", BOL + "MaxDischargeCurrent"
    (tmp_path / "dvcc-limits.json").write_text(json.dumps({"mode": 1, "limits": {
        charge: [30.0, time.time() - 1.0], discharge: [80.0, time.time() - 100.0],
        "/Dc/0/MaxChargeCurrent": [25.0, time.time() - 2.0]}}))
    worker = publisher(dbus={"dvcc_timeout_s": 5.0}).start()
    slot = wait_until(lambda: worker.slot("dvcc"), "the restored dvcc slot")
    assert slot["max_charge_current_a"] == 25.0 and slot["user_max_charge_current_a"] == 25.0
    assert slot["max_discharge_current_a"] == 0.0 and slot["mode"] == 1       # charger only, as before
    peer.watch(name=VEBUS)
    wait_until(lambda: vebus_view(peer), "the vebus service")
    values = lambda: peer.view(name=VEBUS)["values"]  # noqa: E731
    assert values()[charge] == 30.0 and values()["/Dc/0/MaxChargeCurrent"] == 25.0
    wait_until(lambda: values()[discharge] is None, "the limit written 100 s ago to be withdrawn")
    wait_until(lambda: values()[charge] is None and values()["/Dc/0/MaxChargeCurrent"] == 10000.0,
               "the others to expire", 8.0)
    assert worker.slot("dvcc")["expired"] == ["max_charge_current_a", "max_discharge_current_a",
                                              "user_max_charge_current_a"]
    assert values()["/VebusMainState"] is None


def test_an_unreadable_limits_file_is_set_aside_and_the_worker_starts(peer, publisher, tmp_path):
    (tmp_path / "dvcc-limits.json").write_text('{"limits": {"/Dc/0/Voltage": [1.0, 0]}}')
    peer.watch(name=VEBUS)
    publisher().start()
    view = wait_until(lambda: vebus_view(peer), "the vebus service")
    assert view["values"][BOL + "MaxChargeCurrent"] is None and view["values"]["/Dc/0/MaxChargeCurrent"] == 10000.0
    assert (tmp_path / "dvcc-limits.json.unreadable").exists()


# ---- settings ------------------------------------------------------------------------------------

def test_settings_change_live_and_are_kept_by_localsettings(peer, publisher):
    peer.localsettings()
    peer.watch(name=VEBUS)
    worker = publisher().start()
    wait_until(lambda: vebus_view(peer), "the vebus service")
    assert set_value(peer, FLOAT_SETTING, 53.4, name=SETTINGS) == 0
    wait_until(lambda: worker.slot("dvcc").get("settings") == {"charge.float_voltage_v": 53.4}, "the new setting")
    assert set_value(peer, "/Settings/PylonVenus/limits/max_charge_current_a", 80, name=SETTINGS) == 0
    wait_until(lambda: worker.slot("dvcc").get("settings") == {"charge.float_voltage_v": 53.4,
                                                               "limits.max_charge_current_a": 80.0}, "an int write")
    assert worker.stop() == 0
    wait_until(lambda: not peer.view(name=VEBUS)["present"], "the name to leave")
    worker.state.write("dvcc", {})
    worker.start()                                   # AddSettings again: the values in force are kept
    wait_until(lambda: worker.slot("dvcc").get("settings") == {"charge.float_voltage_v": 53.4,
                                                               "limits.max_charge_current_a": 80.0}, "kept settings")
    assert set_value(peer, "/CustomName", "Shed inverter") == 0
    wait_until(lambda: peer.call(name=SETTINGS, path=DEVICE + "/CustomName", method="GetValue")["result"]
               == "Shed inverter", "the custom name in localsettings")


# ---- energy counters -------------------------------------------------------------------------

def test_energy_counters_survive_kill_9_and_never_decrease(peer, publisher, tmp_path):
    peer.watch(name=VEBUS)
    worker = publisher(inverter={"profile": "sma_si", "keepalive_timeout_s": 10.0}).start()
    worker.state.write("inverter", {"link": "up", "last_seen_age_s": 0.3, "fields": {
        "ac_in_power_w": 0.0, "ac_out_power_w": 36000.0, "ac_out_l1_voltage_v": 230.0,
        "ac_out_frequency_hz": 50.0, "ac_in_relay_closed": False}})
    path = "/Energy/InverterToAcOut"
    seen = wait_until(lambda: ((vebus_view(peer) or {}).get("values", {}).get(path) or 0) > 0.02
                      and peer.view(name=VEBUS)["values"][path], "energy to be counted")
    view = peer.view(name=VEBUS)
    assert view["values"]["/Ac/Out/P"] == 36000.0 and view["values"]["/Ac/ActiveIn/P"] == 0.0
    assert view["kinds"]["/Ac/ActiveIn/P"] == "d" and view["values"]["/Ac/ActiveIn/ActiveInput"] == 240
    assert (view["kinds"]["/Energy/AcIn1ToAcOut"], view["values"]["/Energy/AcIn1ToAcOut"]) == ("d", 0.0)  # measured
    assert view["kinds"]["/Energy/AcIn2ToAcOut"] == "ai:0"                # the SI has no second input: invalid
    worker.kill()
    persisted = json.load(open(str(tmp_path / "energy.json")))["kwh"]["InverterToAcOut"]
    highest_seen = max(peer.view(name=VEBUS)["history"][path][1:])
    assert persisted >= highest_seen >= seen
    wait_until(lambda: not peer.view(name=VEBUS)["present"], "the killed worker's name to go")
    worker.start()
    wait_until(lambda: (vebus_view(peer) or {}).get("values", {}).get(path, 0) > persisted, "counting on")
    history = [value for value in peer.view(name=VEBUS)["history"][path] if value is not None]
    assert history == sorted(history), "an energy counter went down: %r" % history


# ---- our decision as a battery service -----------------------------------------------------------

def test_the_bms_battery_service_publishes_the_decision_before_dvcc(peer, publisher):
    peer.shunt(name=SHUNT, instance=512, values=dict(READING))
    peer.watch(name=OUR_BATTERY)
    worker = publisher(venus={"bms_service": True}).start()
    view = wait_until(lambda: vebus_view(peer, OUR_BATTERY), "our battery service")
    assert view["values"]["/DeviceInstance"] == 276 and view["kinds"]["/Info/MaxChargeVoltage"] == "ai:0"
    wait_until(lambda: worker.slot("battery").get("service") == SHUNT, "the shunt, not our own service")
    decision = report(charge_current_a=90.0, alarm=frozenset({"low_voltage"}))
    worker.state.write("frames", {"report": report(charge_current_a=30.0), "decision": decision,
                                  "phase": "bulk", "reasons": {}, "freshness": "fresh"})
    values = lambda: peer.view(name=OUR_BATTERY)["values"]  # noqa: E731
    wait_until(lambda: values().get("/Info/MaxChargeCurrent") == 90.0, "the decision before DVCC")
    assert values()["/Info/MaxChargeVoltage"] == 55.2 and values()["/Info/BatteryLowVoltage"] == 48.0
    assert values()["/Io/AllowToCharge"] == 1 and values()["/Alarms/LowVoltage"] == 1
    assert values()["/Alarms/HighVoltage"] == 0 and values()["/Dc/0/Voltage"] == 52.0
    assert worker.slot("battery")["service"] == SHUNT
