"""dev/release.sh and the life of its archive on a device: the same commit gives the same bytes,
the archive holds the runtime tree only, and from it install.sh installs into fake Venus and
systemd roots, the installed tree runs (check, decode, replay, a short simulation) on the bundled
libraries alone, an upgrade keeps the user's config and state, a rollback brings the previous
version back with them, and an uninstall leaves the root as it was.

The releases are built from a scratch git repository holding a copy of the working tree, so the
tests build real commits without touching the project's repository."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import types

import pytest

from tests.unit.test_install import (PROJECT, PYTHON38, NO_PYTHON38, fake_debian, fake_venus, install, read, tree,
                                     vendor)  # noqa: F401 (vendor: the session's bundled wheels, a fixture)

NOT_COPIED = {".git", ".venv", "vendor", "dist", "__pycache__", ".pytest_cache", ".hypothesis", "results"}
FIRST_COMMIT_T = 1767225600   # 2026-01-01 00:00 UTC
SECOND_COMMIT_T = 1769904000  # 2026-02-01 00:00 UTC
# The device's interpreter: the OS's, with the OS's D-Bus bindings and nothing of the dev venv.
DEVICE_PYTHON = "/usr/bin/python3"
# What a newer version might add to the charge state: an older one must read the file anyway.
NEWER_STATE_KEY = "equalize_s"
DATA = os.path.join(PROJECT, "tests", "unit", "data")


def git(repo, *args, when=None):
    """git in the scratch repository; ``when``: the commit's author and committer time."""
    stamp = "@%d +0000" % when if when else None
    env = dict(os.environ, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp) if stamp else None
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=release test", "-c", "user.email=test@example.invalid",
                           "-c", "commit.gpgsign=false"] + list(args), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, env=env).stdout.strip()


def commit(repo, message, when):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, when=when)
    return git(repo, "rev-parse", "HEAD")


