"""File-tree work for install.sh, in Python because Python is on every target while the
busybox applets and options a shell script would need (find -exec +, xargs -0, stat -c)
vary between Venus images.

    install_tree.py stage SOURCE DIR     copy the runtime files of a source tree or release folder into DIR
    install_tree.py normalize DIR        drop byte code; folders 755, files 755 if executable else 644
    install_tree.py unpack DEST SUMS     check the wheels listed in SUMS (sha256sum format), unpack into DEST
    install_tree.py manifest DIR         one sorted line per path: type, mode, SHA-256 or link target
"""
import hashlib
import os
import shutil
import stat
import sys
import zipfile
from typing import Dict, List

# What the device runs besides the Python modules at the top and the folders of modules.
# simulation/ is such a folder and ships: the embedded default config.toml runs the simulation.
RUNTIME_TOP_FILES = ("config.toml", "install.sh", "LICENSE", "CHANGELOG.md", "VERSION", "THIRD-PARTY-LICENSES")
NOT_RUNTIME = {"tests", "dev", "bench", "vendor", "__pycache__"}


def runtime_files(source: str) -> List[str]:
    """The sorted relative paths the device needs: top-level modules (no conftest.py), the files
    of RUNTIME_TOP_FILES present, and every file of each folder that has a Python module at its
    top (packages and namespace packages such as venus/) but the tests and developer tools.
    The one rule for both install.sh and dev/release.sh."""
    found = []
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if os.path.isfile(path):
            if (name.endswith(".py") and name != "conftest.py") or name in RUNTIME_TOP_FILES:
                found.append(name)
        elif (os.path.isdir(path) and name not in NOT_RUNTIME and not name.startswith(".")
              and any(entry.endswith(".py") for entry in os.listdir(path))):
            for folder, folders, files in os.walk(path):
                folders[:] = [f for f in folders if f != "__pycache__"]
                found += [os.path.relpath(os.path.join(folder, f), source) for f in files if not f.endswith(".pyc")]
    return sorted(found)


def stage(source: str, destination: str) -> None:
    for relative in runtime_files(source):
        target = os.path.join(destination, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(os.path.join(source, relative), target)
    normalize(destination)


def normalize(top: str) -> None:
    for folder, folders, files in os.walk(top):
        if "__pycache__" in folders:
            shutil.rmtree(os.path.join(folder, "__pycache__"))
            folders.remove("__pycache__")
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".pyc"):
                os.unlink(path)
            else:
                os.chmod(path, 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_wheels(sums_file: str) -> List[str]:
    """The paths of the wheels beside SUMS, each matching its hash there; a wheel missing from
    SUMS, or listed but absent, stops with the names."""
    folder = os.path.dirname(os.path.abspath(sums_file))
    listed: Dict[str, str] = {}
    with open(sums_file) as handle:
        for line in handle.read().splitlines():
            if line.strip():
                digest, name = line.split(None, 1)
                listed[name.lstrip("*")] = digest
    present = sorted(name for name in os.listdir(folder) if name.endswith(".whl"))
    if sorted(listed) != present:
        raise SystemExit("%s: lists %s, the folder holds %s" % (sums_file, sorted(listed), present))
    for name in present:
        if sha256(os.path.join(folder, name)) != listed[name]:
            raise SystemExit("%s does not match SHA256SUMS" % os.path.join(folder, name))
    return [os.path.join(folder, name) for name in present]


def unpack(destination: str, sums_file: str) -> None:
    wheels = verified_wheels(sums_file)
    os.makedirs(destination, exist_ok=True)
    for path in wheels:
        with zipfile.ZipFile(path) as wheel:
            # A plain unzip is a correct install only for a wheel without a .data folder
            # (scripts, headers or files placed outside site-packages).
            if any(member.split("/", 1)[0].endswith(".data") for member in wheel.namelist()):
                raise SystemExit("%s has a .data folder, which this installer does not place" % os.path.basename(path))
            wheel.extractall(destination)


def manifest(top: str) -> str:
    lines = []
    for folder, folders, files in os.walk(top):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                what = "link " + os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                what = "dir"
            else:
                what = "file " + sha256(path)
            lines.append("%s %o %s" % (os.path.relpath(path, top), stat.S_IMODE(info.st_mode), what))
    return "\n".join(sorted(lines))


def main(argv) -> int:
    command, arguments = argv[0], argv[1:]
    if command == "stage":
        stage(*arguments)
    elif command == "normalize":
        normalize(*arguments)
    elif command == "unpack":
        unpack(*arguments)
    elif command == "manifest":
        print(manifest(*arguments))
    else:
        raise SystemExit("install_tree.py: unknown command %r: expected stage, normalize, unpack or manifest" % command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
