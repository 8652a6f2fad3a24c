"""Hot standby on the host: two real daemons on one virtual bus (udp_multicast), judged by a
recording of that bus made in the test process.

On this bus the periodic frames are sent by threads of the daemon's processes, so a stopped
(SIGSTOP) daemon really falls silent, and sends again when resumed: the case the heartbeat
must resolve within a period.
"""
import os
import random
import signal
import time

import can
import pytest

from failsafe.standby import decode_beat
from tests.multiproc.daemon import children_of
from tests.multiproc.standby_pair import (PYLON_IDS, Record, double_windows, longest_silences, name_of,
                                          standby_daemon, who_sends)

PERIOD = 1.0
TAKEOVER = 2.0
SLACK = 0.3         # scheduling of a busy host
HEARTBEAT_ID = 0x7F0


class Recording:
    """Every frame on the shared bus, stamped with time.monotonic() on arrival."""

    def __init__(self, can_section):
        self.bus = can.Bus(interface="udp_multicast", channel=can_section["channel"], port=can_section["udp_port"])
        self.records = []
        self.notifier = can.Notifier(self.bus, [self._on_message], timeout=0.2)

    def _on_message(self, msg):
        self.records.append(Record(time.monotonic(), msg.arbitration_id, bytes(msg.data)))

    def close(self):
        self.notifier.stop()
        self.bus.shutdown()


@pytest.fixture
def pair(tmp_path):
    """``start(node, **overrides)`` starts a device on the pair's bus; ``recording`` sees all of it."""
    can_section = {"udp_port": random.randint(20000, 60000),
                   "channel": "239.74.%d.%d" % (random.randint(1, 254), random.randint(1, 254))}
    started = []

    class Pair:
        recording = Recording(can_section)

        @staticmethod
        def start(node, **overrides):
            device = standby_daemon(tmp_path, node, can_section, **overrides).start()
            started.append(device)
            return device

    yield Pair
    for device in started:
        device.stop(signal.SIGKILL)
    Pair.recording.close()


def role(device, wanted, timeout=40.0, own_data=True):
    """Wait until ``device`` is settled in role ``wanted``: sending when active; when standby, hearing
    an active peer's frames (and, with ``own_data``, deciding on its own battery data)."""
    def settled(s):
        if s["pid"] != device.process.pid or s["role"] != wanted:
            return False
        if wanted == "active":
            return bool(s["frames"])
        peer = s["standby"]["peer"] or {}
        return (peer.get("role") == "active" and peer.get("frames_age_s") is not None
                and (not own_data or s["decision"]["age_s"] is not None))
    return device.wait_for(settled, timeout, "role %s" % wanted)


def assert_never_two_for_a_period(records):
    windows = double_windows(records, PERIOD)
    assert all(window <= PERIOD for window, _, _ in windows), windows


def test_kill_9_of_the_active_lets_the_standby_take_over_and_the_old_one_returns_as_standby(pair):
    a = pair.start(1)
    role(a, "active")
    b = pair.start(2)
    role(b, "standby")
    check = b.command("check")
    assert check.returncode == 0 and check.stdout.strip() == "healthy", check.stdout
    time.sleep(2)
    killed_at = time.monotonic()
    a.stop(signal.SIGKILL)
    status = role(b, "active", 15)
    assert status["standby"]["takeovers"] == 1 and status["standby"]["last_takeover_reason"].startswith(
        "no BMS frames for 2.0 s"), status["standby"]
    a = pair.start(1)
    status = role(a, "standby")
    assert status["standby"]["peer"]["node_id"] == 2 and status["standby"]["takeovers"] == 0
    time.sleep(3)
    records = list(pair.recording.records)
    assert who_sends(records, time.monotonic() - 2.5) == {name_of(2)}, "the returning device stays standby"
    assert_never_two_for_a_period(records)
    silences = longest_silences([r for r in records if r.t > killed_at - 2 * PERIOD])
    assert all(s <= TAKEOVER + PERIOD + SLACK for s in silences.values()), silences
    assert a.command("check").returncode == 0


