"""A bus that cannot be opened at start (a USB CAN adapter not yet there at boot) is reported
and tried again by the recorder and the hot standby; it never stops the supervisor."""
import logging
import time

import can
import pytest

import config
from canbus import recorder
from canbus.recorder import BusRecorder
from failsafe import standby
from failsafe.standby import ACTIVE, HotStandby

log = logging.getLogger("test-guarded-open")


class AdapterArrivingLate:
    """``open_bus`` that fails ``failures`` times (no such device), then opens a virtual bus."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0
        self.channel = "guarded-%d" % id(self)

    def __call__(self, cfg, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(19, "No such device")
        return can.Bus(interface="virtual", channel=self.channel)


@pytest.fixture
def cfg():
    return config.load().replace(standby={"enabled": True})


def test_the_recorder_reports_a_missing_bus_and_records_once_it_appears(cfg, tmp_path, monkeypatch, caplog):
    adapter = AdapterArrivingLate(2)
    monkeypatch.setattr(recorder, "open_bus", adapter)
    path = str(tmp_path / "bus.log")
    recording = BusRecorder(cfg, path, log)
    assert "No such device" in recording.error
    started = recording._next_try - recorder.RETRY_S
    recording.keep_open(started + 1)
    assert adapter.calls == 1                       # not before RETRY_S
    recording.keep_open(started + recorder.RETRY_S)
    assert adapter.calls == 2 and caplog.text.count("cannot open") == 1     # reported once, not per try
    recording.keep_open(started + 2 * recorder.RETRY_S + 1)
    assert recording.error is None and "opened" in caplog.text
    sender = can.Bus(interface="virtual", channel=adapter.channel)
    sender.send(can.Message(arbitration_id=0x351, data=b"\x01\x02", is_extended_id=False))
    time.sleep(0.5)                                 # the notifier takes it within its 0.2 s timeout
    recording.close()
    sender.shutdown()
    with open(path) as recorded:
        assert "351#0102" in recorded.read()


def test_the_hot_standby_stays_standby_until_its_bus_opens_then_listens_from_then(cfg, monkeypatch, caplog):
    adapter = AdapterArrivingLate(1)
    monkeypatch.setattr(standby, "open_bus", adapter)
    device = HotStandby(cfg, log)
    started = device._next_open - standby.BUS_RETRY_S
    assert "No such device" in device.status(started)["bus_error"]
    long_after = started + 3 * cfg.standby.takeover_s
    assert device.update(long_after, ready=True, fresh=True, sending=False) is None    # cannot hear: no takeover
    opened_at = started + standby.BUS_RETRY_S + 1
    assert device.update(opened_at, ready=True, fresh=True, sending=False) is None     # listening starts now
    assert device.status(opened_at)["bus_error"] is None and "opened: listening" in caplog.text
    change = device.update(opened_at + cfg.standby.takeover_s + 1, ready=True, fresh=True, sending=False)
    assert change is not None and change.role == ACTIVE
    device.close()
