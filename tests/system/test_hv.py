"""Pylon HV on real SocketCAN: can-utils plays the polling inverter, candump judges the answers.

Both tiers run it (see test_daemon.py: vcan0 alone, or the emulated SJA1000 controllers, the
daemon on can0 at the installer's 500 kbit/s, the inverter on can1, the judge on can2). The
daemon runs an HV profile with an HV pack and no simulated inverter: every 0x4200 comes from
cansend. The replies are judged on candump's kernel timestamps and decoded here from
PYLON_HV.md §3 with struct, sharing no code with protocol/pylon_hv.py (no DBC exists for HV).

A poll is answered when its whole reply set, each frame once, on 29-bit IDs, is on the bus
before the next poll; the latency (request to last reply) is reported, never asserted.
"""
import os
import re
import signal
import struct
import subprocess
import time

import pytest

from protocol.frame import Frame
from tests.system import can_utils
from tests.system.test_daemon import cpu_share, daemon, names  # noqa: F401 (daemon: a fixture)
from tests.unit.test_protocol_hv_config import hv_sections

REQUEST_ID = 0x4200
ENSEMBLE = tuple(0x4210 + 0x10 * i for i in range(9))
EQUIPMENT = (0x7310, 0x7320, 0x7330, 0x7340)
REPLIES = {0x00: ENSEMBLE, 0x02: EQUIPMENT}        # byte 0 of the request -> its reply set (before the address)
POLL_INTERVAL_S = 1.0                               # a real inverter's cadence (PYLON_HV.md §4)
SMALL_TX_QUEUE = 10                                 # the smallest txqueuelen of the adapters users have
# What each profile's replies carry (their module docstrings, PYLON_HV.md §2, §6 C2).
ADDRESS = {"pylon_hv": 0, "sofar_hv": 1}
DISCHARGE_LIMIT_SIGN = {"pylon_hv": -1, "sofar_hv": +1}     # raw = 30000 + sign * 10 * I


def poll(byte0):
    return Frame(REQUEST_ID, bytes([byte0]) + bytes(7), is_extended_id=True)


def hv_daemon(daemon, profile="pylon_hv", **extra):  # noqa: F811
    """Without --record: its recorder would read every frame of a flood; candump is the judge."""
    d = daemon(False, **hv_sections(profile, **extra))
    d.wait_sending(120)
    return d


def send_polls(cansend, requests, between=lambda n: None):
    """The inverter: one request per POLL_INTERVAL_S; ``between(n)`` runs after the n-th."""
    for n, request in enumerate(requests):
        started = time.monotonic()
        cansend(request)
        between(n)
        time.sleep(max(0.0, POLL_INTERVAL_S - (time.monotonic() - started)))


def exchanges(captured):
    """Each 0x4200 on the bus with the frames heard after it, up to the next one."""
    requests = [n for n, c in enumerate(captured)
                if c.frame.arbitration_id == REQUEST_ID and c.frame.is_extended_id]
    return [(captured[n], captured[n + 1:(requests[i + 1] if i + 1 < len(requests) else len(captured))])
            for i, n in enumerate(requests)]


def judge(exchange, address):
    """None when the poll got its whole set once, in order, on 29-bit IDs; else what is wrong."""
    request, heard = exchange
    wanted = [i + address for i in REPLIES[request.frame.data[0]]]
    got = [(c.frame.arbitration_id, c.frame.is_extended_id) for c in heard]
    if got != [(i, True) for i in wanted]:
        return "poll %s at %.3f: heard %s, wanted %s" % (request.frame, request.timestamp,
                                                          ["%X%s" % (i, "" if x else " (11-bit)") for i, x in got],
                                                          ["%X" % i for i in wanted])
    return None


def latency_s(exchange):
    request, heard = exchange
    return heard[-1].timestamp - request.timestamp


