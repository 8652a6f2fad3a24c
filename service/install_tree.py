"""File-tree work for install.sh, in Python because Python is on every target while the
busybox applets and options a shell script would need (find -exec +, xargs -0, stat -c)
vary between Venus images.

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


def unpack(destination: str, sums_file: str) -> None:
    """Every wheel named in SUMS must match its hash; a wheel not named there is refused too."""
    folder = os.path.dirname(os.path.abspath(sums_file))
    listed = {}
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
    os.makedirs(destination, exist_ok=True)
    for name in present:
        with zipfile.ZipFile(os.path.join(folder, name)) as wheel:
            # A plain unzip is a correct install only for a wheel without a .data folder
            # (scripts, headers or files placed outside site-packages).
            if any(member.split("/", 1)[0].endswith(".data") for member in wheel.namelist()):
                raise SystemExit("%s has a .data folder, which this installer does not place" % name)
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
    if command == "normalize":
        normalize(*arguments)
    elif command == "unpack":
        unpack(*arguments)
    elif command == "manifest":
        print(manifest(*arguments))
    else:
        raise SystemExit("install_tree.py: unknown command %r: expected normalize, unpack or manifest" % command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
