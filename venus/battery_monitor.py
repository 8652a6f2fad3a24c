"""Follow the battery monitor the Venus system uses, by signals only.

Which monitor: the one ``com.victronenergy.system`` names in ``/ActiveBatteryService``
(``com.victronenergy.battery/<device instance>``), else the configured service, else the
battery service with the lowest ``/DeviceInstance`` (VENUS.md §8.2, §16.6). Services without
``/DeviceInstance`` are skipped, as DbusMonitor does (§4.4). The choice is revised whenever a
name comes or goes (NameOwnerChanged) or the system changes its choice.

How: one ``GetItems`` when a monitor is chosen (falling back to ``GetValue`` on ``/`` for
services older than GetItems), then ``ItemsChanged`` and ``PropertiesChanged``. Every call is
asynchronous, so the GLib loop never waits on another service. A monitor that stays silent
for ``refresh_s`` is re-read once with ``GetItems`` (values that do not change are never
signalled, so silence alone cannot tell "steady" from "gone").
"""
import logging
import math
import time
from typing import Callable, Dict, Iterable, Optional

from venus.busitem import BUSITEM, DBUS_DAEMON, unwrap

BATTERY_CLASS = "com.victronenergy.battery"
SYSTEM = "com.victronenergy.system"

# battery service path -> field of the "battery" shared-memory slot
FIELDS = {
    "/Dc/0/Voltage": "voltage_v",
    "/Dc/0/Current": "current_a",
    "/Soc": "soc_pct",
    "/Dc/0/Temperature": "temperature_c",
    "/System/MinCellVoltage": "cell_min_v",
    "/System/MaxCellVoltage": "cell_max_v",
}
# without these three there is no real battery state to decide from
CORE_FIELDS = ("voltage_v", "current_a", "soc_pct")
CALL_TIMEOUT_S = 5.0


def service_class(name: str) -> str:
    return ".".join(name.split(".")[:3])


