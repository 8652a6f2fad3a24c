"""Load and validate config.toml.

Defaults live in one place only: the shipped ``config.toml`` beside this file. A user file
given with ``--config`` is laid over it key by key. The schema below holds what the
defaults cannot say: the type, the allowed range or choices, and the cross-key rules.
Every problem is collected so that one run names all of them, and nothing here touches a
bus: ``load`` either returns a valid ``Config`` or raises ``ConfigError``. Only
``unwritable_files`` looks at the file system, for the command that runs the daemon.
"""
import argparse
import ipaddress
import math
import os
import sys
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

try:
    import tomllib  # Python 3.11+  # novermin
except ImportError:  # pragma: no cover - exercised on Python 3.8-3.10
    import tomli as tomllib

from can.interfaces import VALID_INTERFACES

from ipc.atomic_file import misplaced
from protocol import profiles

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.toml")


class Rule(NamedTuple):
    """What one key accepts: a type and a closed range, or a set of choices."""

    kind: type
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Optional[Tuple[Any, ...]] = None


def number(low, high):
    return Rule(float, low, high)


def integer(low, high):
    return Rule(int, low, high)


def text(*choices):
    return Rule(str, choices=choices or None)


FLAG = Rule(bool)

PROFILES = profiles.names()      # one module per profile in protocol/profiles: nothing to add here

SCHEMA: Dict[str, Dict[str, Rule]] = {
    "can": {
        "interface": text(),
        "channel": text(),
        "bitrate": integer(10000, 1000000),
        "udp_port": integer(1024, 65535),
        "frame_lease_s": number(0, 3600),
    },
    "inverter": {
        "profile": text(*PROFILES),
        "manufacturer": text(),
        "keepalive_timeout_s": number(0, 600),
    },
    "battery": {
        "source": text("dbus", "simulated", "vedirect", "mqtt"),
        "service": text(),
        "chemistry": text("lfp"),
        "capacity_ah": number(1, 10000),
        "cell_count": integer(1, 256),
        "modules": integer(1, 255),
        "soh_pct": number(0, 100),
        "assumed_temperature_c": number(-40, 80),
        "temperature_sensor": FLAG,
        "cell_voltage_min_v": number(1.5, 4.5),
        "cell_voltage_max_v": number(1.5, 4.5),
    },
    "charge": {
        "absorption_voltage_v": number(8, 1000),
        "float_voltage_v": number(8, 1000),
        "tail_current_a": number(0, 1000),
        "tail_time_s": number(0, 86400),
        "absorption_max_s": number(0, 86400),
        "rebulk_soc_pct": number(0, 100),
        "rebulk_voltage_v": number(8, 1000),
        "rebulk_confirm_s": number(0, 3600),
        "float_ramp_v_per_s": number(0.0001, 10),
        "full_charge_interval_days": number(0, 365),
        "force_charge_soc_pct": number(0, 100),
        "force_charge_recover_soc_pct": number(0, 100),
        "full_charge_voltage_v": number(8, 1000),
        "voltage_tolerance_v": number(0, 5),
        "balanced_cell_spread_v": number(0.001, 1),
        "soc_cap_pct": number(50, 100),
    },
    "limits": {
        "max_charge_current_a": number(0, 5000),
        "max_discharge_current_a": number(0, 5000),
        "discharge_voltage_v": number(8, 1000),
        "charge_min_temperature_c": number(-40, 60),
        "charge_max_temperature_c": number(0, 80),
        "discharge_min_temperature_c": number(-40, 60),
        "discharge_max_temperature_c": number(0, 80),
        "recovery_hold_s": number(0, 3600),
        "recovery_ramp_a_per_s": number(0.01, 5000),
        "charge_taper_soc_pct": number(0, 100),
        "discharge_taper_soc_pct": number(0, 100),
        "taper_floor_pct": number(0, 100),
        "charge_taper_cell_v": number(1.5, 4.5),
        "discharge_taper_cell_v": number(1.5, 4.5),
        "temperature_taper_c": number(0, 50),
        "cell_voltage_warning_margin_v": number(0, 0.5),
        "cell_voltage_hysteresis_v": number(0, 0.5),
        "temperature_hysteresis_c": number(0, 20),
        "current_warning_pct": number(100, 1000),
        "current_protection_pct": number(100, 1000),
    },
    "stale": {
        "hold_s": number(0, 3600),
        "stale_s": number(0, 3600),
        "safe_discharge_current_a": number(0, 5000),
        "frozen_s": number(0, 86400),
        "frozen_current_a": number(0, 5000),
    },
    "watchdog": {
        "heartbeat_interval_s": number(0.01, 10),
        "heartbeat_timeout_s": number(0.05, 60),
        "startup_timeout_s": number(1, 600),
        "restart_backoff_initial_s": number(0, 60),
        "restart_backoff_max_s": number(0, 3600),
        "restart_intensity": integer(1, 1000),
        "restart_period_s": number(1, 86400),
    },
    "status": {
        "file": text(),
        "interval_s": number(0.1, 60),
    },
    "state": {
        "charge_file": text(),
    },
    "logging": {
        "level": text("DEBUG", "INFO", "WARNING", "ERROR"),
    },
    "vedirect": {
        "port": text(),
        "reopen_s": number(0.1, 600),
    },
    "mqtt": {
        "host": text(),
        "port": integer(1, 65535),
        "portal_id": text(),
        "battery_instance": integer(-1, 999),
        "username": text(),
        "password": text(),
        "tls": FLAG,
        "ca_file": text(),
        "keepalive_s": number(1, 55),
        "refresh_s": number(0.5, 600),
        "reconnect_max_s": number(1, 600),
    },
    "dbus": {
        "refresh_s": number(0.5, 600),
        "dvcc_timeout_s": number(0, 3600),
    },
    "venus": {
        "service_suffix": text(),
        "device_instance": integer(0, 999),
        "product_id": integer(0, 0xFFFF),
        "bms_service": FLAG,
        "publish": text("auto", "on", "off"),
        "energy_file": text(),
        "energy_save_interval_s": number(0.1, 3600),
        "dvcc_file": text(),
    },
    "simulation": {
        "inverter": FLAG,
        "start_soc_pct": number(0, 100),
        "pv_peak_w": number(0, 100000),
        "load_w": number(0, 100000),
        "temperature_c": number(-40, 80),
        "time_scale": number(1, 3600),
    },
    "standby": {
        "enabled": FLAG,
        "node_id": integer(1, 15),
        "priority": integer(0, 255),
        "takeover_s": number(0.5, 30),
        "preempt": FLAG,
        "heartbeat": FLAG,
        "heartbeat_id": integer(0, 0x7FF),
        "heartbeat_interval_s": number(0.05, 2),
    },
    "web": {
        "enabled": FLAG,
        "bind": text(),
        "port": integer(1, 65535),
        "password_file": text(),
        "read_without_login": FLAG,
        "history_file": text(),
        "history_interval_s": number(1, 3600),
        "log_file": text(),
    },
}


