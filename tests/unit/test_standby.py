"""The hot-standby arbiter: roles from the frames and heartbeats heard, with time passed in.

Scenario tests drive one Arbiter by hand; the property tests run several of them on a small
simulated bus (frames of the first id once per period while a device sends, heartbeats,
kills, orderly stops, restarts and hangs) and judge only what is on that bus: two senders at
once never for longer than a period, and no silence longer than the takeover time plus a
period plus the start latency. The peer-frame decoder is checked by re-encoding: the frames
a standby sends again must be byte for byte the ones it heard.
"""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import config
from failsafe.standby import (ACTIVE, STANDBY, STARTUP_STAGGER_S, Arbiter, Beat, decode_beat, encode_beat,
                              heard_at, report_from_frames)
from health.check import problems
from protocol import profiles
from protocol.report import ALARMS, PROTECTIONS, BatteryReport

TAKEOVER = 2.0


def beat(node, role=ACTIVE, epoch=1, priority=100, ready=True, fresh=True, preempt=False, instance=7):
    return Beat(node, priority, role, epoch, ready, fresh, preempt, instance)


def arbiter(node=2, priority=100, preempt=False, now=0.0):
    return Arbiter(node, priority, TAKEOVER, preempt, instance=99, now=now)


def run(arb, start, end, ready=True, fresh=True, sending=False, step=0.01):
    """Update from ``start`` to ``end``; the first transition and when, or (None, None)."""
    t = start
    while t <= end + 1e-9:
        change = arb.update(t, ready, fresh, sending)
        if change is not None:
            return change, t
        t = round(t + step, 6)
    return None, None


# -- heartbeat frame -------------------------------------------------------------------------
def test_heartbeat_bytes_follow_the_documented_layout():
    data = encode_beat(Beat(node_id=3, priority=200, role=ACTIVE, epoch=0x0102, ready=True, fresh=False,
                            preempt=True, instance=0x5A))
    # magic, node, priority, role 1 = active, flags ready|preempt = 0b101, epoch LE, instance
    assert data == bytes([0xB5, 3, 200, 1, 0b101, 0x02, 0x01, 0x5A])
    assert decode_beat(data) == Beat(3, 200, ACTIVE, 0x0102, True, False, True, 0x5A)
    assert decode_beat(bytes([0xB5, 1, 0, 0, 0b010, 0, 0, 1])) == Beat(1, 0, STANDBY, 0, False, True, False, 1)


@pytest.mark.parametrize("data", [b"", bytes(8), bytes([0xB5, 1, 0, 2, 0, 0, 0, 1]),
                                  bytes([0xB5, 0, 0, 0, 0, 0, 0, 1]), bytes([0xB5, 1, 0, 0, 0, 0, 0])])
def test_a_frame_that_is_no_heartbeat_is_ignored(data):
    assert decode_beat(data) is None


@pytest.mark.parametrize("timestamp, expected", [
    (999.7, 49.7),      # received 0.3 s before the notifier got to it
    (1000.0, 50.0),
    (1000.5, 50.0),     # stamped in the future: the wall clock stepped back
    (990.0, 50.0),      # ten seconds ago: a clock step, not a late thread
])
def test_a_frame_counts_from_when_the_socket_received_it(timestamp, expected):
    assert heard_at(timestamp, monotonic_now=50.0, wall_now=1000.0) == pytest.approx(expected)


# -- single device scenarios ---------------------------------------------------------------
def test_alone_it_takes_over_after_the_takeover_time_plus_its_node_stagger():
    for node in (1, 3):
        arb = arbiter(node=node)
        change, at = run(arb, 0.0, 20.0)
        assert change.role == ACTIVE and arb.role == ACTIVE
        assert at == pytest.approx(TAKEOVER + (node - 1) * STARTUP_STAGGER_S, abs=0.011)
        assert "no active device heard" in change.reason and arb.takeovers == 1 and arb.epoch == 1


def test_without_anything_to_send_it_waits_and_the_clock_starts_when_ready():
    arb = arbiter(node=1)
    assert run(arb, 0.0, 10.0, ready=False) == (None, None)
    change, at = run(arb, 10.0, 20.0)
    assert change.role == ACTIVE and at == pytest.approx(10.0 + TAKEOVER, abs=0.011)


def test_a_standby_that_becomes_ready_late_takes_over_when_the_frames_stopped_plus_the_takeover_time():
    arb = arbiter()
    arb.frame(0.0)
    assert run(arb, 0.0, 1.5, ready=False) == (None, None)
    change, at = run(arb, 1.5, 5.0)
    assert at == pytest.approx(TAKEOVER, abs=0.011), "not 2 s after it became ready"


