"""install.sh, run for real into fake Venus and systemd trees (--root), with the wheels that
dev/bundle-deps.sh downloads: complete, idempotent, keeps the user's config on upgrade, and
uninstalls back to exactly the tree it found."""
import hashlib
import os
import shutil
import stat
import subprocess
import sys

import pytest

import config
from tests import python38

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

PROJECT = os.path.dirname(config.DEFAULT_PATH)
NOT_SOURCE = {".git", ".venv", "vendor", "tests", "__pycache__", ".pytest_cache", ".hypothesis"}
# Venus OS v3.00 - v3.5x runs Python 3.8: wherever this machine has one (tests/python38.py).
PYTHON38, NO_PYTHON38 = python38.find()
HOOK = ("if [ -d /data/pylon-venus/service ]; then ln -sfn /data/pylon-venus/service /service/pylon-venus"
        " || true; fi  # pylon-venus: added by install.sh, removed by install.sh --uninstall")
OTHER_RC_LOCAL = "#!/bin/bash\n/data/other-driver/start.sh &\n\nexit 0\n"


# --- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def vendor(tmp_path_factory):
    """The release step: wheels for both Python generations, downloaded once per session (also
    for test_release.py, which imports this fixture). Without PyPI the tests that need them
    are skipped, saying so; a bundle that fails while PyPI answers fails."""
    folder = tmp_path_factory.getbasetemp() / "vendor"
    if (folder / "py39" / "SHA256SUMS").is_file():
        return folder
    result = subprocess.run(["sh", os.path.join(PROJECT, "dev", "bundle-deps.sh"), str(folder)],
                            env=dict(os.environ, PYTHON=sys.executable),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        shutil.rmtree(str(folder), ignore_errors=True)
        probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                                "--dest", str(tmp_path_factory.mktemp("probe")), "sdnotify==0.3.2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if probe.returncode != 0:
            pytest.skip("PyPI is unreachable, so dev/bundle-deps.sh cannot download the wheels: %s"
                        % (probe.stdout.strip().splitlines() or ["pip failed"])[-1])
    assert result.returncode == 0, result.stdout
    return folder


@pytest.fixture(scope="module")
def frozen_source(tmp_path_factory):
    """A copy of the source tree, so the tree under test does not move while others edit it."""
    folder = tmp_path_factory.mktemp("source") / "pylon-venus"
    shutil.copytree(PROJECT, str(folder), ignore=lambda _dir, names: [n for n in names if n in NOT_SOURCE])
    return folder


@pytest.fixture
def source(frozen_source, tmp_path):
    folder = tmp_path / "source"
    shutil.copytree(str(frozen_source), str(folder))
    return folder


def python_bin(tmp_path, interpreter):
    """A PATH folder whose python3 is ``interpreter``: the device's Python for the installer."""
    folder = tmp_path / ("bin-" + os.path.basename(interpreter))
    folder.mkdir(exist_ok=True)
    link = folder / "python3"
    if not link.exists():
        link.symlink_to(interpreter)
    return str(folder)


def install(source, root, vendor, *args, python=sys.executable, expect=0):
    env = dict(os.environ, PATH=python_bin(root.parent, python) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(["sh", str(source / "install.sh"), "--root", str(root), "--vendor", str(vendor)]
                            + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def fake_net(root, **interfaces):
    """/sys/class/net with the given interface types (280: CAN)."""
    for name, kind in dict(eth0=1, lo=772, **interfaces).items():
        folder = root / "sys" / "class" / "net" / name
        folder.mkdir(parents=True)
        (folder / "type").write_text("%d\n" % kind)


def fake_venus(tmp_path, rc_local=OTHER_RC_LOCAL, rc_mode=0o755, **can):
    root = tmp_path / "venus"
    for folder in ("opt/victronenergy/gui", "data/conf", "service/vecan-dbus.can0", "var/log"):
        (root / folder).mkdir(parents=True)
    fake_net(root, **(can or {"can1": 280}))
    if rc_local is not None:
        (root / "data" / "rc.local").write_text(rc_local)
        (root / "data" / "rc.local").chmod(rc_mode)
    return root


def fake_debian(tmp_path, **can):
    root = tmp_path / "debian"
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    (root / "opt").mkdir()
    fake_net(root, **(can or {"can0": 280}))
    return root


def tree(root, times=True):
    """Every path under root: type and mode, and the content hash (and mtime) or link target."""
    entries = {}
    for folder, folders, files in os.walk(str(root)):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                entry = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entry = ("dir", mode)
            else:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                entry = ("file", mode, digest, info.st_mtime_ns if times else None)
            entries[os.path.relpath(path, str(root))] = entry
    return entries


def read(path):
    with open(str(path)) as handle:
        return handle.read()


def load_toml(path):
    with open(str(path), "rb") as handle:
        return tomllib.load(handle)


def installed_wrapper(root, prefix, config_path):
    """The installed bin/pylon-venus with its device paths pointed into the fake root."""
    text = read(root / prefix.lstrip("/") / "bin" / "pylon-venus")
    text = text.replace('"%s"' % prefix, '"%s%s"' % (root, prefix))
    text = text.replace('"%s"' % config_path, '"%s%s"' % (root, config_path))
    wrapper = root.parent / "pylon-venus-wrapper"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    return str(wrapper)


# --- Venus OS ----------------------------------------------------------------------------
def test_venus_install_reinstall_upgrade_and_uninstall(source, vendor, tmp_path):
    root = fake_venus(tmp_path)
    found = tree(root, times=False)
    (source / "workers" / "retired.py").write_text('"""A module the next version drops."""\n')
    first = install(source, root, vendor)
    data = root / "data" / "pylon-venus"

    user = load_toml(data / "config.toml")
    assert user["can"] == {"interface": "socketcan", "channel": "can1"}
    assert user["battery"]["source"] == "dbus"
    assert user["simulation"]["inverter"] is False
    assert user["status"]["file"].startswith("/run/")
    config.load(str(data / "config.toml"))  # valid for the project's schema
    for name in ("supervisor.py", "config.py", "config.toml", "service/can_link.py", "protocol/__init__.py",
                 "venus/busitem.py"):
        assert read(data / "app" / name) == read(source / name), name
    assert not (data / "app" / "tests").exists() and not (data / "app" / "dev").exists()
    assert (data / "lib" / "py38" / "can" / "__init__.py").is_file()
    assert (data / "lib" / "py39" / "can" / "__init__.py").is_file()
    for script in ("run", "log/run"):
        installed = data / "service" / script
        assert read(installed) == read(source / "service" / script)
        assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert "exec multilog t s500000 n4 /var/log/pylon-venus" in read(data / "service" / "log" / "run")
    assert "exec /data/pylon-venus/bin/pylon-venus run" in read(data / "service" / "run")
    wrapper = read(data / "bin" / "pylon-venus")
    assert 'prefix="/data/pylon-venus"' in wrapper and 'config="/data/pylon-venus/config.toml"' in wrapper
    assert os.readlink(str(root / "service" / "pylon-venus")) == "/data/pylon-venus/service"
    # The hook runs before the closing exit; the other lines stay as they were.
    assert read(root / "data" / "rc.local") == OTHER_RC_LOCAL.replace("exit 0\n", HOOK + "\nexit 0\n")
    assert stat.S_IMODE((root / "data" / "rc.local").stat().st_mode) == 0o755
    assert "Profile becomes 8" in first.stdout and "not calling D-Bus" in first.stdout

    installed = tree(root)
    second = install(source, root, vendor)
    assert tree(root) == installed  # not a file rewritten: same content, mode and time
    assert "nothing changed" in second.stdout

    # An upgrade: the user's change stays, the code is the new one, dropped modules go.
    user_config = data / "config.toml"
    user_config.write_text(read(user_config).replace('profile = "pylon"', 'profile = "deye"'))
    kept = tree(root)["data/pylon-venus/config.toml"]
    (source / "workers" / "retired.py").unlink()
    (source / "supervisor.py").write_text(read(source / "supervisor.py") + "\n# the next version\n")
    upgrade = install(source, root, vendor)
    assert tree(root)["data/pylon-venus/config.toml"] == kept
    assert read(data / "app" / "supervisor.py").endswith("# the next version\n")
    assert not [name for _, _, files in os.walk(str(data / "app")) for name in files if "retired" in name]
    assert read(root / "data" / "rc.local").count(HOOK) == 1
    assert "installed /data/pylon-venus/app, lib and bin" in upgrade.stdout
    assert "kept for install.sh --rollback" in upgrade.stdout
    assert not read(data / "previous" / "app" / "supervisor.py").endswith("# the next version\n")
    assert (data / "previous" / "app" / "workers" / "retired.py").is_file()

    # A config the new version refuses stops the upgrade before anything is replaced.
    user_config.write_text(read(user_config) + "\n[charge]\nfloat_voltage_v = 99.0\n")
    (source / "supervisor.py").write_text(read(source / "supervisor.py") + "# and the one after\n")
    before_refusal = tree(root)
    refused = install(source, root, vendor, expect=1)
    assert "float_voltage_v = 99" in refused.stderr and "is not valid for this version" in refused.stderr
    assert tree(root) == before_refusal

    (root / "var" / "log" / "pylon-venus").mkdir()  # what multilog makes when the service runs
    (root / "var" / "log" / "pylon-venus" / "current").write_text("@4000 started\n")
    # The installed copy of install.sh uninstalls: the release folder may be gone by then.
    removed = install(data / "app", root, vendor, "--uninstall")
    assert tree(root, times=False) == found
    assert "svc -dx /data/pylon-venus/service" in removed.stdout  # said, not run, under --root


@pytest.mark.parametrize("rc_local, rc_mode", [
    ("#!/bin/sh\n/data/other-driver/start.sh &", 0o644),  # no final newline, not executable
    (None, None),  # none yet: the install creates it
], ids=["unterminated-not-executable", "absent"])
def test_venus_uninstall_restores_any_rc_local_exactly(source, vendor, tmp_path, rc_local, rc_mode):
    root = fake_venus(tmp_path, rc_local=rc_local, rc_mode=rc_mode)
    found = tree(root, times=False)
    install(source, root, vendor)
    rc_local_path = root / "data" / "rc.local"
    assert HOOK + "\n" in read(rc_local_path)
    assert os.access(str(rc_local_path), os.X_OK)  # Venus runs it only when executable
    install(source, root, vendor, "--uninstall")
    assert tree(root, times=False) == found


def test_venus_uninstall_keeps_lines_added_to_an_rc_local_it_created(source, vendor, tmp_path):
    root = fake_venus(tmp_path, rc_local=None)
    install(source, root, vendor)
    rc_local_path = root / "data" / "rc.local"
    rc_local_path.write_text(read(rc_local_path) + "/data/later-driver/start.sh\n")
    install(source, root, vendor, "--uninstall")
    assert read(rc_local_path) == "#!/bin/sh\n/data/later-driver/start.sh\n"


@pytest.mark.skipif(PYTHON38 is None, reason=NO_PYTHON38)
def test_install_with_python_3_8_as_on_venus_before_v3_60(source, vendor, tmp_path):
    root = fake_venus(tmp_path)
    install(source, root, vendor, python=PYTHON38)
    data = root / "data" / "pylon-venus"
    caches = {name for folder, _, files in os.walk(str(data / "app")) for name in files if name.endswith(".pyc")}
    assert caches and all(".cpython-38." in name for name in caches)  # the whole project compiles on 3.8
    probe = subprocess.run(
        [PYTHON38, "-S", "-c", "import can, sdnotify, tomli, can.interfaces.socketcan;"
                               "print(can.__version__)"],
        env=dict(os.environ, PYTHONPATH=str(data / "lib" / "py38")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert probe.stdout.strip() == "4.5.0", probe.stdout


def fake_python(folder, version, executable):
    """A script that answers the finder's probe like an interpreter of ``version`` at ``executable``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python3.8"
    path.write_text("#!/bin/sh\necho %s\necho %s\n" % (version, executable))
    path.chmod(0o755)
    return str(path)


def test_python_3_8_is_found_by_variable_then_path_then_pyenv(tmp_path, monkeypatch):
    monkeypatch.delenv(python38.VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    assert python38.find()[0] is None and "no Python 3.8 found" in python38.find()[1]
    fake_python(tmp_path / "pyenv" / "versions" / "3.8.20" / "bin", "3.8", "/opt/pyenv-3.8")
    assert python38.find() == ("/opt/pyenv-3.8", "")
    fake_python(tmp_path / "bin", "3.8", "/usr/local/bin/python3.8")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert python38.find() == ("/usr/local/bin/python3.8", "")
    monkeypatch.setenv(python38.VARIABLE, fake_python(tmp_path / "named", "3.8", "/named/python3.8"))
    assert python38.find() == ("/named/python3.8", "")
    monkeypatch.setenv(python38.VARIABLE, fake_python(tmp_path / "wrong", "3.11", "/usr/bin/python3.11"))
    assert python38.find() == (None, "$%s = %s is not a working Python 3.8" % (python38.VARIABLE,
                                                                               tmp_path / "wrong" / "python3.8"))


# --- systemd -----------------------------------------------------------------------------
def test_systemd_install_reinstall_upgrade_and_uninstall(source, vendor, tmp_path):
    root = fake_debian(tmp_path)
    found = tree(root, times=False)
    first = install(source, root, vendor)
    units = root / "etc" / "systemd" / "system"

    assert read(units / "pylon-venus.service") == read(source / "service" / "pylon-venus.service")
    can_unit = read(units / "pylon-venus-can.service")
    assert "BindsTo=sys-subsystem-net-devices-can0.device" in can_unit and "@" not in can_unit
    assert os.readlink(str(units / "multi-user.target.wants" / "pylon-venus.service")) == \
        "/etc/systemd/system/pylon-venus.service"
    assert os.readlink(str(units / "sys-subsystem-net-devices-can0.device.wants" / "pylon-venus-can.service")) == \
        "/etc/systemd/system/pylon-venus-can.service"
    assert os.readlink(str(root / "usr" / "local" / "bin" / "pylon-venus")) == "/opt/pylon-venus/bin/pylon-venus"
    assert load_toml(root / "etc" / "pylon-venus" / "config.toml")["can"]["channel"] == "can0"
    assert (root / "opt" / "pylon-venus" / "app" / "supervisor.py").is_file()
    assert not (root / "data").exists()
    assert "not running: systemctl restart pylon-venus.service" in first.stdout
    check_units(root, tmp_path)
    check_installed_command(root)

    installed = tree(root)
    second = install(source, root, vendor)
    assert tree(root) == installed and "nothing changed" in second.stdout
    assert "not running: systemctl start pylon-venus.service" in second.stdout

    user_config = root / "etc" / "pylon-venus" / "config.toml"
    user_config.write_text(read(user_config).replace('channel = "can0"', 'channel = "can3"'))
    install(source, root, vendor)
    assert 'channel = "can3"' in read(user_config)
    assert "sys-subsystem-net-devices-can3.device" in read(units / "pylon-venus-can.service")
    assert not (units / "sys-subsystem-net-devices-can0.device.wants").exists()
    assert (units / "sys-subsystem-net-devices-can3.device.wants" / "pylon-venus-can.service").is_symlink()

    install(source, root, vendor, "--uninstall")
    assert tree(root, times=False) == found


def check_units(root, tmp_path):
    """systemd's own parser accepts both installed units without a word."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # not a systemd machine; the unit text is still checked below
    checked = tmp_path / "units"
    checked.mkdir()
    for unit in ("pylon-venus.service", "pylon-venus-can.service"):
        text = read(root / "etc" / "systemd" / "system" / unit)
        # ExecStart must name an executable: the installed one, inside the fake root.
        (checked / unit).write_text(text.replace("/opt/pylon-venus/", "%s/opt/pylon-venus/" % root))
    result = subprocess.run([analyze, "verify"] + [str(checked / u) for u in sorted(os.listdir(str(checked)))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout


def check_installed_command(root):
    """bin/pylon-venus reaches the supervisor and can_link.py with the bundled libraries and
    the user's config."""
    wrapper = installed_wrapper(root, "/opt/pylon-venus", "/etc/pylon-venus/config.toml")

    def run(*args):
        return subprocess.run([wrapper] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)

    shown = run("can-link", "show")
    assert (shown.returncode, shown.stdout) == (0, "socketcan can0 500000\n")
    status = run("status")
    assert status.returncode == 1 and "no status file at /run/pylon-venus/status.json" in status.stdout
    assert run("--version").returncode == 0


def test_systemd_service_runs_without_privileges_and_with_the_watchdog():
    unit = read(os.path.join(PROJECT, "service", "pylon-venus.service"))
    lines = set(unit.splitlines())
    for wanted in ("Type=notify", "Restart=always", "DynamicUser=yes", "CapabilityBoundingSet=",
                   "AmbientCapabilities=", "NoNewPrivileges=yes", "RuntimeDirectory=pylon-venus",
                   "ExecStart=/opt/pylon-venus/bin/pylon-venus run",
                   "SupplementaryGroups=dialout"):      # the VE.Direct serial port, root:dialout 0660
        assert wanted in lines, wanted
    assert any(line.startswith("WatchdogSec=") for line in lines)
    assert not any(line.startswith("User=root") or line.startswith("Group=") for line in lines)
    can_unit = set(read(os.path.join(PROJECT, "service", "pylon-venus-can.service")).splitlines())
    assert "CapabilityBoundingSet=CAP_NET_ADMIN" in can_unit


def test_several_can_interfaces_need_a_choice(source, vendor, tmp_path):
    root = fake_venus(tmp_path, can0=280, can1=280)
    found = tree(root, times=False)
    refused = install(source, root, vendor, expect=1)
    assert "several CAN interfaces: can0 can1" in refused.stderr and "--can IFACE" in refused.stderr
    assert tree(root, times=False) == found
    install(source, root, vendor, "--can", "can1")
    assert load_toml(root / "data" / "pylon-venus" / "config.toml")["can"]["channel"] == "can1"
    changed_mind = install(source, root, vendor, "--can", "can0", expect=1)
    assert "names channel can1" in changed_mind.stderr


@pytest.mark.parametrize("args, message", [
    (["--can", "can0; rm -rf /"], "CAN interface 'can0; rm -rf /' is not allowed"),
    (["--can", "a" * 16], "at most 15 characters"),
    (["--target", "windows"], "--target windows is not allowed: expected venus or systemd"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
])
def test_bad_arguments_are_refused_with_what_is_allowed(source, vendor, tmp_path, args, message):
    root = fake_venus(tmp_path)
    found = tree(root, times=False)
    result = install(source, root, vendor, *args, expect=1)
    assert message in result.stderr
    assert tree(root, times=False) == found


def test_unknown_target_and_missing_bundle_are_explained(source, vendor, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    assert "pass --target venus or --target systemd" in install(source, bare, vendor, expect=1).stderr
    root = fake_venus(tmp_path)
    found = tree(root, times=False)
    empty = tmp_path / "no-vendor"
    empty.mkdir()
    result = install(source, root, empty, expect=1)
    assert "run dev/bundle-deps.sh" in result.stderr
    assert tree(root, times=False) == found


def test_a_tampered_wheel_is_refused(source, vendor, tmp_path):
    copy = tmp_path / "vendor"
    shutil.copytree(str(vendor), str(copy))
    wheel = next(name for name in os.listdir(str(copy / "py39")) if name.startswith("python_can"))
    with open(str(copy / "py39" / wheel), "ab") as handle:
        handle.write(b"\0")
    root = fake_venus(tmp_path)
    refused = install(source, root, copy, expect=1).stderr
    assert "does not match SHA256SUMS" in refused and "bundle again with dev/bundle-deps.sh" in refused
    assert not (root / "data" / "pylon-venus").exists()


# --- the bundle and the scripts ----------------------------------------------------------
def test_bundle_holds_pure_pinned_wheels_for_both_python_generations(vendor):
    for set_name, can_version in (("py38", "4.5.0"), ("py39", "4.6.1")):
        wheels = sorted(name for name in os.listdir(str(vendor / set_name)) if name.endswith(".whl"))
        assert all(name.endswith("-none-any.whl") for name in wheels), wheels
        names = {name.split("-")[0].lower() for name in wheels}
        assert names == {"python_can", "wrapt", "packaging", "typing_extensions", "tomli", "sdnotify", "msgpack",
                         "pyserial", "paho_mqtt"}
        assert "python_can-%s-py3-none-any.whl" % can_version in wheels
        listed = read(vendor / set_name / "SHA256SUMS").split()
        assert sorted(listed[1::2]) == wheels


def shell_scripts():
    """Every shell script of the project: *.sh, or a file whose first line names sh or bash."""
    scripts = []
    for folder, folders, files in os.walk(PROJECT):
        folders[:] = [f for f in folders if f not in NOT_SOURCE - {"tests"}]
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                first = handle.readline(100)
            if name.endswith(".sh") or (first.startswith(b"#!") and (b"sh\n" in first or b"bash" in first)):
                scripts.append(path)
    return sorted(scripts)


def test_every_shell_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: apt-get install shellcheck"
    scripts = shell_scripts()
    assert os.path.join(PROJECT, "install.sh") in scripts and os.path.join(PROJECT, "service", "run") in scripts
    result = subprocess.run([shellcheck] + scripts, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout
