"""The baseline interpreter: a bare Python that imports what the daemon imports, and nothing else.

Every module of the project's runtime code (supervisor.py, config.py and each folder of Python
modules but the tests and tools; they pull in python-can, dbus, gi, psutil and the rest), plus
the modules the daemon only imports when it runs: python-can's SocketCAN interface, the GLib
main loop of dbus-python.

    python bench/baseline_imports.py           import, then exit (start-up baseline)
    python bench/baseline_imports.py --hold    import, print "ready", wait for stdin to close
"""
import contextlib
import importlib
import os
import pkgutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_LEVEL_MODULES = ("supervisor", "config")
NOT_RUN_BY_THE_DAEMON = ("tests", "dev", "bench", "tools", "service", "vendor")
USAGE = "usage: baseline_imports.py [--hold]"
LOADED_AT_RUN_TIME = ("can.interfaces.socketcan", "dbus.mainloop.glib", "gi.repository.GLib")


def daemon_modules() -> list:
    """The names of the modules the baseline imports, in import order."""
    names = list(TOP_LEVEL_MODULES)
    for package in runtime_packages():
        names.append(package)
        path = [os.path.join(ROOT, package)]
        names.extend(info.name for info in pkgutil.walk_packages(path, package + "."))
    return names + list(LOADED_AT_RUN_TIME)


def runtime_packages() -> list:
    """Folders of Python modules beside supervisor.py, as install.sh finds them."""
    found = []
    for name in sorted(os.listdir(ROOT)):
        folder = os.path.join(ROOT, name)
        if name in NOT_RUN_BY_THE_DAEMON or name.startswith(".") or not os.path.isdir(folder):
            continue
        if any(entry.endswith(".py") for entry in os.listdir(folder)):
            found.append(name)
    return found


@contextlib.contextmanager
def holding_interpreter():
    """A bare interpreter holding the daemon's libraries (``--hold``), its pid, for as long as the block runs."""
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--hold"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, universal_newlines=True)
    try:
        if process.stdout.readline().strip() != "ready":
            raise AssertionError("%s did not get ready (exit code %s)" % (__file__, process.poll()))
        yield process.pid
    finally:
        process.stdin.close()
        process.wait(30)


def main(argv) -> int:
    if argv not in ([], ["--hold"]):
        print(USAGE, file=sys.stderr)
        return 2
    sys.path.insert(0, ROOT)
    for name in daemon_modules():
        importlib.import_module(name)
    if argv == ["--hold"]:
        print("ready", flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