def test_frames_of_an_active_device_keep_it_standby_and_their_end_starts_the_clock():
    arb = arbiter()
    for second in range(30):
        arb.frame(float(second))
        assert arb.update(second + 0.5, True, True, False) is None
    assert arb.next_takeover_at == 29.0 + TAKEOVER
    change, at = run(arb, 29.5, 40.0)
    assert change.role == ACTIVE and at == pytest.approx(29.0 + TAKEOVER, abs=0.011)
    assert arb.update(at + 0.01, True, True, True) is None and arb.next_takeover_at is None
    assert change.due == pytest.approx(29.0 + TAKEOVER), "the new cadence starts when the takeover was due"
    assert "no BMS frames for 2.0 s" in change.reason


def test_its_own_frames_are_not_a_peer_while_active_or_still_sending():
    arb = arbiter(node=1)
    run(arb, 0.0, 3.0)
    assert arb.role == ACTIVE
    arb.frame(3.5)                                  # our own frame, looped back
    assert arb.peer_frames_at is None
    arb.beat(beat(5, ACTIVE, epoch=9), 4.0)         # a later takeover elsewhere: we yield
    assert arb.update(4.0, True, True, True).role == STANDBY
    arb.frame(4.05)                                 # our transmitters are not quiet yet
    assert arb.peer_frames_at is None
    assert arb.own_beat().role == ACTIVE, "we say active until our frames have stopped"
    arb.update(4.1, True, True, False)
    arb.frame(4.2)
    assert arb.peer_frames_at == 4.2 and arb.own_beat().role == STANDBY


def test_a_returning_device_with_a_higher_priority_stays_standby_unless_it_preempts():
    active = arbiter(node=2, priority=10)
    run(active, 0.0, 3.0)
    assert active.role == ACTIVE
    active.beat(beat(1, STANDBY, epoch=0, priority=200, preempt=False), 3.5)
    assert active.update(3.5, True, True, True) is None
    active.beat(beat(1, STANDBY, epoch=0, priority=200, preempt=True, fresh=False), 3.6)
    assert active.update(3.6, True, True, True) is None, "not before its own data is fresh"
    active.beat(beat(1, STANDBY, epoch=0, priority=200, preempt=True), 3.7)
    change = active.update(3.7, True, True, True)
    assert change.role == STANDBY and "node 1 (priority 200) preempts" in change.reason


def test_a_lower_priority_device_never_preempts():
    active = arbiter(node=2, priority=100)
    run(active, 0.0, 3.0)
    active.beat(beat(1, STANDBY, epoch=0, priority=50, preempt=True), 3.5)
    assert active.update(3.5, True, True, True) is None


def test_a_handover_is_taken_at_once():
    arb = arbiter(node=2)
    arb.beat(beat(1, ACTIVE, epoch=4), 1.0)
    arb.frame(1.0)
    assert arb.update(1.1, True, True, False) is None
    arb.beat(beat(1, STANDBY, epoch=4, ready=False), 1.2)       # it stops, its frames have stopped
    change = arb.update(1.21, True, True, False)
    assert change.role == ACTIVE and change.due == 1.21 and "node 1 handed over" in change.reason
    assert arb.epoch == 5, "a takeover outranks every epoch heard"


def test_no_handover_while_another_device_is_active_or_a_better_standby_is_ready():
    arb = arbiter(node=3, priority=100)
    arb.beat(beat(1, ACTIVE), 1.0)
    arb.beat(beat(2, ACTIVE, epoch=2), 1.0)
    arb.frame(1.0)
    arb.beat(beat(1, STANDBY), 1.1)
    assert arb.update(1.2, True, True, False) is None, "node 2 is still active"
    other = arbiter(node=3, priority=100)
    other.beat(beat(1, ACTIVE), 1.0)
    other.beat(beat(2, STANDBY, priority=150), 1.0)
    other.frame(1.0)
    other.beat(beat(1, STANDBY), 1.1)
    assert other.update(1.2, True, True, False) is None, "node 2 outranks us and takes it"