def report_latencies(artifacts_dir, answered):
    """Request-to-last-reply times, into the test's artifacts (kept on the host)."""
    figures = sorted(latency_s(e) * 1000 for e in answered)
    text = "request -> last reply (ms), %d polls: min %.2f median %.2f max %.2f; all: %s" % (
        len(figures), figures[0], figures[len(figures) // 2], figures[-1], ", ".join("%.2f" % f for f in figures))
    (artifacts_dir / "latency.txt").write_text(text + "\n")
    return figures


def decode_ensemble(heard, profile):
    """The values of an ensemble reply, from PYLON_HV.md §3.2: little endian, 0.1 V, currents
    raw = 10 I + 30000, temperatures raw = 10 T + 1000, 0xAA = forbidden."""
    data = {c.frame.arbitration_id - ADDRESS[profile]: c.frame.data for c in heard}
    voltage, current, temperature, soc, soh = struct.unpack("<HHHBB", data[0x4210])
    cvl, dvl, ccl, dcl = struct.unpack("<HHHH", data[0x4220])
    return {"voltage_v": voltage / 10, "current_a": (current - 30000) / 10, "temperature_c": (temperature - 1000) / 10,
            "soc_pct": soc, "soh_pct": soh, "charge_voltage_v": cvl / 10, "discharge_voltage_v": dvl / 10,
            "charge_current_a": (ccl - 30000) / 10,
            "discharge_current_a": (dcl - 30000) / 10 / DISCHARGE_LIMIT_SIGN[profile],
            "charge_enable": data[0x4280][0] != 0xAA, "discharge_enable": data[0x4280][1] != 0xAA}


def decode_equipment(heard, profile):
    """0x7320 (PYLON_HV.md §3.3: cells in series, modules, cells per module, V, Ah) and the name."""
    data = {c.frame.arbitration_id - ADDRESS[profile]: c.frame.data for c in heard}
    cells, modules, per_module, volts, amp_hours = struct.unpack("<HBBHH", data[0x7320])
    name = (data[0x7330] + data[0x7340]).rstrip(b"\x00").decode("ascii")
    return {"cells": cells, "modules": modules, "cells_per_module": per_module, "voltage_v": volts,
            "capacity_ah": amp_hours, "name": name}


def status_fields(status, profile, base):
    return next(f["fields"] for f in status["frames"] if int(f["id"], 16) == base + ADDRESS[profile])


def poll_counts(status):
    """The daemon's requests by kind, as its status counts them."""
    return status["polls"]["requests"]


@pytest.mark.parametrize("profile", ["pylon_hv", "sofar_hv"])
def test_every_poll_is_answered_once_with_its_whole_set_on_29_bit_ids_carrying_the_decision(
        daemon, candump, cansend, profile, artifacts_dir):  # noqa: F811
    d = hv_daemon(daemon, profile)
    recorder = candump()
    send_polls(cansend, [poll(0x02)] + [poll(0x00)] * 5 + [poll(0x02)])
    time.sleep(POLL_INTERVAL_S)
    status = d.status()
    captured = recorder.stop()
    seen = exchanges(captured)
    assert len(seen) == 7 and not [c for c in captured if not c.frame.is_extended_id], captured
    wrong = [judge(e, ADDRESS[profile]) for e in seen]
    assert not any(wrong), wrong
    # the function bound: each burst is whole before the next poll; the figures go to the report
    report_latencies(artifacts_dir, seen)
    assert all(latency_s(e) < POLL_INTERVAL_S for e in seen)

    ours = decode_ensemble(seen[-2][1], profile)
    limits = status_fields(status, profile, 0x4220)
    for field in ("charge_voltage_v", "discharge_voltage_v", "charge_current_a", "discharge_current_a"):
        assert ours[field] == pytest.approx(limits[field], abs=0.051), (field, ours, limits)
    assert 300 < ours["charge_voltage_v"] <= 331.2 and 0 <= ours["charge_current_a"] <= 30
    forbidden = status_fields(status, profile, 0x4280)
    assert (ours["charge_enable"], ours["discharge_enable"]) == (forbidden["charge_enable"],
                                                                  forbidden["discharge_enable"])
    battery = status["battery"]         # the simulated pack drifts slowly: within a second of the status
    assert abs(ours["voltage_v"] - battery["voltage_v"]) < 1.0 and abs(ours["soc_pct"] - battery["soc_pct"]) <= 1
    assert abs(ours["current_a"] - battery["current_a"]) < 5.0 and 0 < ours["temperature_c"] < 60
    equipment = decode_equipment(seen[0][1], profile)
    assert equipment == {"cells": 96, "modules": 6, "cells_per_module": 16, "voltage_v": 307,
                         "capacity_ah": 50, "name": "PYLONTECH"}, equipment
    counted = d.wait_for(lambda s: poll_counts(s) == {"ensemble": 5, "equipment": 2}, 10, "the polls counted by kind")
    assert counted["polls"]["answered"] == 7 and counted["polls"]["send_failures"] == 0, counted["polls"]


def test_other_requests_are_counted_never_answered_and_the_polls_alone_keep_the_link_up(
        daemon, candump, cansend):  # noqa: F811
    """byte 0 other than 0x00 and 0x02 is no request this battery answers (0x01 asks for cell
    data no emulator sends); any 0x4200 is a sign of life, and none for keepalive_timeout_s is
    a link down, until polls come again."""
    d = hv_daemon(daemon)
    recorder = candump()
    strange = [poll(0x01), poll(0x05), poll(0xFF)]
    send_polls(cansend, strange)
    d.wait_for(lambda s: s["inverter"]["link"] == "up" and poll_counts(s) == {"ignored": 3}, 10,
               "link up on the polls, each counted as ignored")
    d.wait_for(lambda s: s["inverter"]["link"] == "down", 15, "link down without polls")
    send_polls(cansend, [poll(0x00)] * 2)
    status = d.wait_for(lambda s: s["inverter"]["link"] == "up" and s["can"]["rx_frames"] == 5, 10,
                        "link up again on the polls")
    seen = exchanges(recorder.stop())
    assert [e[0].frame.data[0] for e in seen] == [0x01, 0x05, 0xFF, 0x00, 0x00]
    assert [len(e[1]) for e in seen[:3]] == [0, 0, 0], "nothing answers a request this battery does not know"
    assert not any(judge(e, 0) for e in seen[3:]), [judge(e, 0) for e in seen[3:]]
    assert status["can"]["errors"]["bad_frames"] == 0


def test_a_flood_of_foreign_29_bit_ids_changes_no_answer_and_is_never_decoded(
        daemon, candump, cansend, inverter_channel, artifacts_dir):  # noqa: F811
    """cangen floods random 29-bit IDs and 0x4201 (one bit from the request) while the inverter
    polls; the kernel filters keep the flood from the daemon's sockets. Its CPU is reported."""
    d = hv_daemon(daemon)
    idle = cpu_share(d.process.pid, 5)
    recorder = candump()
    floods = [can_utils.cangen(inverter_channel, ["-g", "1", "-e", "-L", "8", "-n", "6000"]),
              can_utils.cangen(inverter_channel, ["-g", "1", "-e", "-I", "4201", "-L", "8", "-D", "i", "-n", "6000"])]
    send_polls(cansend, [poll(0x00)] * 3)
    flooded = cpu_share(d.process.pid, 5)
    send_polls(cansend, [poll(0x00)] * 3)
    for flood in floods:
        flood.terminate()
        flood.wait(60)
    time.sleep(POLL_INTERVAL_S)
    captured = recorder.stop()
    foreign = sum(1 for c in captured if c.frame.arbitration_id not in (REQUEST_ID,) + ENSEMBLE)
    assert foreign > 2000, "the flood happened: %d foreign frames" % foreign
    ours = [c for c in captured if c.frame.arbitration_id in (REQUEST_ID,) + ENSEMBLE]
    seen = exchanges(ours)
    assert len(seen) == 6 and not any(judge(e, 0) for e in seen), [judge(e, 0) for e in seen]
    report_latencies(artifacts_dir, seen)
    workers = {w["pid"]: name for name, w in d.status()["workers"].items()}
    report = "cpu share idle %s, flooded %s (supervisor %d, workers %s)" % (names(idle), names(flooded),
                                                                         d.process.pid, workers)
    (artifacts_dir / "cpu.txt").write_text(report + "\n")
    # not exploding; the emulated CPUs book the flood's interrupts to whoever runs, so only a coarse bound
    assert sum(flooded.values()) < 2 * sum(idle.values()) + 0.2, report
    # the kernel filters keep every flood frame from can_rx's and the responder's sockets: each counts
    # exactly the polls it received (an emulated controller's overrun under the flood raises error
    # frames, which every socket gets: can_rx counts them as such, the responder as no request)
    status = d.wait_for(lambda s: s["can"]["rx_frames"] == 6 and poll_counts(s) == {"ensemble": 6}, 10,
                        "the 6 polls received and counted, nothing of the flood")
    assert status["can"]["errors"]["bad_frames"] == 0


def test_kill_9_of_bms_tx_while_polled_every_poll_is_still_answered_once(
        daemon, candump, cansend, artifacts_dir):  # noqa: F811
    """bms_tx killed just after a poll: the failsafe answers from the next poll on, until bms_tx
    is back (3 s later), never with two answers to one poll."""
    d = hv_daemon(daemon, watchdog={"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 0.4,
                                    "restart_backoff_initial_s": 3.0})
    recorder = candump()
    victim = d.worker_pid("bms_tx")

    def kill_after_the_third(n):
        if n == 2:
            time.sleep(0.1)
            os.kill(victim, signal.SIGKILL)

    send_polls(cansend, [poll(0x00)] * 10, kill_after_the_third)
    time.sleep(POLL_INTERVAL_S)
    captured = recorder.stop()
    status = d.status()
    assert status["workers"]["bms_tx"]["restarts"] == 1
    assert "failsafe engaged" in d.log() and "failsafe released" in d.log()
    seen = exchanges(captured)
    wrong = [judge(e, 0) for e in seen]
    assert len(seen) == 10 and not any(wrong), wrong
    report_latencies(artifacts_dir, seen)


def qdisc_drops(channel):
    """Frames the interface's queue refused (a sender got ENOBUFS for each)."""
    shown = subprocess.run(["tc", "-s", "qdisc", "show", "dev", channel], check=True,
                           stdout=subprocess.PIPE, universal_newlines=True).stdout
    return sum(int(n) for n in re.findall(r"dropped (\d+)", shown))


def test_with_the_smallest_tx_queue_back_to_back_polls_never_overflow_it(
        daemon, candump, tier, device_channel, inverter_channel, artifacts_dir):  # noqa: F811
    """Both requests at once, 13 replies, through a controller's txqueuelen 10: every poll is
    answered whole. A frame the full queue refused (ENOBUFS, counted by the qdisc) was sent
    again after a wait and counted in the status (``can.errors.queue_full``): none is lost."""
    if tier == "vcan":
        pytest.skip("vcan has no TX queue to overflow; the sja1000 tier has one")
    import can
    subprocess.run(["ip", "link", "set", "dev", device_channel, "txqueuelen", str(SMALL_TX_QUEUE)], check=True)
    try:
        d = hv_daemon(daemon)
        recorder = candump()
        drops = qdisc_drops(device_channel)
        with can.Bus(interface="socketcan", channel=inverter_channel) as inverter:
            for _ in range(8):
                for request in (poll(0x00), poll(0x02)):
                    inverter.send(can.Message(arbitration_id=request.arbitration_id, data=request.data,
                                              is_extended_id=True))
                time.sleep(POLL_INTERVAL_S)
        captured = recorder.stop()
        dropped = qdisc_drops(device_channel) - drops
        status = d.wait_for(lambda s: s["can"]["errors"]["queue_full"] >= dropped, 15,
                            "every refused frame counted as retried")
    finally:
        subprocess.run(["ip", "link", "set", "dev", device_channel, "txqueuelen", "100"], check=True)
    ids = [c.frame.arbitration_id for c in captured if c.frame.arbitration_id != REQUEST_ID]
    assert sorted(ids) == sorted(list(ENSEMBLE + EQUIPMENT) * 8), ["%X" % i for i in ids]
    requests = [c.timestamp for c in captured if c.frame.arbitration_id == REQUEST_ID]
    last = [max(c.timestamp for c in captured if c.frame.arbitration_id != REQUEST_ID and t < c.timestamp < t + 0.9)
            for t in requests[::2]]
    (artifacts_dir / "latency.txt").write_text("both requests -> last of 13 replies (ms): %s\n"
                                               % ", ".join("%.2f" % ((b - a) * 1000) for a, b in zip(requests[::2], last)))
    assert status["polls"]["send_failures"] == 0 and status["polls"]["answered"] == 16, status["polls"]
