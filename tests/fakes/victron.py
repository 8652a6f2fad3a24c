"""Fake battery monitor (SmartShunt) and com.victronenergy.system, per VENUS.md §2.1, §7, §8.5.

``FakeService`` is a minimal BusItem exporter: ``set(values)`` signals each change with
``PropertiesChanged`` (velib without batching), ``set(values, batch=True)`` with one
``ItemsChanged`` (velib's ``with service``), so readers are tested against both.
"""
import dbus
import dbus.service

BUSITEM = "com.victronenergy.BusItem"


def variant(value):
    """VENUS.md §2.1 wrapping: None is the empty int32 array."""
    if value is None:
        return dbus.Array([], signature="i", variant_level=1)
    if isinstance(value, bool):
        return dbus.Boolean(value, variant_level=1)
    if isinstance(value, float):
        return dbus.Double(value, variant_level=1)
    if isinstance(value, int):
        return dbus.Int32(value, variant_level=1)
    return dbus.String(value, variant_level=1)


class _Path(dbus.service.Object):
    def __init__(self, owner, path):
        dbus.service.Object.__init__(self, owner.bus, path)
        self.owner = owner
        self.path = path

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return variant(self.owner.values[self.path])

    @dbus.service.method(BUSITEM, out_signature="s")
    def GetText(self):
        return self.owner.text(self.path)

    @dbus.service.method(BUSITEM, in_signature="v", out_signature="i")
    def SetValue(self, value):
        return 1   # measurements of a monitor are not writeable

    @dbus.service.signal(BUSITEM, signature="a{sv}")
    def PropertiesChanged(self, changes):
        pass


class _OldTree(dbus.service.Object):
    """A tree node of velib before GetItems (2021-10): the values below it by relative path."""

    def __init__(self, owner, path):
        dbus.service.Object.__init__(self, owner.bus, path)
        self.owner = owner
        self.prefix = path.rstrip("/") + "/"

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return dbus.Dictionary({path[len(self.prefix):]: variant(value) for path, value in self.owner.values.items()
                                if path.startswith(self.prefix)}, signature="sv", variant_level=1)


class _Tree(_OldTree):
    """A current velib tree node: ``/`` also answers GetItems and sends ItemsChanged."""

    @dbus.service.method(BUSITEM, out_signature="a{sa{sv}}")
    def GetItems(self):
        return {path: self.owner.item(path) for path in self.owner.values}

    @dbus.service.signal(BUSITEM, signature="a{sa{sv}}")
    def ItemsChanged(self, changes):
        pass


class FakeService:
    """``get_items=False``: a service of velib before GetItems/ItemsChanged."""

    def __init__(self, bus, name, values, get_items=True):
        self.bus = bus
        self.name = name
        self.values = dict(values)
        nodes = {"/".join(path.split("/")[:depth]) or "/" for path in self.values
                 for depth in range(1, path.count("/") + 1)}
        self.nodes = {node: (_Tree if get_items else _OldTree)(self, node) for node in nodes}
        self.root = self.nodes["/"]
        self.paths = {path: _Path(self, path) for path in self.values}
        self.bus_name = dbus.service.BusName(name, bus, do_not_queue=True)

    def text(self, path):
        value = self.values[path]
        return "---" if value is None else str(value)

    def item(self, path):
        return {"Value": variant(self.values[path]), "Text": self.text(path)}

    def set(self, values, batch=False):
        changed = [path for path, value in values.items() if self.values[path] != value
                   or type(self.values[path]) is not type(value)]
        self.values.update(values)
        if batch and changed and not hasattr(self.root, "ItemsChanged"):
            raise ValueError("%s predates ItemsChanged: it cannot batch" % self.name)
        if batch and changed:
            self.root.ItemsChanged({path: self.item(path) for path in changed})
        elif not batch:
            for path in changed:
                self.paths[path].PropertiesChanged(self.item(path))

    def close(self):
        self.bus.release_name(self.name)
        self.bus_name = None
        for exported in list(self.paths.values()) + list(self.nodes.values()):
            exported.remove_from_connection()


def smartshunt(bus, name, device_instance, values, get_items=True):
    """A SmartShunt 500A/50mV as vedirect-dbus publishes it (measurement paths of §7)."""
    paths = {"/DeviceInstance": device_instance, "/ProductId": 0xA389, "/ProductName": "SmartShunt 500A/50mV",
             "/Mgmt/ProcessName": "vedirect-dbus", "/Mgmt/Connection": "VE.Direct port", "/Connected": 1,
             "/Dc/0/Voltage": None, "/Dc/0/Current": None, "/Dc/0/Power": None, "/Dc/0/Temperature": None,
             "/Soc": None, "/ConsumedAmphours": None, "/TimeToGo": None,
             "/System/MinCellVoltage": None, "/System/MaxCellVoltage": None}
    paths.update(values)
    return FakeService(bus, name, paths, get_items)


def system(bus, active_battery_service, battery_service):
    """com.victronenergy.system's battery choice (§8.5): "class/instance" and the service name."""
    return FakeService(bus, "com.victronenergy.system", {
        "/DeviceInstance": 0, "/ActiveBatteryService": active_battery_service,
        "/Dc/Battery/BatteryService": battery_service})
