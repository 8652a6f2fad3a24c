"""On Venus the web console writes a setting where it lives: localsettings (here the fake, on a
private D-Bus), from where dbus_publisher hands it to bms_tx like a change made in the GUI."""
import logging

import pytest

from ipc.private_dbus import PrivateDbus
from tests.fakes.peer import Peer
from venus.settings import setting_path
from web.server import localsettings_writer

NAME = "com.victronenergy.settings"
KEY = "limits.max_charge_current_a"


@pytest.fixture(scope="module")
def peer():
    daemon = PrivateDbus()
    peer = Peer(daemon.address)
    peer.localsettings()
    answer = peer.call(name=NAME, path="/", method="AddSettings", signature="aa{sv}",
                       interface="com.victronenergy.Settings",
                       args=[[{"path": setting_path(KEY), "default": 100.0, "min": 0.0, "max": 5000.0}]])
    assert "error" not in answer, answer
    peer.address = daemon.address
    yield peer
    peer.stop()
    daemon.stop()


def value(peer):
    return peer.call(name=NAME, path=setting_path(KEY), method="GetValue")["result"]


def test_a_setting_is_written_to_localsettings(peer, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", peer.address)
    write = localsettings_writer(logging.getLogger("test"))
    write({KEY: 42.0})
    assert value(peer) == 42.0


def test_a_value_localsettings_refuses_is_an_error_and_changes_nothing(peer, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", peer.address)
    before = value(peer)
    with pytest.raises(RuntimeError, match="SetValue of /Settings/PylonVenus/limits/max_charge_current_a returned -1"):
        localsettings_writer(logging.getLogger("test"))({KEY: 6000.0})
    assert value(peer) == before