def test_a_hung_active_that_resumes_never_sends_together_with_the_new_one_for_a_period(pair):
    a = pair.start(1)
    role(a, "active")
    b = pair.start(2)
    role(b, "standby")
    time.sleep(2)
    tree = [a.process.pid] + sorted(children_of(a.process.pid))
    for pid in tree:
        os.kill(pid, signal.SIGSTOP)
    hung_at = time.monotonic()
    role(b, "active", 15)
    time.sleep(1)
    for pid in tree:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    status = a.wait_for(lambda s: s["role"] == "standby", 15, "the resumed device yields")
    assert "node 2 is active too and wins" in status["standby"]["reason"], status["standby"]
    time.sleep(3)
    records = list(pair.recording.records)
    assert_never_two_for_a_period(records)
    beats = [decode_beat(r.data) for r in records if r.arbitration_id == HEARTBEAT_ID and r.t > resumed_at]
    assert any(beat.node_id == 1 and beat.role == "active" for beat in beats), \
        "the resumed device came back believing it was active (else this test shows nothing)"
    assert who_sends(records, time.monotonic() - 2.5) == {name_of(2)}
    silences = longest_silences([r for r in records if r.t > hung_at - 2 * PERIOD])
    assert all(s <= TAKEOVER + PERIOD + SLACK for s in silences.values()), silences


def test_an_orderly_stop_hands_over_at_once(pair):
    a = pair.start(1)
    role(a, "active")
    b = pair.start(2)
    role(b, "standby")
    time.sleep(2)
    stopped_at = time.monotonic()
    assert a.stop(signal.SIGTERM) == 0
    status = role(b, "active", 15)
    assert status["standby"]["last_takeover_reason"] == "node 1 handed over"
    time.sleep(2)
    records = list(pair.recording.records)
    silences = longest_silences([r for r in records if r.t > stopped_at - 2 * PERIOD])
    assert all(s < PERIOD + 0.6 for s in silences.values()), "no takeover time: %s" % silences
    assert_never_two_for_a_period(records)


def test_a_returning_device_that_preempts_takes_the_bus_back_without_a_gap(pair):
    a = pair.start(1, standby={"priority": 200, "preempt": True})
    role(a, "active")
    b = pair.start(2, standby={"priority": 100})
    role(b, "standby")
    a.stop(signal.SIGKILL)
    role(b, "active", 15)
    back_at = time.monotonic()
    a = pair.start(1, standby={"priority": 200, "preempt": True})
    status = role(a, "active", 40)
    assert status["standby"]["last_takeover_reason"] == "node 2 handed over"
    assert "node 1 (priority 200) preempts" in role(b, "standby", 15)["standby"]["reason"]
    time.sleep(2)
    records = [r for r in pair.recording.records if r.t > back_at]
    assert_never_two_for_a_period(records)
    silences = longest_silences(records)
    assert all(s < PERIOD + 0.6 for s in silences.values()), silences
    assert who_sends(records, time.monotonic() - 1.5) == {name_of(1)}


def test_a_standby_without_battery_data_takes_over_with_the_active_devices_last_frames(pair):
    a = pair.start(1)
    role(a, "active")
    # its private D-Bus (there for its simulated inverter) has no battery monitor on it
    b = pair.start(2, battery={"source": "dbus"}, simulation={"inverter": True})
    status = role(b, "standby", own_data=False)
    assert status["battery"]["age_s"] is None
    time.sleep(2)
    a.stop(signal.SIGKILL)
    status = b.wait_for(lambda s: s["role"] == "active" and s["frames"], 15, "takeover")
    assert status["failsafe"]["engaged"], "the failsafe sends the frames it heard"
    time.sleep(2)
    records = list(pair.recording.records)
    switch = min(r.t for r in records if r.arbitration_id == 0x35E and r.data.strip() == name_of(2).encode())
    last_of_a = {r.arbitration_id: r.data for r in records if r.t < switch}
    sent_by_b = {r.arbitration_id: r.data for r in records if r.t > switch}
    for frame_id in PYLON_IDS[:-1]:         # all but the name, which is b's own
        assert sent_by_b[frame_id] == last_of_a[frame_id], hex(frame_id)
    silences = longest_silences(records)
    assert all(s <= TAKEOVER + PERIOD + SLACK for s in silences.values()), silences
    check = b.command("check")
    assert check.returncode == 1 and "failsafe engaged" in check.stdout