class ConfigError(Exception):
    """Raised with every problem found, one line each."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Section:
    """Read-only attribute view of one validated section."""

    def __init__(self, name: str, values: Dict[str, Any]):
        self._name = name
        self._values = dict(values)

    def __getattr__(self, key):
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError("[%s] has no key %r" % (self._name, key)) from None

    def as_dict(self) -> Dict[str, Any]:
        return dict(self._values)


class Config:
    """A validated configuration: ``cfg.can.channel``, ``cfg.charge.float_voltage_v``."""

    def __init__(self, values: Dict[str, Dict[str, Any]], sources: Tuple[str, ...]):
        self.sources = sources
        self._sections = {name: Section(name, keys) for name, keys in values.items()}

    def __getattr__(self, name):
        try:
            return self.__dict__["_sections"][name]
        except KeyError:
            raise AttributeError("no config section %r" % name) from None

    def as_dict(self) -> Dict[str, Dict[str, Any]]:
        return {name: section.as_dict() for name, section in self._sections.items()}

    def replace(self, **sections: Dict[str, Any]) -> "Config":
        """A copy with some keys changed, validated like a file: ``replace(can={"channel": "vcan0"})``."""
        merged = self.as_dict()
        for name, keys in sections.items():
            merged.setdefault(name, {}).update(keys)
        return from_dict(merged, self.sources + ("<override>",))


def _describe(rule: Rule) -> str:
    if rule.choices:
        return "one of " + ", ".join(repr(c) for c in rule.choices)
    kind = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}[rule.kind]
    if rule.low is not None:
        bound = "%d" if rule.kind is int else "%g"
        return ("%s from " + bound + " to " + bound) % (kind, rule.low, rule.high)
    return kind


def _check_value(key: str, value: Any, rule: Rule) -> Tuple[Any, Optional[str]]:
    allowed = _describe(rule)
    wrong = "%s = %r is not allowed: expected %s" % (key, value, allowed)
    if rule.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, wrong
        value = float(value)
        if math.isnan(value):
            return None, wrong
    elif rule.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, wrong
    elif not isinstance(value, rule.kind):
        return None, wrong
    if rule.low is not None and not rule.low <= value <= rule.high:
        return None, wrong
    if rule.choices and value not in rule.choices:
        return None, wrong
    return value, None


def _cross_checks(v: Dict[str, Dict[str, Any]]) -> List[str]:
    """Rules that involve two keys; each message names both and what must hold."""
    problems = []

    def need(condition: bool, message: str):
        if not condition:
            problems.append(message)

    c, b, lim, st, wd = v["charge"], v["battery"], v["limits"], v["stale"], v["watchdog"]
    inv = v["inverter"]
    profile = profiles.get(inv["profile"])
    try:
        profile.check_manufacturer(inv["manufacturer"])
    except ValueError as error:
        problems.append("inverter.%s" % error)
    need(inv["keepalive_timeout_s"] == 0 or inv["keepalive_timeout_s"] >= profile.min_keepalive_timeout_s,
         "inverter.keepalive_timeout_s = %g is below %g for inverter.profile = %r: that inverter pauses its "
         "keep-alives longer; use 0 (off) or at least %g"
         % (inv["keepalive_timeout_s"], profile.min_keepalive_timeout_s, inv["profile"],
            profile.min_keepalive_timeout_s))
    problems.extend(_sendable_checks(v, inv["profile"], profile))
    need(c["float_voltage_v"] <= c["absorption_voltage_v"],
         "charge.float_voltage_v = %g is above charge.absorption_voltage_v = %g: float must not exceed absorption"
         % (c["float_voltage_v"], c["absorption_voltage_v"]))
    need(c["rebulk_voltage_v"] < c["float_voltage_v"],
         "charge.rebulk_voltage_v = %g is not below charge.float_voltage_v = %g: rebulk must be below float"
         % (c["rebulk_voltage_v"], c["float_voltage_v"]))
    need(c["force_charge_soc_pct"] < c["force_charge_recover_soc_pct"],
         "charge.force_charge_soc_pct = %g is not below charge.force_charge_recover_soc_pct = %g: "
         "the request starts below the recovery SoC" % (c["force_charge_soc_pct"], c["force_charge_recover_soc_pct"]))
    need(b["cell_voltage_min_v"] < b["cell_voltage_max_v"],
         "battery.cell_voltage_min_v = %g is not below battery.cell_voltage_max_v = %g: minimum must be below maximum"
         % (b["cell_voltage_min_v"], b["cell_voltage_max_v"]))
    need(c["absorption_voltage_v"] <= c["full_charge_voltage_v"],
         "charge.absorption_voltage_v = %g is above charge.full_charge_voltage_v = %g: the periodic full charge "
         "must not charge to less than a daily one" % (c["absorption_voltage_v"], c["full_charge_voltage_v"]))
    pack_max = b["cell_voltage_max_v"] * b["cell_count"]
    need(c["full_charge_voltage_v"] <= pack_max,
         "charge.full_charge_voltage_v = %g is above battery.cell_count x battery.cell_voltage_max_v = %g: "
         "charging must stay within the cells' limit" % (c["full_charge_voltage_v"], pack_max))
    need(b["cell_voltage_min_v"] < lim["discharge_taper_cell_v"] < lim["charge_taper_cell_v"] < b["cell_voltage_max_v"],
         "battery.cell_voltage_min_v = %g < limits.discharge_taper_cell_v = %g < limits.charge_taper_cell_v = %g "
         "< battery.cell_voltage_max_v = %g does not hold: each taper starts inside the cell limits"
         % (b["cell_voltage_min_v"], lim["discharge_taper_cell_v"], lim["charge_taper_cell_v"],
            b["cell_voltage_max_v"]))
    need(c["full_charge_voltage_v"] / b["cell_count"] <= lim["charge_taper_cell_v"],
         "charge.full_charge_voltage_v / battery.cell_count = %g is above limits.charge_taper_cell_v = %g: "
         "a balanced pack would be tapered before the end of its charge"
         % (c["full_charge_voltage_v"] / b["cell_count"], lim["charge_taper_cell_v"]))
    margin = lim["cell_voltage_warning_margin_v"]
    need(b["cell_voltage_min_v"] + margin < b["cell_voltage_max_v"] - margin,
         "limits.cell_voltage_warning_margin_v = %g leaves no normal range between battery.cell_voltage_min_v = %g "
         "and battery.cell_voltage_max_v = %g" % (margin, b["cell_voltage_min_v"], b["cell_voltage_max_v"]))
    need(lim["current_warning_pct"] <= lim["current_protection_pct"],
         "limits.current_warning_pct = %g is above limits.current_protection_pct = %g: the warning comes first"
         % (lim["current_warning_pct"], lim["current_protection_pct"]))
    pack_min = b["cell_voltage_min_v"] * b["cell_count"]
    need(lim["discharge_voltage_v"] >= pack_min,
         "limits.discharge_voltage_v = %g is below battery.cell_count x battery.cell_voltage_min_v = %g: "
         "the discharge limit must stay within the cells' limit" % (lim["discharge_voltage_v"], pack_min))
    need(lim["discharge_voltage_v"] < c["rebulk_voltage_v"],
         "limits.discharge_voltage_v = %g is not below charge.rebulk_voltage_v = %g"
         % (lim["discharge_voltage_v"], c["rebulk_voltage_v"]))
    for what in ("charge", "discharge"):
        low, high = lim[what + "_min_temperature_c"], lim[what + "_max_temperature_c"]
        need(low < high, "limits.%s_min_temperature_c = %g is not below limits.%s_max_temperature_c = %g: "
             "minimum must be below maximum" % (what, low, what, high))
    need(v["venus"]["publish"] != "off" or b["source"] not in ("dbus", "simulated"),
         "venus.publish = 'off' does not go with battery.source = %r: that battery is read by the D-Bus "
         "publisher (use 'auto' or 'on')" % b["source"])
    need(b["source"] != "mqtt" or (v["mqtt"]["host"] and v["mqtt"]["portal_id"]),
         "battery.source = 'mqtt' needs mqtt.host and mqtt.portal_id (the GX's VRM portal ID, shown on the GX "
         "under Settings > VRM online portal)")
    need(st["hold_s"] <= st["stale_s"],
         "stale.hold_s = %g is above stale.stale_s = %g: the hold ends before data is stale" % (st["hold_s"], st["stale_s"]))
    need(st["safe_discharge_current_a"] <= lim["max_discharge_current_a"],
         "stale.safe_discharge_current_a = %g is above limits.max_discharge_current_a = %g"
         % (st["safe_discharge_current_a"], lim["max_discharge_current_a"]))
    lease_minimum = wd["heartbeat_timeout_s"] + 3 * profile.cycle_s
    need(v["can"]["frame_lease_s"] == 0 or v["can"]["frame_lease_s"] >= lease_minimum,
         "can.frame_lease_s = %g is below watchdog.heartbeat_timeout_s + 3 frame periods of inverter.profile = %r "
         "(%g s): a hung bms_tx must be replaced before its frames stop; use 0 (no lease) or at least %g"
         % (v["can"]["frame_lease_s"], inv["profile"], lease_minimum, lease_minimum))
    need(wd["heartbeat_interval_s"] < wd["heartbeat_timeout_s"],
         "watchdog.heartbeat_interval_s = %g is not below watchdog.heartbeat_timeout_s = %g"
         % (wd["heartbeat_interval_s"], wd["heartbeat_timeout_s"]))
    need(wd["restart_backoff_initial_s"] <= wd["restart_backoff_max_s"],
         "watchdog.restart_backoff_initial_s = %g is above watchdog.restart_backoff_max_s = %g: minimum above maximum"
         % (wd["restart_backoff_initial_s"], wd["restart_backoff_max_s"]))
    ven = v["venus"]
    need(re.fullmatch(r"[A-Za-z_-][A-Za-z0-9_-]{0,%d}" % (SERVICE_SUFFIX_MAX - 1), ven["service_suffix"]) is not None,
         "venus.service_suffix = %r is not allowed: expected 1 to %d letters, digits, '_' or '-', not starting with "
         "a digit (it ends the D-Bus names com.victronenergy.vebus.<suffix> and com.victronenergy.battery.<suffix>)"
         % (ven["service_suffix"], SERVICE_SUFFIX_MAX))
    problems.extend(_can_checks(v["can"]))
    problems.extend(_file_checks(v))
    problems.extend(_pack_checks(v, inv["profile"], profile))
    if v["standby"]["enabled"]:
        problems.extend(_standby_checks(v["standby"], inv["profile"], profile))
    return problems


# The daemon's files: written atomically (ipc/atomic_file.py), each read back after a restart.
FILES = (("status", "file", "the status file"), ("state", "charge_file", "the charge state file"),
         ("venus", "energy_file", "the energy counter file"),
         ("venus", "dvcc_file", "the DVCC limits file"))
NAME_MAX = 255            # bytes of one file or folder name (Linux)
PATH_MAX = 4095           # bytes of a whole path
ATOMIC_TEMP_EXTRA = 10    # write_atomic's temporary file is ".<name>.XXXXXXXX" beside the file
# Short enough that no D-Bus name, settings path or shared-memory slot (the publisher's
# heartbeat carries its vebus name) can overflow, long enough for any sensible name.
SERVICE_SUFFIX_MAX = 32
SOCKETCAN_NAME_MAX = 15   # IFNAMSIZ - 1


def _file_checks(v: Dict[str, Dict[str, Any]]) -> List[str]:
    """Each file path is usable as it is written, and no two files share one."""
    problems, seen = [], {}
    for section, key, what in FILES:
        path, name = v[section][key], "%s.%s" % (section, key)
        if not path:
            problems.append("%s is empty: expected the path of %s" % (name, what))
            continue
        problem = _path_problem(path)
        if problem:
            problems.append("%s = %r is not allowed: %s" % (name, path, problem))
            continue
        same = seen.setdefault(os.path.normpath(os.path.abspath(path)), name)
        if same != name:
            problems.append("%s = %r is not allowed: %s is the same file; each file needs its own path"
                            % (name, path, same))
    return problems


def _path_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot name a file written atomically, or None."""
    if "\0" in path:
        return "a path has no NUL character"
    if path.endswith("/"):
        return "expected the path of a file, not of a folder"
    if len(os.fsencode(path)) > PATH_MAX:
        return "it has %d bytes, at most %d are allowed" % (len(os.fsencode(path)), PATH_MAX)
    *folders, file_name = path.split("/")
    for folder in folders:
        if len(os.fsencode(folder)) > NAME_MAX:
            return "its folder name %r has %d bytes, at most %d are allowed" % (folder, len(os.fsencode(folder)),
                                                                               NAME_MAX)
    if len(os.fsencode(file_name)) > NAME_MAX - ATOMIC_TEMP_EXTRA:
        return ("its file name has %d bytes, at most %d are allowed (the atomic write's temporary file adds %d "
                "to the %d a name may have)" % (len(os.fsencode(file_name)), NAME_MAX - ATOMIC_TEMP_EXTRA,
                                                ATOMIC_TEMP_EXTRA, NAME_MAX))
    return None


