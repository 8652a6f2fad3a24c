"""The one place the version is written (the bump rule is in CHANGELOG.md).

A release archive (dev/release.sh) adds a VERSION file beside this module naming the commit it
was built from; the version shown (log, status, --version) then carries the commit, e.g.
``0.1.0+37017af574c9``, so an installed tree says exactly what it runs."""
import os

RELEASE = "0.1.0"
STAMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")


def stamped_commit(path: str = STAMP) -> str:
    """The commit the VERSION file names ("commit <hex>" line), or "" in a checkout: it is only
    bookkeeping, so a missing or unreadable file never stops anything."""
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(" ")
                if key == "commit":
                    return value.strip()
    except (OSError, ValueError):
        pass
    return ""


COMMIT = stamped_commit()
VERSION = RELEASE + ("+" + COMMIT[:12] if COMMIT else "")