def _number(value) -> Optional[float]:
    """A valid measurement as float; invalid (None), text and booleans are missing data."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class BatteryMonitorFollower:
    """Keeps ``snapshot()`` equal to the chosen monitor's last real values.

    ``on_change(snapshot)`` is called after every update. ``exclude`` names services never
    to follow (our own BMS battery service, whose values come from this follower).
    ``previous`` is the last snapshot of an earlier process: a restart keeps the values and
    their true age as long as the same monitor is chosen again.
    """

    def __init__(self, bus, on_change: Callable[[dict], None], preferred: str = "",
                 exclude: Iterable[str] = (), refresh_s: float = 5.0, previous: Optional[dict] = None,
                 clock: Callable[[], float] = time.monotonic, log: Optional[logging.Logger] = None):
        self.bus = bus
        self.on_change = on_change
        self.preferred = preferred
        self.exclude = frozenset(exclude)
        self.refresh_s = refresh_s
        self.clock = clock
        self.log = log or logging.getLogger("pylon-venus.battery_monitor")
        self.instances: Dict[str, Optional[int]] = {}   # battery services seen; None until known
        self.system_choice: Optional[str] = None         # "com.victronenergy.battery/512"
        previous = previous or {}
        self.selected: Optional[str] = None
        self.values_of: Optional[str] = previous.get("service")
        self.values: Dict[str, Optional[float]] = {field: previous.get(field) for field in FIELDS.values()}
        self.updated: Optional[float] = previous.get("updated")
        self.last_heard: Optional[float] = None
        self._matches = []
        self._system_matches = []
        self._rereading = False

    # ---- start and discovery -------------------------------------------------------------

    def start(self) -> None:
        self.bus.add_signal_receiver(self._name_owner_changed, signal_name="NameOwnerChanged",
                                     dbus_interface=DBUS_DAEMON[2], bus_name=DBUS_DAEMON[0])
        self._system_matches = [
            self.bus.add_signal_receiver(self._system_items, signal_name="ItemsChanged", dbus_interface=BUSITEM,
                                         bus_name=SYSTEM, path="/"),
            self.bus.add_signal_receiver(self._system_property, signal_name="PropertiesChanged",
                                         dbus_interface=BUSITEM, bus_name=SYSTEM, path="/ActiveBatteryService"),
        ]
        self._call(*DBUS_DAEMON, "ListNames", "", (), self._names_listed, "listing the bus names")

    def _call(self, name, path, interface, method, signature, args, reply, what) -> None:
        def failed(error):
            self.log.debug("%s failed: %s", what, error.get_dbus_message())
        self.bus.call_async(name, path, interface, method, signature, args, reply, failed, timeout=CALL_TIMEOUT_S)

    def _names_listed(self, names) -> None:
        for name in names:
            self._appeared(str(name))

    def _name_owner_changed(self, name, old_owner, new_owner) -> None:
        name = str(name)
        if service_class(name) not in (BATTERY_CLASS, SYSTEM):
            return
        if old_owner:
            self._vanished(name)
        if new_owner:
            self._appeared(name)

    def _appeared(self, name: str) -> None:
        if name == SYSTEM:
            self._call(SYSTEM, "/ActiveBatteryService", BUSITEM, "GetValue", "", (),
                       lambda value: self._set_system_choice(unwrap(value)), "reading the system's battery choice")
        elif service_class(name) == BATTERY_CLASS and name not in self.exclude:
            self.instances[name] = None
            self._call(name, "/DeviceInstance", BUSITEM, "GetValue", "", (),
                       lambda value: self._instance_known(name, unwrap(value)),
                       "reading the device instance of %s" % name)

    def _vanished(self, name: str) -> None:
        if name == SYSTEM:
            self._set_system_choice(None)
        elif name in self.instances:
            del self.instances[name]
            self.log.warning("battery service %s left the bus", name)
            self._choose()

    def _instance_known(self, name: str, instance) -> None:
        if name in self.instances and isinstance(instance, int):
            self.instances[name] = instance
            self._choose()

    def _system_items(self, changes) -> None:
        if "/ActiveBatteryService" in changes:
            self._set_system_choice(unwrap(changes["/ActiveBatteryService"].get("Value")))

    def _system_property(self, changes) -> None:
        if "Value" in changes:
            self._set_system_choice(unwrap(changes["Value"]))

    def _set_system_choice(self, choice) -> None:
        choice = choice if isinstance(choice, str) else None
        if choice != self.system_choice:
            self.system_choice = choice
            self._choose()

    # ---- choosing --------------------------------------------------------------------------

    def choose(self) -> Optional[str]:
        """The service to follow now: the system's choice, the configured one, the lowest instance."""
        known = {name: instance for name, instance in self.instances.items() if instance is not None}
        if self.system_choice and self.system_choice.startswith(BATTERY_CLASS + "/"):
            wanted = self.system_choice.rsplit("/", 1)[1]
            for name, instance in sorted(known.items()):
                if str(instance) == wanted:
                    return name
        if self.preferred in known:
            return self.preferred
        if known:
            return min(known, key=lambda name: (known[name], name))
        return None

    def _choose(self) -> None:
        chosen = self.choose()
        if chosen == self.selected:
            return
        self.log.info("following battery monitor %s (was %s)", chosen, self.selected)
        for match in self._matches:
            match.remove()
        self._matches = []
        self.selected = chosen
        if chosen != self.values_of:
            self.values = dict.fromkeys(FIELDS.values())
            self.values_of = chosen
        self.last_heard = None
        self._rereading = False
        if chosen is not None:
            self._matches = [
                self.bus.add_signal_receiver(self._items_changed, signal_name="ItemsChanged",
                                             dbus_interface=BUSITEM, bus_name=chosen, path="/"),
                self.bus.add_signal_receiver(self._properties_changed, signal_name="PropertiesChanged",
                                             dbus_interface=BUSITEM, bus_name=chosen, path_keyword="path"),
            ]
            self._read_all(chosen)
        self.on_change(self.snapshot())

    # ---- reading ---------------------------------------------------------------------------

    def _read_all(self, name: str) -> None:
        """GetItems (velib since 2021); older services answer GetValue on '/' with a tree. The
        answer is the whole service: a path it lacks (a probe removed) has no valid value."""
        def whole(values):
            complete = dict.fromkeys(FIELDS)
            complete.update(values)
            self._apply(name, complete)

        def items(reply):
            whole({str(path): item.get("Value") for path, item in reply.items()})

        def tree(reply):
            whole({"/" + str(path): value for path, value in reply.items()})

        def unreadable(error):
            self._rereading = False
            self.log.warning("cannot read battery monitor %s: %s", name, error.get_dbus_message())

        def no_items(error):
            self.bus.call_async(name, "/", BUSITEM, "GetValue", "", (), tree, unreadable, timeout=CALL_TIMEOUT_S)

        self._rereading = True
        self.bus.call_async(name, "/", BUSITEM, "GetItems", "", (), items, no_items, timeout=CALL_TIMEOUT_S)

    def _items_changed(self, changes) -> None:
        self._apply(self.selected, {path: item.get("Value") for path, item in changes.items() if "Value" in item})

    def _properties_changed(self, changes, path=None) -> None:
        self._apply(self.selected, {path: changes["Value"]} if "Value" in changes else {})

    def _apply(self, name: Optional[str], values: Dict[str, object]) -> None:
        """Take the values of ``name``'s message; a message of a service no longer chosen is late."""
        if name is None or name != self.selected:
            return
        self._rereading = False
        now = self.clock()
        self.last_heard = now
        for path, value in values.items():
            field = FIELDS.get(str(path))
            if field is not None:
                self.values[field] = _number(unwrap(value))
        if all(self.values[field] is not None for field in CORE_FIELDS):
            self.updated = now
        self.on_change(self.snapshot())

    def reread_if_silent(self) -> None:
        """Called from a timer: confirm a silent monitor's values with one asynchronous GetItems."""
        if self.selected is None or self._rereading:
            return
        if self.last_heard is None or self.clock() - self.last_heard >= self.refresh_s:
            self._read_all(self.selected)

    def snapshot(self) -> dict:
        """The "battery" slot: last real values, None where missing; ``updated`` = last real update."""
        snapshot = dict(self.values)
        snapshot.update(service=self.selected, updated=self.updated)
        return snapshot

    def stop(self) -> None:
        for match in self._matches + self._system_matches:
            match.remove()
        self._matches = self._system_matches = []
