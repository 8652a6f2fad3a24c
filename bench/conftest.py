"""The benchmarks' options (bench/settings.py), which bench/run.py passes to pytest in the VM."""
from bench.settings import SETTINGS, argument_type, option


def pytest_addoption(parser):
    group = parser.getgroup("bench", "pylon-venus benchmarks (bench/vm_bench.py)")
    for setting in SETTINGS:
        group.addoption(option(setting.name), type=argument_type(setting), default=setting.default,
                        help=setting.help)