# python-can interfaces on a serial port (slcan firmware, serial-line adapters): one opener only.
SERIAL_PORT_INTERFACES = ("slcan", "serial", "robotell", "seeedstudio")


def _can_checks(can: Dict[str, Any]) -> List[str]:
    """The interface is one python-can has, and the channel one that interface can open."""
    interface, channel = can["interface"], can["channel"]
    if interface not in VALID_INTERFACES:
        return ["can.interface = %r is not allowed: expected a python-can interface, one of %s"
                % (interface, ", ".join(sorted(VALID_INTERFACES)))]
    if not channel:
        return ["can.channel is empty: expected the interface's channel, e.g. 'can0' or a multicast group"]
    if interface in SERIAL_PORT_INTERFACES:
        return ["can.interface = %r is not allowed: it opens a serial port, which the several processes that "
                "open the bus cannot share (each open resets the adapter, and they split its input); attach "
                "the adapter with slcand (can-utils: slcand -o -c -s6 %s slcan0) and use can.interface = "
                "'socketcan', can.channel = 'slcan0'" % (interface, channel)]
    if interface == "socketcan" and not (re.fullmatch(r"[^/\s]+", channel)
                                         and len(os.fsencode(channel)) <= SOCKETCAN_NAME_MAX):
        return ["can.channel = %r is not allowed for can.interface = 'socketcan': expected a network interface "
                "name of 1 to %d characters without '/' or spaces, e.g. 'can0'" % (channel, SOCKETCAN_NAME_MAX)]
    if interface == "udp_multicast":
        try:
            multicast = ipaddress.ip_address(channel).is_multicast
        except ValueError:
            multicast = False
        if not multicast:
            return ["can.channel = %r is not allowed for can.interface = 'udp_multicast': expected an IPv4 or IPv6 "
                    "multicast group, e.g. '239.74.163.2'" % channel]
    return []


