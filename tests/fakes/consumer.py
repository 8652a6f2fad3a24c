"""A consumer that reads one service the way DbusMonitor and dbus-flashmq do (VENUS.md §2.2, §4.4).

When the name appears it asks ``GetItems`` at once and keeps what it saw first; afterwards it
follows ``ItemsChanged`` and ``PropertiesChanged``; when the name goes it forgets everything.
``kinds`` keeps the D-Bus type of each value, so "invalid" (an empty ``ai``) and a real zero
can be told apart; ``history`` keeps every value seen per path.
"""
import dbus

BUSITEM = "com.victronenergy.BusItem"
DAEMON = "org.freedesktop.DBus"


def kind(value) -> str:
    """The D-Bus signature of a received value, with the length for arrays: invalid is 'ai:0'."""
    if isinstance(value, dbus.Array):
        return "a%s:%d" % (value.signature, len(value))
    for dbus_type, code in ((dbus.Boolean, "b"), (dbus.Double, "d"), (dbus.Int32, "i"), (dbus.UInt32, "u"),
                            (dbus.Int64, "x"), (dbus.UInt64, "t"), (dbus.Int16, "n"), (dbus.UInt16, "q"),
                            (dbus.Byte, "y"), (dbus.String, "s"), (dbus.Dictionary, "a{sv}")):
        if isinstance(value, dbus_type):
            return code
    return type(value).__name__


def plain(value):
    """A received value as JSON-able Python; an empty array (invalid) becomes None."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.Array, list)):
        return [plain(item) for item in value] or None
    if isinstance(value, (dbus.Dictionary, dict)):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, dbus.Double):
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return value


class Consumer:
    def __init__(self, bus, name: str):
        self.bus = bus
        self.name = name
        self.present = False
        self.first_scans = []        # per appearance: the paths GetItems returned at first sight
        self.values = {}
        self.kinds = {}
        self.texts = {}
        self.history = {}
        bus.add_signal_receiver(self._owner_changed, signal_name="NameOwnerChanged", dbus_interface=DAEMON,
                                bus_name=DAEMON, arg0=name)
        bus.add_signal_receiver(self._items_changed, signal_name="ItemsChanged", dbus_interface=BUSITEM,
                                bus_name=name, path="/")
        bus.add_signal_receiver(self._properties_changed, signal_name="PropertiesChanged", dbus_interface=BUSITEM,
                                bus_name=name, path_keyword="path")
        bus.call_async(DAEMON, "/org/freedesktop/DBus", DAEMON, "NameHasOwner", "s", (name,),
                       lambda owned: owned and self._scan(), lambda error: None)

    def _owner_changed(self, name, old_owner, new_owner):
        if old_owner:
            self.present = False
            self.values, self.kinds, self.texts = {}, {}, {}
        if new_owner:
            self._scan()

    def _scan(self):
        def scanned(items):
            self.present = True
            self.first_scans.append(sorted(str(path) for path in items))
            self._take({path: item for path, item in items.items()})

        self.bus.call_async(self.name, "/", BUSITEM, "GetItems", "", (), scanned, lambda error: None)

    def _take(self, items):
        for path, item in items.items():
            path = str(path)
            if "Value" in item:
                value = item["Value"]
                self.values[path] = plain(value)
                self.kinds[path] = kind(value)
                self.history.setdefault(path, []).append(plain(value))
            if "Text" in item:
                self.texts[path] = str(item["Text"])

    def _items_changed(self, changes):
        self._take(changes)

    def _properties_changed(self, changes, path=None):
        self._take({path: changes})

    def view(self) -> dict:
        return {"present": self.present, "first_scans": self.first_scans, "values": self.values,
                "kinds": self.kinds, "texts": self.texts, "history": self.history}
