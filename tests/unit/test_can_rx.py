"""can_rx's listener without a bus: the inverter's commands, where they live and how they end."""
import logging
import time

import can

from protocol import profiles
from workers.can_rx import FOREIGN_HOLD_S, FOREIGN_MIN_FRAMES, InverterListener, OwnIdWatch

LOG = logging.getLogger("test.can_rx")
TIMEOUT_S = 10.0


def luxpower(previous=None):
    return InverterListener(profiles.get("luxpower"), LOG, previous)


def hear(listener, arbitration_id, data):
    listener.on_message_received(can.Message(arbitration_id=arbitration_id, data=bytes(data), is_extended_id=False))


def test_a_shutdown_command_holds_until_the_inverter_clears_it():
    listener, started = luxpower(), time.monotonic()
    hear(listener, 0x300, [1, 0, 0, 0, 0, 0, 0, 0])
    assert listener.snapshot(TIMEOUT_S, started, time.monotonic())["shutdown_requested"] is True
    hear(listener, 0x305, [0] * 8)                   # keep-alives do not end it
    hear(listener, 0x300, [1, 0, 0, 0, 0, 0, 0, 0])
    assert listener.snapshot(TIMEOUT_S, started, time.monotonic())["shutdown_requested"] is True
    hear(listener, 0x300, [0] * 8)                   # the inverter's own clear
    slot = listener.snapshot(TIMEOUT_S, started, time.monotonic())
    assert slot["shutdown_requested"] is False and slot["shutdown_since"] is None


def test_a_restarted_listener_keeps_the_command_in_force_from_the_slot():
    first, started = luxpower(), time.monotonic()
    hear(first, 0x300, [1, 0, 0, 0, 0, 0, 0, 0])
    slot = first.snapshot(TIMEOUT_S, started, time.monotonic())
    restarted = luxpower(slot)                       # kill -9, then a new can_rx reads the slot
    again = restarted.snapshot(TIMEOUT_S, time.monotonic(), time.monotonic())
    assert again["shutdown_requested"] is True and again["shutdown_since"] == slot["shutdown_since"]
    assert again["link"] == "up" and again["last_seen_age_s"] < 1.0      # the link's age carries on too
    hear(restarted, 0x300, [0] * 8)
    assert restarted.snapshot(TIMEOUT_S, started, time.monotonic())["shutdown_requested"] is False


def test_the_command_ends_when_the_inverter_link_goes_down():
    listener, started = luxpower(), time.monotonic()
    hear(listener, 0x300, [1, 0, 0, 0, 0, 0, 0, 0])
    assert listener.snapshot(TIMEOUT_S, started, started + TIMEOUT_S - 1.0)["shutdown_requested"] is True
    slot = listener.snapshot(TIMEOUT_S, started, started + TIMEOUT_S + 1.0)
    assert slot["link"] == "down" and slot["shutdown_requested"] is False
    # a restart after the inverter went silent does not bring it back either
    assert luxpower(slot).snapshot(TIMEOUT_S, started, started + TIMEOUT_S + 2.0)["shutdown_requested"] is False


def test_without_link_supervision_only_the_inverters_clear_ends_it():
    listener, started = luxpower(), time.monotonic()
    hear(listener, 0x300, [1, 0, 0, 0, 0, 0, 0, 0])
    assert listener.snapshot(0.0, started, started + 3600.0)["shutdown_requested"] is True
    hear(listener, 0x300, [0] * 8)
    assert listener.snapshot(0.0, started, started + 3600.0)["shutdown_requested"] is False


def test_a_silent_inverter_left_by_a_previous_worker_reads_as_down():
    slot = luxpower().snapshot(TIMEOUT_S, 0.0, time.monotonic())
    assert slot["link"] == "down"                    # never heard since start-up long ago
    old = dict(slot, last_seen_age_s=1.0, written=time.monotonic() - 30.0, fields={"soc_pct": 50.0})
    restored = luxpower(old).snapshot(TIMEOUT_S, time.monotonic(), time.monotonic())
    assert restored["link"] == "down" and 30.0 < restored["last_seen_age_s"] < 32.0


# ---- a second transmitter of our own IDs ---------------------------------------------------------

def frames_slot(**data_by_id):
    return {"frames": [[int(frame_id[1:], 16), data, False] for frame_id, data in data_by_id.items()]}


def watch_run(sent_slot, heard, seconds, start=1000.0, foreign_slot=None):
    """Observe ``sent_slot`` every 0.5 s for ``seconds`` while ``heard(t)`` yields the frames heard
    in [t, t + 0.5); the watch's last report."""
    watch = OwnIdWatch(profiles.get("pylon"), LOG)
    result, t = None, start
    while t < start + seconds:
        watch.observe((sent_slot, foreign_slot), t)
        for arbitration_id, data in heard(t):
            watch.heard(arbitration_id, bytes.fromhex(data), 0.0, t + 0.1)
        result = watch.judge(t)
        t += 0.5
    return watch, result


def every_second(*frames):
    return lambda t: frames if t % 1.0 == 0 else ()


def test_our_own_frames_read_back_are_no_foreign_transmitter():
    ours = frames_slot(x351="2c02e803b004e001", x355="4b006400")
    _, report = watch_run(ours, every_second((0x351, "2c02e803b004e001"), (0x355, "4b006400")), 20)
    assert report is None


def test_frames_with_our_ids_and_other_data_are_a_foreign_transmitter():
    ours = frames_slot(x351="2c02e803b004e001", x355="4b006400")
    heard = every_second((0x351, "2c02e803b004e001"), (0x351, "20020000b004e001"), (0x355, "4b006400"))
    watch, report = watch_run(ours, heard, 10)
    assert report["ids"] == ["0x351"] and report["count"] >= FOREIGN_MIN_FRAMES
    assert report["last_seen_age_s"] < 5.0 and report["first_seen_age_s"] > report["last_seen_age_s"]
    # it ends once the other device has been silent for FOREIGN_HOLD_S
    t = 1010.0
    while t < 1010.0 + FOREIGN_HOLD_S + 5.0:
        watch.observe((ours,), t)
        report = watch.judge(t)
        t += 0.5
    assert report is None


def test_the_failsafe_frames_and_frames_of_a_stall_are_not_foreign():
    ours, failsafe = frames_slot(x351="2c02e803b004e001"), frames_slot(x351="2c020000b004e001")
    _, report = watch_run(ours, every_second((0x351, "2c020000b004e001")), 10, foreign_slot=failsafe)
    assert report is None
    watch = OwnIdWatch(profiles.get("pylon"), LOG)
    watch.observe((ours,), 100.0)
    for second in range(5):         # heard while the process stalled: their data may have left the slot since
        watch.heard(0x351, bytes.fromhex("2c020000b004e001"), 0.0, 90.0 + second)
    watch.observe((ours,), 110.0)
    assert watch.judge(120.0) is None


def test_a_foreign_transmitter_alone_on_the_bus_is_seen():
    _, report = watch_run({}, every_second((0x355, "4b006400")), 10)
    assert report["ids"] == ["0x355"]


def test_our_own_ids_never_count_as_the_inverter_speaking():
    listener, started = InverterListener(profiles.get("pylon"), LOG, None, OwnIdWatch(profiles.get("pylon"), LOG)), \
        time.monotonic()
    hear(listener, 0x351, bytes.fromhex("2c02e803b004e001"))
    slot = listener.snapshot(TIMEOUT_S, started - TIMEOUT_S - 1.0, time.monotonic())
    assert slot["link"] == "down" and slot["fields"] == {} and slot["rx_frames"] == 0
    assert len(listener.own.heard_frames) == 1
