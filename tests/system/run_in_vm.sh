#!/bin/sh
# Run the system tests (tests/system) inside a VM booting Debian's kernel, which has SocketCAN.
# Needs dev/install-vm-deps.sh once. --tier vcan (default) or sja1000 (emulated SJA1000
# controllers); arguments after -- go to pytest, e.g.:
#   sh tests/system/run_in_vm.sh -- tests/system/test_kernel_can.py -k periodic
#   sh tests/system/run_in_vm.sh --tier sja1000
# Exits with pytest's exit code, or 100 when the VM could not run the tests (reason printed).
set -eu
project_dir=$(cd "$(dirname "$0")/../.." && pwd)
exec "$project_dir/.venv/bin/python" "$project_dir/tests/system/vm.py" "$@"
