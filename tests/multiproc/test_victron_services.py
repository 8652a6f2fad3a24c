"""Venus as an owner sets it up, against Victron's own localsettings and dbus-systemcalc-py.

One set of services for the module, on a private dbus-daemon (both DBUS_SESSION_BUS_ADDRESS and
DBUS_SYSTEM_BUS_ADDRESS point at it): localsettings, then systemcalc, then a SmartShunt-like
monitor (the documentation fake, tests/fakes), then the real daemon (`supervisor.py run`, no
simulator: it reads the monitor from this bus) with an inverter sending keep-alives on its
virtual CAN bus. Judged on the D-Bus values systemcalc and our services publish and on the
frames the daemon sends. Skipped, with the reason, where ``../shared/peers/victron`` is absent.
"""
import time

import can
import pytest

import config
from tests.multiproc.daemon import Daemon, wait_until
from tests.multiproc.victron import absent, private_venus

ABSENT = absent()
pytestmark = pytest.mark.skipif(bool(ABSENT), reason=ABSENT)

VEBUS = "com.victronenergy.vebus.pylonvenus"
OUR_BATTERY = "com.victronenergy.battery.pylonvenus"
SHUNT = "com.victronenergy.battery.ttyS5"
BOL = "/BatteryOperationalLimits/"
MONITOR = {"/Dc/0/Voltage": 52.8, "/Dc/0/Current": 10.0, "/Dc/0/Power": 528.0, "/Dc/0/Temperature": 22.0,
           "/Soc": 60.0, "/ConsumedAmphours": -112.0, "/TimeToGo": 86400.0,
           "/System/MinCellVoltage": 3.29, "/System/MaxCellVoltage": 3.31}
DVCC_TIMEOUT_S = 8.0
USER_LIMIT_A = 30.0




@pytest.fixture(scope="module")
def venus(tmp_path_factory):
    """localsettings, systemcalc and the monitor, in that order, once for the module."""
    with private_venus(str(tmp_path_factory.mktemp("victron")), SHUNT, MONITOR) as venus:
        yield venus.services


@pytest.fixture
def owner(venus):
    """The owner's settings: DVCC on, no user limits, automatic monitor and BMS; put back after the test."""
    def configure(dvcc=1, user_limit_a=-1, monitor="default", bms_instance=-1):
        venus.setting("/Settings/Services/Bol", dvcc)
        venus.setting("/Settings/SystemSetup/MaxChargeCurrent", user_limit_a)
        venus.setting("/Settings/SystemSetup/BatteryService", monitor)
        venus.setting("/Settings/SystemSetup/BmsInstance", bms_instance)
    configure()
    yield configure
    if not venus.alive("systemcalc"):
        venus.start_systemcalc()
    configure()


@pytest.fixture
def daemon(venus, tmp_path):
    """``daemon(name, **overrides)``: the real daemon on the module's bus, no simulator, an
    inverter sending 0x305 keep-alives on its virtual CAN bus; stopped after the test."""
    started, inverters = [], []

    def start(name="first", **overrides):
        sections = {"battery": {"source": "dbus"}, "simulation": {"inverter": False},
                    "dbus": {"dvcc_timeout_s": DVCC_TIMEOUT_S, "refresh_s": 2.0},
                    "venus": {"energy_file": str(tmp_path / "energy.json"),
                              "dvcc_file": str(tmp_path / "dvcc-limits.json")},
                    "state": {"charge_file": str(tmp_path / "charge-state.json")}}
        if started:                                     # a restart: the same virtual bus
            cfg = config.load(started[0].config_path)
            sections["can"] = {"udp_port": cfg.can.udp_port, "channel": cfg.can.channel}
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        folder = tmp_path / name
        folder.mkdir()
        instance = Daemon(folder, **sections).start()
        started.append(instance)
        if not inverters:
            cfg = config.load(instance.config_path)
            inverter = can.Bus(interface="udp_multicast", channel=cfg.can.channel, port=cfg.can.udp_port)
            inverters.append((inverter, inverter.send_periodic(
                can.Message(arbitration_id=0x305, data=bytes(8), is_extended_id=False), 1.0)))
        return instance

    yield start
    for instance in started:
        instance.stop()
    for inverter, task in inverters:
        task.stop()
        inverter.shutdown()


def limits(status) -> dict:
    fields = {}
    for frame in status["frames"] or ():
        fields.update(frame.get("fields") or {})
    return fields


