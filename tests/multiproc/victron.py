"""Victron's own Venus services (localsettings, dbus-systemcalc-py) as test peers, on a private bus.

They are not part of the project and never copied into it: they are used from
``../shared/peers/victron`` beside the repository (or ``$PYLON_VENUS_VICTRON``) when that folder
is there, as its README says to start them; where it is absent (a plain clone), or a module they
import is missing, ``absent()`` gives the reason the tests are skipped with.
"""
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from typing import Dict, Iterator, NamedTuple, Optional

from ipc.private_dbus import PrivateDbus
from tests.fakes.peer import Peer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS_DIR = os.path.normpath(os.environ.get("PYLON_VENUS_VICTRON")
                             or os.path.join(ROOT, "..", "shared", "peers", "victron"))
LOCALSETTINGS = os.path.join(PEERS_DIR, "localsettings", "localsettings.py")
SYSTEMCALC_DIR = os.path.join(PEERS_DIR, "dbus-systemcalc-py")
VELIB_DIR = os.path.join(PEERS_DIR, "velib_python")
# what localsettings and systemcalc import beyond the project's own dependencies
MODULES = ("dbus", "gi", "lxml", "psutil")
SETTINGS = "com.victronenergy.settings"
SYSTEM = "com.victronenergy.system"


def absent() -> str:
    """Why Victron's services cannot run here, or "" when they can."""
    for path in (LOCALSETTINGS, os.path.join(SYSTEMCALC_DIR, "dbus_systemcalc.py"), os.path.join(VELIB_DIR, "vedbus.py")):
        if not os.path.isfile(path):
            return ("Victron's services are not at %s (%s missing): set PYLON_VENUS_VICTRON to a folder holding "
                    "localsettings/, dbus-systemcalc-py/ and velib_python/" % (PEERS_DIR, os.path.basename(path)))
    missing = [name for name in MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return "Victron's services need the Python modules %s (Debian: python3-dbus python3-gi python3-lxml " \
               "python3-psutil)" % ", ".join(missing)
    return ""


class VictronServices:
    """localsettings, then systemcalc, on the bus at ``address`` (a ``Peer`` reads them)."""

    def __init__(self, address: str, peer, folder: str):
        self.address = address
        self.peer = peer
        self.folder = folder
        self.environment = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address, DBUS_SYSTEM_BUS_ADDRESS=address,
                                PYTHONPATH=VELIB_DIR, VRM_IFACE="lo")
        self.localsettings = self.systemcalc = None
        os.makedirs(os.path.join(self.folder, "conf"))

    def _start(self, name: str, arguments, cwd: str) -> subprocess.Popen:
        log = open(os.path.join(self.folder, name + ".log"), "a")
        try:
            return subprocess.Popen([sys.executable] + arguments, cwd=cwd, env=self.environment,
                                    stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def log(self, name: str) -> str:
        with open(os.path.join(self.folder, name + ".log")) as handle:
            return handle.read()

    def _wait_for(self, process, name: str, service: str, path: str, timeout_s: float = 20.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError("%s exited with %s:\n%s" % (name, process.returncode, self.log(name)[-3000:]))
            answer = self.peer.call(name=service, path=path, method="GetValue")
            if "result" in answer:
                return answer["result"]
            time.sleep(0.1)
        raise AssertionError("%s did not publish %s %s within %g s:\n%s"
                             % (name, service, path, timeout_s, self.log(name)[-3000:]))

    def start_localsettings(self) -> None:
        self.localsettings = self._start("localsettings", [LOCALSETTINGS, "--path=" + os.path.join(self.folder, "conf"),
                                                           "--no-delay"], self.folder)
        self._wait_for(self.localsettings, "localsettings", SETTINGS, "/Settings")

    def start_systemcalc(self) -> None:
        """Before any battery monitor appears (README: a settings-path race otherwise)."""
        self.systemcalc = self._start("systemcalc", ["dbus_systemcalc.py"], SYSTEMCALC_DIR)
        self._wait_for(self.systemcalc, "systemcalc", SYSTEM, "/Control/Dvcc")

    def kill_systemcalc(self) -> None:
        self.systemcalc.kill()
        self.systemcalc.wait(10)

    def alive(self, name: str) -> bool:
        return getattr(self, name).poll() is None

    def setting(self, path: str, value=None):
        """Set (when ``value`` is given) and return a localsettings value, as the GUI does."""
        if value is not None:
            result = self.peer.call(name=SETTINGS, path=path, method="SetValue", args=[value])["result"]
            assert result == 0, "localsettings refused %r for %s: %r" % (value, path, result)
        return self.peer.call(name=SETTINGS, path=path, method="GetValue")["result"]

    def system(self, path: str):
        return self.peer.call(name=SYSTEM, path=path, method="GetValue").get("result")

    def stop(self) -> None:
        for process in (self.systemcalc, self.localsettings):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class Venus(NamedTuple):
    """What ``private_venus`` started: ``services`` is None when Victron's are not started."""

    bus: PrivateDbus
    peer: Peer
    services: Optional[VictronServices]


@contextlib.contextmanager
def private_venus(folder: str, monitor: str, monitor_values: Dict[str, object],
                  with_victron: bool = True) -> Iterator[Venus]:
    """A private dbus-daemon that both bus addresses of this process (and its children) point at,
    with localsettings and systemcalc (``with_victron``) and then the battery monitor ``monitor``
    (a SmartShunt-like fake, instance 512); all stopped and the addresses put back afterwards."""
    bus = PrivateDbus()
    saved = {name: os.environ.get(name) for name in ("DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS")}
    bus.export()                                        # the daemons started by the caller inherit it
    peer = Peer(bus.address)
    services = VictronServices(bus.address, peer, folder) if with_victron else None
    try:
        if services is not None:
            services.start_localsettings()
            services.start_systemcalc()
        peer.shunt(name=monitor, instance=512, values=dict(monitor_values))
        yield Venus(bus, peer, services)
    finally:
        if services is not None:
            services.stop()
        peer.stop()
        bus.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
