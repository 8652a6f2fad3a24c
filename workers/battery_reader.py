"""battery_reader: the battery monitor read without Venus, on a plain Raspberry Pi.

``[battery] source = "vedirect"``: a SmartShunt or BMV on a VE.Direct USB cable. Each good block
that carries the main voltage is the whole reading: the "battery" slot gets its values (a
quantity the block lacks is missing now), and ``updated`` advances only when voltage, current
and SoC are all there, exactly as the D-Bus monitor fills it; so data that stops (a cable
pulled, a monitor gone silent, a block that fails its checksum) ages into the stale policy the
same way. A port that vanishes (USB unplugged) is closed and opened again every
``vedirect.reopen_s`` until it is back.

``source = "mqtt"``: a Venus GX's battery monitor through the GX's MQTT broker
(sources/gx_mqtt.py); a broker that goes away is reconnected to, and meanwhile the data ages.
"""
import os
import queue
import time
from typing import Optional

import paho.mqtt.client as mqtt
import serial

from bms.reading import CORE
from sources.gx_mqtt import GxBatteryFollower
from sources.vedirect import BAUD_RATE, Counters, VeDirectParser, battery_values, history_values, is_reading

# the history fields the slot carries (all eighteen would not fit its 1024 bytes)
SLOT_HISTORY = ("charge_cycles", "since_full_charge_s", "discharged_energy_kwh", "charged_energy_kwh")
MQTT_PING_S = 15        # MQTT keep-alive with the broker (s): a dead connection is seen within 1.5x this


class VeDirectReader:
    def __init__(self, worker, clock=time.monotonic):
        self.worker = worker
        self.port = worker.cfg.vedirect.port
        self.reopen_s = worker.cfg.vedirect.reopen_s
        self.read_timeout_s = min(0.5, worker.cfg.watchdog.heartbeat_interval_s)
        self.clock = clock
        self.parser = VeDirectParser()
        self._counted = Counters(0, 0, 0, 0)
        self.service = "vedirect:%s" % self.port
        previous = worker.state.read("battery") or {}
        # a restarted worker keeps the last reading and its true age (same port only)
        self.slot = dict(previous) if previous.get("service") == self.service else {
            "voltage_v": None, "current_a": None, "soc_pct": None, "temperature_c": None,
            "cell_min_v": None, "cell_max_v": None, "service": self.service, "updated": None}
        self.slot.update(port_open=False, reopens=self.slot.get("reopens", 0))
        self.handle: Optional[serial.Serial] = None
        self._missing_logged = False

    def run(self) -> None:
        self._publish()
        next_open = 0.0
        try:
            while not self.worker.stopping.is_set():
                self.worker.beat()
                if self.handle is None:
                    now = self.clock()
                    if now >= next_open and not self._open():
                        next_open = now + self.reopen_s
                    if self.handle is None:         # beat on while it is missing: a long reopen_s is no hang
                        self.worker.wait(min(self.reopen_s, self.read_timeout_s))
                        continue
                self._read_once()
        finally:
            self._close()

    def _open(self) -> bool:
        try:
            self.handle = serial.Serial(self.port, BAUD_RATE, timeout=self.read_timeout_s)
        except (serial.SerialException, OSError) as error:
            if not self._missing_logged:
                self.worker.log.warning("VE.Direct port %s cannot be opened (%s); trying again every %g s",
                                        self.port, error, self.reopen_s)
                self._missing_logged = True
            return False
        self.worker.log.info("VE.Direct port %s open", self.port)
        self._missing_logged = False
        self._counted = self._counters()
        self.parser = VeDirectParser()      # a block cut by the reopen is not joined to the next one
        self.slot["port_open"] = True
        self._publish()
        return True

    def _close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except (serial.SerialException, OSError):
                pass
            self.handle = None

    def _read_once(self) -> None:
        try:
            data = self.handle.read(self.handle.in_waiting or 1)
            if not os.path.exists(self.port):
                raise serial.SerialException("the device node is gone")
        except (serial.SerialException, OSError) as error:
            self.worker.log.warning("VE.Direct port %s lost (%s); reopening", self.port, error)
            self._close()
            self.slot.update(port_open=False, reopens=self.slot["reopens"] + 1)
            self._publish()
            return
        before = self.parser.counters
        blocks = self.parser.feed(data)
        for fields in blocks:
            self._take(fields)
        after = self.parser.counters
        if blocks or after != before:
            if after.bad_checksum + after.malformed > before.bad_checksum + before.malformed:
                self.worker.log.debug("VE.Direct: block dropped (%s)", after)
            self._publish()

    def _take(self, fields) -> None:
        """A reading replaces every measured quantity; a history block only the history."""
        if is_reading(fields):
            self.slot.update(battery_values(fields))
            if all(self.slot[name] is not None for name in CORE):
                self.slot["updated"] = self.clock()
        else:
            history = dict(self.slot.get("history") or {})
            history.update((name, value) for name, value in history_values(fields).items() if name in SLOT_HISTORY)
            self.slot["history"] = history

    def _counters(self) -> Counters:
        """Since this worker started, over every open of the port."""
        return Counters(*(a + b for a, b in zip(self._counted, self.parser.counters)))

    def _publish(self) -> None:
        self.slot["counters"] = self._counters()._asdict()
        self.worker.state.write("battery", self.slot)


