"""Find a Python 3.8, the interpreter of Venus OS v3.00 - v3.5x, for the tests and dev/test.sh.

Where: the interpreter $PYLON_VENUS_PYTHON38 names (then nowhere else), else ``python3.8`` on
PATH, else pyenv's 3.8 versions ($PYENV_ROOT, default ~/.pyenv). A candidate counts only when it
runs and reports 3.8 (a pyenv shim may exist without a 3.8 behind it); its real path is used.

``python tests/python38.py`` prints that path, or on stderr why there is none (exit code 1).
"""
import glob
import os
import shutil
import subprocess
import sys
from typing import List, Optional, Tuple

VARIABLE = "PYLON_VENUS_PYTHON38"
PROBE = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"


def candidates() -> List[str]:
    """The interpreters to try, in order."""
    named = os.environ.get(VARIABLE)
    if named:
        return [named]
    found = [path for path in [shutil.which("python3.8")] if path]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.8*", "bin", "python3.8")), reverse=True)
    return found


def real_python38(path: str) -> Optional[str]:
    """The executable behind ``path`` when it runs as Python 3.8, else None."""
    try:
        probe = subprocess.run([path, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = probe.stdout.split("\n")
    return lines[1] if probe.returncode == 0 and lines[0] == "3.8" else None


def find() -> Tuple[Optional[str], str]:
    """(path, "") of a working Python 3.8, or (None, why there is none)."""
    tried = candidates()
    for path in tried:
        found = real_python38(path)
        if found:
            return found, ""
    if os.environ.get(VARIABLE):
        return None, "$%s = %s is not a working Python 3.8" % (VARIABLE, os.environ[VARIABLE])
    return None, ("no Python 3.8 found (%s): set %s to one, put python3.8 on PATH or install it with "
                  "pyenv" % ("tried " + ", ".join(tried) if tried else "none on PATH or in pyenv", VARIABLE))


if __name__ == "__main__":
    interpreter, why = find()
    if interpreter is None:
        print(why, file=sys.stderr)
        sys.exit(1)
    print(interpreter)
