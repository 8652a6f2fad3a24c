"""The console's settings form and where a change is written.

The form is made from the one schema: the keys, types and ranges of ``config.SCHEMA`` (only the
runtime settings that ``venus.settings`` also offers on Venus), and the help text and default
of each key from the comments above it in the shipped ``config.toml``. A change is validated
by the same validator as the file (``Config.replace``: every range and cross-key rule), so an
error names the key and what is allowed, and a refused change changes nothing.
"""
import json
import math
import re
from typing import Any, Dict, List, Optional, Tuple

try:
    import tomllib  # Python 3.11+  # novermin
except ImportError:  # pragma: no cover - exercised on Python 3.8-3.10
    import tomli as tomllib

import config
from config import ConfigError
from ipc.atomic_file import write_atomic
from venus.settings import runtime_keys

# Units read from a key's name, longest suffix first.
UNITS = (("_v_per_s", "V/s"), ("_a_per_s", "A/s"), ("_days", "days"), ("_pct", "%"), ("_ah", "Ah"),
         ("_v", "V"), ("_a", "A"), ("_s", "s"), ("_c", "degC"))


def unit_of(key: str) -> str:
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def help_texts(path: str = config.DEFAULT_PATH) -> Dict[str, str]:
    """``section.key`` -> the comment block above it in the shipped config.toml (a block covers
    every key that follows it up to the next comment, blank line or section)."""
    texts, section, block, current = {}, None, [], None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stripped = line.strip()
            header = re.fullmatch(r"\[([A-Za-z_]+)\]", stripped)
            if header:
                section, block, current = header.group(1), [], None
            elif stripped.startswith("#"):
                if current is not None:
                    block, current = [], None
                block.append(stripped.lstrip("#").strip())
            elif not stripped:
                block, current = [], None
            elif section is not None and "=" in stripped:
                key = stripped.split("=", 1)[0].strip()
                current = " ".join(block)
                texts["%s.%s" % (section, key)] = current
    return texts


def form(cfg, in_force: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One entry per runtime setting: key, section, type, range, unit, help, default, value."""
    texts = help_texts()
    defaults = config.load().as_dict()
    entries = []
    for key in runtime_keys():
        section, name = key.split(".", 1)
        rule = config.SCHEMA[section][name]
        entries.append({"key": key, "section": section, "kind": "integer" if rule.kind is int else "number",
                        "min": rule.low, "max": rule.high, "unit": unit_of(name), "help": texts.get(key, ""),
                        "allowed": config._describe(rule), "default": defaults[section][name],
                        "value": in_force.get(key, getattr(getattr(cfg, section), name))})
    return entries


def validate(cfg, in_force: Dict[str, Any], changes: Any) -> Tuple[Optional[Dict[str, Any]], List[str]]:
    """(every setting in force after ``changes``, []) or (None, the problems). ``changes`` is the
    request body: a JSON object of ``section.key`` -> value."""
    if not isinstance(changes, dict) or not changes:
        return None, ["expected a JSON object of setting -> value, e.g. {\"charge.float_voltage_v\": 53.6}"]
    allowed = runtime_keys()
    unknown = [key for key in changes if key not in allowed]
    if unknown:
        return None, ["%s is not a setting that can be changed here: allowed are %s"
                      % (key, ", ".join(allowed)) for key in unknown]
    problems = []
    for key, value in changes.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append("%s = %r is not allowed: expected a finite number" % (key, value))
    if problems:
        return None, problems
    merged = dict(in_force)
    merged.update(changes)
    sections: Dict[str, Dict[str, Any]] = {}
    for key, value in merged.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    try:
        checked = cfg.replace(**sections)
    except ConfigError as error:
        return None, error.problems
    return {key: getattr(getattr(checked, key.split(".")[0]), key.split(".")[1]) for key in merged}, []


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def updated_toml(text: str, changes: Dict[str, Any]) -> str:
    """``text`` (a user config file) with each ``section.key`` set to its value: the key's line
    replaced where it is, else added under its section (made at the end when missing); comments
    and every other line are kept. Refused (ValueError) if the result does not read back."""
    lines = text.splitlines()
    for dotted, value in changes.items():
        section, key = dotted.split(".", 1)
        assignment = "%s = %s" % (key, toml_value(value))
        start = next((i for i, line in enumerate(lines) if line.strip() == "[%s]" % section), None)
        if start is None:
            lines += ["", "[%s]" % section, assignment]
            continue
        end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")), len(lines))
        found = next((i for i in range(start + 1, end)
                      if re.match(r"\s*%s\s*=" % re.escape(key), lines[i])), None)
        if found is not None:
            lines[found] = assignment
        else:
            lines.insert(start + 1, assignment)
    result = "\n".join(lines) + "\n"
    try:
        parsed = tomllib.loads(result)
    except tomllib.TOMLDecodeError as error:
        raise ValueError("the configuration file cannot be updated line by line: %s" % error) from None
    for dotted, value in changes.items():
        section, key = dotted.split(".", 1)
        if parsed.get(section, {}).get(key) != value:
            raise ValueError("the configuration file cannot be updated line by line: %s did not read back" % dotted)
    return result


def write_user_file(path: str, changes: Dict[str, Any]) -> None:
    """Set ``changes`` in the user config file at ``path``, atomically (missing: made)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    write_atomic(path, updated_toml(text, changes))