def unwritable_files(cfg: "Config") -> List[str]:
    """The daemon's files that can never be written where they are configured: checked before it
    starts (the other commands only read them). A read-only or full file system is not refused:
    it may pass, and the daemon sends its frames meanwhile and reports the failed writes."""
    problems = []
    for section, key, _ in FILES:
        path = getattr(getattr(cfg, section), key)
        problem = misplaced(path)
        if problem:
            problems.append("%s.%s = %r cannot be written: %s" % (section, key, path, problem))
    return problems


# Keys whose value the BMS sends (the charge voltage moves between float and full charge) -> report attribute
SENT_LIMITS = (("charge", "float_voltage_v", "charge_voltage_v"), ("charge", "absorption_voltage_v", "charge_voltage_v"),
               ("charge", "full_charge_voltage_v", "charge_voltage_v"),
               ("limits", "discharge_voltage_v", "discharge_voltage_v"),
               ("limits", "max_charge_current_a", "charge_current_a"),
               ("limits", "max_discharge_current_a", "discharge_current_a"),
               ("stale", "safe_discharge_current_a", "discharge_current_a"))


def _sendable_checks(v: Dict[str, Dict[str, Any]], profile_name: str, profile) -> List[str]:
    """Each configured limit must fit the profile's frames: clamped to them, a CVL would be raised
    and a DVL lowered (the encoder would then stop charging or discharging altogether)."""
    problems = []
    for section, key, attribute in SENT_LIMITS:
        low, high = profile.sendable_range(attribute)
        value = v[section][key]
        if not low <= value <= high:
            problems.append("%s.%s = %g is not allowed for inverter.profile = %r: expected %g to %g, the %s its "
                            "frames can carry" % (section, key, value, profile_name, low, high, attribute))
    return problems


