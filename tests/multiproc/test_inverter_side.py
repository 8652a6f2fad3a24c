"""What the inverter says, on the running daemon: its commands outlive a can_rx restart and end as
documented; a second transmitter of our own IDs is seen and reported.

Each test runs the real `supervisor.py run` on the embedded simulation and talks to it as another
device on its virtual bus (a python-can bus on the same udp_multicast group and port).
"""
import os
import signal
import time

import can
import pytest

import config

SHUTDOWN = bytes([1, 0, 0, 0, 0, 0, 0, 0])
CLEAR = bytes(8)


@pytest.fixture
def device():
    """``device(daemon)``: another device on the daemon's virtual CAN bus."""
    opened = []

    def open_on(daemon):
        cfg = config.load(daemon.config_path)
        opened.append(can.Bus(interface="udp_multicast", channel=cfg.can.channel, port=cfg.can.udp_port))
        return opened[-1]

    yield open_on
    for bus in opened:
        bus.shutdown()


def limits(status):
    """(charge current, discharge current, charge enable, discharge enable) of the frame set sent."""
    fields = {}
    for frame in status["frames"]:
        fields.update(frame.get("fields") or {})
    return (fields.get("charge_current_a"), fields.get("discharge_current_a"), fields.get("charge_enable"),
            fields.get("discharge_enable"))


def shut_down(status):
    return limits(status) == (0.0, 0.0, False, False)


def test_a_shutdown_command_survives_a_kill_9_of_can_rx_and_ends_with_the_inverters_clear(daemon, device):
    d = daemon(inverter={"profile": "luxpower"})
    d.wait_sending()
    bus = device(d)
    bus.send(can.Message(arbitration_id=0x300, data=SHUTDOWN, is_extended_id=False))
    d.wait_for(lambda s: s["inverter"]["shutdown_requested"] and shut_down(s), 10, "the shutdown obeyed")
    killed = d.worker_pid("can_rx")
    os.kill(killed, signal.SIGKILL)
    d.wait_for(lambda s: s["workers"]["can_rx"]["alive"] and s["workers"]["can_rx"]["pid"] != killed, 20,
               "can_rx restarted")
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:                  # no new frame from the inverter: still in force
        status = d.status()
        assert status["inverter"]["shutdown_requested"], "the restart released the shutdown"
        assert shut_down(status), "frames after the restart: %s" % (limits(status),)
        time.sleep(0.1)
    bus.send(can.Message(arbitration_id=0x300, data=CLEAR, is_extended_id=False))
    status = d.wait_for(lambda s: not s["inverter"]["shutdown_requested"] and limits(s)[0], 10, "the clear obeyed")
    assert limits(status)[2:] == (True, True)


def test_a_second_transmitter_of_our_ids_is_reported_and_our_own_frames_are_not(daemon, device):
    d = daemon()
    d.wait_sending()
    os.kill(d.worker_pid("bms_tx"), signal.SIGKILL)         # the failsafe's frames are ours too
    d.wait_for(lambda s: s["workers"]["bms_tx"]["alive"] and not s["failsafe"]["engaged"] and s["frames"], 30,
               "bms_tx back")
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        assert d.status()["inverter"]["foreign_transmitter"] is None, d.status()["inverter"]
        time.sleep(0.2)
    assert d.command("check").returncode == 0
    bus = device(d)
    other = bytes.fromhex("1002e803e8030000")               # another BMS's 0x351: other limits
    for _ in range(6):
        bus.send(can.Message(arbitration_id=0x351, data=other, is_extended_id=False))
        time.sleep(1.0)
    status = d.wait_for(lambda s: s["inverter"]["foreign_transmitter"], 10, "the second transmitter reported")
    assert status["inverter"]["foreign_transmitter"]["ids"] == ["0x351"]
    check = d.command("check")
    assert check.returncode != 0 and "another device sends our BMS IDs 0x351" in check.stdout + check.stderr
    assert "another device sends our BMS IDs 0x351" in d.log()
    d.wait_for(lambda s: s["inverter"]["foreign_transmitter"] is None, 25, "the report to end with the silence")
