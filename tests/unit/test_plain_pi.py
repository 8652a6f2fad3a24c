"""On a plain Raspberry Pi (no Venus OS) the D-Bus publisher is not started unless asked for."""
import pytest

import config
from sources.venus_presence import dbus_publisher_wanted

CFG = config.load()


@pytest.mark.parametrize("source, publish, inverter, venus_os, wanted", [
    ("vedirect", "auto", False, False, False),     # a plain Pi: nothing to publish to
    ("mqtt", "auto", False, False, False),
    ("vedirect", "auto", False, True, True),       # Venus OS installed
    ("vedirect", "auto", True, False, True),       # a simulation: its private bus
    ("vedirect", "on", False, False, True),
    ("mqtt", "off", False, True, False),
    ("dbus", "auto", False, False, True),          # the publisher reads the battery itself
    ("simulated", "auto", False, False, True),
])
def test_where_the_publisher_runs(source, publish, inverter, venus_os, wanted):
    cfg = CFG.replace(battery={"source": source}, venus={"publish": publish}, simulation={"inverter": inverter},
                      mqtt={"host": "gx.local", "portal_id": "c0619ab1d2e3"})
    started, why_not = dbus_publisher_wanted(cfg, venus_os)
    assert started is wanted
    assert bool(why_not) is not wanted


def test_not_started_says_why_once_in_plain_words():
    cfg = CFG.replace(battery={"source": "vedirect"}, simulation={"inverter": False})
    _, why_not = dbus_publisher_wanted(cfg, False)
    assert "no Venus OS here" in why_not and "venus.publish = \"on\"" in why_not


def test_off_is_refused_where_the_publisher_reads_the_battery():
    with pytest.raises(config.ConfigError, match="venus.publish = 'off' does not go with battery.source = 'dbus'"):
        CFG.replace(battery={"source": "dbus"}, venus={"publish": "off"})