def sending(d, what, probe, timeout_s=20.0):
    """Wait until the frame set sent satisfies ``probe(fields)``."""
    return d.wait_for(lambda s: s["frames"] and probe(limits(s)), timeout_s, what)


def value(venus, service, path):
    return venus.peer.call(name=service, path=path, method="GetValue").get("result")


def vebus_selected(venus):
    return wait_until(lambda: venus.system("/VebusService") == VEBUS, "systemcalc to select our vebus")


# ---- 1. the user's charge current limit, with and without our BMS --------------------------------

@pytest.mark.parametrize("bms_service, bms_instance", [(False, -1), (True, -255)],
                         ids=["no-bms-service", "controlling-bms-none"])
def test_the_users_charge_limit_acts_without_our_bms(venus, owner, daemon, bms_service, bms_instance):
    owner(user_limit_a=USER_LIMIT_A, bms_instance=bms_instance)
    d = daemon(venus={"bms_service": bms_service})
    d.wait_sending()
    vebus_selected(venus)
    assert venus.system("/ActiveBmsService") is None
    wait_until(lambda: value(venus, VEBUS, "/Dc/0/MaxChargeCurrent") == USER_LIMIT_A,
               "systemcalc to write the user's limit to /Dc/0/MaxChargeCurrent")
    sending(d, "CCL at the user's limit", lambda f: f["charge_current_a"] <= USER_LIMIT_A)
    assert venus.system("/Control/MaxChargeCurrent") == 1, "the GUI shows the charge current control inactive"
    venus.setting("/Settings/SystemSetup/MaxChargeCurrent", -1)              # "Limit charge current" off
    sending(d, "CCL back to our decision", lambda f: f["charge_current_a"] > USER_LIMIT_A)
    assert value(venus, VEBUS, "/Dc/0/MaxChargeCurrent") == 10000


# ---- 2. the battery monitor: the SmartShunt stays the monitor, we are the BMS ----------------------

@pytest.mark.parametrize("monitor", ["default", "com.victronenergy.battery/512"], ids=["automatic", "explicit"])
def test_the_shunt_stays_the_monitor_and_our_service_is_the_bms(venus, owner, daemon, monitor):
    owner(monitor=monitor)
    d = daemon(venus={"bms_service": True})
    d.wait_sending()
    vebus_selected(venus)
    wait_until(lambda: venus.system("/ActiveBmsService") == OUR_BATTERY, "DVCC to pick our BMS")
    time.sleep(4.0)                                     # systemcalc re-decides on every service change
    assert venus.system("/ActiveBatteryService") == "com.victronenergy.battery/512"
    assert venus.system("/Dc/Battery/TimeToGo") == MONITOR["/TimeToGo"]
    assert venus.system("/Dc/Battery/ConsumedAmphours") == MONITOR["/ConsumedAmphours"]
    wait_until(lambda: value(venus, VEBUS, BOL + "MaxChargeVoltage") is not None, "DVCC's limits on the vebus")
    written = {name: value(venus, VEBUS, BOL + name) for name in ("MaxChargeCurrent", "MaxDischargeCurrent")}
    ours = {name: value(venus, OUR_BATTERY, "/Info/" + name) for name in ("MaxChargeCurrent", "MaxDischargeCurrent")}
    assert written["MaxDischargeCurrent"] == ours["MaxDischargeCurrent"]
    assert written["MaxChargeCurrent"] <= ours["MaxChargeCurrent"]
    assert venus.system("/Control/MaxChargeCurrent") == 1
    wait_until(lambda: value(venus, VEBUS, "/VebusMainState") == 9, "external control", 3)
    wait_until(lambda: venus.system("/SystemState/State") == 252, "the system state 'External control'")


# ---- 5. another BMS in control: its low voltage raises the DVL, its lower CVL is ramped ------------

