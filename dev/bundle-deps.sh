#!/bin/sh
# Download the device's runtime dependencies as pure-Python wheels, so that install.sh
# needs no network on the device (Venus OS has no pip, and what pip or opkg installs is
# wiped by every firmware update). Run at release time, where PyPI is reachable.
#
# Usage: dev/bundle-deps.sh [VENDOR_DIR]      (default: vendor/ beside install.sh)
#
# One set per file in dev/device-requirements/ named pyXY.txt: the set for Python X.Y and
# newer, up to the next set. Each lands in VENDOR_DIR/pyXY/ with a SHA256SUMS file that
# install.sh verifies. Set PYTHON to choose the interpreter whose pip downloads (default
# python3); the device's Python version is given to pip, not taken from the host.
#
# The same pins give the same bytes: a wheel is PyPI's file, or built here from the sdist
# with fixed time stamps, so dev/release.sh makes the same archive twice.
set -eu

project_dir=$(cd "$(dirname "$0")/.." && pwd)
requirements_dir="$project_dir/dev/device-requirements"
vendor_dir=${1:-"$project_dir/vendor"}
python=${PYTHON:-python3}

fail() {
    echo "bundle-deps.sh: $*" >&2
    exit 1
}

"$python" -m pip --version >/dev/null 2>&1 || fail "$python has no pip: set PYTHON to an interpreter with pip"
mkdir -p "$vendor_dir"

for requirements in "$requirements_dir"/py*.txt; do
    set_name=$(basename "$requirements" .txt)
    digits=${set_name#py}
    python_version="${digits%"${digits#?}"}.${digits#?}"
    set_dir="$vendor_dir/$set_name"
    rm -rf "$set_dir"
    mkdir -p "$set_dir"
    echo "bundle-deps.sh: $set_name (Python $python_version and newer) -> $set_dir"
    # --no-deps: every dependency is pinned in the file, nothing comes in unreviewed; it also
    # lets pip fetch a source archive where a package publishes no wheel.
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --prefer-binary \
        --python-version "$python_version" --implementation py --abi none --platform any \
        --requirement "$requirements" --dest "$set_dir"
    for archive in "$set_dir"/*.tar.gz "$set_dir"/*.zip; do
        [ -e "$archive" ] || continue
        # msgpack publishes only compiled wheels: MSGPACK_PUREPYTHON builds its own pure-Python
        # implementation (msgpack.fallback) into a py3-none-any wheel. SOURCE_DATE_EPOCH: the
        # wheel's zip time stamps (1980-01-01, the earliest zip has), not the time of the build.
        # --use-pep517: built in isolation with the build tools the package asks for, also by a
        # pip without the wheel package (a Python 3.8 venv's).
        MSGPACK_PUREPYTHON=1 SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet \
            --disable-pip-version-check --no-deps --use-pep517 --wheel-dir "$set_dir" "$archive"
        rm "$archive"
    done
    for wheel in "$set_dir"/*; do
        case "$wheel" in
            *-none-any.whl) ;;
            *) fail "$(basename "$wheel") is not a pure-Python wheel: the device cannot build or load it" ;;
        esac
    done
    (cd "$set_dir" && sha256sum -- *.whl >SHA256SUMS)
done
echo "bundle-deps.sh: done; install.sh installs from $vendor_dir without network"
