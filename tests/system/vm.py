"""Run the system tests inside a small VM that boots Debian's kernel, which has SocketCAN.

This machine's own kernel has no CAN, so ``vng`` (virtme-ng) boots the installed Debian
kernel under qemu (no KVM here) on a read-only view of this machine's root filesystem:
the same venv, the same project tree. One boot runs a whole tier. The guest loads the
CAN modules, sets up the tier's interfaces and runs pytest; junit, log and exit code land
in a results folder that the VM may write. When the VM cannot be started or set up, the
run fails and says why: system tests are never skipped silently.

Two tiers (``--tier``):
* ``vcan``: virtual interfaces, no bit rate, no TX queue limit, no error states;
* ``sja1000``: four emulated Kvaser PCICAN cards (SJA1000 controllers, driven by Debian's
  kvaser_pci/sja1000 drivers) on one emulated bus, can0 to can3, each brought up by the
  installer's own link set-up (service/can_link.py: bit rate, restart-ms, txqueuelen).
  can0 is the device, can1 the inverter, can2 the judge; a hot-standby pair has its devices
  on can0 and can1, its inverter on can2 and its judge on can3.

Host:  python tests/system/vm.py [--tier T] [--results DIR] [--timeout S] [-- PYTEST_ARGS...]
       (or tests/system/run_in_vm.sh, which picks the venv's python)
Guest: python -S tests/system/vm.py --guest --results DIR [-- PYTEST_ARGS...] (run by the host)
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

PROJECT_DIR = Path(__file__).resolve().parents[2]
RESULTS_ROOT = PROJECT_DIR / "tests" / "system" / "results"   # git-ignored
KEPT_RUNS = 5  # older run-* folders in RESULTS_ROOT are removed
CONTROLLER_TESTS = "tests/system/test_controllers.py"     # needs real controllers: sja1000 tier only
DEFAULT_PYTEST_ARGS = {
    "vcan": ["tests/system", "-v", "--ignore=" + CONTROLLER_TESTS],
    "sja1000": ["tests/system/test_daemon.py", "tests/system/test_standby.py", "tests/system/test_hv.py",
                CONTROLLER_TESTS, "-v"],
}

# conftest.py reads these: they prove the tests run inside the VM and name what it set up.
IN_VM_ENV = "PYLON_VENUS_SYSTEM_VM"
RESULTS_DIR_ENV = "PYLON_VENUS_SYSTEM_RESULTS"
TIER_ENV = "PYLON_VENUS_SYSTEM_TIER"
CHANNELS_ENV = "PYLON_VENUS_SYSTEM_CHANNELS"

VCAN_INTERFACES = ("vcan0", "vcan1")
CAN_MODULES = ("can-raw", "can-bcm", "can-gw", "vcan", "vxcan", "slcan")
CONTROLLER_INTERFACES = ("can0", "can1", "can2", "can3")
CONTROLLER_MODULES = ("can-dev", "sja1000", "kvaser_pci")
# One emulated CAN bus with one Kvaser PCICAN card (an SJA1000) per interface.
CONTROLLER_QEMU_OPTS = " ".join(["-object can-bus,id=canbus0"] + [
    "-device kvaser_pci,canbus=canbus0"] * len(CONTROLLER_INTERFACES))

# Modules that udev would load for qemu's emulated hardware (KVM, CD-ROM, AHCI, watchdogs,
# accelerated crypto...). None is needed, and loading them under emulation costs ~15 s.
UNNEEDED_MODULES = (
    "kvm", "kvm_amd", "kvm_intel", "ccp", "irqbypass", "sr_mod", "cdrom", "sg", "ahci",
    "iTCO_wdt", "intel_pmc_bxt", "i6300esb", "evdev", "psmouse", "serio_raw", "pcspkr",
    "i2c_i801", "lpc_ich", "qemu_fw_cfg", "button", "powernow_k8", "acpi_cpufreq",
    "crct10dif_pclmul", "crc32_pclmul", "crc32c_intel", "ghash_clmulni_intel",
    "sha1_ssse3", "sha256_ssse3", "sha512_ssse3", "aesni_intel",
)

# vng shares / over 9p without caching, so every file lookup is a round trip to the host:
# importing python-can takes 5-20 s. A second, cached (read-only) share of / is bound over
# the code that the tests run: /usr and the venv. Python imports then run 2-4x faster.
CACHED_ROOT_TAG = "cachedroot"
CACHED_ROOT_QEMU_OPTS = (
    "-fsdev local,id={tag},path=/,security_model=none,readonly=on,multidevs=remap "
    "-device virtio-9p-pci,fsdev={tag},mount_tag={tag}".format(tag=CACHED_ROOT_TAG))
CACHED_ROOT_MOUNT = "/run/" + CACHED_ROOT_TAG

# Exit code when no test result exists because the VM failed; distinct from pytest's 0-5.
VM_FAILED = 100

EXIT_CODE_FILE = "exit_code"
SETUP_ERROR_FILE = "setup_error"
PYTEST_LOG_FILE = "pytest.log"
JUNIT_FILE = "junit.xml"
ARTIFACTS_DIR = "artifacts"  # per-test files (candump logs); conftest.py writes there


class VmError(Exception):
    """The VM could not be started or set up; the message says why and what to do."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse_args(argv)
    if args.guest:
        return guest_main(Path(args.results), args.tier, args.pytest_args)
    try:
        return host_main(args)
    except VmError as error:
        print("system tests: FAILED, the VM could not run them: %s" % error, file=sys.stderr)
        return VM_FAILED


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tier", choices=sorted(DEFAULT_PYTEST_ARGS), default="vcan",
                        help="vcan: virtual interfaces; sja1000: emulated SJA1000 controllers on one "
                             "emulated bus (default: vcan)")
    parser.add_argument("--results", help="folder for junit.xml, pytest.log, exit_code and "
                                           "artifacts/ (default: a new %s/run-*)" % RESULTS_ROOT)
    parser.add_argument("--timeout", type=float, default=1500.0,
                        help="seconds for boot plus the whole suite before the VM is killed (a guard against "
                             "a hang: a tier takes 10 to 13 minutes on a 2-core machine without KVM)")
    parser.add_argument("--kernel", help="kernel image to boot (default: newest /boot/vmlinuz-* "
                                         "whose modules include vcan)")
    parser.add_argument("--memory", default="1G", help="guest memory, qemu syntax")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("pytest_args", nargs="*",
                        help="arguments for pytest after --, default: the tier's (vcan: %s)"
                             % " ".join(DEFAULT_PYTEST_ARGS["vcan"]))
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds, got %s" % args.timeout)
    return args