def test_a_lower_ranked_standby_defers_one_takeover_time_to_a_ready_better_one():
    def listening_with_a_better_standby():
        arb = arbiter(node=3, priority=100)
        arb.frame(0.0)
        for t in (0.0, 1.0, 2.0, 3.0):
            arb.beat(beat(2, STANDBY, priority=150, instance=5), t)
        return arb
    deferring = listening_with_a_better_standby()
    change, at = run(deferring, 0.0, 10.0)
    assert at == pytest.approx(2 * TAKEOVER, abs=0.011) and "node 2 did not take over" in change.reason
    unready = listening_with_a_better_standby()
    assert run(unready, 0.0, 3.0)[0] is None
    unready.beat(beat(2, STANDBY, priority=150, ready=False, instance=5), 3.05)
    change, at = run(unready, 3.05, 10.0)
    assert at == pytest.approx(3.05), "a better standby with nothing to send is not waited for"


@pytest.mark.parametrize("mine, theirs, we_yield", [
    ((1, 100, 2), (2, 100, 1), True),       # a later takeover wins
    ((2, 100, 2), (1, 250, 1), False),
    ((1, 100, 2), (1, 150, 1), True),       # same epoch: the higher priority
    ((1, 150, 2), (1, 100, 1), False),
    ((1, 100, 2), (1, 100, 1), True),       # then the lower node id
    ((1, 100, 1), (1, 100, 2), False),
])
def test_two_actives_resolve_deterministically(mine, theirs, we_yield):
    epoch, priority, node = mine
    arb = Arbiter(node, priority, TAKEOVER, instance=9, now=0.0)
    arb.epoch, arb.role = epoch, ACTIVE
    arb.beat(beat(theirs[2], ACTIVE, epoch=theirs[0], priority=theirs[1]), 1.0)
    change = arb.update(1.0, True, True, True)
    assert (change is not None and change.role == STANDBY) == we_yield


def test_our_own_heartbeat_is_ignored_and_a_second_device_with_our_node_id_is_reported():
    arb = arbiter(node=2)
    arb.beat(arb.own_beat(), 0.5)
    assert arb.status(0.5)["peer"] is None and not arb.status(0.5)["duplicate_node_id"]
    arb.beat(beat(2, STANDBY, instance=13), 0.6)
    assert arb.status(0.6)["duplicate_node_id"]


def test_status_names_the_active_peer_and_the_takeovers():
    arb = arbiter(node=2)
    arb.beat(beat(1, ACTIVE, epoch=3, priority=120), 1.0)
    arb.frame(1.2)
    status = arb.status(1.5)
    assert status["role_age_s"] == 1.5 and status["takeovers"] == 0 and status["last_takeover_reason"] is None
    assert status["peer"] == {"node_id": 1, "priority": 120, "role": ACTIVE, "epoch": 3, "last_seen_age_s": 0.5,
                              "frames_age_s": 0.3}
    run(arb, 1.5, 10.0)
    status = arb.status(4.0)
    assert status["takeovers"] == 1 and status["epoch"] == 4 and status["peer"] is None
    assert status["last_takeover_reason"].startswith("no BMS frames")


def test_without_heartbeat_the_peer_is_known_by_its_frames():
    arb = arbiter(node=2)
    arb.frame(1.0)
    assert arb.status(1.5)["peer"] == {"node_id": None, "priority": None, "role": ACTIVE, "epoch": None,
                                       "last_seen_age_s": 0.5, "frames_age_s": 0.5}


# -- several devices on a simulated bus ------------------------------------------------------
PERIOD = 1.0
LATENCY = 0.15          # from a role change to our frames starting or stopping (bms_tx's poll)
HEARTBEAT = 0.2
STEP = 0.01


class Device:
    """One device: an arbiter, its transmitters (which follow the role after LATENCY)."""

    def __init__(self, node, priority, preempt, now, ready_after):
        self.node, self.priority, self.preempt = node, priority, preempt
        self.start(now, ready_after)

    def new_arbiter(self, now):
        return Arbiter(self.node, self.priority, TAKEOVER, self.preempt, instance=random.randint(1, 255), now=now)

    def start(self, now, ready_after):
        self.arbiter = self.new_arbiter(now)
        self.alive, self.hung_until, self.leave_at = True, None, None
        self.ready_at = now + ready_after
        self.sending_from = self.quiet_from = None
        self.next_frame = self.next_beat = now

    def sending(self, now):
        return self.sending_from is not None and now >= self.sending_from and (
            self.quiet_from is None or now < self.quiet_from)

    def kill(self):
        self.alive, self.sending_from, self.quiet_from, self.leave_at = False, None, None, None

    def step(self, now):
        ready = now >= self.ready_at
        change = self.arbiter.update(now, ready, ready, self.sending(now))
        if change is not None and change.role == ACTIVE:
            self.sending_from, self.quiet_from = now + LATENCY, None
            self.next_frame = max(change.due, now + LATENCY)
        elif change is not None:
            self.quiet_from = now + LATENCY


