"""Healthy or not, with the reasons: what `supervisor.py check` and systemd's watchdog rely on."""
import time
from typing import List, Optional


def problems(status: Optional[dict], cfg, now: Optional[float] = None) -> List[str]:
    """Every reason the daemon behind ``status`` is unhealthy; empty when healthy."""
    if status is None:
        return ["no status file at %s: the daemon is not running" % cfg.status.file]
    now = time.time() if now is None else now
    reasons = []
    age = now - status["written_at"]
    if age > 3 * cfg.status.interval_s + 1:
        reasons.append("the status file is %.0f s old: the supervisor (pid %d) is not writing it"
                       % (age, status["pid"]))
    for name, worker in sorted(status["workers"].items()):
        if worker["state"] == "fault":
            reasons.append("worker %s is in fault: %d restarts within %g s" % (
                name, worker["restarts"], cfg.watchdog.restart_period_s))
        elif not worker["alive"]:
            reasons.append("worker %s is down (%s)" % (name, worker["state"]))
    battery = status["battery"]
    if battery["age_s"] is None:
        reasons.append("no battery data yet")
    elif battery["age_s"] > cfg.stale.stale_s:
        reasons.append("battery data is stale: %.0f s old (limit %g s)" % (battery["age_s"], cfg.stale.stale_s))
    standby = status.get("standby") or {}
    standing_by = status.get("role") == "standby"
    if standing_by:
        reasons.extend(_standby_problems(standby))
    if standby.get("duplicate_node_id"):
        reasons.append("another device on the bus uses node id %d: give each its own [standby] node_id"
                       % standby["node_id"])
    if status["failsafe"]["engaged"]:
        reasons.append("failsafe engaged: bms_tx is not transmitting")
    if status["inverter"]["link"] == "down":
        reasons.append("inverter link down: nothing heard for %s s" % _seconds(status["inverter"]["last_seen_age_s"]))
    if status["can"]["state"] not in ("up", "virtual"):
        reasons.append("CAN interface %s is %s" % (status["can"]["channel"], status["can"]["state"]))
    if not status["frames"] and not standing_by:
        reasons.append("no BMS frames are being sent")
    return reasons


def _standby_problems(standby: dict) -> List[str]:
    """A standby is healthy while another device is active and its frames are on the bus."""
    peer = standby.get("peer")
    if peer is None:
        return ["standby, and no active device is heard on the bus"]
    name = "the device heard last" if peer["node_id"] is None else "node %d" % peer["node_id"]
    if peer["role"] != "active":
        return ["standby, and no device is active (%s is %s)" % (name, peer["role"])]
    frames_age = peer.get("frames_age_s")
    if frames_age is None or frames_age > standby["takeover_s"]:
        return ["standby, and the active device (%s) sends no BMS frames (%s)" % (
            name, "none heard yet" if frames_age is None else "none for %.0f s" % frames_age)]
    return []


def _seconds(value) -> str:
    return "ever" if value is None else "%.0f" % value
