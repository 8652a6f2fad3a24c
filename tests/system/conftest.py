"""Fixtures for system tests, which run only inside the VM that tests/system/vm.py boots."""
import os
import re
import subprocess
from pathlib import Path
from typing import Callable, List, Tuple

import pytest

from protocol.frame import Frame
from tests.system import can_utils
from tests.system.vm import ARTIFACTS_DIR, CHANNELS_ENV, IN_VM_ENV, RESULTS_DIR_ENV, TIER_ENV

IFF_UP = 0x1  # in /sys/class/net/<name>/flags


def pytest_configure(config) -> None:
    if os.environ.get(IN_VM_ENV) != "1":
        raise pytest.UsageError("system tests run inside the VM: use tests/system/run_in_vm.sh "
                                "(this machine's kernel has no SocketCAN; %s is not set)"
                                % IN_VM_ENV)


@pytest.fixture(scope="session")
def tier() -> str:
    """``vcan`` (virtual interfaces) or ``sja1000`` (emulated controllers on one emulated bus)."""
    return os.environ[TIER_ENV]


@pytest.fixture(scope="session")
def vcan_channels() -> Tuple[str, ...]:
    """The interfaces the VM set up, up and empty: vcan0, vcan1 or (sja1000 tier) can0 to can3."""
    return tuple(os.environ[CHANNELS_ENV].split(","))


@pytest.fixture(scope="session")
def vcan_channel(vcan_channels) -> str:
    return vcan_channels[0]


@pytest.fixture(scope="session")
def device_channel(vcan_channels) -> str:
    """Where the daemon sends (vcan0 or can0)."""
    return vcan_channels[0]


@pytest.fixture(scope="session")
def inverter_channel(tier, vcan_channels) -> str:
    """Where the inverter (cansend, cangen) sends: on vcan the daemon's own interface, on the
    emulated bus another controller (can1)."""
    return vcan_channels[0] if tier == "vcan" else vcan_channels[1]


@pytest.fixture(scope="session")
def judge_channel(tier, vcan_channels) -> str:
    """Where candump records what is on the bus (vcan0, or can2: a controller of its own)."""
    return vcan_channels[0] if tier == "vcan" else vcan_channels[2]


@pytest.fixture(autouse=True)
def _vcan_channels_up(vcan_channels) -> None:
    """Every test starts with the interfaces up, even after one that took a link down (a
    controller keeps the bit rate can_link.py gave it)."""
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
def candump(artifacts_dir, judge_channel) -> Callable[..., can_utils.CandumpRecorder]:
    """Start recording an interface with candump: ``recorder = candump()`` (default: the
    judge's), then ``recorder.stop()`` gives the frames with kernel timestamps. Stopped at teardown."""
    recorders = []  # type: List[can_utils.CandumpRecorder]

    def start(channel: str = judge_channel) -> can_utils.CandumpRecorder:
        log = artifacts_dir / ("candump-%s-%d.log" % (channel, len(recorders)))
        recorder = can_utils.CandumpRecorder(channel, log)
        recorders.append(recorder)
        return recorder.start()

    yield start
    for recorder in recorders:
        if recorder.running():
            recorder.stop()


@pytest.fixture
def cansend(inverter_channel) -> Callable[..., None]:
    """``cansend(frame)`` sends one frame as the inverter with can-utils (``channel=`` for another)."""
    def send(frame: Frame, channel: str = inverter_channel) -> None:
        can_utils.cansend(channel, frame)
    return send
