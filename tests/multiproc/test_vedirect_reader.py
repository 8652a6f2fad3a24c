"""The VE.Direct reader against an emulated monitor on a pseudo-terminal: the "battery" slot is
filled exactly, bad blocks never reach it, and an unplugged port ages the data, then is reopened."""
import logging
import os
import threading
import time
import types

import pytest

import config
from ipc.shared_state import SharedState
from tests.fakes.vedirect_device import VeDirectDevice
from tests.multiproc.daemon import wait_until
from workers.battery_reader import VeDirectReader
from workers.bms_tx import read_snapshot




@pytest.fixture
def reader(tmp_path):
    link = str(tmp_path / "ttyVE")
    device = VeDirectDevice(link).plug()
    state = SharedState.create("vedirect-test-%d" % os.getpid())
    cfg = config.load().replace(battery={"source": "vedirect"}, vedirect={"port": link, "reopen_s": 0.1})
    stopping = threading.Event()
    worker = types.SimpleNamespace(cfg=cfg, state=state, log=logging.getLogger("test.vedirect"),
                                   stopping=stopping, beat=lambda **info: None, wait=stopping.wait)
    thread = threading.Thread(target=VeDirectReader(worker).run, daemon=True)
    thread.start()
    yield device, state
    stopping.set()
    thread.join(5)
    assert not thread.is_alive()
    if os.path.lexists(link):
        device.unplug()
    state.close()
    state.unlink()


def slot(state):
    return state.read("battery") or {}


def test_the_slot_holds_the_monitors_values_exactly(reader):
    device, state = reader
    battery = wait_until(lambda: slot(state).get("updated") and slot(state), what="a reading")
    assert (battery["voltage_v"], battery["current_a"], battery["soc_pct"], battery["temperature_c"]) \
        == (53.12, -12.345, 82.7, 21.0)
    assert battery["cell_min_v"] is None and battery["port_open"] is True
    history = wait_until(lambda: slot(state).get("history"), what="a history block")
    assert history == {"charge_cycles": 12.0, "since_full_charge_s": 3600.0,
                                  "discharged_energy_kwh": 15.63, "charged_energy_kwh": 20.95}
    wait_until(lambda: slot(state)["counters"]["hex_frames"] >= 1, what="a HEX frame skipped")
    snapshot = read_snapshot(state, time.monotonic())
    assert snapshot.voltage_v == 53.12 and snapshot.soc_pct == 82.7 and snapshot.age_s < 1.0


def test_a_block_with_a_bad_checksum_is_dropped_and_counted(reader):
    device, state = reader
    wait_until(lambda: slot(state).get("updated"), what="a reading")
    with device.lock:
        device.values["V"] = 99999          # would be 99.999 V if a bad block were ever used
        device.bad_blocks = 5
    wait_until(lambda: slot(state)["counters"]["bad_checksum"] >= 5, what="five bad blocks counted")
    assert slot(state)["voltage_v"] == 53.12
    with device.lock:
        device.values["V"] = 53500
    wait_until(lambda: slot(state)["voltage_v"] == 53.5, what="the next good block")


def test_an_unplugged_port_ages_the_data_and_is_reopened(reader):
    device, state = reader
    wait_until(lambda: slot(state).get("updated"), what="a reading")
    device.unplug()
    wait_until(lambda: slot(state)["port_open"] is False, what="the port seen lost")
    lost = slot(state)
    time.sleep(0.5)
    assert slot(state)["updated"] == lost["updated"] and lost["reopens"] == 1
    assert read_snapshot(state, time.monotonic()).age_s >= 0.5          # ages into the stale policy
    with device.lock:
        device.values["SOC"] = 900
    device.plug()
    wait_until(lambda: slot(state)["port_open"] and slot(state)["soc_pct"] == 90.0, what="the port reopened")
    assert slot(state)["updated"] > lost["updated"]


def test_a_reading_without_soc_holds_no_fresh_update(reader):
    """SOC "---" (not synchronised yet): the values are shown, but the reading is not complete."""
    device, state = reader
    first = wait_until(lambda: slot(state).get("updated"), what="a reading")
    with device.lock:
        device.values["SOC"] = "---"
    wait_until(lambda: slot(state)["soc_pct"] is None, what="SOC missing")
    time.sleep(0.3)
    assert slot(state)["updated"] - first < 0.5


def test_a_missing_port_does_not_stop_the_heartbeat(tmp_path):
    """reopen_s may be long; the supervisor must still see the worker's loop alive. A restarted
    worker keeps the last reading of its port with its true age."""
    state = SharedState.create("vedirect-beat-%d" % os.getpid())
    previous = {"voltage_v": 52.0, "current_a": 1.0, "soc_pct": 70.0, "temperature_c": None, "cell_min_v": None,
                "cell_max_v": None, "service": "vedirect:%s" % (tmp_path / "absent"), "updated": 5.0}
    state.write("battery", previous)
    cfg = config.load().replace(battery={"source": "vedirect"},
                                vedirect={"port": str(tmp_path / "absent"), "reopen_s": 30.0})
    stopping, beats = threading.Event(), []
    worker = types.SimpleNamespace(cfg=cfg, state=state, log=logging.getLogger("test.vedirect"),
                                   stopping=stopping, beat=lambda **info: beats.append(time.monotonic()),
                                   wait=stopping.wait)
    thread = threading.Thread(target=VeDirectReader(worker).run, daemon=True)
    thread.start()
    try:
        time.sleep(2.0)
        assert len(beats) >= 3 and max(b - a for a, b in zip(beats, beats[1:])) <= 1.0, beats
        assert slot(state)["port_open"] is False
        assert {key: slot(state)[key] for key in previous} == previous
    finally:
        stopping.set()
        thread.join(5)
        state.close()
        state.unlink()