# --------------------------------------------------------------------------- host side

def host_main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    vng = _venv_tool("vng")
    kernel = Path(args.kernel) if args.kernel else find_can_kernel()
    if not kernel.is_file():
        raise VmError("kernel image %s does not exist" % kernel)
    if shutil.which("qemu-system-x86_64") is None:
        raise VmError("qemu-system-x86_64 is missing: run dev/install-vm-deps.sh as root")
    results = _fresh_results_dir(Path(args.results)) if args.results else _new_run_dir()

    # -S: the guest side needs only the standard library; skipping site saves ~2 s in the VM.
    pytest_args = args.pytest_args or DEFAULT_PYTEST_ARGS[args.tier]
    guest_command = [sys.executable, "-S", str(Path(__file__).resolve()), "--guest", "--tier", args.tier,
                     "--results", str(results), "--"] + pytest_args
    qemu_opts = CACHED_ROOT_QEMU_OPTS + (" " + CONTROLLER_QEMU_OPTS if args.tier == "sja1000" else "")
    command = [
        str(vng), "--run", str(kernel),
        "--disable-kvm",       # KVM does not work on these machines
        "--force-9p",          # Debian 12 has no Rust virtiofsd; vng would wait 3 s to find out
        "--cpus", str(args.cpus), "--memory", args.memory,
        "--cwd", str(PROJECT_DIR),
        "--rwdir=%s" % results,
        "--append", "modprobe.blacklist=" + ",".join(UNNEEDED_MODULES),
        "--qemu-opts=" + qemu_opts,
        "--exec", shlex.join(guest_command),
    ]
    print("system tests (%s tier): booting %s in a VM (no KVM), then: pytest %s"
          % (args.tier, kernel.name, " ".join(pytest_args)), flush=True)
    vng_exit = _run_streaming(command, args.timeout, env=_path_with(vng.parent))
    return _collect_result(results, args.tier, vng_exit, time.monotonic() - started)


