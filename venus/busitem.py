"""A small exporter of the com.victronenergy.BusItem interface, on dbus-python.

Why not velib: velib_python is no package, it sits at a different place on each Venus
release and its ``VeDbusService`` changed its registration API twice (VENUS.md §4.7), while
dbus-python is on every Venus image. This module speaks velib's wire protocol (VENUS.md §2.1):

* one object per path with ``GetValue``/``GetText``/``SetValue``/``GetDescription`` and the
  ``PropertiesChanged`` signal; tree objects for every intermediate node answer ``GetValue``/
  ``GetText`` with a dictionary of relative sub-paths; the root ``/`` also has ``GetItems``
  and the ``ItemsChanged`` signal;
* invalid is an empty ``ai`` array, never a placeholder number;
* ``SetValue`` returns 0 when accepted (also when unchanged), 1 when the path is not writeable
  or the value is not of its type (see ``coerce``), 2 when the owner's check rejects it; a
  refused write changes nothing;
* objects are exported first and the bus name is claimed last (``register``), so no consumer
  ever sees the name before ``/DeviceInstance`` and ``GetItems`` exist.
"""
import logging
import time
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import dbus
import dbus.service

BUSITEM = "com.victronenergy.BusItem"
DBUS_DAEMON = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")   # name, path, interface
INVALID = dbus.Array([], signature=dbus.Signature("i"), variant_level=1)

log = logging.getLogger("pylon-venus.busitem")

_DBUS_INTEGERS = (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64)


def wrap(value: Any):
    """A Python value as the D-Bus variant velib would send; None becomes invalid."""
    if value is None:
        return INVALID
    if isinstance(value, bool):
        return dbus.Boolean(value, variant_level=1)
    if isinstance(value, float):
        return dbus.Double(value, variant_level=1)
    if isinstance(value, int):
        if -2 ** 31 <= value < 2 ** 31:
            return dbus.Int32(value, variant_level=1)
        return dbus.Int64(value, variant_level=1)
    if isinstance(value, str):
        return dbus.String(value, variant_level=1)
    if isinstance(value, (list, tuple)):
        if not value:  # an empty 'ai' would read as invalid
            return dbus.Array([], signature=dbus.Signature("u"), variant_level=1)
        return dbus.Array([wrap(item) for item in value], variant_level=1)
    if isinstance(value, dict):
        return dbus.Dictionary({key: wrap(item) for key, item in value.items()}, signature="sv", variant_level=1)
    raise TypeError("cannot publish %r on D-Bus: expected None, bool, int, float, str, list or dict" % (value,))


def unwrap(value: Any):
    """A received D-Bus value as plain Python; an empty array (invalid) becomes None."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, _DBUS_INTEGERS):
        return int(value)
    if isinstance(value, dbus.Double):
        return float(value)
    if isinstance(value, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(value)
    if isinstance(value, (dbus.Array, list, tuple)):
        items = [unwrap(item) for item in value]
        return items or None
    if isinstance(value, (dbus.Dictionary, dict)):
        return {str(key): unwrap(item) for key, item in value.items()}
    return value


def coerce(kind: Optional[type], value: Any):
    """A written value as ``kind``; ValueError when it is not one. D-Bus booleans arrive as ints
    (``dbus.Boolean`` subclasses int) and are no number here; an int path takes an integral number
    only (3.9, inf and nan are refused, never truncated); a float path takes any int or float, -0.0
    as 0.0; None (invalid) passes for the owner's check to judge."""
    if kind is None or value is None:
        return value
    if isinstance(value, bool):
        if kind is bool:
            return value
    elif kind is float and isinstance(value, (int, float)):
        return float(value) + 0.0          # -0.0 + 0.0 is 0.0
    elif kind is int and isinstance(value, int):
        return value
    elif kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    elif kind not in (int, float) and isinstance(value, kind):
        return value
    raise ValueError("%r is not a %s" % (value, kind.__name__))


def default_text(path: str, value: Any) -> str:
    """velib's GetText: '---' when invalid, /ProductId in hex, otherwise str()."""
    if value is None:
        return "---"
    if path == "/ProductId" and isinstance(value, int):
        return "0x%X" % value
    return str(value)


class NameTaken(RuntimeError):
    """The bus name is already owned by another process."""


