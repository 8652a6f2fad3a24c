"""Every D-Bus peer a test needs, in one separate process the test drives by JSON lines.

Why a process: the worker under test is forked from the test process; a D-Bus connection
open in the test process at that moment would be inherited and read by both. So the test
process holds no connection at all: fakes (battery monitors, system, localsettings), the
consumer and the test's own D-Bus calls live here. ``Peer`` is the client side:
``peer.shunt(name=..., instance=..., values={...})`` runs ``Host.shunt`` and returns its result.
"""
import json
import os
import select
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Host:
    """The peer process side: each public method is an operation; ``reply`` answers it (maybe later).

    Every fake service gets its own connection, as each Victron service is its own process.
    """

    def __init__(self, connect):
        self.connect = connect
        self.bus = connect()
        self.services = {}
        self.connections = {}
        self.consumers = {}

    def _connection(self, name):
        self.connections[name] = self.connect()
        return self.connections[name]

    def shunt(self, reply, name, instance, values, get_items=True):
        from tests.fakes.victron import smartshunt
        self.services[name] = smartshunt(self._connection(name), name, instance, values, get_items)
        reply(True)

    def system(self, reply, active, service):
        from tests.fakes.victron import system
        name = "com.victronenergy.system"
        self.services[name] = system(self._connection(name), active, service)
        reply(True)

    def localsettings(self, reply):
        from tests.fakes.localsettings import NAME, FakeLocalSettings
        self.services[NAME] = FakeLocalSettings(self._connection(NAME))
        reply(True)

    def simulated_battery(self, reply, name):
        """The simulator's battery monitor: our own exporter, read back by the worker under test."""
        from venus.battery_service import SimulatedBatteryService
        self.services[name] = SimulatedBatteryService(self._connection(name), name)
        reply(True)

    def simulated_update(self, reply, name, **reading):
        self.services[name].update(**reading)
        reply(True)

    def set(self, reply, name, values, batch=False):
        self.services[name].set(values, batch)
        reply(True)

    def close(self, reply, name):
        self.services.pop(name).close()
        self.connections.pop(name).close()
        reply(True)

    def watch(self, reply, name):
        from tests.fakes.consumer import Consumer
        self.consumers[name] = Consumer(self.bus, name)
        reply(True)

    def view(self, reply, name):
        reply(self.consumers[name].view())

    def call(self, reply, name, path, method, args=(), signature=None, interface="com.victronenergy.BusItem"):
        """A D-Bus method call; ``signature`` defaults to one variant per argument (BusItem's SetValue);
        None in ``args`` is sent as invalid (an empty ``ai``)."""
        import dbus
        from tests.fakes.consumer import plain
        wrapped = [dbus.Array([], signature="i") if arg is None else arg for arg in args]
        signature = "v" * len(wrapped) if signature is None else signature
        self.bus.call_async(name, path, interface, method, signature, wrapped,
                            lambda *result: reply({"result": plain(result[0]) if result else None}),
                            lambda error: reply({"error": error.get_dbus_name()}), timeout=5)


def serve() -> None:
    """Peer process main: one JSON request per line on stdin, one JSON answer per line on stdout."""
    import dbus.bus
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib

    DBusGMainLoop(set_as_default=True)
    host = Host(lambda: dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"]))
    loop = GLib.MainLoop()
    pending = [b""]

    def answer(number):
        def reply(result=None, error=None):
            sys.stdout.write(json.dumps({"id": number, "result": result, "error": error}) + "\n")
            sys.stdout.flush()
        return reply

    def readable(fd, condition):
        data = os.read(fd, 65536)
        if not data:
            loop.quit()
            return False
        pending[0] += data
        while b"\n" in pending[0]:
            line, pending[0] = pending[0].split(b"\n", 1)
            request = json.loads(line)
            reply = answer(request["id"])
            try:
                getattr(host, request["op"])(reply, **request["args"])
            except Exception as error:  # reported to the test, which fails with it
                reply(error="%s: %s" % (type(error).__name__, error))
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, readable)
    loop.run()


class PeerError(AssertionError):
    pass


class Peer:
    """The test side: starts the peer process on the bus at ``address``; ``peer.<op>(**args)``."""

    def __init__(self, address: str, timeout_s: float = 10.0):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address, PYTHONPATH=ROOT)
        self.process = subprocess.Popen([sys.executable, "-m", "tests.fakes.peer"], cwd=ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.timeout_s = timeout_s
        self.number = 0
        self.buffer = b""

    def request(self, op: str, **args):
        self.number += 1
        self.process.stdin.write((json.dumps({"id": self.number, "op": op, "args": args}) + "\n").encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + self.timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                raise PeerError("the peer process did not answer %s(%s) within %g s" % (op, args, self.timeout_s))
            data = os.read(self.process.stdout.fileno(), 65536)
            if not data:
                raise PeerError("the peer process ended (exit code %s) during %s" % (self.process.wait(), op))
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer = json.loads(line)
        if answer["error"]:
            raise PeerError("%s(%s) failed in the peer: %s" % (op, args, answer["error"]))
        return answer["result"]

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        return lambda **args: self.request(op, **args)

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


if __name__ == "__main__":
    serve()
