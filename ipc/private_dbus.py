"""A private dbus-daemon, for the simulation and the tests (no root, no system bus needed)."""
import os
import signal
import subprocess
import tempfile

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

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="pylon-venus-dbus-")
        socket_path = os.path.join(self.folder, "bus")
        config_path = os.path.join(self.folder, "bus.conf")
        with open(config_path, "w") as handle:
            handle.write(BUS_CONFIG % socket_path)
        # Not under our systemd unit's notify socket: dbus-daemon would send READY=1 for us.
        environment = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.process = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + config_path, "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, preexec_fn=die_with_parent, universal_newlines=True, env=environment)
        self.address = self.process.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not start (exit code %s)" % self.process.poll())

    def export(self) -> None:
        """Point every process started from now on at this bus, as the system bus too."""
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = self.address

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(5)
        self.process.stdout.close()
        for name in os.listdir(self.folder):
            os.unlink(os.path.join(self.folder, name))
        os.rmdir(self.folder)
