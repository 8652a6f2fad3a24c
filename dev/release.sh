#!/bin/sh
# Build the release archive of a commit: DIST/pylon-venus-<version>.tar.gz, and DIST/SHA256SUMS
# with the checksum of every archive in DIST (what a user verifies with `sha256sum -c`).
#
# Usage: dev/release.sh [--vendor DIR] [--dist DIR] [COMMIT]
#   COMMIT        what to build (default HEAD). The archive comes from `git archive` of that
#                 commit: uncommitted changes never get in.
#   --vendor DIR  wheel sets already made by dev/bundle-deps.sh (default: the commit's
#                 dev/bundle-deps.sh downloads them now; needs PyPI)
#   --dist DIR    where the archive goes (default: dist/ in the repository)
#
# The archive holds pylon-venus-<version>/ with the runtime tree (every module folder but
# tests/, dev/ and bench/; simulation/ ships, as the embedded default config.toml runs the
# simulation), install.sh, README.md, LICENSE, CHANGELOG.md, vendor/py38 and vendor/py39
# (wheels with their SHA256SUMS), THIRD-PARTY-LICENSES (every bundled wheel's licence) and
# VERSION (version, commit, commit date). Reproducible: building the same commit twice gives
# the same bytes (every time stamp is the commit's, or $SOURCE_DATE_EPOCH when set; sorted
# entries; owner 0/0 without names; gzip without time stamp or name: dev/release.py).
# Set PYTHON to choose the interpreter (default python3).
set -eu

project_dir=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
vendor_dir=""
dist_dir="$project_dir/dist"
revision=HEAD

fail() {
    echo "release.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --vendor | --dist)
            [ $# -ge 2 ] || fail "$1 needs a value (usage: release.sh [--vendor DIR] [--dist DIR] [COMMIT])"
            case "$1" in
                --vendor) vendor_dir=$(cd "$2" 2>/dev/null && pwd) || fail "--vendor $2: no such directory" ;;
                --dist) dist_dir=$2 ;;
            esac
            shift 2
            ;;
        -*) fail "unknown argument '$1' (usage: release.sh [--vendor DIR] [--dist DIR] [COMMIT])" ;;
        *) revision=$1; shift ;;
    esac
done

commit=$(git -C "$project_dir" rev-parse --verify --quiet "$revision^{commit}") ||
    fail "$revision is not a commit of $project_dir"
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$project_dir" show -s --format=%ct "$commit")}
if [ -n "$(git -C "$project_dir" status --porcelain --untracked-files=no)" ]; then
    echo "release.sh: the working tree has uncommitted changes; they are not in the archive (it is $commit)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tree"
git -C "$project_dir" archive --format=tar "$commit" | tar -x -C "$work/tree"
version=$(sed -n 's/^RELEASE = "\(.*\)"$/\1/p' "$work/tree/version.py")
[ -n "$version" ] || fail "no RELEASE = \"...\" line in version.py of $commit"
if [ -z "$vendor_dir" ]; then
    vendor_dir=$work/vendor
    PYTHON=$python sh "$work/tree/dev/bundle-deps.sh" "$vendor_dir" || fail "bundling the wheels failed (above)"
fi

mkdir -p "$dist_dir"
archive=$dist_dir/pylon-venus-$version.tar.gz
"$python" "$work/tree/dev/release.py" "$work/tree" "$vendor_dir" "$archive" "$commit" "$epoch"
(cd "$dist_dir" && sha256sum pylon-venus-*.tar.gz >SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS)
echo "release.sh: $archive ($commit)"
grep " pylon-venus-$version.tar.gz\$" "$dist_dir/SHA256SUMS"
