"""ChargeState survives JSON, refuses what it cannot hold, and restores an engine where it stopped."""
import json
import math

import pytest

import config
from bms.engine import BmsEngine
from bms.limits import Governor
from bms.snapshot import BatterySnapshot
from bms.state import ChargeState

CFG = config.load()


def test_json_round_trip():
    state = ChargeState(phase="absorption", absorption_s=120.5, tail_s=30.0, rebulk_s=None,
                        last_full_charge_t=1.7e9, force_charge=True, charge_voltage_v=55.2,
                        since_full_charge_s=3600.0, latches=frozenset({"over_voltage", "high_voltage"}),
                        charge_limit=Governor(0.0, 12.5), discharge_limit=Governor(120.0, 0.0))
    saved = json.loads(json.dumps(state.to_dict()))
    assert saved["latches"] == ["high_voltage", "over_voltage"]
    assert saved["charge_limit"] == {"current_a": 0.0, "hold_left_s": 12.5}
    assert ChargeState.from_dict(saved) == state


def test_missing_keys_take_their_defaults_and_ints_become_floats():
    state = ChargeState.from_dict({"phase": "float", "last_full_charge_t": 1700000000})
    assert state == ChargeState(phase="float", last_full_charge_t=1.7e9)
    assert isinstance(state.last_full_charge_t, float)


@pytest.mark.parametrize("data, message", [
    ({"phase": "equalize"}, "phase = 'equalize' is not allowed: expected one of bulk, absorption, float"),
    ({"colour": 1}, "unknown keys colour"),
    ({"force_charge": 1}, "force_charge = 1 is not allowed"),
    ({"absorption_s": None}, "absorption_s = None is not allowed"),
    ({"tail_s": -1.0}, "tail_s = -1.0 is not allowed: expected a finite number >= 0 or null"),
    ({"charge_voltage_v": math.nan}, "charge_voltage_v = nan is not allowed"),
    ({"rebulk_s": "3"}, "rebulk_s = '3' is not allowed"),
    ({"last_full_charge_t": 1e300}, "last_full_charge_t = 1e.300 is not allowed: expected a finite number >= 0 and < 253402300800 or null"),
    ({"last_full_charge_t": -5.0}, "last_full_charge_t = -5.0 is not allowed"),
    ({"since_full_charge_s": math.inf}, "since_full_charge_s = inf is not allowed"),
    ({"latches": "over_voltage"}, "latches = 'over_voltage' is not allowed: expected a list of names"),
    ({"latches": [1]}, "latches = \\[1\\] is not allowed"),
    ({"charge_limit": [0.0, 30.0]}, "charge_limit = \\[0.0, 30.0\\] is not allowed: expected null or"),
    ({"discharge_limit": {"current_a": 5.0}}, "discharge_limit = .* is not allowed"),
    ({"charge_limit": {"current_a": -1.0, "hold_left_s": 0.0}}, "charge_limit.current_a = -1.0 is not allowed"),
])
def test_bad_state_is_refused_with_the_reason(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ChargeState.from_dict(data)


def test_not_a_dict_is_refused():
    with pytest.raises(ValueError, match="must be a dict"):
        ChargeState.from_dict(["bulk"])


def test_a_restored_engine_continues_the_float_ramp_and_keeps_its_latches():
    engine = BmsEngine(CFG)
    t = 1000.0
    engine.step(BatterySnapshot(55.15, 5.0, 99.0, 20.0, 0.0), t)       # bulk -> absorption
    while engine.state.phase != "float":
        t += 10.0
        engine.step(BatterySnapshot(55.15, 5.0, 99.0, 20.0, 0.0), t)
    t += 100.0
    decision = engine.step(BatterySnapshot(55.15, 0.0, 99.0, 20.0, 0.0), t)
    saved = json.loads(json.dumps(engine.state.to_dict()))

    restored = BmsEngine(CFG, ChargeState.from_dict(saved))
    again = restored.step(BatterySnapshot(55.0, 0.0, 99.0, 20.0, 0.0), t + 3600.0)   # after an hour down
    assert again.phase == "float"
    assert again.report.charge_voltage_v == decision.report.charge_voltage_v       # no step down at restart
    later = restored.step(BatterySnapshot(55.0, 0.0, 99.0, 20.0, 0.0), t + 3700.0)
    assert later.report.charge_voltage_v == pytest.approx(decision.report.charge_voltage_v - 0.1)


def test_a_restored_force_charge_latch_still_requests():
    engine = BmsEngine(CFG, ChargeState(force_charge=True))
    decision = engine.step(BatterySnapshot(51.0, -5.0, 20.0, 20.0, 0.0), 0.0)   # between 10 % and 30 %
    assert decision.report.force_charge_1 and decision.report.force_charge_2
