"""Storage that fails never stops the frames: the real daemon with a status file and a charge-state
file that become unwritable while it runs, and a corrupt charge-state file, judged by the recorded
bus and `check`."""
import os
import shutil
import subprocess
import time

import pytest

from tests.multiproc.daemon import gaps

PERIOD = 1.0


def assert_frames_flowed(d, seconds):
    limits = d.frames(0x351)
    assert len(limits) >= seconds - 2, "only %d frames 0x351 in %g s" % (len(limits), seconds)
    assert max(gaps(limits)) < 1.5 * PERIOD


def make_unwritable(folder):
    """The folder turns into a file while the daemon runs: not even root can write under it."""
    shutil.rmtree(str(folder))
    folder.write_text("")


def test_an_unwritable_status_file_leaves_the_frames_flowing_and_check_says_why(daemon, tmp_path):
    status_file = str(tmp_path / "run" / "status.json")
    d = daemon(status={"file": status_file, "interval_s": 0.5})
    d.status_path = status_file
    d.wait_sending()
    make_unwritable(tmp_path / "run")
    time.sleep(10)
    assert d.process.poll() is None, "the daemon stopped:\n" + d.log()[-3000:]
    check = d.command("check")
    assert check.returncode == 1
    assert "no status file at %s: it cannot be written (%s is not a folder)" % (
        status_file, tmp_path / "run") in check.stdout
    assert d.stop() == 0
    assert_frames_flowed(d, 12)
    assert d.log().count("cannot write the status file") == 1, "logged once per episode"


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a small file system filled to the last block: a new empty file still fits
    (as on a full /data), its content does not."""
    folder = tmp_path / "data"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: %s" % mounted.stdout.strip())
    try:
        with open(str(folder / "filler"), "wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
    except OSError:
        pass
    yield folder
    subprocess.run(["umount", "-l", str(folder)])


def test_a_full_disk_for_the_charge_state_leaves_the_frames_flowing_and_check_warns(daemon, full_disk):
    charge_file = str(full_disk / "charge-state.json")
    d = daemon(state={"charge_file": charge_file})
    d.wait_sending()
    status = d.wait_for(lambda s: (s["storage"]["charge_state"] or {}).get("failing_for_s") is not None, 20,
                        "the failed persist in the status")
    assert status["storage"]["charge_state"]["failures"] >= 1
    assert "No space left" in status["storage"]["charge_state"]["last_error"]
    time.sleep(4)
    check = d.command("check")
    assert check.returncode == 0 and "healthy" in check.stdout
    assert "WARNING: the charge state cannot be written to %s" % charge_file in check.stdout
    assert d.status()["workers"]["bms_tx"]["restarts"] == 0
    assert d.stop() == 0
    assert_frames_flowed(d, 4)
    assert [name for name in os.listdir(str(full_disk)) if name.startswith(".")] == []


@pytest.mark.parametrize("content", ["{not json", ""])
def test_a_corrupt_charge_state_file_is_set_aside_and_the_frames_start(daemon, tmp_path, content):
    (tmp_path / "charge-state.json").write_text(content)
    (tmp_path / ".charge-state.json.x8d7f").write_text('{"phase"')      # an interrupted write
    d = daemon()
    status = d.wait_sending()
    assert status["workers"]["bms_tx"]["restarts"] == 0
    assert status["storage"]["charge_state"]["unreadable"] == 1
    assert (tmp_path / "charge-state.json.unreadable").read_text() == content
    assert not (tmp_path / ".charge-state.json.x8d7f").exists()
    check = d.command("check")
    assert "WARNING: the charge state file was unreadable at start" in check.stdout
