#!/bin/sh
# Install what pylon-venus needs on a Debian machine (as root): the OS packages, then a
# virtualenv in .venv that sees the OS's dbus-python and gi. Idempotent and quick when
# everything is there. "--dev" adds what the tests need.
set -eu
cd "$(dirname "$0")/.."

packages="python3 python3-venv python3-pip python3-dbus python3-gi dbus-daemon"
requirements=requirements.txt
if [ "${1:-}" = "--dev" ]; then
    # chromium + chromium-driver + python3-selenium: the web console's tests drive a real headless
    # browser through the system chromedriver (no browser download)
    # mosquitto: the MQTT battery source's tests start a real broker on a free localhost port
    # python3-lxml: Victron's localsettings (../shared/peers/victron), which the Venus tests start
    packages="$packages can-utils shellcheck chromium chromium-driver python3-selenium mosquitto python3-lxml"
    requirements="requirements-dev.txt"
fi

missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing$missing"
    apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
