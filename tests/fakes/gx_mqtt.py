"""A real MQTT broker (Debian's mosquitto on a free localhost port) and a player of a Venus GX's
topics (dbus-flashmq conventions): it publishes only after a keep-alive, everything on a full
keep-alive, and answers read requests of a sub-tree."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Broker:
    def __init__(self, folder, port=None, users=None, tls=False):
        self.folder = str(folder)
        self.port = port or free_port()
        self.config = os.path.join(self.folder, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % self.port, "persistence false", "log_dest stderr"]
        if tls:
            self.ca_file = self._certificates()
            lines += ["cafile %s" % self.ca_file, "certfile %s" % os.path.join(self.folder, "server.pem"),
                      "keyfile %s" % os.path.join(self.folder, "server.key")]
        if os.geteuid() == 0:
            lines.append("user root")        # else it becomes "mosquitto", who cannot read the test's folder
        if users:
            passwords = os.path.join(self.folder, "passwords")
            for number, (user, password) in enumerate(users.items()):
                subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if number == 0 else []) +
                               [passwords, user, password], check=True)
            os.chmod(passwords, 0o600)
            lines += ["allow_anonymous false", "password_file %s" % passwords]
        else:
            lines.append("allow_anonymous true")
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        self.process = None

    def _certificates(self):
        """A CA of the test's own and a certificate for 127.0.0.1 signed by it (openssl)."""
        def path(name):
            return os.path.join(self.folder, name)

        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=test CA", "-keyout", path("ca.key"), "-out", path("ca.pem")],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                        "-keyout", path("server.key"), "-out", path("server.csr")], check=True, capture_output=True)
        with open(path("san.ext"), "w") as handle:
            handle.write("subjectAltName=IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey",
                        path("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", path("san.ext"),
                        "-out", path("server.pem")], check=True, capture_output=True)
        return path("ca.pem")

    def start(self):
        self._log = open(os.path.join(self.folder, "mosquitto.log"), "a")
        self.process = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError("mosquitto did not listen on port %d" % self.port)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
            self._log.close()


class GxPlayer:
    """The GX's side: battery services (instance -> {path: value}) and the system's choice."""

    def __init__(self, port, portal, batteries, active=None, username=None, password=None, ca_file=None):
        self.portal = portal
        self.batteries = batteries
        self.active = active
        self.lock = threading.Lock()
        self.keepalives = []            # payloads received on R/<portal>/keepalive
        self.reads = []                 # read request topics
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gx-player")
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("R/%s/#" % portal)
        self.client.on_message = self._request
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def set(self, instance, path, value, publish=True):
        with self.lock:
            self.batteries[instance][path] = value
        if publish:
            self._publish(instance, path, value)

    def _publish(self, instance, path, value):
        self.client.publish("N/%s/battery/%d%s" % (self.portal, instance, path), json.dumps({"value": value}))

    def _request(self, client, userdata, message):
        with self.lock:
            if message.topic == "R/%s/keepalive" % self.portal:
                self.keepalives.append(message.payload)
                full = b"suppress-republish" not in message.payload
            else:
                self.reads.append(message.topic)
                full = None
            batteries = {instance: dict(paths) for instance, paths in self.batteries.items()}
        if full:
            if self.active is not None:
                client.publish("N/%s/system/0/ActiveBatteryService" % self.portal,
                               json.dumps({"value": "com.victronenergy.battery/%d" % self.active}))
            for instance, paths in batteries.items():
                for path, value in paths.items():
                    self._publish(instance, path, value)
        elif full is None:
            prefix = "R/%s/battery/" % self.portal
            if message.topic.startswith(prefix):
                instance, subtree = message.topic[len(prefix):].split("/", 1)
                for path, value in batteries.get(int(instance), {}).items():
                    if path.startswith("/" + subtree):
                        self._publish(int(instance), path, value)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
