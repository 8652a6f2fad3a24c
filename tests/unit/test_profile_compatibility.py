"""The README's compatibility table: every family of the reference's INVERTERS.md is there with
its models, voltage class and confidence grade carried over unchanged, and every profile it
recommends exists."""
import os
import re

import pytest

from protocol import profiles
from tests.reference import REFERENCE_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "README.md")
INVERTERS = os.path.join(REFERENCE_DIR, "INVERTERS.md")
HEADING = "### Compatibility list: which profile for which inverter"
FAMILY_ROW = re.compile(r"^\| (\d+) \|")


def cells(line: str):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def family_rows(path: str, start: str = ""):
    """Numbered table rows of ``path`` (from the line ``start`` on, up to the next heading): number -> cells."""
    with open(path, encoding="utf-8") as text:
        lines = text.read().splitlines()
    if start:
        assert start in lines, "%s has no line %r" % (path, start)
        lines = lines[lines.index(start) + 1:]
        heading = next((i for i, line in enumerate(lines) if line.startswith("#")), len(lines))
        lines = lines[:heading]
    return {int(cells(line)[0]): cells(line) for line in lines if FAMILY_ROW.match(line)}


def readme_rows():
    """README's row per family: number -> (family, models, class, profile, settings, confidence)."""
    return {number: row[1:] for number, row in family_rows(README, HEADING).items()}


@pytest.mark.skipif(not os.path.isfile(INVERTERS), reason="%s not found: set PYLON_VENUS_REFERENCE to the "
                    "folder holding INVERTERS.md" % os.path.normpath(INVERTERS))
def test_every_family_of_the_reference_is_in_the_readme_with_its_grade_carried_over():
    reference = family_rows(INVERTERS)
    readme = readme_rows()
    assert sorted(readme) == sorted(reference)
    for number, row in reference.items():
        family, models, voltage_class, confidence = row[1], row[2], row[3], row[8]
        ours = readme[number]
        assert (ours[0], ours[1], ours[2], ours[5]) == (family, models, voltage_class, confidence), number


def test_every_profile_the_table_names_exists_and_unserved_families_say_why():
    rows = readme_rows()
    assert rows, "README has no compatibility table under %r" % HEADING
    named = {name for row in rows.values() for name in re.findall(r"`([a-z0-9_]+)`", row[3])}
    assert named and named <= set(profiles.names()), named - set(profiles.names())
    for number, row in rows.items():
        profile = row[3]
        assert re.search(r"`[a-z0-9_]+`", profile) or profile.startswith(("none: ", "**not served**: ")), number
    unserved = {row[0]: row[3] for row in rows.values() if row[3].startswith("**not served**")}
    assert "RS485" in unserved["KOSTAL PLENTICORE"]
    assert "BYD" in unserved["SMA Sunny Boy Storage"]
