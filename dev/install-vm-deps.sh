#!/bin/sh
# Install what the system-test VM harness (tests/system/run_in_vm.sh) needs:
# a Debian kernel with CAN modules, qemu, can-utils, and virtme-ng in the venv.
# Idempotent; run as root on Debian 12. Usage: dev/install-vm-deps.sh [VENV_DIR]
set -eu

project_dir=$(cd "$(dirname "$0")/.." && pwd)
venv_dir=${1:-"$project_dir/.venv"}

if [ "$(id -u)" -ne 0 ]; then
    echo "install-vm-deps.sh: must run as root (it calls apt-get)" >&2
    exit 1
fi
if [ ! -x "$venv_dir/bin/python" ]; then
    echo "install-vm-deps.sh: no virtualenv at $venv_dir (create it first)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# linux-image-amd64: the kernel the VM boots (vcan, can-raw, can-bcm, can-gw, vxcan as modules).
# qemu-system-x86: the emulator; virtme-ng drives it. busybox-static, kmod, udev-free init come from
# virtme-ng's own init; iproute2 sets up vcan; can-utils gives candump/cansend/cangen.
apt-get install -y -q --no-install-recommends \
    linux-image-amd64 qemu-system-x86 \
    can-utils iproute2 kmod busybox-static \
    dbus

"$venv_dir/bin/python" -m pip install -q 'virtme-ng'
"$venv_dir/bin/vng" --version
