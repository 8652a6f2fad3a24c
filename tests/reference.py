"""Reference data the tests compare against, and where it is found.

What may be redistributed is vendored in ``tests/unit/data`` with its licence. The rest (DBC
files whose source has no licence) is read from the team's reference folder when it is there:
``$PYLON_VENUS_REFERENCE``, else ``shared/reference`` beside the repository. A test that needs
an absent file is skipped, and the summary (``pytest -rs``) says which file and why.
"""
import os
from typing import Optional

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
VENDORED_DBC_DIR = os.path.join(TESTS_DIR, "unit", "data", "dbc")
REFERENCE_DIR = (os.environ.get("PYLON_VENUS_REFERENCE")
                 or os.path.join(os.path.dirname(TESTS_DIR), "..", "shared", "reference"))


def dbc_path(file_name: str) -> Optional[str]:
    """DBC file ``file_name``, vendored or from the reference folder; None when neither has it."""
    for folder in (VENDORED_DBC_DIR, os.path.join(REFERENCE_DIR, "dbc")):
        path = os.path.join(folder, file_name)
        if os.path.isfile(path):
            return path
    return None


def dbc_absent(file_name: str) -> str:
    """The skip reason for a DBC file that is not redistributable and not found."""
    return ("%s is not in the repository (its source has no licence) and was not found in %s: set "
            "PYLON_VENUS_REFERENCE to the folder holding dbc/%s" % (file_name, os.path.normpath(
                os.path.join(REFERENCE_DIR, "dbc")), file_name))
