"""A private dbus-daemon, for the simulation and the tests (no root, no system bus needed)."""
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Optional

from ipc.linux import die_with_parent

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


class PrivateDbus:
    """Starts ``dbus-daemon`` on a socket in a temporary folder; dies with its parent."""

    def __init__(self, name: Optional[str] = None):
        """``name``: a fixed folder per configuration, where what a killed supervisor left is
        cleared; without one (tests) a fresh temporary folder."""
        if name is None:
            self.folder = tempfile.mkdtemp(prefix="pylon-venus-dbus-")
        else:
            self.folder = os.path.join(tempfile.gettempdir(), "pylon-venus-dbus." + name)
            shutil.rmtree(self.folder, ignore_errors=True)
            os.makedirs(self.folder, mode=0o700)
        socket_path = os.path.join(self.folder, "bus")
        config_path = os.path.join(self.folder, "bus.conf")
        with open(config_path, "w") as handle:
            handle.write(BUS_CONFIG % socket_path)
        # Its stderr goes to a file: as root it always warns that it cannot raise its file limit.
        self._stderr = open(os.path.join(self.folder, "stderr"), "w+")
        # Not under our systemd unit's notify socket: dbus-daemon would send READY=1 for us.
        environment = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.process = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + config_path, "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=self._stderr, preexec_fn=die_with_parent, universal_newlines=True,
            env=environment)
        self.address = self.process.stdout.readline().strip()
        if not self.address:
            self.process.wait(5)
            self._stderr.seek(0)
            raise RuntimeError("dbus-daemon did not start (exit code %s): %s"
                               % (self.process.returncode, self._stderr.read().strip()))

    def export(self) -> None:
        """Point every process started from now on at this bus, as the system bus too."""
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = self.address

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(5)
        self.process.stdout.close()
        self._stderr.close()
        shutil.rmtree(self.folder)
