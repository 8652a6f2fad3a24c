"""The fixture most daemon tests share: start simulation daemons, stop them after the test."""
import pytest

from tests.multiproc.daemon import Daemon


@pytest.fixture
def daemon(tmp_path):
    """``daemon(**overrides)`` starts one (config sections as keyword arguments); all stop at the end."""
    started = []

    def start(**overrides):
        instance = Daemon(tmp_path, **overrides).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
