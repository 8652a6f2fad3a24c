"""Prepare the CAN port the daemon sends on: link up at the configured bit rate, and on
Venus OS the port's profile set so that Venus's own CAN services stay off it.

The daemon itself runs without privileges (raw and broadcast-manager CAN sockets need no
capability); setting a bit rate needs CAP_NET_ADMIN, so this runs separately, as root:
from the Venus run script, from pylon-venus-can.service under systemd, and from install.sh.

    can_link.py show [--config FILE]            print "interface channel bitrate"
    can_link.py up [--config FILE]              bring the SocketCAN link up at the bit rate
    can_link.py venus-profile [--config FILE] [--set driver|N]
                                                print the port's Venus profile, or set it
"""
import argparse
import os
import re
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import config as config_module  # noqa: E402  (the project root is only on the path from here on)

# /Settings/Canbus/<iface>/Profile values (VENUS.md section 14.2).
PROFILE_DISABLED = 0
PROFILE_NO_SERVICES_500K = 8
PYLON_BITRATE = 500000
# venus-platform applies a profile change asynchronously (can-set-rate, services).
PROFILE_APPLY_TIMEOUT_S = 10.0


class LinkState(NamedTuple):
    """What `ip -details link show` tells about one interface."""

    up: bool
    virtual: bool
    bitrate: Optional[int]


class LinkError(Exception):
    """The port cannot be prepared; the message says why and what to do."""


def parse_link(ip_details: str) -> LinkState:
    """Read admin state, kind and bit rate from `ip -details link show dev X` output."""
    flags = re.search(r"<([^>]*)>", ip_details)
    bitrate = re.search(r"\bbitrate (\d+)", ip_details)
    return LinkState(
        up=bool(flags) and "UP" in flags.group(1).split(","),
        virtual=re.search(r"^\s+(vcan|vxcan)\b", ip_details, re.MULTILINE) is not None,
        bitrate=int(bitrate.group(1)) if bitrate else None,
    )


def link_commands(channel: str, state: LinkState, bitrate: int) -> List[List[str]]:
    """The `ip` calls that leave the link up at ``bitrate``; none when it already is.

    A bit rate can only be set while the link is down. txqueuelen 100 and restart-ms 1000
    are what Venus's own can-set-rate uses: room for a whole frame set, and automatic
    recovery from bus-off.
    """
    if state.virtual:
        return [] if state.up else [["ip", "link", "set", "dev", channel, "up"]]
    if state.up and state.bitrate == bitrate:
        return []
    commands = [["ip", "link", "set", "dev", channel, "down"]] if state.up else []
    commands.append(["ip", "link", "set", "dev", channel, "type", "can", "bitrate", str(bitrate), "restart-ms", "1000"])
    commands.append(["ip", "link", "set", "dev", channel, "up", "txqueuelen", "100"])
    return commands