def step_events(devices, events, t, hang_s, heartbeat=True):
    """Carry out the events due at ``t`` (popped from the sorted ``events``: (time, device index,
    "kill" | "restart" | "hang" | "stop")); a stopped device says it leaves once its transmitters
    are quiet. The devices running (alive, not hung) afterwards."""
    while events and events[0][0] <= t:
        _, index, action = events.pop(0)
        device = devices[index]
        if action == "kill":
            device.kill()
        elif action == "restart" and not device.alive:
            device.start(t, ready_after=1.0)
        elif action == "hang" and device.alive:
            device.hung_until = t + hang_s()
        elif action == "stop" and device.alive:        # SIGTERM: bms_tx stops, then it says it leaves
            device.quiet_from, device.leave_at = t + LATENCY, t + LATENCY
    running = [d for d in devices if d.alive and (d.hung_until is None or t >= d.hung_until)]
    for device in [d for d in running if d.leave_at is not None and t >= d.leave_at]:
        if heartbeat:
            for listener in running:
                listener.arbiter.beat(device.arbiter.own_beat(leaving=True), t)
        device.kill()
        running.remove(device)
    return running


def exchange_beats(running, t):
    """Each running device whose heartbeat is due sends it to all."""
    for device in running:
        if t >= device.next_beat:
            device.next_beat = t + HEARTBEAT
            message = device.arbiter.own_beat()
            for listener in running:
                listener.arbiter.beat(message, t)


def simulate(devices, events, duration, heartbeat=True):
    """Run until ``duration``; events: (time, device index, "kill" | "restart" | "hang"). Returns the
    sending devices at each step."""
    events = sorted(events)
    timeline = []
    t = 0.0
    while t < duration:
        running = step_events(devices, events, t, lambda: 3.0 * TAKEOVER, heartbeat)
        senders = [d for d in running if d.sending(t)]
        for sender in senders:
            if t >= sender.next_frame:
                sender.next_frame += PERIOD
                for listener in running:
                    listener.arbiter.frame(t)
        if heartbeat:
            exchange_beats(running, t)
        for device in running:
            device.step(t)
        timeline.append((t, frozenset(d.node for d in senders)))
        t = round(t + STEP, 6)
    return timeline


def test_an_orderly_stop_hands_over_at_once():
    devices = [Device(1, 100, False, 0.0, 0.0), Device(2, 100, False, 0.0, 0.0)]
    timeline = simulate(devices, [(10.0, 0, "stop")], 20.0)
    assert all(senders == {1} for t, senders in timeline if 9.0 < t < 10.0)
    assert timeline[-1][1] == {2}
    silence = longest([(t, s) for t, s in timeline if t > 5.0], lambda senders: not senders)
    assert silence <= LATENCY + 2 * STEP, "not the takeover time: the leaving device said so"


def longest(timeline, condition):
    longest_run, start = 0.0, None
    for t, senders in timeline:
        if condition(senders):
            start = t if start is None else start
            longest_run = max(longest_run, t - start)
        else:
            start = None
    return longest_run


def fault_plans(max_size):
    """Faults of a pair, one after another: (what, which device, how long it lasts beyond 3 x takeover_s)."""
    return st.lists(st.tuples(st.sampled_from(["kill", "hang", "stop"]), st.integers(0, 1), st.floats(0.0, 4.0)),
                    min_size=1, max_size=max_size)


def fault_events(plan, heartbeat=True):
    """The plan as timed (t, device, action) events, each fault followed by a restart, and the end."""
    events, t = [], 12.0
    for action, index, pause in plan:
        if action == "hang" and not heartbeat:
            action = "kill"         # without heartbeats a hung device that resumes is not told apart
        events.append((t, index, action))
        events.append((t + 3.0 * TAKEOVER + pause, index, "restart"))
        t += 3.0 * TAKEOVER + pause + 8.0        # the restarted device has heard the other before the next fault
    return events, t


@settings(max_examples=60, deadline=None)
@given(priorities=st.tuples(st.integers(0, 255), st.integers(0, 255)), nodes=st.sampled_from([(1, 2), (2, 1), (1, 5)]),
       ready_after=st.tuples(st.floats(0, 3), st.floats(0, 3)), preempt=st.booleans(), plan=fault_plans(6),
       heartbeat=st.booleans(), seed=st.integers(0, 1000))
