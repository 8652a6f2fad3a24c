"""Shared memory slots: values round-trip, readers never see a torn write, stale segments go."""
import multiprocessing
import os

import pytest

from ipc import shared_state
from ipc.shared_state import SharedState, SlotTooSmall, StateInUse


@pytest.fixture
def shm(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_state, "SHM_DIR", str(tmp_path))
    state = SharedState.create("test")
    yield state
    state.unlink()
    state.close()


def test_read_before_write_is_none_and_values_round_trip(shm):
    assert shm.read("battery") is None
    shm.write("battery", {"voltage_v": 52.1, "soc_pct": None})
    other = SharedState.attach(shm.path)
    assert other.read("battery") == {"voltage_v": 52.1, "soc_pct": None}
    other.close()


def test_a_value_too_big_for_its_slot_is_refused_and_the_old_one_kept(shm):
    shm.write("heartbeat.bms_tx", {"t": 1.0})
    with pytest.raises(SlotTooSmall, match="slot heartbeat.bms_tx holds 256 bytes"):
        shm.write("heartbeat.bms_tx", {"pad": "x" * 300})
    assert shm.read("heartbeat.bms_tx") == {"t": 1.0}


def test_nan_never_enters_shared_memory(shm):
    with pytest.raises(ValueError):
        shm.write("battery", {"voltage_v": float("nan")})


def _writer(path, count):
    state = SharedState.attach(path)
    for i in range(count):
        state.write("frames", {"i": i, "pad": "%d" % i * (1 + i % 500)})
    state.close()


def test_a_reader_hammering_a_slot_never_sees_a_torn_write(shm):
    shm.write("frames", {"i": -1, "pad": ""})
    writer = multiprocessing.get_context("fork").Process(target=_writer, args=(shm.path, 20000))
    writer.start()
    reads = 0
    while writer.is_alive() or reads == 0:
        value = shm.read("frames")
        if value["i"] >= 0:
            assert value["pad"] == "%d" % value["i"] * (1 + value["i"] % 500)
        reads += 1
    writer.join()
    assert writer.exitcode == 0 and reads > 100
    assert shm.read("frames")["i"] == 19999


def test_a_dead_owners_segment_is_removed_and_a_live_owners_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_state, "SHM_DIR", str(tmp_path))
    child = multiprocessing.get_context("fork").Process(target=lambda: SharedState.create("left"))
    child.start()
    child.join()
    assert os.path.exists(shared_state.segment_path("left"))   # a kill -9 leaves it behind
    state = SharedState.create("left")                          # the next start cleans up
    assert SharedState._owner_of(state.path) == os.getpid()
    parent_owned = multiprocessing.get_context("fork")
    result = parent_owned.Queue()

    def second():
        try:
            SharedState.create("left")
            result.put("created")
        except StateInUse as error:
            result.put(str(error))

    other = parent_owned.Process(target=second)
    other.start()
    other.join()
    assert "belongs to the running process %d" % os.getpid() in result.get()
    state.unlink()
    state.close()
