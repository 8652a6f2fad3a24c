"""service/can_link.py: reading `ip` output, the commands that bring a link up, the Venus
profile it chooses, and the profile over D-Bus against a stand-in for localsettings."""
import os
import subprocess
import sys

import pytest

from ipc.private_dbus import PrivateDbus
from service.can_link import (PROFILE_DISABLED, PROFILE_NO_SERVICES_500K, LinkState, driver_profile,
                              link_commands, parse_link, profile_applied)

CAN_LINK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "service", "can_link.py")

# The example of the kernel's Documentation/networking/can.rst ("Setting CAN device properties").
KERNEL_DOC_UP = """\
  2: can0: <NOARP,UP,LOWER_UP,ECHO> mtu 16 qdisc pfifo_fast state UP qlen 10
    link/can
    can <TRIPLE-SAMPLING> state ERROR-ACTIVE (berr-counter tx 0 rx 0) restart-ms 100
    bitrate 125000 sample_point 0.875
    tq 125 prop-seg 6 phase-seg1 7 phase-seg2 2 sjw 1
    sja1000: tseg1 1..16 tseg2 1..8 sjw 1..4 brp 1..64 brp-inc 1
    clock 8000000
"""
# iproute2 6.x: a gs_usb adapter just plugged in, no bit timing set yet.
GS_USB_DOWN = """\
4: can1: <NOARP,ECHO> mtu 16 qdisc noop state DOWN mode DEFAULT group default qlen 10
    link/can  promiscuity 0  allmulti 0 minmtu 0 maxmtu 0
    can state STOPPED restart-ms 0
\t  gs_usb: tseg1 1..16 tseg2 1..8 sjw 1..4 brp 1..1024 brp-inc 1
\t  clock 48000000 numtxqueues 1 numrxqueues 1 gso_max_size 65536 gso_max_segs 65535
"""
# A CAN FD controller at 500k/2M, admin up without carrier: UP but no LOWER_UP.
FD_NO_CARRIER = """\
3: can0: <NOARP,UP,ECHO> mtu 72 qdisc pfifo_fast state DOWN mode DEFAULT group default qlen 10
    link/can  promiscuity 0 minmtu 0 maxmtu 0
    can <FD> state BUS-OFF restart-ms 1000
\t  bitrate 500000 sample-point 0.875
\t  dbitrate 2000000 dsample-point 0.750
"""
VCAN_UP = """\
5: vcan0: <NOARP,UP,LOWER_UP> mtu 72 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
    link/can  promiscuity 0  allmulti 0 minmtu 0 maxmtu 0
    vcan numtxqueues 1 numrxqueues 1 gso_max_size 65536 gso_max_segs 65535
"""


@pytest.mark.parametrize("output, expected", [
    (KERNEL_DOC_UP, LinkState(up=True, virtual=False, bitrate=125000)),
    (GS_USB_DOWN, LinkState(up=False, virtual=False, bitrate=None)),
    (FD_NO_CARRIER, LinkState(up=True, virtual=False, bitrate=500000)),
    (VCAN_UP, LinkState(up=True, virtual=True, bitrate=None)),
], ids=["kernel-doc", "gs_usb-down", "fd-no-carrier", "vcan"])
def test_parse_link_reads_state_kind_and_bitrate(output, expected):
    assert parse_link(output) == expected


def set_rate(channel, bitrate):
    return ["ip", "link", "set", "dev", channel, "type", "can", "bitrate", str(bitrate), "restart-ms", "1000"]


def up(channel):
    return ["ip", "link", "set", "dev", channel, "up", "txqueuelen", "100"]


@pytest.mark.parametrize("state, expected", [
    (LinkState(True, False, 500000), []),
    (LinkState(False, False, None), [set_rate("can1", 500000), up("can1")]),
    (LinkState(False, False, 500000), [set_rate("can1", 500000), up("can1")]),
    (LinkState(True, False, 250000), [["ip", "link", "set", "dev", "can1", "down"], set_rate("can1", 500000),
                                      up("can1")]),
    (LinkState(True, True, None), []),
    (LinkState(False, True, None), [["ip", "link", "set", "dev", "can1", "up"]]),
], ids=["right-rate", "down-unset", "down-set", "wrong-rate", "vcan-up", "vcan-down"])
def test_link_commands_leave_the_link_up_at_the_bitrate(state, expected):
    assert link_commands("can1", state, 500000) == expected


