"""Fixtures for system tests, which run only inside the VM that tests/system/vm.py boots."""
import os
import re
import subprocess
from pathlib import Path
from typing import Callable, List, Tuple

import pytest

from protocol.frame import Frame
from tests.system import can_utils
from tests.system.vm import ARTIFACTS_DIR, IN_VM_ENV, RESULTS_DIR_ENV, VCAN_ENV

IFF_UP = 0x1  # in /sys/class/net/<name>/flags


def pytest_configure(config) -> None:
    if os.environ.get(IN_VM_ENV) != "1":
        raise pytest.UsageError("system tests run inside the VM: use tests/system/run_in_vm.sh "
                                "(this machine's kernel has no SocketCAN; %s is not set)"
                                % IN_VM_ENV)


@pytest.fixture(scope="session")
def vcan_channels() -> Tuple[str, ...]:
    """The vcan interfaces the VM created, up and empty."""
    return tuple(os.environ[VCAN_ENV].split(","))


@pytest.fixture(scope="session")
def vcan_channel(vcan_channels) -> str:
    return vcan_channels[0]


@pytest.fixture(autouse=True)
def _vcan_channels_up(vcan_channels) -> None:
    """Every test starts with the interfaces up, even after one that took a link down."""
    for name in vcan_channels:
        flags = int(Path("/sys/class/net/%s/flags" % name).read_text(), 16)
        if not flags & IFF_UP:
            subprocess.run(["ip", "link", "set", name, "up"], check=True)


@pytest.fixture(scope="session")
def results_dir() -> Path:
    """The folder the host reads back after the VM stops."""
    return Path(os.environ[RESULTS_DIR_ENV])


@pytest.fixture
def artifacts_dir(results_dir, request) -> Path:
    """A folder of this test's own in the results (kept on the host for post-mortems)."""
    folder = results_dir / ARTIFACTS_DIR / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def candump(artifacts_dir, vcan_channel) -> Callable[..., can_utils.CandumpRecorder]:
    """Start recording an interface with candump: ``recorder = candump()`` (default vcan0),
    then ``recorder.stop()`` gives the frames with kernel timestamps. Stopped at teardown."""
    recorders = []  # type: List[can_utils.CandumpRecorder]

    def start(channel: str = vcan_channel) -> can_utils.CandumpRecorder:
        log = artifacts_dir / ("candump-%s-%d.log" % (channel, len(recorders)))
        recorder = can_utils.CandumpRecorder(channel, log)
        recorders.append(recorder)
        return recorder.start()

    yield start
    for recorder in recorders:
        if recorder.running():
            recorder.stop()


@pytest.fixture
def cansend(vcan_channel) -> Callable[..., None]:
    """``cansend(frame)`` sends one frame on vcan0 with can-utils (``channel=`` for another)."""
    def send(frame: Frame, channel: str = vcan_channel) -> None:
        can_utils.cansend(channel, frame)
    return send