def test_another_bms_low_voltage_raises_the_dvl_and_its_lower_cvl_goes_through_the_ramp(venus, owner, daemon):
    owner()
    d = daemon(venus={"bms_service": False})
    own = sending(d, "our own decision", lambda f: f["charge_voltage_v"] > 54.5)
    own_cvl, own_dvl = limits(own)["charge_voltage_v"], limits(own)["discharge_voltage_v"]
    vebus_selected(venus)
    other = "com.victronenergy.battery.socketcan_can1"
    venus.peer.shunt(name=other, instance=300, values={
        "/ProductName": "CAN BMS", "/Info/MaxChargeVoltage": 54.0, "/Info/MaxChargeCurrent": 80.0,
        "/Info/MaxDischargeCurrent": 100.0, "/Info/BatteryLowVoltage": own_dvl + 2.0})
    try:
        wait_until(lambda: venus.system("/ActiveBmsService") == other, "DVCC to pick the other BMS")
        status = sending(d, "the other BMS's low voltage as the DVL",
                         lambda f: f["discharge_voltage_v"] == own_dvl + 2.0)
        assert value(venus, VEBUS, BOL + "MaxChargeVoltage") == 54.0
        cvl = limits(status)["charge_voltage_v"]
        assert 54.0 < cvl <= own_cvl, "a lower DVCC CVL reached the inverter as one step: %r" % cvl
        wait_until(lambda: value(venus, VEBUS, "/VebusMainState") == 9, "external control", 3)
    finally:
        venus.peer.close(name=other)


# ---- 3. and 4. expiry, systemcalc gone and back, DVCC off, the daemon restarted -----------------

def test_limits_expire_with_systemcalc_and_return_with_it(venus, owner, daemon):
    owner(user_limit_a=USER_LIMIT_A)
    d = daemon(venus={"bms_service": True})
    d.wait_sending()
    sending(d, "CCL at the user's limit", lambda f: f["charge_current_a"] <= USER_LIMIT_A)
    status = d.wait_for(lambda s: "max_charge_current_a" in (s.get("dvcc") or {}).get("age_s", {}), 20,
                        "DVCC's charge current limit in the status")
    assert status["dvcc"]["limits"]["max_charge_current_a"] == USER_LIMIT_A
    assert status["dvcc"]["expired"] == [] and status["dvcc"]["age_s"]["max_charge_current_a"] < 4.0, status["dvcc"]
    # systemcalc writes the user's limit to /Dc/0/MaxChargeCurrent only until it picks our BMS
    # (then it folds it into the BOL current): whether it got there first is a race
    held = sorted(status["dvcc"]["age_s"])
    venus.kill_systemcalc()
    killed = time.monotonic()
    sending(d, "our own CCL again", lambda f: f["charge_current_a"] > USER_LIMIT_A, DVCC_TIMEOUT_S + 10)
    assert time.monotonic() - killed >= DVCC_TIMEOUT_S - 1.0
    wait_until(lambda: value(venus, VEBUS, BOL + "MaxChargeCurrent") is None, "the expired limit to be withdrawn", 5)
    assert value(venus, VEBUS, BOL + "MaxChargeVoltage") is None             # written before the current
    wait_until(lambda: value(venus, VEBUS, "/Dc/0/MaxChargeCurrent") == 10000, "the user's limit withdrawn", 3)
    wait_until(lambda: value(venus, VEBUS, "/VebusMainState") is None, "no external control", 3)
    status = d.wait_for(lambda s: s["dvcc"]["expired"] == held, 10, "every limit held before to expire in the status")
    assert status["dvcc"]["limits"]["max_charge_current_a"] is None
    assert "expired" in d.log()
    printed = [line for line in d.command("status").stdout.splitlines() if line.strip().startswith("dvcc")]
    assert printed and "expired" in printed[0] and "max_charge_current_a" in printed[0], printed
    venus.start_systemcalc()
    sending(d, "the user's limit again", lambda f: f["charge_current_a"] <= USER_LIMIT_A, 30)
    venus.setting("/Settings/Services/Bol", 0)                               # DVCC off
    sending(d, "our own CCL with DVCC off", lambda f: f["charge_current_a"] > USER_LIMIT_A, DVCC_TIMEOUT_S + 10)
    assert value(venus, VEBUS, BOL + "MaxChargeCurrent") is None


def test_a_restarted_daemon_keeps_the_limit_in_force_from_its_first_frame(venus, owner, daemon):
    owner(user_limit_a=USER_LIMIT_A)
    first = daemon(venus={"bms_service": True})
    first.wait_sending()
    sending(first, "CCL at the user's limit", lambda f: f["charge_current_a"] <= USER_LIMIT_A)
    time.sleep(3.5)                                     # one more DVCC write
    assert first.stop() == 0
    second = daemon("second", venus={"bms_service": True})
    second.wait_sending()
    time.sleep(4.0)
    assert second.stop() == 0                           # the recording is complete once it stopped
    sent = [frame["fields"]["charge_current_a"] for frame in second.frames(0x351)]
    assert sent and max(sent) <= USER_LIMIT_A, "CCL sent after the restart: %r" % sent
