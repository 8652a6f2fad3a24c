"""Runtime settings in Venus's localsettings (``com.victronenergy.settings``).

Every user-facing setting that may change while running lives under
``/Settings/PylonVenus/<section>/<key>`` (the config.toml names, so ``charge.float_voltage_v`` is
``/Settings/PylonVenus/charge/float_voltage_v``). They are created with one ``AddSettings``
call whose default is the config.toml value and whose min/max are config.py's SCHEMA range,
so localsettings itself refuses out-of-range writes (VENUS.md §3). An existing setting keeps
its value: after the first start the value in Venus is the one in force. Changes arrive as
``PropertiesChanged`` (localsettings sends no ItemsChanged, §3.2) and take effect at the next
bms_tx cycle through the "dvcc" slot.

The same call allocates the device instances (``ClassAndVrmInstance``, §3.2, §5) and holds the
per-device values a user sets on the vebus service (``/CustomName``, ``/Mode``).
Without localsettings on the bus everything runs on config.toml values.
"""
import logging
from typing import Callable, Dict, List, Optional, Tuple

import dbus

import config
from venus.busitem import BUSITEM, DBUS_DAEMON, unwrap

SETTINGS_SERVICE = "com.victronenergy.settings"
SETTINGS_INTERFACE = "com.victronenergy.Settings"
ROOT = "/Settings/PylonVenus"
CALL_TIMEOUT_S = 10.0

# What a user may change on Venus while the bridge runs: every key of these sections, plus a few.
RUNTIME_SECTIONS = ("charge", "limits")
RUNTIME_EXTRA = ("battery.capacity_ah", "battery.soh_pct")


def runtime_keys():
    """``section.key`` of every runtime setting, in SCHEMA order; only numbers with a range qualify
    (localsettings has no booleans, and its min/max come from the range)."""
    keys = ["%s.%s" % (section, name) for section in RUNTIME_SECTIONS for name in config.SCHEMA[section]]
    return tuple(key for key in keys + list(RUNTIME_EXTRA) if _is_number(key))


def _is_number(key: str) -> bool:
    section, name = key.split(".", 1)
    rule = config.SCHEMA[section][name]
    return rule.kind in (int, float) and rule.low is not None


def setting_path(key: str) -> str:
    """``charge.float_voltage_v`` -> ``/Settings/PylonVenus/charge/float_voltage_v``."""
    section, name = key.split(".", 1)
    return "%s/%s/%s" % (ROOT, section, name)


def _typed(kind: type, value):
    """A value as the D-Bus type that makes localsettings pick the setting's type (§3.1 AddSettings)."""
    if kind is int:
        return dbus.Int32(value)
    if kind is float:
        return dbus.Double(value)
    return dbus.String(value)


# Pack voltages: the SCHEMA range spans every pack from 12 V to HV; Venus's own check gets the
# configured pack's (cell count x the cell limits, which config.py's cross-checks hold them to).
PACK_VOLTAGES = ("charge.float_voltage_v", "charge.absorption_voltage_v", "charge.full_charge_voltage_v",
                 "limits.discharge_voltage_v")


def runtime_entries(cfg) -> List[dict]:
    """The AddSettings entries of the runtime settings: default from cfg, min/max from the SCHEMA
    (for a pack voltage: the configured pack's range)."""
    entries = []
    b = cfg.battery
    for key in runtime_keys():
        section, name = key.split(".", 1)
        rule = config.SCHEMA[section][name]
        low, high = ((b.cell_count * b.cell_voltage_min_v, b.cell_count * b.cell_voltage_max_v)
                     if key in PACK_VOLTAGES else (rule.low, rule.high))
        entries.append({"path": setting_path(key), "default": _typed(rule.kind, getattr(getattr(cfg, section), name)),
                        "min": _typed(rule.kind, low), "max": _typed(rule.kind, high)})
    return entries


def check_setting(key: str, value) -> Tuple[Optional[object], Optional[str]]:
    """(value, None) when ``value`` is allowed for config key ``key``, else (None, the reason)."""
    section, name = key.split(".", 1)
    return config._check_value(key, value, config.SCHEMA[section][name])


class DeviceSetting:
    """A per-device setting under /Settings/Devices/<device key>/ (instance, custom name, mode)."""

    def __init__(self, path: str, default, low=None, high=None):
        self.path = path
        self.default = default
        self.low = low
        self.high = high

    def entry(self) -> dict:
        entry = {"path": self.path, "default": _typed(type(self.default), self.default)}
        if self.low is not None:
            entry.update(min=_typed(type(self.default), self.low), max=_typed(type(self.default), self.high))
        return entry


