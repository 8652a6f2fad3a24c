#!/bin/sh
# Run every benchmark in the system tests' VM (real SocketCAN) and write bench/RESULTS.md.
# Needs dev/install-vm-deps.sh once. Takes about 25 minutes with the defaults (a VM boot per tier); options:
#   sh bench/run.sh --help
set -eu
project_dir=$(cd "$(dirname "$0")/.." && pwd)
cd "$project_dir"
exec "$project_dir/.venv/bin/python" -m bench.run "$@"
