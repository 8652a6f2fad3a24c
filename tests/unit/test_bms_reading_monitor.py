"""The battery slot as the follower fills it: a value the monitor no longer has is missing there."""
from venus.battery_monitor import BatteryMonitorFollower

SHUNT = "com.victronenergy.battery.ttyS5"
READING = {"/Dc/0/Voltage": 52.0, "/Dc/0/Current": 12.5, "/Soc": 75.0, "/Dc/0/Temperature": -5.0,
           "/System/MinCellVoltage": 3.2, "/System/MaxCellVoltage": 3.7}


class Match:
    def remove(self):
        pass


class FakeBus:
    """Records the asynchronous calls; the test answers them."""

    def __init__(self):
        self.calls = []

    def add_signal_receiver(self, *args, **kwargs):
        return Match()

    def call_async(self, name, path, interface, method, signature, args, reply, error, timeout):
        self.calls.append((name, path, method, reply))

    def answer(self, method, path, value):
        name, _, _, reply = next(call for call in reversed(self.calls) if call[2] == method and call[1] == path)
        reply(value)


def followed(clock):
    bus, slots = FakeBus(), []
    follower = BatteryMonitorFollower(bus, slots.append, refresh_s=5.0, clock=lambda: clock[0])
    follower.start()
    bus.answer("ListNames", "/org/freedesktop/DBus", [SHUNT])
    bus.answer("GetValue", "/DeviceInstance", 512)
    bus.answer("GetItems", "/", {path: {"Value": value} for path, value in READING.items()})
    return bus, follower, slots


def test_a_path_gone_from_the_monitor_is_missing_after_the_reread():
    clock = [100.0]
    bus, follower, slots = followed(clock)
    assert slots[-1]["temperature_c"] == -5.0 and slots[-1]["cell_max_v"] == 3.7
    clock[0] = 106.0
    follower.reread_if_silent()
    gone = {path: {"Value": value} for path, value in READING.items()
            if path not in ("/Dc/0/Temperature", "/System/MaxCellVoltage")}
    bus.answer("GetItems", "/", gone)
    assert slots[-1]["temperature_c"] is None and slots[-1]["cell_max_v"] is None   # not held at -5 / 3.7 as fresh
    assert slots[-1]["voltage_v"] == 52.0 and slots[-1]["updated"] == 106.0


def test_a_signal_for_some_paths_keeps_the_others():
    clock = [100.0]
    bus, follower, slots = followed(clock)
    follower._properties_changed({"Value": 52.4}, path="/Dc/0/Voltage")
    assert slots[-1]["voltage_v"] == 52.4 and slots[-1]["temperature_c"] == -5.0