def build(repo, vendor_dir, dist):
    result = subprocess.run(["sh", str(repo / "dev" / "release.sh"), "--vendor", str(vendor_dir), "--dist", str(dist)],
                            env=dict(os.environ, PYTHON=sys.executable), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout
    archive = re.search(r"^release\.sh: (\S+\.tar\.gz) ", result.stdout, re.M).group(1)
    return archive, result.stdout


def replace_once(path, old, new):
    text = read(path)
    assert text.count(old) == 1, "%s: expected one %r" % (path, old)
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def releases(tmp_path_factory, vendor):
    base = tmp_path_factory.mktemp("release")
    repo = base / "repo"
    shutil.copytree(PROJECT, str(repo), ignore=lambda _dir, names: [n for n in names if n in NOT_COPIED])
    git(repo, "init", "-q")
    made = types.SimpleNamespace()  # "first", and "second" one commit later: version bumped, one new setting
    made.first_commit = commit(repo, "first", FIRST_COMMIT_T)
    made.first_version = re.search(r'^RELEASE = "(.*)"$', read(repo / "version.py"), re.M).group(1)
    made.first, _ = build(repo, vendor, base / "dist")
    # Uncommitted and untracked changes never get into an archive.
    (repo / "supervisor.py").write_text(read(repo / "supervisor.py") + "# not committed\n")
    (repo / "untracked.py").write_text("# not committed\n")
    made.again, made.again_output = build(repo, vendor, base / "again")
    git(repo, "checkout", "-q", "--", "supervisor.py")
    (repo / "untracked.py").unlink()

    major, minor, _patch = made.first_version.split(".")
    made.second_version = "%s.%d.0" % (major, int(minor) + 1)
    replace_once(repo / "version.py", 'RELEASE = "%s"' % made.first_version, 'RELEASE = "%s"' % made.second_version)
    # A setting only the second version knows: a config using it is refused by the first.
    replace_once(repo / "config.py", '"interval_s": number(0.1, 60),',
                 '"interval_s": number(0.1, 60),\n        "history_s": number(0, 3600),')
    replace_once(repo / "config.toml", "\ninterval_s = 2.0\n",
                 "\ninterval_s = 2.0\n# Seconds of history.\nhistory_s = 0.0\n")
    made.second_commit = commit(repo, "second", SECOND_COMMIT_T)
    made.second, _ = build(repo, vendor, base / "dist")
    made.dist = base / "dist"
    return made


def extracted(archive, folder):
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as packed:
        packed.extractall(str(folder))
    return folder / os.path.basename(archive)[:-len(".tar.gz")]


# --- the archive ---------------------------------------------------------------------------
def test_the_same_commit_gives_the_same_bytes_whatever_is_uncommitted(releases):
    with open(releases.first, "rb") as first, open(releases.again, "rb") as again:
        assert first.read() == again.read()
    assert "uncommitted changes; they are not in the archive" in releases.again_output
    with open(releases.first, "rb") as handle:
        header = handle.read(10)
    assert header[3] == 0 and header[4:8] == b"\0\0\0\0"  # gzip: no file name, no time stamp


def test_the_archive_holds_the_runtime_tree_the_wheels_and_their_licences(releases):
    top = "pylon-venus-%s" % releases.first_version
    with tarfile.open(releases.first) as packed:
        members = packed.getmembers()
        names = [m.name for m in members]
        texts = {name: packed.extractfile(top + "/" + name).read().decode()
                 for name in ("VERSION", "THIRD-PARTY-LICENSES", "LICENSE", "vendor/py39/SHA256SUMS")}
    assert names == sorted(names) and names[0] == top
    assert all(n == top or n.startswith(top + "/") for n in names)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", FIRST_COMMIT_T)}
    assert {m.mode for m in members} == {0o644, 0o755}
    inside = {n[len(top) + 1:] for n in names if n != top}
    for part in inside:
        assert part.split("/")[0] not in {"tests", "bench", "dev", ".git", ".ci", "dist"}, part
        assert "__pycache__" not in part and not part.endswith(".pyc") and "conftest" not in part, part
    for wanted in ("install.sh", "supervisor.py", "version.py", "config.toml", "README.md", "LICENSE", "CHANGELOG.md",
                   "service/install_tree.py", "service/run", "simulation/battery.py", "workers/simulator.py",
                   "vendor/py38/SHA256SUMS", "vendor/py39/SHA256SUMS", "THIRD-PARTY-LICENSES", "VERSION"):
        assert wanted in inside, wanted
    assert next(m for m in members if m.name == top + "/install.sh").mode == 0o755
    assert texts["VERSION"] == "version %s\ncommit %s\ndate 2026-01-01T00:00:00Z\n" % (releases.first_version,
                                                                                     releases.first_commit)
    assert texts["LICENSE"].startswith("MIT License")
    wheels = sorted(n.split("/")[-1] for n in inside if n.endswith(".whl"))
    assert {w.split("-")[0] for w in wheels} >= {"python_can", "msgpack", "tomli", "wrapt", "sdnotify"}
    for wheel in wheels:
        entry = re.search(r"^\S+ \S+ \(%s, in [^)]+\)\nLicence: (.+)$" % re.escape(wheel),
                          texts["THIRD-PARTY-LICENSES"], re.M)
        assert entry and entry.group(1).strip(), wheel
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in texts["THIRD-PARTY-LICENSES"]  # python-can's text, not only its name
    assert len(texts["vendor/py39/SHA256SUMS"].splitlines()) == len([w for w in inside if w.startswith("vendor/py39/")
                                                                     and w.endswith(".whl")])


def test_sha256sums_verifies_every_archive_in_dist(releases):
    listed = read(releases.dist / "SHA256SUMS")
    for archive in (releases.first, releases.second):
        assert "  %s\n" % os.path.basename(archive) in listed
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=str(releases.dist), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True)
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 2, checked.stdout


