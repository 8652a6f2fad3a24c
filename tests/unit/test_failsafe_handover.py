"""The failsafe continues each ID from bms_tx's wire record, trusting its "on the wire" only for
the bms_tx whose death it covers, and hands the bus back with a record of its own."""
import logging
import random
import time

import config
from canbus.cyclic import Schedule
from failsafe.transmitter import FailsafeTransmitter
from protocol import profiles
from protocol.report import to_json
from tests.unit.test_bms_stale import REPORT

CFG = config.load().replace(can={"udp_port": random.randint(20000, 60000)})
IDS = profiles.get(CFG.inverter.profile).frame_ids


class FakeState:
    def __init__(self, **slots):
        self.slots = dict(slots)

    def read(self, slot):
        return self.slots.get(slot)

    def write(self, slot, value):
        self.slots[slot] = value


def bms_tx_slot(pid, on, until, now):
    return {"pid": pid, "written": now, "report": to_json(REPORT), "data_age_s": 0.0,
            "schedule": Schedule(now - 0.5, profiles.get(CFG.inverter.profile).cycle_s, IDS).as_dict(),
            "wire": {"on": on, "until": until}}


def test_on_the_wire_counts_up_to_the_last_heartbeat_only_for_the_bms_tx_that_died():
    now = time.monotonic()
    until = [now - 0.9 + 0.1 * i for i in range(len(IDS))]
    on = [True, True] + [False] * (len(IDS) - 2)
    state = FakeState(frames=bms_tx_slot(4242, on, until, now))
    failsafe = FailsafeTransmitter(CFG, state, logging.getLogger("test"))
    try:
        failsafe.engage(now - 0.05, writer=4242)
        assert failsafe._sent_until == [now - 0.05] * 2 + until[2:]
        time.sleep(0.3)
        failsafe.release()
        released = state.read("failsafe")["wire"]["until"]
        failsafe.engage(now - 0.05, writer=4343)        # that one died before it wrote a record
        assert failsafe._sent_until == [max(mine, theirs) for mine, theirs in zip(released, until)], \
            "its own record of what it sent counts too, the other's on the wire only to its first frames"
    finally:
        failsafe.close()


def test_without_a_record_every_id_continues_after_the_given_moment():
    now = time.monotonic()
    slot = bms_tx_slot(4242, [], [], now)
    del slot["wire"]
    failsafe = FailsafeTransmitter(CFG, FakeState(frames=slot), logging.getLogger("test"))
    try:
        failsafe.engage(now - 0.05, writer=4242)
        assert failsafe._sent_until == [now - 0.05] * len(IDS)
    finally:
        failsafe.close()


def test_an_id_on_the_wire_of_a_hung_bms_tx_counts_only_up_to_its_lease():
    """The kernel stopped a hung bms_tx's frames at the end of their lease, before the kill: the
    failsafe continues from there, not from the kill, so the IDs unsent since are caught up."""
    now = time.monotonic()
    slot = bms_tx_slot(4242, [True] * len(IDS), [now - 5.0] * len(IDS), now)
    slot["wire"]["lease_until"] = now - 3.0
    failsafe = FailsafeTransmitter(CFG, FakeState(frames=slot), logging.getLogger("test"))
    try:
        failsafe.engage(now - 0.05, writer=4242)
        assert failsafe._sent_until == [now - 3.0] * len(IDS)
    finally:
        failsafe.close()