def find_can_kernel() -> Path:
    """The newest installed kernel whose module tree has vcan (Debian's linux-image-amd64)."""
    candidates = []
    for image in Path("/boot").glob("vmlinuz-*"):
        version = image.name[len("vmlinuz-"):]
        if any(Path("/lib/modules", version).glob("kernel/drivers/net/can/vcan.ko*")):
            candidates.append((_version_key(version), image))
    if not candidates:
        raise VmError("no /boot/vmlinuz-* with vcan in /lib/modules/<version>: "
                      "run dev/install-vm-deps.sh as root (installs linux-image-amd64)")
    return max(candidates)[1]


def _version_key(version: str) -> List[object]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-+]", version)]


def _venv_tool(name: str) -> Path:
    tool = Path(sys.executable).parent / name
    if not tool.exists():
        raise VmError("%s is missing beside %s: run dev/install-vm-deps.sh (pip installs "
                      "virtme-ng into the venv)" % (name, sys.executable))
    return tool


def _path_with(directory: Path) -> dict:
    """vng runs virtme-run through PATH, so the venv's bin must be on it."""
    env = dict(os.environ)
    env["PATH"] = "%s%s%s" % (directory, os.pathsep, env.get("PATH", os.defpath))
    return env


def _new_run_dir() -> Path:
    """A folder of this run's own, so that runs at the same time do not mix their results."""
    RESULTS_ROOT.mkdir(parents=True, exist_ok=True)
    results = Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=str(RESULTS_ROOT)))
    older = sorted(RESULTS_ROOT.glob("run-*"), key=lambda run: run.stat().st_mtime)[:-KEPT_RUNS]
    for run in older:
        shutil.rmtree(str(run), ignore_errors=True)
    return results


def _fresh_results_dir(results: Path) -> Path:
    """Create the folder, removing only what an earlier run left in it."""
    results = results.resolve()
    results.mkdir(parents=True, exist_ok=True)
    for name in (EXIT_CODE_FILE, SETUP_ERROR_FILE, PYTEST_LOG_FILE, JUNIT_FILE):
        (results / name).unlink(missing_ok=True)
    shutil.rmtree(str(results / ARTIFACTS_DIR), ignore_errors=True)
    return results


def _run_streaming(command: List[str], timeout_s: float, env: dict) -> int:
    """Run vng, copying its output here line by line; kill the whole VM after timeout_s.

    Its output goes through a pipe on purpose: qemu reopens /proc/self/fd/1, which truncates
    stdout when that is a regular file (a CI log), so vng must never write to it directly.
    """
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pump = threading.Thread(target=_copy_output, args=(process.stdout,), daemon=True)
    pump.start()
    try:
        exit_code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise VmError("the VM ran longer than %.0f s and was killed (see the output above "
                      "for the test it hung in; --timeout changes the limit)" % timeout_s)
    except BaseException:
        _kill_group(process)
        raise
    pump.join(timeout=5)
    return exit_code


def _copy_output(stream) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.buffer.write(line)
        sys.stdout.flush()


def _kill_group(process: subprocess.Popen) -> None:
    for sig, grace_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _collect_result(results: Path, tier: str, vng_exit: int, elapsed_s: float) -> int:
    setup_error = results / SETUP_ERROR_FILE
    if setup_error.exists():
        raise VmError("the VM booted but setting it up failed: %s"
                      % setup_error.read_text().strip())
    exit_file = results / EXIT_CODE_FILE
    if not exit_file.exists():
        raise VmError("vng exited with %d before pytest wrote %s (the VM did not boot or "
                      "the guest crashed; vng's output is above)" % (vng_exit, exit_file))
    pytest_exit = int(exit_file.read_text())
    print("system tests (%s tier): pytest exit %d after %.0f s in the VM; results in %s"
          % (tier, pytest_exit, elapsed_s, results), file=sys.stderr, flush=True)
    return pytest_exit


# -------------------------------------------------------------------------- guest side