class VenusSettings:
    """Creates and follows our settings in localsettings.

    ``on_ready(values)`` is called once: with the values AddSettings returned (path -> value),
    or with {} when localsettings is absent or does not answer. ``on_change(path, value)`` is
    called for every later change of one of our paths.
    """

    def __init__(self, bus, cfg, device_settings: List[DeviceSetting],
                 on_ready: Callable[[Dict[str, object]], None], on_change: Callable[[str, object], None],
                 log: Optional[logging.Logger] = None):
        self.bus = bus
        self.entries = runtime_entries(cfg) + [setting.entry() for setting in device_settings]
        self.paths = {entry["path"] for entry in self.entries}
        self.keys = {setting_path(key): key for key in runtime_keys()}
        self.on_ready = on_ready
        self.on_change = on_change
        self.log = log or logging.getLogger("pylon-venus.settings")
        self.values: Dict[str, object] = {}     # config key -> value in force in localsettings
        self.present = False
        self._ready = False

    def start(self) -> None:
        self.bus.add_signal_receiver(self._name_owner_changed, signal_name="NameOwnerChanged",
                                     dbus_interface=DBUS_DAEMON[2], bus_name=DBUS_DAEMON[0], arg0=SETTINGS_SERVICE)
        self.bus.add_signal_receiver(self._properties_changed, signal_name="PropertiesChanged",
                                     dbus_interface=BUSITEM, bus_name=SETTINGS_SERVICE, path_keyword="path")
        self.bus.call_async(*DBUS_DAEMON, "NameHasOwner", "s", (SETTINGS_SERVICE,), self._has_owner,
                            self._unavailable, timeout=CALL_TIMEOUT_S)

    def _has_owner(self, owned) -> None:
        if owned:
            self._add()
        else:
            self.log.info("%s is not on the bus: settings come from the configuration file", SETTINGS_SERVICE)
            self._become_ready({})

    def _name_owner_changed(self, name, old_owner, new_owner) -> None:
        self.present = bool(new_owner)
        if new_owner:
            self.log.info("%s appeared: adding our settings", SETTINGS_SERVICE)
            self._add()
        else:
            self.log.warning("%s left the bus: keeping the last settings", SETTINGS_SERVICE)

    def _add(self) -> None:
        self.present = True
        self.bus.call_async(SETTINGS_SERVICE, "/", SETTINGS_INTERFACE, "AddSettings", "aa{sv}", (self.entries,),
                            self._added, self._unavailable, timeout=CALL_TIMEOUT_S)

    def _unavailable(self, error) -> None:
        self.log.error("%s did not answer (%s): settings come from the configuration file",
                       SETTINGS_SERVICE, error.get_dbus_message())
        self._become_ready({})

    def _added(self, results) -> None:
        added = {}
        for result in results:
            path, code = str(result.get("path")), int(result.get("error", -1))
            if code != 0 or "value" not in result:
                self.log.error("AddSettings refused %s with error %d: its configuration file value is used", path, code)
                continue
            added[path] = unwrap(result["value"])
            if path in self.keys:
                self._take(path, added[path])
        self._become_ready(added)

    def _become_ready(self, values: Dict[str, object]) -> None:
        if not self._ready:
            self._ready = True
            self.on_ready(values)

    def _take(self, path: str, value) -> bool:
        key = self.keys[path]
        checked, problem = check_setting(key, value)
        if problem:
            self.log.error("setting %s ignored: %s", path, problem)
            self.values.pop(key, None)
            return False
        self.values[key] = checked
        return True

    def _properties_changed(self, changes, path=None) -> None:
        path = str(path)
        if path not in self.paths or "Value" not in changes:
            return
        value = unwrap(changes["Value"])
        if path in self.keys:
            if not self._take(path, value):
                return
            self.log.info("setting %s changed to %r", path, value)
        self.on_change(path, value)

    def write(self, path: str, value) -> None:
        """Store a device value (custom name, mode) in localsettings, asynchronously."""
        if not self.present:
            return

        def done(code):
            if code != 0:
                self.log.error("localsettings refused %r for %s (code %d)", value, path, code)

        def failed(error):
            self.log.error("storing %s failed: %s", path, error.get_dbus_message())

        self.bus.call_async(SETTINGS_SERVICE, path, BUSITEM, "SetValue", "v", (value,), done, failed,
                            timeout=CALL_TIMEOUT_S)
