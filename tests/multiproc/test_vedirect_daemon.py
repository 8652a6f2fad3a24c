"""The daemon on a plain Pi's battery source: a SmartShunt emulated on a pseudo-terminal, the
frames judged on the recorded bus. Its data reaches the inverter; a pulled cable ages it into
the stale policy (no charging); the cable plugged in again restores the limits."""
import time

import pytest

from tests.fakes.vedirect_device import VeDirectDevice
from tests.multiproc.daemon import Daemon


@pytest.fixture
def setup(tmp_path):
    link = str(tmp_path / "ttyVE")
    device = VeDirectDevice(link, period_s=0.5).plug()
    daemon = Daemon(tmp_path, battery={"source": "vedirect"}, vedirect={"port": link, "reopen_s": 0.2},
                    stale={"hold_s": 1.0, "stale_s": 3.0}, limits={"recovery_hold_s": 1.0}).start()
    yield device, daemon
    daemon.stop()


def test_vedirect_data_reaches_the_bus_and_ages_when_the_cable_is_pulled(setup):
    device, d = setup
    status = d.wait_sending(60)
    assert "battery_reader" in status["workers"] and "worker battery_reader started" in d.log()
    d.wait_for(lambda s: s["battery"]["voltage_v"] == 53.12 and s["battery"]["soc_pct"] == 82.7, 20,
               "the emulated monitor's values")
    d.wait_for(lambda s: [f for f in s["frames"] if f["id"] == "0x351"][0]["fields"]["charge_current_a"] > 0,
               20, "charging allowed on fresh data")
    device.unplug()
    unplugged = time.time()
    d.wait_for(lambda s: [f for f in s["frames"] if f["id"] == "0x351"][0]["fields"]["charge_current_a"] == 0,
               20, "no charging on stale data")
    stale_seen = time.time()
    assert "VE.Direct port %s lost" % device.link in d.log()
    time.sleep(2)
    device.plug()
    replugged = time.time()
    d.wait_for(lambda s: s["battery"]["age_s"] < 1.5, 20, "fresh data again")
    d.wait_for(lambda s: [f for f in s["frames"] if f["id"] == "0x351"][0]["fields"]["charge_current_a"] > 0,
               30, "charging allowed again")
    d.stop()
    measured = [r["fields"] for r in d.frames(0x356) if r["t"] < unplugged]
    assert measured and measured[-1]["voltage_v"] == 53.12 and measured[-1]["current_a"] == -12.3
    assert [r["fields"]["soc_pct"] for r in d.frames(0x355) if r["t"] < unplugged][-1] == 83
    stale = [r["fields"]["charge_current_a"] for r in d.frames(0x351) if stale_seen < r["t"] < replugged]
    assert len(stale) >= 2 and set(stale) == {0}
    assert stale_seen - unplugged > 1.0, "held, not cut, while the data was younger than stale.hold_s"
