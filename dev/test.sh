#!/bin/sh
# Install what is needed and run every test: the Python 3.8 compatibility check, the unit
# and multi-process tests on this machine, then the system tests on a real Linux kernel
# with SocketCAN in a VM. Any failure fails the run; every part runs regardless.
set -u
cd "$(dirname "$0")/.." || exit 1
sh dev/bootstrap.sh --dev || exit 1
sh dev/install-vm-deps.sh || exit 1

status=0
echo "== vermin: runtime code must run on Python 3.8"
.venv/bin/vermin -t=3.8- --no-tips --violations \
    supervisor.py config.py version.py protocol bms canbus ipc workers failsafe health venus simulation tools service || status=1

echo "== unit and multi-process tests"
.venv/bin/python -m pytest -q || status=1

echo "== system tests in a VM (real kernel SocketCAN)"
sh tests/system/run_in_vm.sh || status=1

exit $status
