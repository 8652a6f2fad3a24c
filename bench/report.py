"""bench.json (what the VM measured) to bench/RESULTS.md: pure formatting, no I/O."""
from typing import Dict, List, Sequence

# The order of the summary; sections are named by bench/vm_bench.py.
SECTIONS = ("cadence", "failover kill -9", "failover SIGSTOP", "failover two instances", "cpu", "memory", "startup")
TITLES = {
    "cadence": "Cadence", "failover kill -9": "Failover, kill -9 of bms_tx",
    "failover SIGSTOP": "Failover, SIGSTOP of bms_tx",
    "failover two instances": "Failover, two instances, kill -9 of the active one",
    "cpu": "CPU at full bus load", "memory": "Memory", "startup": "Start-up",
}
DECIMALS = {"ms": 2, "s": 2, "MiB": 1, "ms/s": 2}


def render(results: Dict, host: Dict, command: str, date: str, revision: str) -> str:
    """The whole RESULTS.md; ``revision`` names the code measured (git)."""
    guest = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Each figure of pylon-venus beside a baseline measured in the same run on the same machine; "
        "ratio = pylon-venus / baseline, so a slow or noisy machine shows in both. Measured with "
        "`%s` on %s, code at %s." % (command, date, revision),
        "",
        "Machine: %s, %s, %d CPUs. The figures come from a **VM without KVM** (qemu emulation, "
        "%d vCPUs of %s, %d MiB, Debian kernel %s with vcan, Python %s), many times slower than "
        "a real CPU: compare the ratios, not the absolute numbers." % (
            host["uname"], host["cpu_model"], host["cpus"], guest["cpus"], guest["cpu_model"],
            guest["memory_mib"], guest["kernel"], guest["python"]),
        "",
        "Settings: %s." % ", ".join("%s = %s" % item for item in sorted(results["settings"].items())),
        "",
        "| figure | pylon-venus | baseline | ratio | baseline measured as |",
        "|---|---:|---:|---:|---|",
    ]
    sections = results["sections"]
    for name in SECTIONS:
        lines.extend(summary_rows(name, sections.get(name)))
    if results["notes"]:
        lines.extend(["", "Notes:", ""] + ["- " + note for note in results["notes"]])
    for name in SECTIONS:
        for detail in (sections.get(name) or {}).get("tables", []):
            lines.extend(["", "### " + detail["title"], ""] + markdown_table(detail["columns"], detail["rows"]))
    return "\n".join(lines) + "\n"


def summary_rows(name: str, section) -> List[str]:
    title = TITLES[name]
    if section is None:
        return ["| %s | not run | | | |" % title]
    if "not_available" in section:
        return ["| %s | not available yet: %s | | | |" % (title, cell(section["not_available"]))]
    rows = ["| %s | %s | %s | %s | %s |" % (cell(r["figure"]), quantity(r["value"], r["unit"]),
                                             quantity(r["baseline"], r["unit"]), ratio(r["value"], r["baseline"]),
                                             cell(r["baseline_is"])) for r in section["rows"]]
    if "error" in section:
        rows.append("| %s | **failed**: %s | | | |" % (title, cell(first_line(section["error"]))))
    return rows


def quantity(value: float, unit: str) -> str:
    return "%.*f %s" % (DECIMALS[unit], value, unit)


def ratio(value: float, baseline: float) -> str:
    if baseline <= 0:
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
