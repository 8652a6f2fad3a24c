"""Hot standby on a polled profile (Pylon HV): the inverter asks, exactly one device answers.

Scenario tests drive one Arbiter by hand; the property test runs two on a small simulated bus
with an inverter polling once a second (kills, hangs, orderly stops, restarts) and judges only
the answers on that bus: never two answers to one request, and no request left unanswered for
longer than the takeover time plus the settling time plus a poll interval. A hung device's
responders answer from the role slot as its supervisor last wrote it (the lease), before its
supervisor has run again after the resume: the worst order.
"""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import config
from canbus.responder import answer_allowed
from failsafe.standby import ACTIVE, LEASE_SHARE, STANDBY, Arbiter
from tests.unit.test_protocol_hv_config import HV_PACK
from tests.unit.test_standby import Device as BroadcastDevice
from tests.unit.test_standby import (LATENCY, STEP, TAKEOVER, beat, exchange_beats, fault_events, fault_plans, run,
                                     step_events)

SETTLE = 0.4            # 2 x the 0.2 s heartbeat
LEASE = TAKEOVER * LEASE_SHARE


def polled(node=2, priority=100, preempt=False, now=0.0):
    return Arbiter(node, priority, TAKEOVER, preempt, instance=99, now=now, polled=True, settle_s=SETTLE)


def test_an_active_device_heard_and_no_request_means_no_takeover():
    arb = polled()
    t = 0.0
    while t < 30.0:
        arb.beat(beat(1), t)            # the active device's heartbeat; the inverter does not poll
        assert arb.update(t, True, True, False) is None
        t = round(t + 0.2, 6)
    assert arb.role == STANDBY and arb.next_takeover_at is None


def test_answered_requests_keep_it_standby_and_an_unanswered_one_starts_the_clock():
    arb = polled()
    t = 0.0
    while t < 10.0:
        arb.beat(beat(1), t)
        if t == int(t):
            arb.poll(t)
            arb.frame(t + 0.005)        # the reply burst
        assert arb.update(t, True, True, False) is None
        t = round(t + 0.1, 6)
    arb.poll(10.0)                      # its beats go on (a frozen process on a kernel that sends them), no reply
    t, change = 10.0, None
    while change is None and t < 20.0:
        arb.beat(beat(1), t)
        if t == int(t):
            arb.poll(t)
        change = arb.update(t, True, True, False)
        t = round(t + 0.1, 6)
    assert change.role == ACTIVE and change.reason.startswith("polls unanswered for 2.0 s")
    assert t - 0.1 == pytest.approx(10.0 + TAKEOVER)


def test_a_takeover_answers_only_after_settling_a_handover_at_once():
    arb = polled()
    arb.beat(beat(1), 0.0)
    arb.poll(0.5)
    change, at = run(arb, 0.0, 5.0)
    assert change.role == ACTIVE and not change.handover
    assert arb.answer_until(at) is None and arb.answer_until(at + SETTLE - 0.01) is None
    arb.update(at + SETTLE, True, True, True)
    assert arb.answer_until(at + SETTLE) == pytest.approx(at + SETTLE + LEASE)

    other = polled()
    other.beat(beat(1), 1.0)
    other.beat(beat(1, role=STANDBY, ready=False), 1.1)      # it stopped in order
    change, at = run(other, 1.1, 2.0)
    assert change.handover and other.answer_until(at) == pytest.approx(at + LEASE)


def test_a_device_paused_longer_than_its_lease_listens_before_answering_and_yields_to_a_later_takeover():
    arb = polled(node=1)
    change, at = run(arb, 0.0, 10.0)       # alone: it takes over (no active device heard)
    assert change.role == ACTIVE and "no active device heard" in change.reason
    run(arb, at, at + SETTLE)
    assert arb.answer_until(at + SETTLE) is not None
    resumed = at + SETTLE + 5.0             # stopped (SIGSTOP) for 5 s: a peer took over meanwhile
    assert arb.update(resumed, True, True, True) is None
    assert arb.answer_until(resumed) is None, "it must not answer before it has heard the bus"
    arb.beat(beat(2, epoch=arb.epoch + 1), resumed + 0.1)
    change = arb.update(resumed + 0.15, True, True, True)
    assert change.role == STANDBY and "node 2 is active too and wins" in change.reason
    assert arb.answer_until(resumed + 1.0) is None


def test_a_short_pause_within_the_lease_keeps_answering():
    arb = polled(node=1)
    change, at = run(arb, 0.0, 10.0)
    run(arb, at, at + SETTLE)
    t = at + SETTLE + LEASE * 0.9
    arb.update(t, True, True, True)
    assert arb.answer_until(t) == pytest.approx(t + LEASE)


