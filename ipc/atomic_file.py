"""Persisted state is written whole or not at all: temp file, fsync, rename."""
import json
import os
import tempfile
from typing import Any, Optional


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.rename(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: str) -> Optional[Any]:
    """The JSON document at ``path``, or None when there is none yet."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