# --- on a device ---------------------------------------------------------------------------
def device_python_problem(python):
    """Why ``python`` cannot stand for a device's interpreter here, or ""."""
    if not python or not os.path.exists(python):
        return "no %s" % python
    probe = subprocess.run([python, "-c", "import dbus, gi\ntry:\n import can\nexcept ImportError:\n pass\n"
                                          "else:\n print('python-can outside the bundle')"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=clean_env())
    return probe.stdout.strip() if probe.returncode or probe.stdout.strip() else ""


def installed_command(root, prefix, config_path, python, os_packages=""):
    """The installed bin/pylon-venus, its paths pointed into the fake root, run by ``python``
    with the bundled libraries and ``os_packages`` (what Venus OS ships: D-Bus and GLib bindings)."""
    text = read(root / prefix.lstrip("/") / "bin" / "pylon-venus")
    changes = [('prefix="%s"' % prefix, 'prefix="%s%s"' % (root, prefix)),
               ("python=/usr/bin/python3", "python=%s" % python)]
    if os_packages:
        changes.append(("export PYTHONPATH", 'PYTHONPATH="$PYTHONPATH:%s"\nexport PYTHONPATH' % os_packages))
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    text = re.sub(r'^config=".*"$', 'config="%s"' % config_path, text, flags=re.M)
    command = root.parent / "pylon-venus-command"
    command.write_text(text)
    command.chmod(0o755)
    return str(command)


def clean_env():
    """No dev venv, no PYTHONPATH, no user site: only what the device has."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1",
            "HOME": os.environ.get("HOME", "/root")}


def run(command, *args):
    return subprocess.run([command] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=clean_env(), timeout=120)


def simulation_config(folder, state_dir):
    """The embedded default (a full simulation) on a bus of its own, its state files in ``state_dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "simulation.toml"
    path.write_text('[can]\nudp_port = %d\nchannel = "239.74.%d.%d"\n[status]\nfile = "%s"\ninterval_s = 0.5\n'
                    '[state]\ncharge_file = "%s"\n[venus]\ndvcc_file = "%s"\nenergy_file = "%s"\n'
                    % (random.randint(20000, 60000), random.randint(1, 254), random.randint(1, 254),
                       folder / "status.json", state_dir / "charge-state.json", folder / "dvcc-limits.json",
                       state_dir / "energy.json"))
    return str(path)


def simulate(command, folder):
    """`run` until the first frame set is on the bus, `check`, then SIGTERM: (status, check, log)."""
    status_path = folder / "status.json"
    with open(str(folder / "daemon.log"), "w") as log:
        daemon = subprocess.Popen([command, "run"], stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and daemon.poll() is None:
            try:
                status = json.loads(read(status_path))
            except (OSError, ValueError):
                status = None
            if status and status["pid"] == daemon.pid and status["frames"] and status["workers"]["bms_tx"]["alive"]:
                break
            time.sleep(0.2)
        checked = run(command, "check")
    finally:
        daemon.send_signal(signal.SIGTERM)
        stopped = daemon.wait(30)
    log_text = read(folder / "daemon.log")
    assert stopped == 0 and status and status["frames"], log_text[-3000:]
    return status, checked, log_text


def check_installed_tree(root, prefix, python, version, commit_id, work, state_dir, os_packages=""):
    """The installed tree on the bundled libraries alone: --version, decode, replay, and a short
    simulation that starts from a charge state written by a newer version."""
    config_path = simulation_config(work, state_dir)  # makes work/
    command = installed_command(root, prefix, config_path, python, os_packages)
    lib = root / prefix.lstrip("/") / "lib"
    lib_set = "py38" if version_of(python) == "3.8" else "py39"
    where = subprocess.run([python, "-c", "import can, msgpack, tomli; print(can.__file__, msgpack.__file__)"],
                           env=dict(clean_env(), PYTHONPATH=str(lib / lib_set)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert where.returncode == 0 and where.stdout.count(str(lib)) == 2, where.stdout

    assert run(command, "--version").stdout.strip() == "%s+%s" % (version, commit_id[:12])
    decoded = run(command, "decode", os.path.join(DATA, "us5000_candump.log"))
    assert decoded.returncode == 0 and json.loads(decoded.stdout.splitlines()[0])["id"] == 0x351, decoded.stdout
    trace = work / "trace.csv"
    trace.write_text("t,voltage_v,current_a,soc_pct,temperature_c\n0,52.0,40.0,60.0,20.0\n10,55.3,20.0,97.0,21.0\n")
    replayed = run(command, "replay", str(trace))
    assert replayed.returncode == 0 and [json.loads(line)["phase"] for line in replayed.stdout.splitlines()] == \
        ["bulk", "absorption"], replayed.stdout

    # A newer version's charge state: one key more. The frames flow, the key is ignored with a
    # warning, the file is not set aside.
    state_dir.mkdir(parents=True, exist_ok=True)
    newer = {"phase": "absorption", "absorption_s": 600.0, "force_charge": False, NEWER_STATE_KEY: 12.5}
    (state_dir / "charge-state.json").write_text(json.dumps(newer))
    status, checked, log_text = simulate(command, work)
    assert status["version"] == "%s+%s" % (version, commit_id[:12])
    assert checked.returncode == 0 and "healthy" in checked.stdout, checked.stdout
    assert "keys this version does not know (%s): ignored" % NEWER_STATE_KEY in log_text
    assert "absorption" in log_text.split("keys this version does not know")[1], log_text[-3000:]
    assert not (state_dir / "charge-state.json.unreadable").exists()


def version_of(python):
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


def kept_files(root, *paths):
    """Content, mode and time of each path: an upgrade or rollback must not rewrite them."""
    entries = tree(root)
    return {path: entries[path] for path in paths}


def test_venus_install_upgrade_rollback_and_uninstall_from_the_archives(releases, tmp_path):
    problem = device_python_problem(DEVICE_PYTHON)
    if problem:
        pytest.skip("no device-like Python 3.9+ with the OS's D-Bus bindings: %s" % problem)
    root = fake_venus(tmp_path)
    found = tree(root, times=False)
    data = root / "data" / "pylon-venus"
    first = extracted(releases.first, tmp_path / "download-1")
    install(first, root, first / "vendor", python=DEVICE_PYTHON)
    assert read(data / "app" / "VERSION").split("\n")[1] == "commit " + releases.first_commit
    assert (data / "app" / "LICENSE").is_file() and (data / "app" / "THIRD-PARTY-LICENSES").is_file()
    assert not (data / "app" / "tests").exists() and not (data / "previous").exists()
    check_installed_tree(root, "/data/pylon-venus", DEVICE_PYTHON, releases.first_version, releases.first_commit,
                         tmp_path / "run", data / "state")

    # The user's settings and the state the service wrote, before the upgrade.
    user_config = data / "config.toml"
    user_config.write_text(read(user_config).replace('profile = "pylon"', 'profile = "deye"'))
    (data / "state" / "energy.json").write_text('{"kwh": {"InverterToAcOut": 1234.5, "AcIn1ToInverter": 987.6}}\n')
    mine = ("data/pylon-venus/config.toml", "data/pylon-venus/state/charge-state.json",
            "data/pylon-venus/state/energy.json")
    before = kept_files(root, *mine)

    second = extracted(releases.second, tmp_path / "download-2")
    upgrade = install(second, root, second / "vendor", python=DEVICE_PYTHON)
    assert "upgrading %s+%s to %s+%s" % (releases.first_version, releases.first_commit[:12],
                                         releases.second_version, releases.second_commit[:12]) in upgrade.stdout
    assert 'RELEASE = "%s"' % releases.second_version in read(data / "app" / "version.py")
    assert 'RELEASE = "%s"' % releases.first_version in read(data / "previous" / "app" / "version.py")
    assert kept_files(root, *mine) == before

    # A setting only the second version knows: the first refuses it, so no rollback until it goes.
    with_new_setting = read(user_config).replace("\n[status]\n", "\n[status]\nhistory_s = 60.0\n")
    assert with_new_setting != read(user_config)
    user_config.write_text(with_new_setting)
    refused_at = tree(root)
    refused = install(data / "app", root, second / "vendor", "--rollback", python=DEVICE_PYTHON, expect=1)
    assert "history_s" in refused.stderr and "not valid for the previous version" in refused.stderr
    assert tree(root) == refused_at
    user_config.write_text(read(user_config).replace("history_s = 60.0\n", ""))
    before = kept_files(root, *mine)

    # The installed copy of install.sh rolls back: the release folders may be gone.
    shutil.rmtree(str(first.parent))
    shutil.rmtree(str(second.parent))
    back = install(data / "app", root, tmp_path / "gone", "--rollback", python=DEVICE_PYTHON)
    assert "rolled back from %s+" % releases.second_version in back.stdout
    assert 'RELEASE = "%s"' % releases.first_version in read(data / "app" / "version.py")
    assert 'RELEASE = "%s"' % releases.second_version in read(data / "previous" / "app" / "version.py")
    assert kept_files(root, *mine) == before
    assert read(data / "service" / "run") == read(data / "app" / "service" / "run")
    forward = install(data / "app", root, tmp_path / "gone", "--rollback", python=DEVICE_PYTHON)
    assert "rolled back from %s+" % releases.first_version in forward.stdout
    assert 'RELEASE = "%s"' % releases.second_version in read(data / "app" / "version.py")
    assert kept_files(root, *mine) == before

    install(data / "app", root, tmp_path / "gone", "--uninstall", python=DEVICE_PYTHON)
    assert tree(root, times=False) == found


def python38_os_packages():
    """D-Bus and GLib bindings for Python 3.8 (what Venus OS v3.00-v3.5x ships), from the py38
    venv that dev/test.sh builds, alone in a folder: nothing else of that venv comes along."""
    site = os.path.join(PROJECT, ".venv", "py38", "lib", "python3.8", "site-packages")
    names = [n for n in (os.listdir(site) if os.path.isdir(site) else [])
             if n in ("dbus", "gi") or n.startswith(("_dbus_bindings.", "_dbus_glib_bindings."))]
    return site, names


@pytest.mark.skipif(PYTHON38 is None, reason=NO_PYTHON38)
def test_systemd_install_upgrade_rollback_and_uninstall_from_the_archives_on_python_3_8(releases, tmp_path):
    site, names = python38_os_packages()
    if len(names) < 4:
        pytest.skip("no D-Bus bindings for Python 3.8 in %s (dev/test.sh builds them): the simulation needs them"
                    % site)
    os_packages = tmp_path / "os-packages"
    os_packages.mkdir()
    for name in names:
        (os_packages / name).symlink_to(os.path.join(site, name))
    root = fake_debian(tmp_path)
    found = tree(root, times=False)
    first = extracted(releases.first, tmp_path / "download")
    install(first, root, first / "vendor", python=PYTHON38)
    assert (root / "etc" / "pylon-venus" / "config.toml").is_file()
    check_installed_tree(root, "/opt/pylon-venus", PYTHON38, releases.first_version, releases.first_commit,
                         tmp_path / "run", root / "var" / "lib" / "pylon-venus", str(os_packages))
    mine = ("etc/pylon-venus/config.toml", "var/lib/pylon-venus/charge-state.json")
    before = kept_files(root, *mine)

    second = extracted(releases.second, tmp_path / "download-2")
    upgrade = install(second, root, second / "vendor", python=PYTHON38)
    assert "upgrading %s+" % releases.first_version in upgrade.stdout
    assert "not running: systemctl restart pylon-venus.service" in upgrade.stdout
    app = root / "opt" / "pylon-venus" / "app"
    back = install(app, root, tmp_path / "gone", "--rollback", python=PYTHON38)
    assert "rolled back from %s+" % releases.second_version in back.stdout
    assert "not running: systemctl restart pylon-venus.service" in back.stdout
    assert 'RELEASE = "%s"' % releases.first_version in read(app / "version.py")
    assert kept_files(root, *mine) == before

    shutil.rmtree(str(root / "var"))  # the service's StateDirectory, which systemd makes (not the installer)
    install(app, root, tmp_path / "gone", "--uninstall", python=PYTHON38)
    assert tree(root, times=False) == found