def guest_main(results: Path, tier: str, pytest_args: List[str]) -> int:
    """Inside the VM: cached code, multicast on lo, CAN modules and the tier's interfaces, then pytest."""
    try:
        _use_cached_root()
        _set_up_loopback_multicast()
        _set_up_can()
        interfaces = _set_up_controllers(results) if tier == "sja1000" else VCAN_INTERFACES
    except VmError as error:
        (results / SETUP_ERROR_FILE).write_text("%s\n" % error)
        print("system tests: setting up the VM failed: %s" % error, flush=True)
        return VM_FAILED
    print("system tests (%s tier): kernel %s, booted in %.1f s, interfaces %s"
          % (tier, os.uname().release, _uptime_s(), " ".join(interfaces)), flush=True)

    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    env.update({IN_VM_ENV: "1", RESULTS_DIR_ENV: str(results), TIER_ENV: tier, CHANNELS_ENV: ",".join(interfaces)})
    # The tree is read-only in the VM: no cache; no hypothesis plugin (no database, slow import).
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
               "--junitxml", str(results / JUNIT_FILE)] + (pytest_args or DEFAULT_PYTEST_ARGS[tier])
    with (results / PYTEST_LOG_FILE).open("wb") as log:
        process = subprocess.Popen(command, cwd=str(PROJECT_DIR), env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        for line in iter(process.stdout.readline, b""):
            log.write(line)
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        exit_code = process.wait()
    (results / EXIT_CODE_FILE).write_text("%d\n" % exit_code)
    return exit_code


def _use_cached_root() -> None:
    """Bind the cached share over /usr and the venv (see CACHED_ROOT_TAG)."""
    os.makedirs(CACHED_ROOT_MOUNT, exist_ok=True)
    _guest_run(["mount", "-t", "9p", "-o", "ro,trans=virtio,version=9p2000.L,access=any,"
                "msize=524288,cache=loose", CACHED_ROOT_TAG, CACHED_ROOT_MOUNT],
               "mount the cached view of the host's root")
    venv = str(Path(sys.executable).parent.parent)  # sys.prefix is not the venv under -S
    for path in ("/usr", venv):
        _guest_run(["mount", "--bind", CACHED_ROOT_MOUNT + path, path],
                   "use the cached view for %s" % path)


def _set_up_loopback_multicast() -> None:
    """The VM has no network, so no route for multicast: python-can's udp_multicast bus (the
    simulation's) then fails with ENODEV. Route multicast to loopback, as a host route would."""
    _guest_run(["ip", "link", "set", "lo", "multicast", "on"], "enable multicast on lo")
    _guest_run(["ip", "route", "add", "224.0.0.0/4", "dev", "lo"], "route multicast to lo")


def _set_up_can() -> None:
    for module in CAN_MODULES:
        _guest_run(["modprobe", module], "load kernel module %s" % module)
    for name in VCAN_INTERFACES:
        _guest_run(["ip", "link", "add", "dev", name, "type", "vcan"], "create %s" % name)
        _guest_run(["ip", "link", "set", name, "up"], "bring %s up" % name)


def _set_up_controllers(results: Path) -> Sequence[str]:
    """Load the SJA1000 drivers and bring every controller up as the installer does: with
    service/can_link.py and a configuration naming that interface (the rest: the defaults)."""
    for module in CONTROLLER_MODULES:
        _guest_run(["modprobe", module], "load kernel module %s" % module)
    for name in CONTROLLER_INTERFACES:
        if not Path("/sys/class/net", name).exists():
            raise VmError("no %s after loading kvaser_pci: qemu did not emulate the %d Kvaser PCICAN cards "
                          "(%s)" % (name, len(CONTROLLER_INTERFACES), CONTROLLER_QEMU_OPTS))
        user_config = results / ("can-link-%s.toml" % name)
        user_config.write_text('[can]\ninterface = "socketcan"\nchannel = "%s"\n' % name)
        _guest_run([sys.executable, str(PROJECT_DIR / "service" / "can_link.py"), "up", "--config",
                    str(user_config)], "bring %s up with service/can_link.py" % name)
    return CONTROLLER_INTERFACES


def _guest_run(command: List[str], purpose: str) -> None:
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:
        raise VmError("cannot %s: %s" % (purpose, error))
    if done.returncode != 0:
        raise VmError("cannot %s: `%s` exited %d: %s" % (
            purpose, " ".join(command), done.returncode, done.stdout.decode(errors="replace").strip()))


def _uptime_s() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


if __name__ == "__main__":
    sys.exit(main())