def test_a_pair_never_sends_twice_for_a_period_nor_leaves_the_bus_silent(priorities, nodes, ready_after, preempt,
                                                                           plan, heartbeat, seed):
    random.seed(seed)
    devices = [Device(nodes[i], priorities[i], preempt, 0.0, ready_after[i]) for i in range(2)]
    events, t = fault_events(plan, heartbeat)
    timeline = simulate(devices, events, t)
    settled = [(time, senders) for time, senders in timeline if time >= 8.0]
    assert longest(settled, lambda senders: len(senders) > 1) <= PERIOD
    budget = TAKEOVER + PERIOD + LATENCY
    assert longest(settled, lambda senders: not senders) <= budget
    assert any(senders for _, senders in settled[-10:]), "someone sends at the end"


@settings(max_examples=40, deadline=None)
@given(nodes=st.permutations([1, 2, 3]), priorities=st.lists(st.integers(0, 255), min_size=3, max_size=3),
       ready_after=st.floats(0, 2), heartbeat=st.booleans(), seed=st.integers(0, 1000))
def test_devices_started_together_settle_on_one_sender(nodes, priorities, ready_after, heartbeat, seed):
    random.seed(seed)
    devices = [Device(nodes[i], priorities[i], False, 0.0, ready_after) for i in range(3)]
    timeline = simulate(devices, [], 15.0, heartbeat)
    assert longest(timeline, lambda senders: len(senders) > 1) == 0.0
    assert len(timeline[-1][1]) == 1
    if heartbeat:   # the highest priority (then the lowest node id) goes first
        expected = max(devices, key=lambda d: (d.priority, -d.node)).node
        assert timeline[-1][1] == {expected}


# -- the peer's last frames, sent again ------------------------------------------------------
def reports():
    value = st.floats(0, 400, allow_nan=False)
    return st.builds(
        BatteryReport, charge_voltage_v=st.floats(40, 64), charge_current_a=value, discharge_current_a=value,
        discharge_voltage_v=st.floats(40, 50), soc_pct=st.floats(0, 100), soh_pct=st.floats(0, 100),
        voltage_v=st.floats(40, 64), current_a=st.floats(-300, 300), temperature_c=st.floats(-20, 60),
        charge_enable=st.booleans(), discharge_enable=st.booleans(), force_charge_1=st.booleans(),
        force_charge_2=st.booleans(), full_charge=st.booleans(),
        protection=st.frozensets(st.sampled_from(PROTECTIONS)), alarm=st.frozensets(st.sampled_from(ALARMS)),
        modules=st.integers(1, 20), capacity_ah=st.one_of(st.none(), st.floats(1, 2000)),
        cell_min_v=st.one_of(st.none(), st.floats(2.5, 3.6)), cell_max_v=st.one_of(st.none(), st.floats(2.5, 3.7)),
        temperature_min_c=st.one_of(st.none(), st.floats(-20, 60)),
        temperature_max_c=st.one_of(st.none(), st.floats(-20, 60)), cycle_count=st.one_of(st.none(), st.integers(0, 9999)))


@pytest.mark.parametrize("name", profiles.names())
@settings(max_examples=60, deadline=None)
@given(report=reports())
def test_the_peer_frames_decode_to_a_report_that_encodes_to_the_same_frames(name, report):
    profile = profiles.get(name)
    frames = profile.encode(report)
    assert profile.encode(report_from_frames(profile, frames)) == frames


def test_an_incomplete_frame_set_is_refused_by_name():
    profile = profiles.get("pylon")
    frames = profile.encode(BatteryReport(55.2, 100.0, 120.0, 48.0, 60.0, 100.0, 52.3, -12.5, 21.5, True, True))
    with pytest.raises(ValueError, match="lacks charge_voltage_v, charge_current_a, discharge_current_a"):
        report_from_frames(profile, frames[1:])


# -- configuration ----------------------------------------------------------------------------
def test_standby_is_off_by_default_and_its_default_heartbeat_id_is_free_in_every_profile():
    cfg = config.load()
    assert cfg.standby.enabled is False
    # polled (Pylon HV) profiles refuse the hot standby for now: tests/unit/test_protocol_hv_config.py
    for name in (name for name in profiles.names() if profiles.get(name).transport == "broadcast"):
        checked = cfg.replace(standby={"enabled": True}, inverter={"profile": name})
        assert checked.standby.heartbeat_id == 0x7F0
        profile = profiles.get(name)
        assert 0x7F0 not in profile.frame_ids
        # the inverter's frames, as its receive filters let them through
        assert not any(0x7F0 & f["can_mask"] == f["can_id"] & f["can_mask"] for f in profile.rx_filters), name


