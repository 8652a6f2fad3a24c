"""Healthy or not, with the reasons: what `supervisor.py check` and systemd's watchdog rely on.

`check` runs as a process of its own, maybe long after the supervisor stopped, so it trusts no
wall clock: a status written on this boot is aged by the monotonic clock (CLOCK_MONOTONIC is
shared by every process), any other by the wall clock, where a time in the future is a clock
step and as unknown as a time long past.
"""
import time
from typing import List, Optional

from health.status import boot_id
from ipc.atomic_file import unwritable_reason

# Workers whose failure does not touch the frames: a warning, never a reason to restart the daemon.
BOOKKEEPING_WORKERS = ("web",)
# A CAN controller in these states sends nothing; in the others it sends, maybe with errors (a warning).
NOT_SENDING_CONTROLLER_STATES = ("BUS-OFF", "STOPPED", "SLEEPING")
ERROR_CONTROLLER_STATES = ("ERROR-WARNING", "ERROR-PASSIVE")


def problems(status: Optional[dict], cfg, now: Optional[float] = None) -> List[str]:
    """Every reason the daemon behind ``status`` is unhealthy; empty when healthy.
    ``now``: the wall-clock time, for a status of another boot."""
    if status is None:
        unwritable = unwritable_reason(cfg.status.file)
        return ["no status file at %s: %s" % (cfg.status.file, "the daemon is not running" if unwritable is None
                                              else "it cannot be written (%s)" % unwritable)]
    reasons = []
    age = status_age(status, time.time() if now is None else now)
    if age < -(3 * cfg.status.interval_s + 1):
        reasons.append("the status file was written %.0f s in the future (a clock step?): its health is unknown"
                       % -age)
    elif age > 3 * cfg.status.interval_s + 1:
        unwritable = unwritable_reason(cfg.status.file)
        reasons.append("the status file is %.0f s old: the supervisor (pid %d) is not writing it%s" % (
            age, status["pid"], "" if unwritable is None else " (it cannot be written: %s)" % unwritable))
    for name, worker in sorted(status["workers"].items()):
        if name in BOOKKEEPING_WORKERS:
            continue
        if worker["state"] == "fault":
            reasons.append("worker %s is in fault: %d restarts within %g s" % (
                name, worker.get("recent_restarts", worker["restarts"]), cfg.watchdog.restart_period_s))
        elif not worker["alive"]:
            reasons.append("worker %s is down (%s)" % (name, worker["state"]))
    battery = status["battery"]
    if battery["age_s"] is None:
        reasons.append("no battery data yet")
    elif battery["age_s"] > cfg.stale.stale_s:
        reasons.append("battery data is stale: %.0f s old (limit %g s)" % (battery["age_s"], cfg.stale.stale_s))
    elif (status.get("decision") or {}).get("freshness") == "stale":       # recent, but not usable
        reasons.append("battery data is unusable: %s" % status["decision"]["reasons"]["charge_current"])
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
    foreign = status["inverter"].get("foreign_transmitter")
    if foreign:
        reasons.append("another device sends our BMS IDs %s with other data (%d frames, last %.0f s ago): the "
                       "inverter alternates between two decisions; remove it, or run both with [standby] enabled"
                       % (", ".join(foreign["ids"]), foreign["count"], foreign["last_seen_age_s"]))
    if status["can"]["state"] not in ("up", "virtual"):
        reasons.append("CAN interface %s is %s" % (status["can"]["channel"], status["can"]["state"]))
    elif (status["can"].get("controller") or {}).get("state") in NOT_SENDING_CONTROLLER_STATES:
        reasons.append("CAN controller %s is %s: it sends nothing (restart-ms %s)" % (
            status["can"]["channel"], status["can"]["controller"]["state"], status["can"]["controller"]["restart_ms"]))
    if not status["frames"] and not standing_by:
        reasons.append("no BMS frames are being sent")
    return reasons


def warnings(status: dict) -> List[str]:
    """What is wrong but does not stop the frames: storage that cannot be written or read."""
    storage = status.get("storage") or {}
    found = []
    charge = storage.get("charge_state") or {}
    if charge.get("failing_for_s") is not None:
        found.append("the charge state cannot be written to %s for %.0f s (%s): a restart would lose the charge "
                     "phase" % (charge["path"], charge["failing_for_s"], charge["last_error"]))
    if charge.get("unreadable"):
        found.append("the charge state file was unreadable at start: kept as %s.unreadable, the engine started "
                     "afresh" % charge["path"])
    status_file = storage.get("status_file") or {}
    if status_file.get("failures"):
        found.append("the status file could not be written %d times (last: %s)" % (
            status_file["failures"], status_file["last_error"]))
    can = status.get("can") or {}
    if (can.get("controller") or {}).get("state") in ERROR_CONTROLLER_STATES:
        found.append("CAN controller %s is %s: the bus has errors (wiring, termination, bit rate?)" % (
            can["channel"], can["controller"]["state"]))
    web = (status.get("workers") or {}).get("web")
    if web is not None and (web["state"] == "fault" or not web["alive"]):
        found.append("the web console (worker web) is %s after %d restarts; the frames are not affected"
                     % (web["state"], web["restarts"]))
    return found


def status_age(status: dict, now: float) -> float:
    """Seconds since ``status`` was written (negative: written in the future), by the monotonic
    clock when it was written on this boot, else by the wall clock ``now``."""
    if status.get("boot_id") is not None and status.get("boot_id") == boot_id():
        return time.monotonic() - status["written_monotonic"]
    return now - status["written_at"]


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
