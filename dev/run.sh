#!/bin/sh
# Install what is needed and run pylon-venus in the foreground on its embedded default:
# the full simulation (simulated battery monitor on a private D-Bus, simulated inverter,
# virtual CAN bus). Extra arguments go to `supervisor.py run`, e.g. --config FILE.
set -eu
cd "$(dirname "$0")/.."
sh dev/bootstrap.sh
exec .venv/bin/python supervisor.py run "$@"
