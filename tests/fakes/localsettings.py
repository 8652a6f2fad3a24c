"""Fake ``com.victronenergy.settings`` with localsettings v1.76's documented behaviour (VENUS.md §3).

Per setting: BusItem GetValue/GetText/SetValue (0, or -1 for a wrong type, a value outside
[min, max] or a forbidden change), GetMin/GetMax (0 when unlimited)/GetDefault/SetDefault and
PropertiesChanged; Settings GetSilent/GetAttributes. On groups: AddSetting, AddSilentSetting,
AddSettings (type from the D-Bus type of the default), RemoveSettings, GetValue/GetText as a
dictionary, GetItems on ``/``. An existing setting keeps its value; ClassAndVrmInstance
settings hand out the requested device instance or the next free one. No ItemsChanged.
"""
import logging

import dbus
import dbus.lowlevel
import dbus.service

BUSITEM = "com.victronenergy.BusItem"
SETTINGS = "com.victronenergy.Settings"
NAME = "com.victronenergy.settings"
OK, ERROR = 0, -1
# AddSetting errors (AddSettingError)
UNDERSCORE, UNKNOWN_TYPE, INVALID_PATH, TYPE_DIFFERS, INVALID_DEFAULT, DEFAULT_OUT_OF_RANGE, IS_GROUP, NOT_SETTINGS = (
    -2, -3, -4, -5, -6, -7, -8, -9)
INTEGERS = (dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64, dbus.Byte)

log = logging.getLogger("fake-localsettings")


def _type_of(default):
    if isinstance(default, dbus.Boolean):
        return None
    if isinstance(default, (dbus.Int32, dbus.Int64)):
        return "i"
    if isinstance(default, dbus.Double):
        return "f"
    if isinstance(default, dbus.String):
        return "s"
    return None


def _convert(kind, value):
    """``value`` as a setting of ``kind``, or None when it has the wrong type."""
    if isinstance(value, dbus.Boolean):
        return None
    if kind == "i" and isinstance(value, INTEGERS):
        return int(value)
    if kind == "f" and isinstance(value, INTEGERS + (dbus.Double,)):
        return float(value)
    if kind == "s" and isinstance(value, dbus.String):
        return str(value)
    return None


class Setting:
    def __init__(self, kind, default, low, high, silent):
        self.kind, self.default, self.low, self.high, self.silent = kind, default, low, high, silent
        self.value = default

    def in_range(self, value):
        return self.kind == "s" or (self.low == 0 and self.high == 0) or self.low <= value <= self.high

    def typed(self, value):
        return dbus.Double(value) if self.kind == "f" else dbus.Int32(value) if self.kind == "i" else dbus.String(value)