def _pack_checks(v: Dict[str, Dict[str, Any]], profile_name: str, profile) -> List[str]:
    """The bit rate must be one the inverter speaks and the pack must fit the profile's frames; a
    polled (Pylon HV) profile also tells the inverter its module geometry."""
    b, problems = v["battery"], []
    if v["can"]["bitrate"] not in profile.bitrates:
        problems.append("can.bitrate = %d is not allowed for inverter.profile = %r: expected %s"
                        % (v["can"]["bitrate"], profile_name, " or ".join(str(rate) for rate in profile.bitrates)))
    pack_max = b["cell_count"] * b["cell_voltage_max_v"]
    highest = profile.sendable_range("voltage_v")[1]
    if pack_max > highest:
        problems.append("battery.cell_count = %d is not allowed for inverter.profile = %r: a pack of up to %g V "
                        "(x battery.cell_voltage_max_v) does not fit its voltage field (at most %g V); an HV pack "
                        "needs an HV profile" % (b["cell_count"], profile_name, pack_max, highest))
    if profile.transport != "polled":
        return problems
    if b["cell_count"] % b["modules"]:
        problems.append("battery.modules = %d is not allowed for inverter.profile = %r: battery.cell_count = %d "
                        "cells in series must split into equal modules (0x7320 tells the inverter the cells "
                        "per module)" % (b["modules"], profile_name, b["cell_count"]))
    return problems


