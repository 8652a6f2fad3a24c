"""A hot-standby pair of plain Pis reading one VE.Direct monitor through a split TX line (one
emulator feeding two pseudo-terminals): the standby has fresh data of its own, so when the
active device dies it takes over with the real limits (its own decision, no failsafe), not
with degraded ones."""
import signal
import time

from tests.fakes.vedirect_device import VeDirectDevice
from tests.multiproc.standby_pair import PYLON_IDS, longest_silences, name_of
from tests.multiproc import test_standby
from tests.multiproc.test_standby import PERIOD, SLACK, TAKEOVER, role

pair = test_standby.pair        # the fixture: two daemons on one virtual bus, and its recording


def test_the_standby_takes_over_with_its_own_fresh_data_and_full_limits(pair, tmp_path):
    link_a, link_b = str(tmp_path / "ttyVE-a"), str(tmp_path / "ttyVE-b")
    device = VeDirectDevice(link_a, period_s=0.5, split_to=[link_b]).plug()
    try:
        a = pair.start(1, battery={"source": "vedirect"}, vedirect={"port": link_a})
        role(a, "active")
        b = pair.start(2, battery={"source": "vedirect"}, vedirect={"port": link_b})
        status = role(b, "standby")           # deciding on its own battery data
        assert status["battery"]["voltage_v"] == 53.12 and status["battery"]["age_s"] < 2
        time.sleep(2)
        killed_at = time.monotonic()
        a.stop(signal.SIGKILL)
        status = role(b, "active", 15)
        time.sleep(2)
        status = b.status()
        assert not status["failsafe"]["engaged"], "its own decisions, not the frames it heard"
        assert b.command("check").returncode == 0
        records = list(pair.recording.records)
        before = {r.arbitration_id: r.data for r in records if r.t < killed_at}
        after = [r for r in records if r.t > killed_at + TAKEOVER + PERIOD + SLACK]
        limits_after = {r.arbitration_id: r.data for r in after}
        assert limits_after[0x351] == before[0x351], "the same full limits as the active device's"
        assert int.from_bytes(limits_after[0x351][2:4], "little", signed=True) > 0, "charging allowed"
        assert {r.data.strip() for r in after if r.arbitration_id == 0x35E} == {name_of(2).encode()}
        silences = longest_silences([r for r in records if r.t > killed_at - 2 * PERIOD], PYLON_IDS)
        assert all(s <= TAKEOVER + PERIOD + SLACK for s in silences.values()), silences
    finally:
        device.unplug()