class FakeLocalSettings(dbus.service.FallbackObject):
    def __init__(self, bus):
        dbus.service.FallbackObject.__init__(self, bus, "/")
        self.bus = bus
        self.settings = {}
        self.bus_name = dbus.service.BusName(NAME, bus, do_not_queue=True)

    # ---- helpers -------------------------------------------------------------------------

    def _signal(self, path, changes):
        message = dbus.lowlevel.SignalMessage(path, BUSITEM, "PropertiesChanged")
        message.append(changes, signature="a{sv}")
        self.bus.send_message(message)

    def _setting(self, path):
        if path not in self.settings:
            raise dbus.exceptions.DBusException("no setting %s" % path,
                                                name="org.freedesktop.DBus.Error.UnknownObject")
        return self.settings[path]

    def _below(self, path):
        prefix = path.rstrip("/") + "/"
        return {full[len(prefix):]: setting for full, setting in self.settings.items() if full.startswith(prefix)}

    def _text(self, setting):
        return str(setting.value)

    def _add(self, path, default, kind, low, high, silent):
        parts = path.split("/")
        if not path.startswith("/Settings/"):
            return NOT_SETTINGS
        if any(part == "" for part in parts[1:]):
            return INVALID_PATH
        if any(part.startswith("_") for part in parts):
            return UNDERSCORE
        if kind not in ("i", "f", "s"):
            return UNKNOWN_TYPE
        if self._below(path):
            return IS_GROUP
        converted = _convert(kind, default)
        if converted is None:
            return INVALID_DEFAULT
        low = _convert(kind, low) if kind != "s" and low is not None else 0
        high = _convert(kind, high) if kind != "s" and high is not None else 0
        if low is None or high is None:
            return INVALID_DEFAULT
        existing = self.settings.get(path)
        if existing is not None and existing.kind != kind:
            return TYPE_DIFFERS
        setting = Setting(kind, converted, low, high, bool(silent))
        if not setting.in_range(converted):
            return DEFAULT_OUT_OF_RANGE
        if existing is None:
            if path.endswith("/ClassAndVrmInstance"):
                setting.value = self._free_instance(converted)
            self.settings[path] = setting
            return OK
        changes = {}
        for attribute, name in (("default", "Default"), ("low", "Min"), ("high", "Max")):
            if getattr(existing, attribute) != getattr(setting, attribute):
                setattr(existing, attribute, getattr(setting, attribute))
                changes[name] = existing.typed(getattr(setting, attribute))
        existing.silent = setting.silent
        if changes:
            changes.update(Value=existing.typed(existing.value), Text=self._text(existing))
            self._signal(path, changes)
        return OK

    def _free_instance(self, requested):
        device_class, instance = requested.split(":", 1)
        taken = {setting.value for path, setting in self.settings.items() if path.endswith("/ClassAndVrmInstance")}
        number = int(instance)
        while "%s:%d" % (device_class, number) in taken:
            number += 1
        return "%s:%d" % (device_class, number)

    # ---- com.victronenergy.BusItem -------------------------------------------------------

    @dbus.service.method(BUSITEM, out_signature="v", rel_path_keyword="path")
    def GetValue(self, path):
        if path in self.settings:
            return self.settings[path].typed(self.settings[path].value)
        return dbus.Dictionary({sub: setting.typed(setting.value) for sub, setting in self._below(path).items()},
                               signature="sv")

    @dbus.service.method(BUSITEM, out_signature="v", rel_path_keyword="path")
    def GetText(self, path):
        if path in self.settings:
            return dbus.String(self._text(self.settings[path]))
        return dbus.Dictionary({sub: self._text(setting) for sub, setting in self._below(path).items()},
                               signature="ss")

    @dbus.service.method(BUSITEM, in_signature="v", out_signature="i", rel_path_keyword="path")
    def SetValue(self, value, path):
        setting = self._setting(path)
        converted = _convert(setting.kind, value)
        if converted is None or not setting.in_range(converted):
            log.warning("SetValue(%r) on %s refused: wrong type or outside [%s, %s]",
                        value, path, setting.low, setting.high)
            return ERROR
        if converted != setting.value:
            setting.value = converted
            self._signal(path, {"Value": setting.typed(converted), "Text": self._text(setting)})
        return OK

    @dbus.service.method(BUSITEM, out_signature="v", rel_path_keyword="path")
    def GetMin(self, path):
        setting = self._setting(path)
        return setting.typed(setting.low) if setting.kind != "s" else dbus.Int32(0)

    @dbus.service.method(BUSITEM, out_signature="v", rel_path_keyword="path")
    def GetMax(self, path):
        setting = self._setting(path)
        return setting.typed(setting.high) if setting.kind != "s" else dbus.Int32(0)

    @dbus.service.method(BUSITEM, out_signature="v", rel_path_keyword="path")
    def GetDefault(self, path):
        setting = self._setting(path)
        return setting.typed(setting.default)

    @dbus.service.method(BUSITEM, out_signature="i", rel_path_keyword="path")
    def SetDefault(self, path):
        setting = self._setting(path)
        if path.endswith("/ClassAndVrmInstance"):
            return ERROR
        return self.SetValue(setting.typed(setting.default), path=path)

    @dbus.service.method(BUSITEM, out_signature="a{sa{sv}}", rel_path_keyword="path")
    def GetItems(self, path):
        return {full: {"Value": setting.typed(setting.value), "Text": self._text(setting),
                       "Min": setting.typed(setting.low) if setting.kind != "s" else dbus.Int32(0),
                       "Max": setting.typed(setting.high) if setting.kind != "s" else dbus.Int32(0),
                       "Default": setting.typed(setting.default)}
                for full, setting in self.settings.items()}

    # ---- com.victronenergy.Settings ------------------------------------------------------

    @dbus.service.method(SETTINGS, out_signature="b", rel_path_keyword="path")
    def GetSilent(self, path):
        return self._setting(path).silent

    @dbus.service.method(SETTINGS, out_signature="(vvvi)", rel_path_keyword="path")
    def GetAttributes(self, path):
        setting = self._setting(path)
        low = setting.typed(setting.low) if setting.kind != "s" else dbus.Int32(0)
        high = setting.typed(setting.high) if setting.kind != "s" else dbus.Int32(0)
        return (setting.typed(setting.default), low, high, int(setting.silent))

    @dbus.service.method(SETTINGS, in_signature="ssvsvv", out_signature="i", rel_path_keyword="path")
    def AddSetting(self, group, name, default, kind, low, high, path):
        return self._add("/".join(part for part in (path.rstrip("/"), group, name) if part), default, kind,
                         low, high, False)

    @dbus.service.method(SETTINGS, in_signature="ssvsvv", out_signature="i", rel_path_keyword="path")
    def AddSilentSetting(self, group, name, default, kind, low, high, path):
        return self._add("/".join(part for part in (path.rstrip("/"), group, name) if part), default, kind,
                         low, high, True)

    @dbus.service.method(SETTINGS, in_signature="aa{sv}", out_signature="aa{sv}", rel_path_keyword="path")
    def AddSettings(self, entries, path):
        results = []
        for entry in entries:
            full = "/".join(part for part in (path.rstrip("/"), str(entry["path"]).strip("/")) if part)
            full = "/" + full.lstrip("/")
            default = entry.get("default")
            code = self._add(full, default, _type_of(default), entry.get("min"), entry.get("max"),
                             entry.get("silent", False))
            result = {"path": dbus.String(entry["path"]), "error": dbus.Int32(code)}
            if code == OK:
                result["value"] = self.settings[full].typed(self.settings[full].value)
            results.append(result)
        return results

    @dbus.service.method(SETTINGS, in_signature="as", out_signature="ai", rel_path_keyword="path")
    def RemoveSettings(self, paths, path):
        codes = []
        for removed in paths:
            codes.append(OK if self.settings.pop(str(removed), None) is not None else ERROR)
        return codes

    def close(self):
        self.bus.release_name(NAME)
        self.bus_name = None
        self.remove_from_connection()