def _standby_checks(sb: Dict[str, Any], profile_name: str, profile) -> List[str]:
    """The hot-standby timing must fit the profile's cadence, and its heartbeat id must be free."""
    problems = []
    minimum = 1.5 * profile.cycle_s
    if sb["takeover_s"] < minimum:
        problems.append("standby.takeover_s = %g is below %g for inverter.profile = %r: a standby must see at least "
                        "one frame of each %g s cycle within it" % (sb["takeover_s"], minimum, profile_name,
                                                                    profile.cycle_s))
    if profile.transport == "polled" and not sb["heartbeat"]:
        problems.append("standby.heartbeat = false is not allowed for inverter.profile = %r: answering polls, two "
                        "devices that both believe they are active (one resumed after a pause) would both answer "
                        "a request; only the heartbeat tells them apart" % profile_name)
    if sb["heartbeat"] and sb["heartbeat_interval_s"] * 4 > sb["takeover_s"]:
        problems.append("standby.heartbeat_interval_s = %g is above standby.takeover_s / 4 = %g: a peer must be "
                        "heard several times within the takeover time"
                        % (sb["heartbeat_interval_s"], sb["takeover_s"] / 4))
    heartbeat_id = sb["heartbeat_id"]
    used = heartbeat_id in profile.frame_ids or any(
        not entry["extended"] and heartbeat_id & entry["can_mask"] == entry["can_id"] & entry["can_mask"]
        for entry in profile.rx_filters)
    if sb["heartbeat"] and used:
        problems.append("standby.heartbeat_id = 0x%03X is used by inverter.profile = %r: choose an 11-bit id outside "
                        "its frames (%s) and the inverter's, or set standby.heartbeat = false"
                        % (heartbeat_id, profile_name, ", ".join("0x%03X" % i for i in profile.frame_ids)))
    return problems