class GxMqttReader:
    """``source = "mqtt"``: paho's network thread queues the messages; this loop alone applies
    them, sends the keep-alive and read requests, writes the slot and beats."""

    def __init__(self, worker, clock=time.monotonic):
        cfg = worker.cfg.mqtt
        self.worker = worker
        self.cfg = cfg
        self.clock = clock
        self.tick_s = min(0.5, worker.cfg.watchdog.heartbeat_interval_s)
        self.follower = GxBatteryFollower(cfg.portal_id, cfg.battery_instance, cfg.refresh_s, cfg.keepalive_s,
                                          worker.state.read("battery"))
        self.inbox: "queue.Queue[tuple]" = queue.Queue()
        self.connected = False
        self._refused = ""
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pylon-venus-%d" % os.getpid(),
                                  protocol=mqtt.MQTTv311)
        if cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            self.client.tls_set(ca_certs=cfg.ca_file or None)
        self.client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, cfg.reconnect_max_s)))
        self.client.on_connect = lambda client, userdata, flags, reason, properties: \
            self.inbox.put(("connect", reason))
        self.client.on_disconnect = lambda client, userdata, flags, reason, properties: \
            self.inbox.put(("disconnect", reason))
        self.client.on_message = lambda client, userdata, message: \
            self.inbox.put(("message", message.topic, message.payload))

    def run(self) -> None:
        self._publish()
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=MQTT_PING_S)
        self.client.loop_start()
        try:
            while not self.worker.stopping.is_set():
                self.worker.beat()
                self._drain()
                if self.connected:
                    for topic, payload in self.follower.requests(self.clock()):
                        self.client.publish(topic, payload)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _drain(self) -> None:
        """Apply what arrived within one tick; write the slot once if anything changed."""
        changed = False
        deadline = self.clock() + self.tick_s
        while True:
            try:
                event = self.inbox.get(timeout=max(0.0, deadline - self.clock()))
            except queue.Empty:
                break
            if event[0] == "message":
                changed |= self.follower.message(event[1], event[2], self.clock())
            elif event[0] == "connect":
                changed |= self._connected(event[1])
            else:
                changed |= self.connected
                if self.connected:
                    self.worker.log.warning("MQTT broker %s:%d lost (%s); reconnecting; the battery data ages meanwhile",
                                            self.cfg.host, self.cfg.port, event[1])
                self.connected = False
        if changed:
            self._publish()

    def _connected(self, reason) -> bool:
        if reason.is_failure:
            if str(reason) != self._refused:        # once per reason, not at every retry
                self.worker.log.warning("MQTT broker %s:%d refused the connection: %s", self.cfg.host,
                                        self.cfg.port, reason)
                self._refused = str(reason)
            return False
        self._refused = ""
        self.worker.log.info("MQTT broker %s:%d connected; following portal %s", self.cfg.host, self.cfg.port,
                             self.cfg.portal_id)
        for topic in self.follower.subscriptions():
            self.client.subscribe(topic)
        self.follower.reconnected()
        self.connected = True
        return True

    def _publish(self) -> None:
        snapshot = self.follower.snapshot()
        snapshot["broker_connected"] = self.connected
        self.worker.state.write("battery", snapshot)


def run(worker) -> None:
    source = worker.cfg.battery.source
    readers = {"vedirect": VeDirectReader, "mqtt": GxMqttReader}
    if source not in readers:
        raise ValueError("battery_reader reads battery.source %s, not %r" % (" or ".join(map(repr, readers)), source))
    readers[source](worker).run()
