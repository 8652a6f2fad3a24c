"""bms_tx's engine across restarts, with faked clocks: wall-clock steps (no RTC before NTP, a
bad time source) never trigger nor suppress the periodic full charge, across restarts too;
saved times in the future are refused; limits the failsafe lowered meanwhile rise only by
hold and ramp."""
import json

import pytest

from bms.limits import Governor
from bms.state import ChargeState
from protocol.report import BatteryReport, to_json
from tests.fakes.worker import FakeState, FakeWorker
from workers import bms_tx

DAY = 86400.0
SYNCED = 1.7e9          # a wall clock set by NTP (2023)


class FakeClock:
    """time.time() and time.monotonic() as bms_tx sees them; the wall clock can step."""

    def __init__(self, wall, monotonic=1000.0):
        self.wall, self.mono = wall, monotonic

    def time(self):
        return self.wall

    def monotonic(self):
        return self.mono

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(wall=100.0)              # a Raspberry Pi without RTC, before NTP: 1970
    monkeypatch.setattr(bms_tx, "time", fake)
    return fake


def start(tmp_path, state):
    return bms_tx.BmsTransmitter(FakeWorker(tmp_path / "charge-state.json", state))


def cycle(tx, clock, soc_pct=99.0):
    """One cycle on fresh data (by default a full battery in float range); True when a full charge
    is requested."""
    tx.worker.state.write("battery", {"voltage_v": 53.5, "current_a": 0.0, "soc_pct": soc_pct,
                                      "temperature_c": 20.0, "updated": clock.mono})
    tx.cycle()
    return tx.worker.state.read("frames")["report"]["full_charge"]


# (*) The first cycle of each start counts no time (it has no previous one): 1 h here each.
def run_for(tx, clock, seconds, step=3600.0):
    requested = []
    for _ in range(int(seconds / step)):
        clock.advance(step)
        requested.append(cycle(tx, clock))
    return requested


def test_a_pi_started_before_time_sync_does_not_ask_for_a_full_charge_after_the_sync(tmp_path, clock):
    state = FakeState()
    tx = start(tmp_path, state)
    assert not any(run_for(tx, clock, 2 * DAY))
    clock.wall = SYNCED                       # NTP sets the clock; then bms_tx restarts
    tx.close()
    tx = start(tmp_path, state)
    assert not any(run_for(tx, clock, 11 * DAY))
    assert run_for(tx, clock, DAY + 3 * 3600.0)[-1]   # 14 days of counted time: due (*)


@pytest.mark.parametrize("step_s", [+20 * DAY, +5 * 3600.0, -20 * DAY, -5 * 3600.0])
def test_a_clock_step_neither_triggers_nor_suppresses_the_full_charge_across_a_restart(tmp_path, clock, step_s):
    clock.wall = SYNCED
    state = FakeState()
    tx = start(tmp_path, state)
    assert not any(run_for(tx, clock, 7 * DAY))
    clock.wall += step_s
    assert not cycle(tx, clock)
    tx.close()
    tx = start(tmp_path, state)               # a restart after the step
    assert not any(run_for(tx, clock, 6 * DAY))
    assert run_for(tx, clock, DAY + 3 * 3600.0)[-1]   # due after 14 days, as if the clock had not stepped (*)


@pytest.mark.parametrize("saved_t", [1e300, SYNCED + 365 * DAY])
def test_a_saved_full_charge_time_in_the_future_is_refused(tmp_path, clock, saved_t):
    clock.wall = SYNCED
    (tmp_path / "charge-state.json").write_text(json.dumps({"phase": "float", "last_full_charge_t": saved_t}))
    tx = start(tmp_path, FakeState())
    assert not any(run_for(tx, clock, 13 * DAY))
    assert run_for(tx, clock, DAY + 3 * 3600.0)[-1]   # the interval counts from the start, not from the future


def test_limits_the_failsafe_lowered_while_bms_tx_was_away_come_back_by_hold_and_ramp(tmp_path, clock):
    clock.wall = SYNCED
    saved = ChargeState(phase="bulk", charge_limit=Governor(55.0, 0.0), discharge_limit=Governor(120.0, 0.0))
    (tmp_path / "charge-state.json").write_text(json.dumps(saved.to_dict()))
    state = FakeState()
    stale = BatteryReport(55.2, 0.0, 20.0, 48.0, 60.0, 100.0, 52.0, 10.0, 20.0,
                          charge_enable=False, discharge_enable=True, alarm=frozenset({"internal_comm_fail"}))
    state.write("failsafe", {"engaged": True, "report": to_json(stale)})     # what the inverter got meanwhile
    tx = start(tmp_path, state)
    charge = []
    for _ in range(40):
        clock.advance(1.0)
        cycle(tx, clock, soc_pct=60.0)
        charge.append(state.read("frames")["report"]["charge_current_a"])
    assert charge[:31] == [0.0] * 31 and charge[31] == 5.0     # the first cycle counts no time (*)