@pytest.mark.parametrize("standby, profile, message", [
    ({"heartbeat_id": 0x305}, "pylon", "standby.heartbeat_id = 0x305 is used by inverter.profile = 'pylon'"),
    ({"heartbeat_id": 0x30A}, "sma_si", "standby.heartbeat_id = 0x30A is used by inverter.profile = 'sma_si'"),
    ({"heartbeat_id": 0x379}, "solark", "standby.heartbeat_id = 0x379 is used by inverter.profile = 'solark'"),
    ({"takeover_s": 1.5}, "sma_si", "standby.takeover_s = 1.5 is below 1.8 for inverter.profile = 'sma_si'"),
    ({"takeover_s": 1.0, "heartbeat_interval_s": 0.3}, "pylon",
     "standby.heartbeat_interval_s = 0.3 is above standby.takeover_s / 4 = 0.25"),
])
def test_inconsistent_standby_settings_are_named(standby, profile, message):
    with pytest.raises(config.ConfigError) as error:
        config.load().replace(standby=dict(standby, enabled=True), inverter={"profile": profile})
    assert any(problem.startswith(message) for problem in error.value.problems), error.value.problems


def test_a_used_heartbeat_id_is_fine_with_the_heartbeat_off_or_standby_disabled():
    cfg = config.load()
    cfg.replace(standby={"enabled": True, "heartbeat": False, "heartbeat_id": 0x305})
    cfg.replace(standby={"enabled": False, "heartbeat_id": 0x305})
    with pytest.raises(config.ConfigError, match="standby.node_id = 0 is not allowed: expected an integer from 1 to 15"):
        cfg.replace(standby={"node_id": 0})


# -- health ------------------------------------------------------------------------------------
def status_of(role, peer, frames=(), failsafe=False, duplicate=False):
    """A status file of a device that is healthy in every other way."""
    return {
        "written_at": 1000.0, "pid": 42, "role": role,
        "workers": {"bms_tx": {"state": "running", "alive": True, "restarts": 0}},
        "battery": {"age_s": 1.0}, "failsafe": {"engaged": failsafe}, "inverter": {"link": "up"},
        "can": {"state": "up", "channel": "can0"}, "frames": list(frames),
        "standby": {"enabled": True, "node_id": 2, "takeover_s": TAKEOVER, "peer": peer,
                    "duplicate_node_id": duplicate},
    }


ACTIVE_PEER = {"node_id": 1, "priority": 100, "role": ACTIVE, "epoch": 3, "last_seen_age_s": 0.1,
               "frames_age_s": 0.4}


def test_a_standby_hearing_an_active_device_send_is_healthy():
    assert problems(status_of(STANDBY, ACTIVE_PEER), config.load(), now=1000.5) == []


@pytest.mark.parametrize("peer, reason", [
    (None, "standby, and no active device is heard on the bus"),
    (dict(ACTIVE_PEER, role=STANDBY), "standby, and no device is active (node 1 is standby)"),
    (dict(ACTIVE_PEER, frames_age_s=5.0), "standby, and the active device (node 1) sends no BMS frames (none for 5 s)"),
    (dict(ACTIVE_PEER, frames_age_s=None), "standby, and the active device (node 1) sends no BMS frames (none heard yet)"),
    ({"node_id": None, "priority": None, "role": "silent", "epoch": None, "last_seen_age_s": 9.0, "frames_age_s": 9.0},
     "standby, and no device is active (the device heard last is silent)"),
])
def test_a_standby_with_no_sending_active_device_is_a_problem(peer, reason):
    assert problems(status_of(STANDBY, peer), config.load(), now=1000.5) == [reason]


def test_an_active_device_must_send_and_a_duplicate_node_id_is_reported():
    cfg = config.load()
    assert problems(status_of(ACTIVE, None), cfg, now=1000.5) == ["no BMS frames are being sent"]
    assert problems(status_of(ACTIVE, None, frames=[{"id": "0x351"}]), cfg, now=1000.5) == []
    assert problems(status_of(ACTIVE, None, frames=[{"id": "0x351"}], duplicate=True), cfg, now=1000.5) == [
        "another device on the bus uses node id 2: give each its own [standby] node_id"]
