"""Whether this device has a Venus OS to publish to, and so whether dbus_publisher runs.

On a plain Raspberry Pi (battery from VE.Direct or a GX's MQTT broker) nothing reads the
``com.victronenergy.*`` services the publisher offers (no GUI, VRM or DVCC), and a stock Debian
system bus refuses those names anyway; so ``[venus] publish = "auto"`` does not start it there,
and says so once. Where Venus OS is installed, where the battery is read from D-Bus and in a
simulation (a private bus) it runs.
"""
import os
from typing import Tuple

VENUS_OS_MARK = "/opt/victronenergy"        # what install.sh also takes for a Venus OS device
DBUS_SOURCES = ("dbus", "simulated")        # battery sources read by dbus_publisher itself


def venus_os_present() -> bool:
    return os.path.isdir(VENUS_OS_MARK)


def dbus_publisher_wanted(cfg, venus_os: bool) -> Tuple[bool, str]:
    """(start it, why): the reason is logged when it is not started."""
    publish = cfg.venus.publish
    if publish == "on" or cfg.battery.source in DBUS_SOURCES:
        return True, ""
    if publish == "off":
        return False, "the D-Bus publisher is off (venus.publish = \"off\")"
    if venus_os or cfg.simulation.inverter:
        return True, ""
    return False, ("no Venus OS here (%s is missing) and the battery comes from %s: the D-Bus publisher is not "
                   "started (venus.publish = \"auto\"), so the inverter is not shown as a Venus vebus "
                   "device and no DVCC limits are read; set venus.publish = \"on\" to start it anyway"
                   % (VENUS_OS_MARK, cfg.battery.source))