class _Item(dbus.service.Object):
    """One exported path."""

    def __init__(self, service: "BusService", path: str, value, writeable: bool,
                 check: Optional[Callable[[str, Any], bool]], kind: Optional[type],
                 text: Optional[Callable[[str, Any], str]], description: str):
        dbus.service.Object.__init__(self, service.bus, path)
        self.path = path
        self.value = value
        self.writeable = writeable
        self.check = check
        self.kind = kind
        self.text_of = text or default_text
        self.description = description
        self.written_at: Optional[float] = None

    def text(self) -> str:
        return "---" if self.value is None else self.text_of(self.path, self.value)

    def change(self, value) -> bool:
        if value == self.value and type(value) is type(self.value):
            return False
        self.value = value
        return True

    def changes(self) -> Dict[str, Any]:
        return {"Value": wrap(self.value), "Text": self.text()}

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return wrap(self.value)

    @dbus.service.method(BUSITEM, out_signature="s")
    def GetText(self):
        return self.text()

    @dbus.service.method(BUSITEM, in_signature="si", out_signature="s")
    def GetDescription(self, language, length):
        return self.description or "No description given"

    @dbus.service.method(BUSITEM, in_signature="v", out_signature="i")
    def SetValue(self, value):
        if not self.writeable:
            return 1
        try:
            value = coerce(self.kind, unwrap(value))
        except ValueError as error:
            log.warning("write to %s refused: %s", self.path, error)
            return 1
        if value == self.value:
            self.written_at = time.monotonic()
            return 0
        try:
            accepted = self.check is None or self.check(self.path, value)
        except Exception:  # a broken check must not become a D-Bus error or a crash
            log.exception("checking a write of %r to %s failed; refused", value, self.path)
            accepted = False
        if not accepted:
            return 2
        self.written_at = time.monotonic()
        if self.change(value):
            self.PropertiesChanged(self.changes())
        return 0

    @dbus.service.signal(BUSITEM, signature="a{sv}")
    def PropertiesChanged(self, changes):
        pass


class _Node(dbus.service.Object):
    """An intermediate path: its value is the dictionary of the items below it."""

    def __init__(self, service: "BusService", path: str):
        dbus.service.Object.__init__(self, service.bus, path)
        self.service = service
        self.prefix = path.rstrip("/") + "/"

    def _below(self) -> Iterable[_Item]:
        return (item for path, item in self.service.items.items() if path.startswith(self.prefix))

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        values = {item.path[len(self.prefix):]: wrap(item.value) for item in self._below()}
        return dbus.Dictionary(values, signature="sv", variant_level=1)

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetText(self):
        texts = {item.path[len(self.prefix):]: item.text() for item in self._below()}
        return dbus.Dictionary(texts, signature="ss", variant_level=1)


class _Root(_Node):
    @dbus.service.method(BUSITEM, out_signature="a{sa{sv}}")
    def GetItems(self):
        return {path: item.changes() for path, item in self.service.items.items()}

    @dbus.service.signal(BUSITEM, signature="a{sa{sv}}")
    def ItemsChanged(self, changes):
        pass


class BusService:
    """A ``com.victronenergy.*`` service: add every path, then ``register`` claims the name."""

    def __init__(self, bus, name: str):
        self.bus = bus
        self.name = name
        self.items: Dict[str, _Item] = {}
        self._nodes: Dict[str, _Node] = {"/": _Root(self, "/")}
        self._bus_name = None

    def add_path(self, path: str, value=None, writeable: bool = False,
                 check: Optional[Callable[[str, Any], bool]] = None, kind: Optional[type] = None,
                 text: Optional[Callable[[str, Any], str]] = None, description: str = "") -> None:
        """Export ``path``. ``check(path, value) -> bool`` vets external writes; ``kind`` coerces them."""
        if not path.startswith("/") or path in self.items or path in self._nodes:
            raise ValueError("cannot add %r to %s: a path starts with '/' and is added once" % (path, self.name))
        parts = path.split("/")
        for depth in range(2, len(parts)):
            node = "/".join(parts[:depth])
            if node in self.items:
                raise ValueError("cannot add %s to %s: %s is already a value" % (path, self.name, node))
            if node not in self._nodes:
                self._nodes[node] = _Node(self, node)
        self.items[path] = _Item(self, path, value, writeable, check, kind, text, description)

    def register(self) -> None:
        """Claim the bus name; all paths must exist by now (consumers scan once, at this moment)."""
        try:
            self._bus_name = dbus.service.BusName(self.name, self.bus, do_not_queue=True)
        except dbus.exceptions.NameExistsException:
            raise NameTaken("%s is already on the bus: is another instance running?" % self.name) from None

    @property
    def registered(self) -> bool:
        return self._bus_name is not None

    def __contains__(self, path: str) -> bool:
        return path in self.items

    def __getitem__(self, path: str):
        return self.items[path].value

    def __setitem__(self, path: str, value) -> None:
        """Set one value; a change is signalled with PropertiesChanged, as velib does."""
        item = self.items[path]
        if item.change(value):
            item.PropertiesChanged(item.changes())

    def update(self, values: Mapping[str, Any]) -> None:
        """Set many values; the changes go out as one ItemsChanged, like velib's ``with service``."""
        changed = {}
        for path, value in values.items():
            item = self.items[path]
            if item.change(value):
                changed[path] = item.changes()
        if changed:
            self._nodes["/"].ItemsChanged(changed)

    def written_at(self, path: str) -> Optional[float]:
        """time.monotonic() of the last accepted external write to ``path`` (also an unchanged one)."""
        return self.items[path].written_at

    def close(self) -> None:
        """Leave the bus: release the name, then remove the objects."""
        if self._bus_name is not None:
            self.bus.release_name(self.name)
            self._bus_name = None
        for exported in list(self.items.values()) + list(self._nodes.values()):
            exported.remove_from_connection()
        self.items.clear()
        self._nodes.clear()