def _merge(defaults: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    merged: Dict[str, Any] = {name: dict(keys) for name, keys in defaults.items()}
    for name, keys in override.items():
        if isinstance(keys, dict) and isinstance(merged.get(name), dict):
            merged[name].update(keys)
        else:
            merged[name] = keys
    return merged


def from_dict(raw: Dict[str, Any], sources: Tuple[str, ...] = ("<dict>",)) -> Config:
    """Validate a complete configuration given as nested dicts."""
    problems: List[str] = []
    values: Dict[str, Dict[str, Any]] = {}
    for name, keys in raw.items():
        if name not in SCHEMA:
            problems.append("[%s] is not a known section: allowed are %s" % (name, ", ".join(SCHEMA)))
            continue
        if not isinstance(keys, dict):
            problems.append("%s = %r is not allowed: expected a [%s] table" % (name, keys, name))
            continue
        values[name] = {}
        for key, value in keys.items():
            rule = SCHEMA[name].get(key)
            if rule is None:
                problems.append("%s.%s is not a known key: [%s] allows %s"
                                % (name, key, name, ", ".join(sorted(SCHEMA[name]))))
                continue
            checked, problem = _check_value("%s.%s" % (name, key), value, rule)
            if problem:
                problems.append(problem)
            else:
                values[name][key] = checked
    for name, rules in SCHEMA.items():
        for key in rules:
            if isinstance(raw.get(name, {}), dict) and key not in raw.get(name, {}):
                problems.append("%s.%s is missing: expected %s" % (name, key, _describe(rules[key])))
    if not problems:
        problems = _cross_checks(values)
    if problems:
        raise ConfigError(problems)
    return Config(values, sources)


def _read_toml(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(["%s: cannot be read: %s" % (path, error.strerror)]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(["%s: is not valid TOML: %s" % (path, error)]) from None
    except UnicodeDecodeError as error:
        line = error.object.count(b"\n", 0, error.start) + 1
        raise ConfigError(["%s: is not UTF-8 text (TOML files are UTF-8): byte 0x%02x on line %d"
                           % (path, error.object[error.start], line)]) from None


def load(path: Optional[str] = None) -> Config:
    """The shipped defaults, with the user's file at ``path`` laid over them."""
    defaults = _read_toml(DEFAULT_PATH)
    if path is None or os.path.abspath(path) == DEFAULT_PATH:
        return from_dict(defaults, (DEFAULT_PATH,))
    return from_dict(_merge(defaults, _read_toml(path)), (DEFAULT_PATH, path))


def load_or_exit(path: Optional[str] = None, writes_files: bool = False) -> Config:
    """``load`` for a command line: every problem on stderr, then exit code 2. ``writes_files``:
    the command runs the daemon, so the places of its files are checked too."""
    try:
        cfg = load(path)
        problems = unwritable_files(cfg) if writes_files else []
    except ConfigError as error:
        problems = error.problems
    for problem in problems:
        print("config: %s" % problem, file=sys.stderr)
    if problems:
        raise SystemExit(2)
    return cfg


def command_parser(prog: str, description: str):
    """An argparse parser with subcommands that each take ``--config FILE``: returns the parser
    and ``add(name, help)`` that adds one subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def add(name: str, help_text: str):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", metavar="FILE", help="settings laid over the shipped config.toml")
        return sub

    return parser, add