@pytest.mark.parametrize("slot, now, allowed", [
    ({"role": "active"}, 5.0, True),                             # hot standby off: no lease
    ({"role": "standby"}, 5.0, False),
    (None, 5.0, False),
    ({"role": "active", "answer_until": None}, 5.0, False),     # settling
    ({"role": "active", "answer_until": 6.0}, 5.0, True),
    ({"role": "active", "answer_until": 6.0}, 6.0, False),      # lapsed: the supervisor did not renew it
])
def test_the_right_to_answer_comes_from_the_role_slot_and_its_lease(slot, now, allowed):
    assert answer_allowed(slot, now) is allowed


def test_a_polled_profile_may_have_a_hot_standby_but_not_without_its_heartbeat():
    hv = dict(HV_PACK, inverter={"profile": "pylon_hv"})
    assert config.load().replace(standby={"enabled": True}, **hv).standby.enabled
    with pytest.raises(config.ConfigError) as error:
        config.load().replace(standby={"enabled": True, "heartbeat": False}, **hv)
    assert any(problem.startswith("standby.heartbeat = false is not allowed for inverter.profile = 'pylon_hv'")
               for problem in error.value.problems), error.value.problems


# -- two devices and a polling inverter on a simulated bus ------------------------------------
POLL = 1.0
REPLY_S = 0.005


class Device(BroadcastDevice):
    """One device: its arbiter; the role slot its supervisor last wrote (renewed each step, as
    often as the supervisor's loop); responders that answer from that slot (``sending``)."""

    def new_arbiter(self, now):
        return Arbiter(self.node, self.priority, TAKEOVER, self.preempt, instance=random.randint(1, 255),
                       now=now, polled=True, settle_s=SETTLE)

    def start(self, now, ready_after):
        super().start(now, ready_after)
        self.slot = {"role": STANDBY, "answer_until": None}

    def answers(self, now):
        return self.sending(now) and answer_allowed(self.slot, now)

    def step(self, now):
        super().step(now)
        self.slot = {"role": self.arbiter.role, "answer_until": self.arbiter.answer_until(now)}


def simulate(devices, events, duration, poll_phase):
    """Run until ``duration``; events: (time, device index, "kill" | "restart" | "hang" | "stop").
    Returns (poll time, nodes that answered) for every poll."""
    events = sorted(events)
    answered = []
    t, next_poll = 0.0, poll_phase
    while t < duration:
        running = step_events(devices, events, t, lambda: random.choice([0.3, LEASE * 0.9, 1.5, 3.0 * TAKEOVER]))
        if t >= next_poll:      # the responders answer before their supervisor runs again: the worst order
            next_poll += POLL
            repliers = [d for d in running if d.answers(t)]
            answered.append((t, frozenset(d.node for d in repliers)))
            for listener in running:
                listener.arbiter.poll(t)
                if repliers:
                    listener.arbiter.frame(t + REPLY_S)
        exchange_beats(running, t)
        for device in running:
            device.step(t)
        t = round(t + STEP, 6)
    return answered


@settings(max_examples=60, deadline=None)
@given(priorities=st.tuples(st.integers(0, 255), st.integers(0, 255)), nodes=st.sampled_from([(1, 2), (2, 1), (1, 5)]),
       ready_after=st.tuples(st.floats(0, 3), st.floats(0, 3)), preempt=st.booleans(), plan=fault_plans(5),
       poll_phase=st.floats(0, 1), seed=st.integers(0, 1000))
def test_a_polled_pair_never_answers_one_request_twice_nor_leaves_requests_unanswered_for_long(
        priorities, nodes, ready_after, preempt, plan, poll_phase, seed):
    random.seed(seed)
    devices = [Device(nodes[i], priorities[i], preempt, 0.0, ready_after[i]) for i in range(2)]
    events, t = fault_events(plan)
    answered = simulate(devices, events, t, poll_phase)
    assert all(len(nodes_) <= 1 for _, nodes_ in answered), [(p, n) for p, n in answered if len(n) > 1]
    settled = [(p, n) for p, n in answered if p >= 8.0]
    unanswered, longest = 0, 0
    for _, nodes_ in settled:
        unanswered = 0 if nodes_ else unanswered + 1
        longest = max(longest, unanswered)
    # the first unanswered request starts the clock: takeover_s, settling, and one more poll
    assert longest * POLL <= TAKEOVER + SETTLE + POLL + LATENCY + 2 * STEP, settled
    assert settled[-1][1], "someone answers at the end"


@settings(max_examples=30, deadline=None)
@given(nodes=st.sampled_from([(1, 2), (2, 1), (1, 5)]), ready_after=st.tuples(st.floats(0, 3), st.floats(0, 3)),
       poll_phase=st.floats(0, 1), seed=st.integers(0, 1000))
def test_a_polled_pair_started_together_takes_over_once(nodes, ready_after, poll_phase, seed):
    random.seed(seed)
    devices = [Device(nodes[i], 100, False, 0.0, ready_after[i]) for i in range(2)]
    answered = simulate(devices, [], 15.0, poll_phase)
    assert sum(d.arbiter.takeovers for d in devices) == 1, [(d.node, d.arbiter.last_takeover) for d in devices]
    assert all(len(nodes_) <= 1 for _, nodes_ in answered) and answered[-1][1]
