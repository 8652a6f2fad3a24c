"""bench.json (what the VM measured) to bench/RESULTS.md: pure formatting, no I/O."""
from typing import Dict, List, Sequence

# The order of the summary; sections are named by bench/vm_bench.py.
SECTIONS = ("cadence", "failover kill -9", "failover SIGSTOP", "failover two instances", "cpu", "memory", "startup",
            "footprint", "hv latency", "scaling bus load", "scaling hv polls")
TITLES = {
    "cadence": "Cadence", "failover kill -9": "Failover, kill -9 of bms_tx",
    "failover SIGSTOP": "Failover, SIGSTOP of bms_tx",
    "failover two instances": "Failover, two instances, kill -9 of the active one",
    "cpu": "CPU at full bus load", "memory": "Memory", "startup": "Start-up",
    "footprint": "Idle footprint beside Victron's systemcalc (bench/footprint.py)",
    "hv latency": "Pylon HV answer latency (bench/hv_latency.py)",
    "scaling bus load": "Scaling with foreign bus load (bench/scaling.py)",
    "scaling hv polls": "Scaling with HV polls (bench/scaling.py)",
}
DECIMALS = {"ms": 2, "s": 2, "MiB": 1, "ms/s": 2, "/s": 1}


# The VM tiers bench/run.py measures on, as the report names them.
TIER_NAMES = {"vcan": "vcan", "sja1000": "SJA1000"}
TIER_DESCRIPTIONS = {
    "vcan": "virtual interfaces (the daemon and its judge on vcan0, the cadence baseline on vcan1)",
    "sja1000": "four emulated SJA1000 controllers (QEMU kvaser_pci) on one emulated bus (the daemon on can0, "
               "a standby peer, cangen and the baselines on can1, the judge on can2); QEMU's model sends "
               "a frame at once, without bit timing",
}


def render(by_tier: Dict[str, Dict], host: Dict, command: str, date: str, revision: str) -> str:
    """The whole RESULTS.md: each tier's bench.json (``by_tier``, in column order) side by side;
    ``revision`` names the code measured (git)."""
    tiers = list(by_tier)
    first = by_tier[tiers[0]]
    guest = first["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Each figure of pylon-venus beside a baseline measured in the same run on the same machine; "
        "ratio = pylon-venus / baseline, so a slow or noisy machine shows in both. Measured with "
        "`%s` on %s, code at %s." % (command, date, revision),
        "",
        "Machine: %s, %s, %d CPUs. The figures come from a **VM without KVM** (qemu emulation, "
        "%d vCPUs of %s, %d MiB, Debian kernel %s, Python %s), many times slower than "
        "a real CPU: compare the ratios, not the absolute numbers." % (
            host["uname"], host["cpu_model"], host["cpus"], guest["cpus"], guest["cpu_model"],
            guest["memory_mib"], guest["kernel"], guest["python"]),
        "",
        "Tiers, one VM boot each: %s." % "; ".join("**%s**: %s" % (TIER_NAMES[tier], TIER_DESCRIPTIONS[tier])
                                                  for tier in tiers),
        "",
        "Settings: %s." % ", ".join("%s = %s" % item for item in sorted(first["settings"].items())),
        "",
        "| figure | %s | baseline measured as |" % " | ".join(
            "%s: pylon-venus | baseline | ratio" % TIER_NAMES[tier] for tier in tiers),
        "|---|%s---|" % ("---:|" * 3 * len(tiers)),
    ]
    for name in SECTIONS:
        lines.extend(summary_rows(name, tiers, [by_tier[tier]["sections"].get(name) for tier in tiers]))
    lines.extend(jitter_target(by_tier))
    notes = ["- %s%s" % ("" if len(tiers) == 1 else "%s: " % TIER_NAMES[tier], note)
             for tier in tiers for note in by_tier[tier]["notes"]]
    if notes:
        lines.extend(["", "Notes:", ""] + notes)
    for name in SECTIONS:
        for tier in tiers:
            for detail in (by_tier[tier]["sections"].get(name) or {}).get("tables", []):
                lines.extend(["", "### %s%s" % (detail["title"], "" if len(tiers) == 1 else
                                                 " (%s)" % TIER_NAMES[tier]), ""]
                             + markdown_table(detail["columns"], detail["rows"]))
    return "\n".join(lines) + "\n"