@pytest.mark.parametrize("maximum, bitrate, expected", [
    (8, 500000, PROFILE_NO_SERVICES_500K),  # Venus v3.50 - v3.67
    (10, 500000, PROFILE_NO_SERVICES_500K),  # v3.70+
    (7, 500000, PROFILE_DISABLED),  # v3.40: no "up, no services, 500k" yet
    (6, 500000, PROFILE_DISABLED),  # v3.00 - v3.33
    (0, 500000, PROFILE_DISABLED),  # no range known: the safe choice
    (8, 250000, PROFILE_DISABLED),  # profile 8 runs at 500k only
])
def test_driver_profile_keeps_venus_services_off_the_port(maximum, bitrate, expected):
    assert driver_profile(maximum, bitrate) == expected


def test_profile_applied_means_what_venus_platform_does_with_it():
    assert profile_applied(PROFILE_NO_SERVICES_500K, LinkState(True, False, 500000))
    assert not profile_applied(PROFILE_NO_SERVICES_500K, LinkState(True, False, 250000))
    assert profile_applied(PROFILE_DISABLED, LinkState(False, False, 500000))
    assert not profile_applied(PROFILE_DISABLED, LinkState(True, False, 500000))


# A stand-in for localsettings: one BusItem per /Settings/Canbus/<iface>/Profile, with its
# value, GetMax, and SetValue answering -1 outside [0, max] as localsettings does (VENUS.md 3.1).
FAKE_SETTINGS = """
import sys
import dbus, dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()

class Profile(dbus.service.Object):
    def __init__(self, iface, value, maximum):
        super().__init__(bus, "/Settings/Canbus/%s/Profile" % iface)
        self.value, self.maximum = value, maximum

    @dbus.service.method("com.victronenergy.BusItem", out_signature="v")
    def GetValue(self):
        return dbus.Int32(self.value)

    @dbus.service.method("com.victronenergy.BusItem", out_signature="v")
    def GetMax(self):
        return dbus.Int32(self.maximum)

    @dbus.service.method("com.victronenergy.BusItem", in_signature="v", out_signature="i")
    def SetValue(self, value):
        if not 0 <= int(value) <= self.maximum:
            return -1
        self.value = int(value)
        return 0

items = [Profile(*spec.split(":")[:1], *map(int, spec.split(":")[1:])) for spec in sys.argv[1:]]
name = dbus.service.BusName("com.victronenergy.settings", bus)
print("ready", flush=True)
GLib.MainLoop().run()
"""


@pytest.fixture
def settings(tmp_path):
    """A private bus with the stand-in: can1 on profile 1 of 0-8 (Venus v3.5x), can2 on
    profile 1 of 0-7 (v3.4x)."""
    for binding in ("dbus", "gi"):     # absent on the Python 3.8 run of dev/test.sh
        pytest.importorskip(binding, reason="the stand-in for localsettings needs %s, one of the OS's D-Bus "
                                            "bindings, which this Python has not" % binding)
    private = PrivateDbus()
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=private.address)
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SETTINGS, "can1:1:8", "can2:1:7"], env=env,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert fake.stdout.readline().strip() == "ready"
        user_config = tmp_path / "user.toml"
        user_config.write_text('[can]\ninterface = "socketcan"\nchannel = "can1"\n')

        def can_link(*args):
            return subprocess.run([sys.executable, CAN_LINK, "venus-profile", "--config", str(user_config)]
                                  + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True)
        yield can_link
    finally:
        fake.terminate()
        fake.wait(5)
        fake.stdout.close()
        private.stop()


def test_venus_profile_is_read_and_set_over_dbus(settings):
    assert settings().stdout == "1\n"
    changed = settings("--set", "3")
    assert changed.returncode == 0 and "/Settings/Canbus/can1/Profile: profile 1 -> 3" in changed.stdout
    assert settings().stdout == "3\n"
    assert "profile 3 already" in settings("--set", "3").stdout


def test_venus_profile_refusals_are_explained(settings):
    refused = settings("--set", "9")
    assert refused.returncode == 1
    assert "refused /Settings/Canbus/can1/Profile = 9: allowed are 0 to 8" in refused.stderr
    missing = settings("--channel", "can9")
    assert missing.returncode == 1 and "cannot GetValue /Settings/Canbus/can9/Profile" in missing.stderr
    assert "'driver' or a profile number" in settings("--set", "eight").stderr


def test_driver_profile_is_chosen_from_the_setting_range(settings):
    # No real can1/can2 here, so waiting for the link to follow fails after the setting changed.
    newer = settings("--set", "driver")
    assert "profile 1 -> 8" in newer.stdout and "no network interface 'can1'" in newer.stderr
    assert settings().stdout == "8\n"
    older = settings("--channel", "can2", "--set", "driver")
    assert "profile 1 -> 0" in older.stdout
    assert settings("--channel", "can2").stdout == "0\n"
