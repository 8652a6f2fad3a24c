"""The status file: everything a person or a script needs to know about the running daemon."""
import functools
import os
import time
from typing import Optional

from protocol import DecodeError
from protocol.frame import Frame
from venus.dvcc import status as dvcc_status

BATTERY_VALUES = ("voltage_v", "current_a", "soc_pct", "temperature_c", "cell_min_v", "cell_max_v", "service")


def _age(slot: dict, key: str, now: float):
    return None if not slot or slot.get(key) is None else round(now - slot[key], 3)


@functools.lru_cache(maxsize=1)
def boot_id() -> Optional[str]:
    """This boot's id: a monotonic time from the status means the same to `check` only on it."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def storage_health(path: str, health: Optional[dict], now: float) -> Optional[dict]:
    """How writing ``path`` goes: a writer's counters with the age of its failures (monotonic
    ``now``) instead of their start."""
    if health is None:
        return None
    shown = {key: value for key, value in health.items() if key != "failing_since"}
    shown.update(path=path, failing_for_s=_age(health, "failing_since", now))
    return shown


def decoded_frames(frames_json, profile) -> list:
    """The frame set as the inverter reads it, for people and for `check`."""
    decoded = []
    for arbitration_id, data, extended in frames_json or ():
        try:
            result = profile.decode(Frame(arbitration_id, bytes.fromhex(data), extended))
            decoded.append({"id": "0x%03X" % arbitration_id, "data": data, "name": result.name,
                            "fields": result.fields})
        except DecodeError as error:
            decoded.append({"id": "0x%03X" % arbitration_id, "data": data, "error": str(error)})
    return decoded


def poll_status(profile, bms_tx: Optional[dict], failsafe: Optional[dict], now: float) -> Optional[dict]:
    """A polled profile's requests and answers (None: a broadcast profile), bms_tx's and the
    failsafe's responders added up: answered, held back (this device did not hold the bus or had
    no decision), stale, requests by kind ("ignored": unknown), the age of the last request and
    the latency from a request to its burst sent (the last and the worst) as each process measured."""
    if profile.transport != "polled":
        return None
    by = {name: stats for name, stats in (("bms_tx", bms_tx), ("failsafe", failsafe)) if stats}
    requests: dict = {}
    for stats in by.values():
        for kind, count in stats["requests"].items():
            requests[kind] = requests.get(kind, 0) + count
    last = max(by.values(), key=lambda stats: stats["last_request_at"] or float("-inf"), default=None)
    return {
        "answered": sum(stats["answered"] for stats in by.values()),
        "held_back": sum(stats.get("held_back", 0) for stats in by.values()),
        "stale": sum(stats.get("stale", 0) for stats in by.values()),
        "send_failures": sum(stats["send_failures"] for stats in by.values()),
        "requests": requests,
        "last_request_age_s": _age(last, "last_request_at", now),
        "last_latency_s": None if last is None else last.get("last_latency_s"),
        "max_latency_s": max((stats["max_latency_s"] for stats in by.values()), default=None),
        "by": by,
    }


def build_status(sup, version: str) -> dict:
    state = sup.state
    beats = {name: state.read("heartbeat." + name) for name in sup.workers}
    battery = state.read("battery") or {}
    inverter = state.read("inverter") or {}
    can_link = state.read("bms_tx.can") or {"interface": sup.cfg.can.interface, "channel": sup.cfg.can.channel,
                                            "state": "unknown"}
    failsafe = state.read("failsafe") or {"engaged": False}
    frames_slot = state.read("frames") or {}
    charge_state = state.read("charge_state") or {}
    dvcc = state.read("dvcc")
    failsafe_polls = sup.failsafe.poll_stats()
    now = time.monotonic()      # after the reads: no age comes out negative
    workers = {}
    for name, handle in sup.workers.items():
        beat = beats[name]
        own_beat = beat if beat and handle.process is not None and beat.get("pid") == handle.process.pid else None
        entry = {"pid": handle.process.pid if handle.process is not None else None, "alive": handle.alive,
                 "state": handle.state, "restarts": handle.restarts, "last_exit": handle.last_exit,
                 "recent_restarts": len(handle.recent),      # within restart_period_s, at its last exit
                 "shm_read_failures": (own_beat or {}).get("shm_read_failures", 0),
                 "last_heartbeat_age_s": _age(own_beat, "t", now), "rss_bytes": None, "cpu_percent": None}
        if handle.alive and handle.metrics is not None:
            entry.update(handle.metrics.read())
        workers[name] = entry
    bms_beat = beats["bms_tx"] or {}
    if failsafe.get("engaged"):
        sending = failsafe.get("frames")
    elif sup.workers["bms_tx"].alive and bms_beat.get("transmitting"):
        sending = frames_slot.get("frames")
    else:
        sending = None
    link = inverter.get("link", "unknown") if sup.workers["can_rx"].alive else "unknown"
    seen_age = inverter.get("last_seen_age_s")
    if seen_age is not None and inverter.get("written") is not None:
        seen_age = round(seen_age + now - inverter["written"], 3)
    return {
        "version": version,
        "pid": os.getpid(),
        "written_at": time.time(),
        "written_monotonic": now,
        "boot_id": boot_id(),
        "uptime_s": round(now - sup.started, 3),
        "role": sup.role,
        "standby": sup.standby.status(now) if sup.standby is not None else {"enabled": False},
        "workers": workers,
        "battery": dict({k: battery.get(k) for k in BATTERY_VALUES}, age_s=_age(battery, "updated", now)),
        "inverter": {"link": link, "last_seen_age_s": seen_age, "values": inverter.get("fields", {}),
                     "shutdown_requested": inverter.get("shutdown_requested", False),
                     "gx_seen_age_s": inverter.get("gx_seen_age_s"),
                     "foreign_transmitter": inverter.get("foreign_transmitter")},
        "decision": {"phase": frames_slot.get("phase"), "reasons": frames_slot.get("reasons"),
                     "freshness": frames_slot.get("freshness"), "age_s": _age(frames_slot, "written", now)},
        "failsafe": {"engaged": bool(failsafe.get("engaged")),
                     "since": None if not failsafe.get("since") else time.time() - _age(failsafe, "since", now)},
        "can": {"interface": can_link.get("interface"), "channel": can_link.get("channel"),
                "state": can_link.get("state"), "tx_frames": can_link.get("tx_packets"),
                "rx_frames": inverter.get("rx_frames"),
                "controller": can_link.get("controller"),     # None: no CAN controller (vcan, not SocketCAN)
                "errors": {"tx": can_link.get("tx_errors"), "rx": can_link.get("rx_errors"),
                           "tx_dropped": can_link.get("tx_dropped"), "link_downs": can_link.get("link_downs", 0),
                           "send_failures": can_link.get("send_failures", 0),
                           "queue_full": can_link.get("queue_full", 0),
                           "bad_frames": inverter.get("bad_frames", 0),
                           "error_frames": inverter.get("error_frames", 0),
                           "receive_errors": inverter.get("receive_errors", 0)}},
        "frames": decoded_frames(sending, sup.failsafe.profile),
        "polls": poll_status(sup.failsafe.profile, can_link.get("polls"), failsafe_polls, now),
        "dvcc": dvcc_status(dvcc, now),
        "storage": {
            "status_file": storage_health(sup.cfg.status.file, sup.status_writer.health(sup.cfg.status.file), now),
            "charge_state": storage_health(sup.cfg.state.charge_file, charge_state.get("storage"), now)},
        "shm_read_failures": sum(state.read_failures.values()),     # the supervisor's, answered with the last good value
    }


def format_status(status: dict, cfg) -> str:
    """The status for a person: one line per part, worst news first."""
    from health.check import problems, warnings
    lines = []
    reasons = problems(status, cfg)
    lines.append("pylon-venus %s (pid %d), up %.0f s, %s: %s" % (
        status["version"], status["pid"], status["uptime_s"], status["role"],
        "HEALTHY" if not reasons else "UNHEALTHY"))
    lines.extend("  ! " + reason for reason in reasons)
    lines.extend("  ~ " + warning for warning in warnings(status))
    for name, worker in status["workers"].items():
        lines.append("  worker %-15s %-8s pid %-7s restarts %-3d heartbeat %s s  rss %s  cpu %s%%" % (
            name, worker["state"], worker["pid"], worker["restarts"], worker["last_heartbeat_age_s"],
            _mib(worker["rss_bytes"]), "unknown " if worker["cpu_percent"] is None else "%.1f" % worker["cpu_percent"]))
    battery = status["battery"]
    lines.append("  battery  %s V  %s A  SoC %s %%  %s degC  (age %s s, from %s)" % (
        battery["voltage_v"], battery["current_a"], battery["soc_pct"], battery["temperature_c"],
        battery["age_s"], battery["service"]))
    decision = status["decision"]
    lines.append("  decision phase %s, %s; %s" % (decision["phase"], decision["freshness"], decision["reasons"]))
    lines.append("  inverter link %s (last seen %s s ago)" % (status["inverter"]["link"],
                                                               status["inverter"]["last_seen_age_s"]))
    can = status["can"]
    lines.append("  can      %s %s %s, tx %s rx %s, errors %s" % (can["interface"], can["channel"], can["state"],
                                                                   can["tx_frames"], can["rx_frames"], can["errors"]))
    if can.get("controller"):
        lines.append("  can      controller %s" % format_controller(can["controller"]))
    polls = status.get("polls")
    if polls is not None:
        lines.append("  polls    answered %d, held back %d, stale %d, send failures %d; requests %s; last %s s ago; "
                     "latency last %s s, max %s s" % (
                         polls["answered"], polls["held_back"], polls["stale"], polls["send_failures"],
                         polls["requests"] or "none", polls["last_request_age_s"], polls["last_latency_s"],
                         polls["max_latency_s"]))
    lines.append("  failsafe %s" % ("ENGAGED" if status["failsafe"]["engaged"] else "standing by"))
    dvcc = status.get("dvcc") or {}
    in_force = {field: value for field, value in (dvcc.get("limits") or {}).items() if value is not None}
    lines.append("  dvcc     mode %s, in force %s, written %s s ago%s" % (
        dvcc.get("mode"), in_force or "none", dvcc.get("age_s") or "-",
        ", expired %s" % ", ".join(dvcc["expired"]) if dvcc.get("expired") else ""))
    standby = status.get("standby") or {}
    if standby.get("enabled"):
        peer = standby["peer"]
        lines.append("  standby  node %d priority %d; peer %s; takeovers %d%s" % (
            standby["node_id"], standby["priority"],
            "none heard" if peer is None else "node %s %s (heard %s s ago)" % (
                peer["node_id"] if peer["node_id"] is not None else "?", peer["role"], peer["last_seen_age_s"]),
            standby["takeovers"], "" if not standby["last_takeover_reason"] else
            " (last: %s)" % standby["last_takeover_reason"]))
    for frame in status["frames"]:
        lines.append("  frame    %s %-16s %s" % (frame["id"], frame["data"], frame.get("fields", frame.get("error"))))
    return "\n".join(lines)


def format_controller(controller: dict) -> str:
    """A CAN controller's state and counters as ``ip -details -statistics link`` words them."""
    if controller.get("error"):
        return "%s (%s)" % (controller["state"], controller["error"])
    berr = controller.get("berr_counter")
    return "%s%s restart-ms %s; re-started %s bus-errors %s arbit-lost %s error-warn %s error-pass %s bus-off %s" % (
        controller["state"], "" if berr is None else " (berr-counter tx %d rx %d)" % (berr["tx"], berr["rx"]),
        controller["restart_ms"], controller["restarts"], controller["bus_error"], controller["arbitration_lost"],
        controller["error_warning"], controller["error_passive"], controller["bus_off"])


def _mib(value) -> str:
    return "-" if value is None else "%.1f MiB" % (value / 1048576.0)
