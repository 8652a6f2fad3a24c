"""What the console shows live: the decision with the reason of every value, from shared memory
and the status file. Anything not known is None (the page shows "unknown"), never 0."""
import time
from typing import Any, Dict, Optional

# (sent value, decision reason key, label)
LIMITS = (("charge_voltage_v", "charge_voltage", "CVL"), ("charge_current_a", "charge_current", "CCL"),
          ("discharge_current_a", "discharge_current", "DCL"), ("discharge_voltage_v", None, "DVL"))
DVCC_BOUNDS = {"charge_voltage_v": "max_charge_voltage_v", "charge_current_a": "max_charge_current_a",
               "discharge_current_a": "max_discharge_current_a"}
REQUESTS = ("force_charge_1", "force_charge_2", "full_charge")
STATUS_TOO_OLD_S = 5.0


def _limit_reason(field: str, reason_key: Optional[str], decided: dict, sent: dict, reasons: dict,
                  dvcc: dict, shutdown: bool) -> Optional[str]:
    """Why the value sent is what it is: the engine's reason, or what lowered it after the engine."""
    if reason_key is None:
        return "configured (limits.discharge_voltage_v)"
    reason = reasons.get(reason_key)
    if sent.get(field) is not None and decided.get(field) is not None and sent[field] < decided[field]:
        if shutdown and field != "charge_voltage_v":
            return "inverter asked for a shutdown (engine: %s)" % reason
        bound = dvcc.get(DVCC_BOUNDS.get(field, ""))
        if bound is not None:
            return "lowered by Venus (DVCC/ESS) to %g (engine: %s)" % (bound, reason)
    return reason


def live(frames_slot: Optional[dict], dvcc: Optional[dict], inverter: Optional[dict], web_slot: Optional[dict],
         status: Optional[dict], now_wall: Optional[float] = None) -> Dict[str, Any]:
    """The page's live data: one JSON document."""
    now_wall = time.time() if now_wall is None else now_wall
    frames_slot, dvcc, inverter, web_slot = frames_slot or {}, dvcc or {}, inverter or {}, web_slot or {}
    sent = frames_slot.get("report") or {}
    decided = frames_slot.get("decision") or {}
    reasons = frames_slot.get("reasons") or {}
    shutdown = bool(inverter.get("shutdown_requested"))
    limits = []
    for field, reason_key, label in LIMITS:
        limits.append({"name": label, "field": field, "value": sent.get(field), "decided": decided.get(field),
                       "reason": _limit_reason(field, reason_key, decided, sent, reasons, dvcc, shutdown)
                       if sent else None})
    status_age = None if status is None else round(now_wall - status.get("written_at", 0.0), 1)
    status = status or {}
    return {
        "t": now_wall,
        "decision": {
            "phase": frames_slot.get("phase"), "freshness": frames_slot.get("freshness"),
            "source": frames_slot.get("source"), "data_age_s": frames_slot.get("data_age_s"),
            "data_quality": frames_slot.get("data_quality"), "limits": limits,
            "enables": {name: sent.get(name) for name in ("charge_enable", "discharge_enable")},
            "requests": {name: sent.get(name) for name in REQUESTS},
            "protections": sent.get("protection"), "warnings": sent.get("alarm"),
            "soc_sent_pct": sent.get("soc_pct"),
        },
        "manual": {"force_charge": bool(web_slot.get("force_charge")),
                   "settings": web_slot.get("settings") or {}, "venus_settings": dvcc.get("settings") or {},
                   "actions": web_slot.get("actions") or []},
        "status_age_s": status_age,
        "status_stale": status_age is None or status_age > STATUS_TOO_OLD_S,
        "battery": status.get("battery"),
        "inverter": status.get("inverter"),
        "frames": status.get("frames"),
        "workers": status.get("workers"),
        "failsafe": status.get("failsafe"),
        "role": status.get("role"),
        "standby": status.get("standby"),
        "can": status.get("can"),
        "version": status.get("version"),
        "uptime_s": status.get("uptime_s"),
    }
