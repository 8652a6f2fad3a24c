"""Shared memory slots: values round-trip, readers never see a torn write nor spin (even when a
writer is killed mid-write), stale segments go."""
import multiprocessing
import os
import random
import select
import signal
import time

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


def _numbered(i):
    """A value whose length and content both follow from ``i``, so a torn copy shows."""
    return {"i": i, "pad": "%d" % i * (1 + i % 300)}


def _whole(value):
    return value["pad"] == "%d" % value["i"] * (1 + value["i"] % 300)


def _within(seconds, read):
    """``read()``, failing the test when it takes longer than ``seconds``: a reader must never spin."""
    def expired(*_):
        raise AssertionError("a read spun for more than %g s" % seconds)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return read()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fork(body):
    """A child running ``body`` that never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


KILLS = 1500


def test_writers_killed_mid_write_thousands_of_times_never_wedge_or_tear_the_slot(shm):
    """A writer SIGKILLed at a random point of its write (by the supervisor, the OOM killer) leaves
    the slot readable at once with a whole value: no reader spins, none sees a torn payload."""
    shm.write("frames", _numbered(0))
    stop_reader, reader_failed = os.pipe(), os.pipe()

    def hammer():       # a second process reading all along, as the supervisor does
        reads = 0
        while not select.select([stop_reader[0]], [], [], 0)[0]:
            value = _within(5.0, lambda: shm.read("frames"))
            if not _whole(value):
                os.write(reader_failed[1], b"torn: %r" % value)
                return
            reads += 1
        os.write(reader_failed[1], b"ok %d" % reads)

    reader = _fork(hammer)
    rng, kills, last = random.Random(12), 0, 0
    try:
        while kills < KILLS:
            start = last + 1

            def write_forever():
                i = start
                while True:
                    shm.write("frames", _numbered(i))
                    i += 1

            writer = _fork(write_forever)
            writing_by = time.monotonic() + 10.0     # it is killed while writing, not before it began
            while _within(5.0, lambda: shm.read("frames"))["i"] < start and time.monotonic() < writing_by:
                time.sleep(0)
            time.sleep(rng.random() * 0.002)
            os.kill(writer, signal.SIGKILL)
            os.waitpid(writer, 0)
            kills += 1
            value = _within(5.0, lambda: shm.read("frames"))
            assert _whole(value), value
            assert value["i"] >= last, "the slot went back from %d to %d" % (last, value["i"])
            last = value["i"]
    finally:
        os.write(stop_reader[1], b"x")
        if not select.select([reader_failed[0]], [], [], 3.0)[0]:
            os.kill(reader, signal.SIGKILL)
        os.waitpid(reader, 0)
    verdict = (os.read(reader_failed[0], 1000).decode() if select.select([reader_failed[0]], [], [], 0)[0]
               else "the reader ended without a verdict")
    assert verdict.startswith("ok"), verdict
    assert last >= kills, (kills, last)     # every writer was killed after it had begun writing
    assert shm.read_failures["frames"] == 0


def test_a_corrupt_payload_is_never_returned_the_last_good_value_is_and_counted(shm):
    """A payload that does not match its checksum (a torn copy on a CPU without atomic 64-bit
    access, a stray write) is retried a bounded number of times, then the last good value read
    from the slot is returned and the failure counted."""
    shm.write("battery", {"voltage_v": 52.0})
    reader = SharedState.attach(shm.path)
    assert reader.read("battery") == {"voltage_v": 52.0}
    shm.write("battery", {"voltage_v": 53.0})
    at = bytes(shm._map).index(b"53.0")
    shm._map[at:at + 4] = b"99.0"
    assert _within(1.0, lambda: reader.read("battery")) == {"voltage_v": 52.0}
    assert reader.read_failures["battery"] == 1
    fresh = SharedState.attach(shm.path)          # nothing good seen yet: nothing is returned
    assert fresh.read("battery") is None and fresh.read_failures["battery"] == 1
    shm.write("battery", {"voltage_v": 54.0})
    assert reader.read("battery") == {"voltage_v": 54.0}
    reader.close()
    fresh.close()
