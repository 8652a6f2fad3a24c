"""Pylon HV end to end on the host: `supervisor.py run` with an HV profile and an HV pack, the
simulated inverter polling 0x4200, judged on the recorded bus (and the status file).

A poll is answered when its whole reply set follows it before the next poll; "never two
answers to one request" is checked on the same record.
"""
import os
import signal
import time

import pytest

import config
from tests.multiproc.standby_pair import Poller
from tests.unit.test_protocol_hv_config import hv_sections

ENSEMBLE = [0x4210 + 0x10 * i for i in range(9)]
EQUIPMENT = [0x7310, 0x7320, 0x7330, 0x7340]
LATENCY_S = 0.1


def hv_daemon(daemon, profile="pylon_hv", **extra):
    return daemon(**hv_sections(profile, **extra))


def exchanges(d, until=None):
    """Each 0x4200 poll of the record, up to ``until`` (the stop: workers end one by one), with
    the replies heard before the next poll."""
    records = d.frames()
    polls = [i for i, r in enumerate(records) if r["id"] == 0x4200 and r.get("extended")]
    result = []
    for n, index in enumerate(polls):
        end = polls[n + 1] if n + 1 < len(polls) else len(records)
        replies = [r for r in records[index + 1:end] if r.get("extended") and r["id"] != 0x4200]
        if until is None or records[index]["t"] < until:
            result.append((records[index], replies))
    return result


def answered(poll, replies, address=0):
    """The poll's reply ids in order are its whole set, each once, within LATENCY_S."""
    wanted = ENSEMBLE if poll["fields"]["poll_request"] == 0 else EQUIPMENT
    ids = [r["id"] for r in replies]
    return ids == [i + address for i in wanted] and all(r["t"] - poll["t"] < LATENCY_S for r in replies)


def test_the_simulated_hv_inverter_polls_and_every_poll_is_answered_at_once(daemon):
    d = hv_daemon(daemon)
    status = d.wait_sending()
    assert status["frames"][0]["id"] == "0x4210"
    d.wait_for(lambda s: s["inverter"]["link"] == "up", 20, "the inverter link up from its polls")
    time.sleep(6)
    stopped = time.time()
    d.stop()
    record = exchanges(d, stopped)
    first = next(n for n, (poll, replies) in enumerate(record) if replies)     # once bms_tx has decided
    seen = record[first:]
    assert len(seen) >= 5
    assert any(poll["fields"]["poll_request"] == 2 for poll, _ in exchanges(d))
    for poll, replies in seen:
        assert answered(poll, replies), (poll, [(hex(r["id"]), r["t"] - poll["t"]) for r in replies])
    limits = [r["fields"] for _, replies in seen for r in replies if r["id"] == 0x4220]
    assert all(300 < f["charge_voltage_v"] <= 331.2 and 0 <= f["charge_current_a"] <= 30 for f in limits)
    pile = [r["fields"] for _, replies in seen for r in replies if r["id"] == 0x4210]
    assert all(280 < f["voltage_v"] < 350 for f in pile)       # the simulated 96-cell pack
    geometry = [r["fields"] for _, replies in exchanges(d) for r in replies if r["id"] == 0x7320]
    assert geometry and geometry[0]["cell_count"] == 96 and geometry[0]["cells_per_module"] == 16
    assert not [r for r in d.frames() if not r.get("extended")], "an HV bus carries no 11-bit frames"


def test_sofar_replies_on_address_one(daemon):
    d = hv_daemon(daemon, "sofar_hv")
    d.wait_sending()
    time.sleep(4)
    stopped = time.time()
    d.stop()
    record = exchanges(d, stopped)
    seen = record[next(n for n, (poll, replies) in enumerate(record) if replies):]
    assert seen and all(answered(poll, replies, address=1) for poll, replies in seen)


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_the_failsafe_answers_polls_while_bms_tx_is_down_never_looser_never_twice(daemon, how):
    # bms_tx restarts only after 3 s: the failsafe answers the polls meanwhile
    d = hv_daemon(daemon, watchdog={"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 0.4,
                                    "restart_backoff_initial_s": 3.0})
    d.wait_sending()
    time.sleep(3)
    pid = d.worker_pid("bms_tx")
    fault_time = time.time()
    os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    d.wait_for(lambda s: s["workers"]["bms_tx"]["restarts"] >= 1, 10, "bms_tx restarted")
    d.wait_sending(30)
    recovered_time = time.time()
    time.sleep(3)
    stopped = time.time()
    d.stop()
    log = d.log()
    assert "failsafe engaged" in log and "failsafe released" in log
    seen = exchanges(d, stopped)
    # one poll may fall between the fault and its detection; every other one is answered once
    unanswered = [poll["t"] for poll, replies in seen if not answered(poll, replies)
                  and poll["t"] > seen[1][0]["t"]]
    assert len(unanswered) <= 1 and all(fault_time <= t <= fault_time + 1.5 for t in unanswered), unanswered
    last = [r["fields"] for _, replies in seen for r in replies
            if r["id"] == 0x4220 and fault_time - 2 <= r["t"] < fault_time]
    covered = [r["fields"] for _, replies in seen for r in replies
               if r["id"] == 0x4220 and fault_time <= r["t"] <= recovered_time]
    assert last and len(covered) >= 2
    for field in ("charge_voltage_v", "charge_current_a", "discharge_current_a"):
        bound = max(f[field] for f in last)
        assert all(f[field] <= bound for f in covered), field
    by_failsafe = d.status()["polls"]["by"]["failsafe"]
    assert by_failsafe["answered"] >= 2 and by_failsafe["max_latency_s"] > 0, by_failsafe


def test_missing_polls_are_a_link_down_and_the_status_counts_the_polls(daemon):
    """The inverter is a poller of the test: it polls, stops (the link goes down after
    keepalive_timeout_s, as a missing 0x305 does for LV), and polls again."""
    d = hv_daemon(daemon, inverter={"keepalive_timeout_s": 2.0}, simulation={"inverter": False})
    d.wait_sending()
    cfg = config.load(d.config_path)
    can_section = {"channel": cfg.can.channel, "udp_port": cfg.can.udp_port}
    poller = Poller(can_section)
    try:
        status = d.wait_for(lambda s: s["inverter"]["link"] == "up" and s["polls"]["answered"] >= 3, 20,
                            "the link up and polls answered")
    finally:
        poller.close()
    polls = status["polls"]
    assert polls["requests"].get("ensemble", 0) + polls["requests"].get("equipment", 0) >= 3
    assert polls["held_back"] == 0 and polls["stale"] == 0 and polls["send_failures"] == 0
    assert polls["last_request_age_s"] < 2.0 and 0 < polls["last_latency_s"] <= polls["max_latency_s"]
    assert polls["by"]["bms_tx"]["answered"] == polls["answered"]
    stopped = time.monotonic()
    status = d.wait_for(lambda s: s["inverter"]["link"] == "down", 10, "the link down without polls")
    assert time.monotonic() - stopped >= 1.5
    assert status["polls"]["last_request_age_s"] >= 1.5
    assert "inverter link down" in d.command("check").stdout
    poller = Poller(can_section)
    try:
        d.wait_for(lambda s: s["inverter"]["link"] == "up", 10, "the link up again with the polls")
    finally:
        poller.close()
