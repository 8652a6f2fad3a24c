#!/bin/sh
# Install what the system-test VM (tests/system/run_in_vm.sh) needs: Debian's kernel, whose
# CAN modules (vcan, can-raw, can-bcm, can-gw, vxcan) this machine's own kernel lacks, qemu,
# can-utils, and virtme-ng in the venv. Idempotent; as root on Debian 12.
# Usage: dev/install-vm-deps.sh [VENV_DIR]   (default: the project's .venv)
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
# INITRD=No: vng builds its own initramfs, so skip Debian's (saves ~30 s per kernel).
export INITRD=No
apt-get update -q
# busybox-static and file: virtme-ng builds its initramfs with them; kmod and iproute2 load
# the CAN modules and create vcan0 in the VM; dbus: a private dbus-daemon for tests.
apt-get install -y -q --no-install-recommends \
    linux-image-amd64 qemu-system-x86 \
    can-utils iproute2 kmod busybox-static file dbus

"$venv_dir/bin/python" -m pip install -q 'virtme-ng==1.42'

# vng finds virtme-run through PATH; check it can put a VM together (without booting one).
kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
PATH="$venv_dir/bin:$PATH" "$venv_dir/bin/vng" --run "$kernel" --disable-kvm --force-9p \
    --dry-run --exec true >/dev/null
echo "install-vm-deps.sh: virtme-ng $("$venv_dir/bin/vng" --version | awk '{print $2}'), kernel $kernel"
