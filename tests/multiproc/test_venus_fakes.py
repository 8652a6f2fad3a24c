"""The fake localsettings against what VENUS.md §3 documents and observed of localsettings v1.76.

The worker tests trust this fake to refuse what localsettings refuses; these tests hold it to
the documented behaviour, independently of the worker.
"""
import pytest

from ipc.private_dbus import PrivateDbus
from tests.fakes.peer import Peer

NAME = "com.victronenergy.settings"
SETTINGS_INTERFACE = "com.victronenergy.Settings"


@pytest.fixture(scope="module")
def peer():
    daemon = PrivateDbus()
    peer = Peer(daemon.address)
    peer.localsettings()
    yield peer
    peer.stop()
    daemon.stop()


def call(peer, path, method, args=(), signature=None, interface="com.victronenergy.BusItem"):
    answer = peer.call(name=NAME, path=path, method=method, args=list(args), signature=signature,
                       interface=interface)
    assert "error" not in answer, answer
    return answer["result"]


def add_setting(peer, group, name, default, kind, low, high, path="/Settings"):
    return call(peer, path, "AddSetting", (group, name, default, kind, low, high), "ssvsvv", SETTINGS_INTERFACE)


def add_settings(peer, *entries):
    return call(peer, "/", "AddSettings", ([dict(entry) for entry in entries],), "aa{sv}", SETTINGS_INTERFACE)


def test_a_float_setting_as_observed_on_localsettings(peer):
    assert add_setting(peer, "Fake", "ChargeVoltage", 55.2, "f", 40.0, 60.0) == 0
    path = "/Settings/Fake/ChargeVoltage"
    assert call(peer, path, "GetAttributes", interface=SETTINGS_INTERFACE) == [55.2, 40.0, 60.0, 0]
    assert call(peer, path, "SetValue", [60.5]) == -1                    # outside [min, max]
    assert call(peer, path, "SetValue", ["55"]) == -1                    # wrong type
    assert call(peer, path, "SetValue", [54]) == 0                       # an integer is a number
    assert call(peer, path, "SetValue", [54]) == 0                       # unchanged is OK too
    assert call(peer, path, "GetValue") == 54.0 and call(peer, path, "GetText") == "54.0"
    assert (call(peer, path, "GetMin"), call(peer, path, "GetMax"), call(peer, path, "GetDefault")) == (40.0, 60.0, 55.2)
    assert call(peer, path, "SetDefault") == 0 and call(peer, path, "GetValue") == 55.2
    assert call(peer, "/Settings/Fake", "GetValue") == {"ChargeVoltage": 55.2}
    assert call(peer, "/", "GetItems")[path] == {"Value": 55.2, "Text": "55.2", "Min": 40.0, "Max": 60.0,
                                                 "Default": 55.2}


def test_an_existing_value_is_kept_and_only_its_attributes_change(peer):
    assert add_setting(peer, "Keep", "Mode", 3, "i", 1, 4) == 0
    assert call(peer, "/Settings/Keep/Mode", "SetValue", [4]) == 0
    assert add_settings(peer, {"path": "/Settings/Keep/Mode", "default": 2, "min": 1, "max": 5}) == [
        {"path": "/Settings/Keep/Mode", "error": 0, "value": 4}]
    assert call(peer, "/Settings/Keep/Mode", "GetAttributes", interface=SETTINGS_INTERFACE) == [2, 1, 5, 0]
    assert call(peer, "/Settings/Keep/Mode", "SetValue", [2.5]) == -1    # a float for an integer setting


@pytest.mark.parametrize("entry, error", [
    ({"path": "/Settings/Bad/_hidden", "default": 1}, -2),
    ({"path": "/Settings/Bad/Flag", "default": True}, -3),               # a Python bool becomes Boolean
    ({"path": "/Settings//Empty", "default": 1}, -4),
    ({"path": "/Settings/Bad/Range", "default": 70.0, "min": 0.0, "max": 60.0}, -7),
    ({"path": "/Settings/Bad", "default": 1}, -8),                     # a group, not a setting
    ({"path": "/Other/Place", "default": 1}, -9),
])
def test_add_settings_errors(peer, entry, error):
    add_setting(peer, "Bad", "Existing", 1, "i", 0, 0)
    assert add_settings(peer, entry) == [{"path": entry["path"], "error": error}]


def test_a_type_change_and_an_invalid_default_are_refused(peer):
    assert add_setting(peer, "Typed", "Name", "x", "s", 0, 0) == 0
    assert add_settings(peer, {"path": "/Settings/Typed/Name", "default": 1}) == [
        {"path": "/Settings/Typed/Name", "error": -5}]
    assert add_setting(peer, "Typed", "Number", "abc", "f", 0, 0) == -6
    assert add_setting(peer, "Typed", "Unknown", 1, "b", 0, 0) == -3
    assert call(peer, "/Settings/Typed/Name", "SetValue", [5]) == -1
    assert call(peer, "/Settings/Typed/Name", "GetMin") == 0


def test_device_instances_are_allocated_once_per_unique_id(peer):
    path = "/Settings/Devices/%s/ClassAndVrmInstance"
    first = add_settings(peer, {"path": path % "one", "default": "vebus:280"})
    second = add_settings(peer, {"path": path % "two", "default": "vebus:280"})
    again = add_settings(peer, {"path": path % "one", "default": "vebus:280"})
    other_class = add_settings(peer, {"path": path % "three", "default": "battery:280"})
    assert [result[0]["value"] for result in (first, second, again, other_class)] == [
        "vebus:280", "vebus:281", "vebus:280", "battery:280"]
    assert call(peer, path % "one", "SetDefault") == -1


def test_silent_settings_and_removal(peer):
    assert call(peer, "/Settings", "AddSilentSetting", ("Quiet", "Level", 1, "i", 0, 10), "ssvsvv",
                SETTINGS_INTERFACE) == 0
    assert call(peer, "/Settings/Quiet/Level", "GetSilent", interface=SETTINGS_INTERFACE) is True
    assert call(peer, "/", "RemoveSettings", (["/Settings/Quiet/Level", "/Settings/Quiet/Nothing"],), "as",
                SETTINGS_INTERFACE) == [0, -1]
    assert peer.call(name=NAME, path="/Settings/Quiet/Level", method="GetMin")["error"].endswith("UnknownObject")
