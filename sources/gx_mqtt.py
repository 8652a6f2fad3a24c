"""A Venus GX's battery monitor as its MQTT broker publishes it, pure: messages in, slot out.

The GX (dbus-flashmq) publishes ``N/<portal id>/<service type>/<instance>/<D-Bus path>`` with
``{"value": ...}`` while someone sends it a keep-alive (``R/<portal id>/keepalive``, within
60 s; the first one makes it publish everything, later ones carry ``suppress-republish``), and
answers read requests ``R/...`` with the current values. Which monitor: the one
``N/<portal id>/system/0/ActiveBatteryService`` names, else the configured instance, else
the lowest battery instance seen, as on D-Bus (venus/battery_monitor.py). ``{"value": null}``
is an invalid value and an empty payload a device that left: both are missing data, so the
reading ages into the stale policy like a silent broker does. No I/O and no clock here: the
reader passes every message and the time in, and publishes what ``requests`` returns.
"""
import json
from typing import Dict, List, Optional, Tuple

from venus.battery_monitor import BATTERY_CLASS, CORE_FIELDS, FIELDS, _number

KEEPALIVE_FULL = b""                                                       # publish everything once
KEEPALIVE_QUIET = b'{ "keepalive-options" : ["suppress-republish"] }'     # stay awake, no republish
READ_SUBTREES = ("/Dc/0", "/Soc", "/System")          # read requests covering every path of FIELDS


def _payload_value(payload: bytes):
    """The ``value`` of a message; None for ``null``, an empty payload or anything unreadable."""
    if not payload:
        return None
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return document.get("value") if isinstance(document, dict) else None


class GxBatteryFollower:
    """Keeps ``snapshot()`` equal to the followed monitor's last values, like the D-Bus follower."""

    def __init__(self, portal_id: str, preferred_instance: int = -1, refresh_s: float = 5.0,
                 keepalive_s: float = 30.0, previous: Optional[dict] = None):
        self.portal_id = portal_id
        self.preferred = preferred_instance          # -1: none configured
        self.refresh_s = refresh_s
        self.keepalive_s = keepalive_s
        self.values: Dict[int, Dict[str, Optional[float]]] = {}
        self.system_choice: Optional[int] = None
        previous = previous or {}
        self.previous = previous
        # the last complete reading, and of which monitor: a reading of another one is no reading
        self.updated: Optional[float] = previous.get("updated")
        self.updated_service: Optional[str] = previous.get("service")
        self.last_heard: Optional[float] = None      # last message of the followed monitor
        self.last_keepalive: Optional[float] = None
        self.last_read: Optional[float] = None
        self.full_publish_wanted = True

    # ---- topics ------------------------------------------------------------------------------

    def subscriptions(self) -> List[str]:
        base = "N/%s/battery/+" % self.portal_id
        return ["N/%s/system/0/ActiveBatteryService" % self.portal_id] + [base + path for path in FIELDS]

    def requests(self, now: float) -> List[Tuple[str, bytes]]:
        """What to publish now: the keep-alive when due, read requests for a silent monitor."""
        out = []
        if self.full_publish_wanted or self.last_keepalive is None or now - self.last_keepalive >= self.keepalive_s:
            out.append(("R/%s/keepalive" % self.portal_id,
                        KEEPALIVE_FULL if self.full_publish_wanted else KEEPALIVE_QUIET))
            self.full_publish_wanted = False
            self.last_keepalive = now
        chosen = self.chosen()
        silent = self.last_heard is None or now - self.last_heard >= self.refresh_s
        if chosen is not None and silent and (self.last_read is None or now - self.last_read >= self.refresh_s):
            out += [("R/%s/battery/%d%s" % (self.portal_id, chosen, subtree), b"") for subtree in READ_SUBTREES]
            self.last_read = now
        return out

    def reconnected(self) -> None:
        """A new broker session: ask for everything again."""
        self.full_publish_wanted = True
        self.last_read = None

    # ---- messages ----------------------------------------------------------------------------

    def message(self, topic: str, payload: bytes, now: float) -> bool:
        """Take one message; True when the followed monitor's values (or the choice) changed."""
        parts = topic.split("/", 4)
        if len(parts) < 5 or parts[0] != "N" or parts[1] != self.portal_id:
            return False
        _, _, service, instance, path = parts
        path = "/" + path
        if service == "system" and path == "/ActiveBatteryService":
            choice = _payload_value(payload)
            prefix = BATTERY_CLASS + "/"
            before = self.chosen()
            self.system_choice = int(choice[len(prefix):]) \
                if isinstance(choice, str) and choice.startswith(prefix) and choice[len(prefix):].isdigit() else None
            return self._choice_changed(before)
        if service != "battery" or not instance.isdigit() or path not in FIELDS:
            return False
        instance_number = int(instance)
        before = self.chosen()
        values = self.values.setdefault(instance_number, dict.fromkeys(FIELDS.values()))
        values[FIELDS[path]] = _number(_payload_value(payload))
        changed = self._choice_changed(before)
        if self.chosen() != instance_number:
            return changed
        self.last_heard = now
        if all(values[field] is not None for field in CORE_FIELDS):
            self.updated, self.updated_service = now, self.service(instance_number)
        return True

    def _choice_changed(self, before: Optional[int]) -> bool:
        """A new monitor is followed: it is read at once (its values may be old)."""
        if self.chosen() == before:
            return False
        self.last_heard = self.last_read = None
        return True

    def service(self, instance: int) -> str:
        return "mqtt:%s/battery/%d" % (self.portal_id, instance)

    def chosen(self) -> Optional[int]:
        if self.system_choice is not None and self.system_choice in self.values:
            return self.system_choice
        if self.preferred in self.values:
            return self.preferred
        return min(self.values) if self.values else None

    def snapshot(self) -> dict:
        """The "battery" slot: the followed monitor's last values, None where missing.

        Before any message the previous process's snapshot is kept, with its true age."""
        chosen = self.chosen()
        if chosen is None:
            snapshot = {field: self.previous.get(field) for field in FIELDS.values()}
            service = self.previous.get("service")
        else:
            snapshot = dict(self.values[chosen])
            service = self.service(chosen)
        snapshot.update(service=service, updated=self.updated if service == self.updated_service else None)
        return snapshot