def read_link(channel: str) -> LinkState:
    result = subprocess.run(["ip", "-details", "link", "show", "dev", channel],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if result.returncode != 0:
        raise LinkError("no network interface %r (%s): is the CAN adapter plugged in, or the CAN HAT's "
                        "overlay loaded?" % (channel, result.stderr.strip()))
    return parse_link(result.stdout)


def bring_up(channel: str, bitrate: int) -> None:
    commands = link_commands(channel, read_link(channel), bitrate)
    if not commands:
        print("%s is up at the wanted bit rate (%d bit/s)" % (channel, bitrate))
        return
    for command in commands:
        print("running: %s" % " ".join(command))
        result = subprocess.run(command, stderr=subprocess.PIPE, universal_newlines=True)
        if result.returncode != 0:
            raise LinkError("%s failed: %s" % (" ".join(command), result.stderr.strip()))
    state = read_link(channel)
    if not state.up:
        raise LinkError("%s is still down after bringing it up" % channel)


def driver_profile(maximum: int, bitrate: int) -> int:
    """Profile 8 (up at 500 kbit/s, no services) where Venus has it (v3.50+); otherwise 0
    (disabled), and this script brings the link up itself."""
    if maximum >= PROFILE_NO_SERVICES_500K and bitrate == PYLON_BITRATE:
        return PROFILE_NO_SERVICES_500K
    return PROFILE_DISABLED


def profile_applied(profile: int, state: LinkState) -> bool:
    if profile == PROFILE_NO_SERVICES_500K:
        return state.up and state.bitrate == PYLON_BITRATE
    return not state.up


class VenusProfile:
    """/Settings/Canbus/<channel>/Profile in com.victronenergy.settings (localsettings)."""

    def __init__(self, channel: str):
        import dbus  # on every Venus image; only needed here
        self._dbus = dbus
        self.path = "/Settings/Canbus/%s/Profile" % channel
        try:
            # Venus convention (velib, localsettings): the session bus when one is named, for tests.
            bus = dbus.SessionBus() if os.environ.get("DBUS_SESSION_BUS_ADDRESS") else dbus.SystemBus()
        except dbus.exceptions.DBusException as error:
            raise LinkError("no D-Bus to reach com.victronenergy.settings: %s" % error) from None
        item = bus.get_object("com.victronenergy.settings", self.path, introspect=False)
        self._item = dbus.Interface(item, "com.victronenergy.BusItem")

    def _call(self, method: str, *args):
        try:
            return getattr(self._item, method)(*args)
        except self._dbus.exceptions.DBusException as error:
            raise LinkError("cannot %s %s in com.victronenergy.settings (%s): Venus creates the setting "
                            "when the CAN interface exists" % (method, self.path, error.get_dbus_name())) from None

    def get(self) -> int:
        return int(self._call("GetValue"))

    def maximum(self) -> int:
        return int(self._call("GetMax"))

    def set(self, profile: int) -> None:
        if int(self._call("SetValue", self._dbus.Int32(profile))) != 0:
            raise LinkError("com.victronenergy.settings refused %s = %d: allowed are 0 to %d"
                            % (self.path, profile, self.maximum()))


def set_venus_profile(channel: str, bitrate: int, wanted: str) -> None:
    setting = VenusProfile(channel)
    before = setting.get()
    profile = driver_profile(setting.maximum(), bitrate) if wanted == "driver" else int(wanted)
    if before == profile:
        print("%s: profile %d already" % (setting.path, profile))
        return
    setting.set(profile)
    print("%s: profile %d -> %d" % (setting.path, before, profile))
    if wanted != "driver":
        return
    deadline = time.monotonic() + PROFILE_APPLY_TIMEOUT_S
    while not profile_applied(profile, read_link(channel)):
        if time.monotonic() > deadline:
            raise LinkError("%s did not follow profile %d within %g s" % (channel, profile, PROFILE_APPLY_TIMEOUT_S))
        time.sleep(0.2)


def profile_choice(text: str) -> str:
    if text == "driver" or text.isdigit():
        return text
    raise argparse.ArgumentTypeError("%r is not allowed: expected 'driver' or a profile number" % text)


def parse_args(argv):
    parser, command = config_module.command_parser("can_link.py", __doc__.split("\n")[0])

    command("show", "print the configured interface, channel and bit rate")
    command("up", "bring the SocketCAN link up at the configured bit rate")
    profile = command("venus-profile", "print the port's Venus CAN profile, or set it")
    profile.add_argument("--set", type=profile_choice, metavar="driver|N",
                         help="'driver': the profile that keeps Venus's CAN services off the port; N: that profile")
    profile.add_argument("--channel", metavar="IFACE", help="this interface instead of the config's")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = config_module.load_or_exit(args.config)
    if args.command == "show":
        print(cfg.can.interface, cfg.can.channel, cfg.can.bitrate)
        return 0
    channel = getattr(args, "channel", None)
    if channel is None:
        if cfg.can.interface != "socketcan":
            print("can.interface = %r: no link to prepare" % cfg.can.interface)
            return 0
        channel = cfg.can.channel
    try:
        if args.command == "up":
            bring_up(channel, cfg.can.bitrate)
        elif args.set is None:
            print(VenusProfile(channel).get())
        else:
            set_venus_profile(channel, cfg.can.bitrate, args.set)
    except LinkError as error:
        print("can_link.py: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