JITTER_TARGET = 2.0      # issue 19: no frame further off its period than twice cangen's worst, same run


def jitter_target(by_tier: Dict[str, Dict]) -> List[str]:
    """Whether each cadence's largest deviation is within ``JITTER_TARGET`` times cangen's."""
    verdicts = []
    for tier, results in by_tier.items():
        for r in (results["sections"].get("cadence") or {}).get("rows", ()):
            if "largest deviation" in r["figure"] and r["baseline"]:
                verdicts.append("- %s, %s: %s (%.2f ms, %.2f x cangen's %.2f ms)" % (
                    TIER_NAMES[tier], r["figure"], "met" if r["value"] <= JITTER_TARGET * r["baseline"] else
                    "**not met**", r["value"], r["value"] / r["baseline"], r["baseline"]))
    if not verdicts:
        return []
    return ["", "Jitter target (issue 19: the largest deviation of any frame from its period at most %g x "
            "cangen's in the same run):" % JITTER_TARGET, ""] + verdicts


def summary_rows(name: str, tiers: List[str], sections: List) -> List[str]:
    """The summary's rows of one benchmark: its figures, a column group per tier (a benchmark's
    figures come in the same order on every tier), then a row saying where it did not run or failed."""
    rows = []
    for index in range(max([len((section or {}).get("rows", ())) for section in sections])):
        found = [section["rows"][index] if section and index < len(section.get("rows", ())) else None
                 for section in sections]
        shown = [(tier, r) for tier, r in zip(tiers, found) if r is not None]
        measured_as = sorted({r["baseline_is"] for _, r in shown})
        cells = [cell(shown[0][1]["figure"])]
        for r in found:
            cells += ["", "", ""] if r is None else [
                quantity(r["value"], r["unit"]), quantity(r["baseline"], r["unit"]), ratio(r["value"], r["baseline"])]
        cells.append(cell(measured_as[0] if len(measured_as) == 1 else
                          "; ".join("%s: %s" % (TIER_NAMES[tier], r["baseline_is"]) for tier, r in shown)))
        rows.append(table_row(cells))
    status = [section_status(section) for section in sections]
    if any(status):
        rows.append(table_row([TITLES[name]] + [c for text in status for c in (cell(text), "", "")] + [""]))
    return rows


def table_row(cells: Sequence[str]) -> str:
    """A Markdown table row; an empty cell is ``| |``."""
    return "|" + "|".join(" %s " % text if text else " " for text in cells) + "|"


def section_status(section) -> str:
    """Why a tier has no figures (or not all) for a benchmark; empty when it ran."""
    if section is None:
        return "not run"
    if "not_available" in section:
        return "not available yet: %s" % section["not_available"]
    if "error" in section:
        return "**failed**: %s" % first_line(section["error"])
    return ""


def quantity(value: float, unit: str) -> str:
    if value is None:
        return "not measured"
    return "%.*f %s" % (DECIMALS[unit], value, unit)


def ratio(value: float, baseline: float) -> str:
    if baseline is None or baseline <= 0:
        return "-"
    return "%.2f" % (value / baseline) if value / baseline < 100 else "%.0f" % (value / baseline)


def first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line if len(line) <= limit else line[:limit] + "..."


def cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    return (["| %s |" % " | ".join(cell(c) for c in columns), "|%s" % ("---|" * len(columns))]
            + ["| %s |" % " | ".join(cell(v) for v in values) for values in rows])
