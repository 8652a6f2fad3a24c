"""The benchmarks' options (bench/settings.py), which bench/run.py passes to pytest in the VM."""
import argparse
import functools

from bench.settings import SETTINGS, option, positive


def pytest_addoption(parser):
    group = parser.getgroup("bench", "pylon-venus benchmarks (bench/vm_bench.py)")
    for setting in SETTINGS:
        group.addoption(option(setting.name), type=functools.partial(_checked, setting),
                        default=setting.default, help=setting.help)


def _checked(setting, text):
    try:
        return positive(setting, text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))
