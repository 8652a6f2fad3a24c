"""Hot standby on the host: two real daemons on one virtual bus (udp_multicast), judged by a
recording of that bus made in the test process.

On this bus the periodic frames are sent by threads of the daemon's processes, so a stopped
(SIGSTOP) daemon really falls silent, and sends again when resumed: the case the heartbeat
must resolve within a period.
"""
import os
import random
import signal
import threading
import time

import pytest

from failsafe.standby import decode_beat
from protocol import profiles
from tests.multiproc.daemon import freeze_tree, thaw
from tests.multiproc.standby_pair import (PYLON_IDS, Poller, Recording, answers_per_request, double_windows,
                                          longest_silences, name_of, standby_daemon, who_sends)
from tests.unit.test_protocol_hv_config import HV_PACK

PERIOD = 1.0
TAKEOVER = 2.0
SLACK = 0.3         # scheduling of a busy host
HEARTBEAT_ID = 0x7F0


@pytest.fixture
def pair(tmp_path):
    """``start(node, **overrides)`` starts a device on the pair's bus; ``recording`` sees all of it;
    ``poll()`` starts a polling HV inverter on it."""
    can_section = {"udp_port": random.randint(20000, 60000),
                   "channel": "239.74.%d.%d" % (random.randint(1, 254), random.randint(1, 254))}
    started, pollers = [], []

    class Pair:
        recording = Recording(can_section)

        @staticmethod
        def start(node, **overrides):
            device = standby_daemon(tmp_path, node, can_section, **overrides).start()
            started.append(device)
            return device

        @staticmethod
        def poll():
            pollers.append(Poller(can_section))

    yield Pair
    for device in started:
        device.stop(signal.SIGKILL)
    for poller in pollers:
        poller.close()
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
    tree = freeze_tree(a.process.pid)
    hung_at = time.monotonic()
    role(b, "active", 15)
    time.sleep(1)
    thaw(tree)
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


@pytest.mark.parametrize("slow_bms_tx", [False, True], ids=["prompt", "slow-bms_tx"])
def test_an_orderly_stop_hands_over_at_once(pair, slow_bms_tx):
    """``slow-bms_tx``: the new active's bms_tx is slow to take the bus (stopped for 1.5 s, less than
    its heartbeat timeout, as a loaded device's can be): the failsafe covers the takeover meanwhile."""
    a = pair.start(1)
    role(a, "active")
    b = pair.start(2)
    bms_tx = role(b, "standby")["workers"]["bms_tx"]["pid"]
    time.sleep(2)
    stopped_at = time.monotonic()
    if slow_bms_tx:
        os.kill(bms_tx, signal.SIGSTOP)
        threading.Timer(1.5, os.kill, (bms_tx, signal.SIGCONT)).start()
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


# -- a polled profile (Pylon HV): the inverter asks, exactly one device answers ------------------
HV_REPLY_IDS = tuple(profiles.get("pylon_hv").frame_ids)
POLL_BUDGET_S = TAKEOVER + 2 * 0.2 + PERIOD + SLACK      # takeover, settling (2 heartbeats), one poll


def start_hv(pair, node, **overrides):
    sections = dict(HV_PACK, inverter={"profile": "pylon_hv"})
    for section, keys in overrides.items():
        sections[section] = dict(sections.get(section, {}), **keys)
    return pair.start(node, **sections)


def exchanges(records):
    """Per request: the reply ids that followed it, and how often."""
    return answers_per_request(records, HV_REPLY_IDS)


def assert_never_two_answers(records):
    doubled = [(t, {hex(i): n for i, n in counts.items() if n > 1}) for t, counts in exchanges(records)
               if any(n > 1 for n in counts.values())]
    assert not doubled, "requests answered twice: %s" % doubled


def longest_unanswered_s(records, after):
    """The longest time from an unanswered request to the next answered one."""
    longest, first_unanswered = 0.0, None
    for t, counts in exchanges(records):
        if t <= after:
            continue
        if counts:
            if first_unanswered is not None:
                longest = max(longest, t - first_unanswered)
            first_unanswered = None
        elif first_unanswered is None:
            first_unanswered = t
    return longest


def test_hv_cold_start_one_device_answers_every_poll(pair):
    pair.poll()
    a = start_hv(pair, 1)
    b = start_hv(pair, 2)
    role(a, "active")
    status = role(b, "standby")
    assert status["polls"]["answered"] == 0 and status["standby"]["answering"] is False
    time.sleep(4)
    status = a.wait_for(lambda s: s["polls"]["answered"] >= 3, 10, "the active device's poll statistics")
    polls = status["polls"]
    assert polls["requests"].get("ensemble", 0) + polls["requests"].get("equipment", 0) >= 3
    assert polls["last_request_age_s"] < 2 * PERIOD + SLACK
    assert 0 < polls["last_latency_s"] <= polls["max_latency_s"] and status["standby"]["answering"] is True
    assert "polls    answered" in a.command("status").stdout
    records = list(pair.recording.records)
    assert_never_two_answers(records)
    recent = [counts for t, counts in exchanges(records) if t > time.monotonic() - 4]
    assert len(recent) >= 3 and all(counts for counts in recent), recent


def settled_hv_pair(pair):
    """A polling inverter, node 1 answering it and node 2 standing by, settled for two polls."""
    pair.poll()
    a = start_hv(pair, 1)
    role(a, "active")
    b = start_hv(pair, 2)
    role(b, "standby")
    time.sleep(2)
    return a, b


def test_hv_kill_9_of_the_active_lets_the_standby_answer_the_polls(pair):
    a, b = settled_hv_pair(pair)
    killed_at = time.monotonic()
    a.stop(signal.SIGKILL)
    status = role(b, "active", 15)
    # the active one's heartbeat ends with it: "no replies to polls" once its beat has aged out, else
    # "polls unanswered"
    assert status["standby"]["last_takeover_reason"].startswith(("polls unanswered for", "no replies to polls for")), \
        status["standby"]
    b.wait_for(lambda s: s["polls"]["answered"] >= 3, 15, "the new active device answers polls")
    records = list(pair.recording.records)
    assert_never_two_answers(records)
    assert longest_unanswered_s(records, killed_at - PERIOD) <= POLL_BUDGET_S
    assert all(counts for t, counts in exchanges(records) if t > time.monotonic() - 2.5)


def test_hv_a_stopped_active_that_resumes_never_answers_a_request_twice(pair):
    a, b = settled_hv_pair(pair)
    tree = freeze_tree(a.process.pid)
    hung_at = time.monotonic()
    role(b, "active", 15)
    time.sleep(1.5)         # polls queue up in the stopped device's sockets
    thaw(tree)
    resumed_at = time.monotonic()
    status = a.wait_for(lambda s: s["pid"] == a.process.pid and s["role"] == "standby", 15, "the resumed device yields")
    assert "node 2 is active too and wins" in status["standby"]["reason"], status["standby"]
    time.sleep(3)
    records = list(pair.recording.records)
    beats = [decode_beat(r.data) for r in records if r.arbitration_id == HEARTBEAT_ID and r.t > resumed_at]
    assert any(beat.node_id == 1 and beat.role == "active" for beat in beats), \
        "the resumed device came back believing it was active (else this test shows nothing)"
    assert_never_two_answers(records)
    assert longest_unanswered_s(records, hung_at - PERIOD) <= POLL_BUDGET_S
    assert all(counts for t, counts in exchanges(records) if t > time.monotonic() - 2.5)
