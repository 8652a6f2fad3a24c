#!/bin/sh
# Install pylon-venus as a service, from this source tree and the dependencies bundled in
# vendor/ (made by dev/bundle-deps.sh at release time): the device needs no network.
#
#   Venus OS: everything under /data/pylon-venus (the only place a firmware update keeps),
#             a daemontools service linked into /service by a line in /data/rc.local at every
#             boot, logs by multilog in /var/log/pylon-venus, and the CAN port switched to
#             the Venus profile that keeps Venus's own CAN services off it.
#   Debian / Raspberry Pi OS: code in /opt/pylon-venus, config in /etc/pylon-venus, a
#             systemd service without privileges (Type=notify, watchdog) logging to the
#             journal, and a root one-shot unit that brings the CAN link up at its bit rate.
#
# The user's config is created on the first install and kept on every upgrade; the new
# version checks it before anything is replaced. An upgrade keeps the version it replaces in
# previous/, and --rollback puts that one back (after checking the config with it). State
# files (charge state, energy counters) are never touched. Running the installer twice
# changes nothing the second time; --uninstall removes what it added.
#
# Usage: install.sh [--root DIR] [--target venus|systemd] [--can IFACE] [--vendor DIR]
#                   [--rollback | --uninstall]
#   --root DIR      install into DIR as if it were /, for tests and images: nothing outside DIR
#                   is touched, no service is started or stopped, D-Bus is not called
#   --target T      venus or systemd; default: venus where /opt/victronenergy exists,
#                   otherwise systemd where /etc/systemd/system exists
#   --can IFACE     the inverter's CAN interface, for the first install; default: the only
#                   CAN interface there is (several: choose one, e.g. --can can1 on a Cerbo GX)
#   --vendor DIR    the bundled wheels (default: vendor/ beside this script)
#   --rollback      go back to the version the last upgrade replaced (again: forward)
#   --uninstall     stop the service and remove exactly what the install added
set -eu
umask 022

source_dir=$(cd "$(dirname "$0")" && pwd)
root=""
target=""
can_iface=""
vendor_dir="$source_dir/vendor"
action=install

say() {
    echo "install.sh: $*"
}

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

usage_error() {
    fail "$* (usage: install.sh [--root DIR] [--target venus|systemd] [--can IFACE] [--vendor DIR] [--rollback | --uninstall])"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root | --target | --can | --vendor)
            [ $# -ge 2 ] || usage_error "$1 needs a value"
            case "$1" in
                --root) root=$(cd "$2" 2>/dev/null && pwd) || usage_error "--root $2: no such directory" ;;
                --target) target=$2 ;;
                --can) can_iface=$2 ;;
                --vendor) vendor_dir=$2 ;;
            esac
            shift 2
            ;;
        --uninstall) action=uninstall; shift ;;
        --rollback) action=rollback; shift ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done

live() {
    [ -z "$root" ]
}

# Runs a command on the live system; under --root only says what it would have run.
on_device() {
    if live; then
        "$@"
    else
        say "--root: not running: $*"
    fi
}

if [ -z "$target" ]; then
    if [ -d "$root/opt/victronenergy" ]; then
        target=venus
    elif [ -d "$root/etc/systemd/system" ]; then
        target=systemd
    else
        fail "cannot tell the target: no $root/opt/victronenergy (Venus OS) and no $root/etc/systemd/system (systemd); pass --target venus or --target systemd"
    fi
fi
case "$target" in
    venus)
        prefix=/data/pylon-venus
        user_config=$prefix/config.toml
        state_dir=$prefix/state
        ;;
    systemd)
        prefix=/opt/pylon-venus
        user_config=/etc/pylon-venus/config.toml
        state_dir=/var/lib/pylon-venus
        units=/etc/systemd/system
        ;;
    *) usage_error "--target $target is not allowed: expected venus or systemd" ;;
esac
if live && [ "$(id -u)" -ne 0 ]; then
    fail "must run as root to install on this system (or give --root DIR)"
fi

# Paths below are the device's; "$root$path" is where they are on this machine.
state_file=$prefix/install-state
rc_local=/data/rc.local
service_link=/service/pylon-venus
rc_local_hook="if [ -d $prefix/service ]; then ln -sfn $prefix/service $service_link || true; fi  # pylon-venus: added by install.sh, removed by install.sh --uninstall"
python=python3

check_iface_name() {
    case "$1" in
        "" | *[!A-Za-z0-9_.-]*) fail "CAN interface '$1' is not allowed: expected 1 to 15 letters, digits, '_', '.' or '-'" ;;
    esac
    [ ${#1} -le 15 ] || fail "CAN interface '$1' is not allowed: at most 15 characters"
}

# --- state the install keeps about what it changed outside its own directories -----------
state_get() {
    [ -f "$root$state_file" ] || return 0
    sed -n "s/^$1=//p" "$root$state_file"
}

state_add() {
    [ -n "$(state_get "$1")" ] || echo "$1=$2" >>"$root$state_file"
}

# --- files -----------------------------------------------------------------------------
# File-tree work is done by service/install_tree.py: Python is on every target, the busybox
# options a shell would need are not.
tree() {
    "$python" "$source_dir/service/install_tree.py" "$@"
}

# A version is its three folders: the code, the bundled libraries, the command.
version_parts="app lib bin"

# True when the installed version has exactly the files and modes of version folder $1.
is_installed_version() {
    for part in $version_parts; do
        [ -d "$root$prefix/$part" ] && [ "$(tree manifest "$1/$part")" = "$(tree manifest "$root$prefix/$part")" ] ||
            return 1
    done
}

# What version folder $1 runs ("0.2.0+<commit>" from a release).
version_of() {
    "$python" -B -S -c 'import sys; sys.path.insert(0, sys.argv[1]); import version; print(version.VERSION)' "$1/app" 2>/dev/null ||
        echo unknown
}

# Puts version folder $1 (the staged one, or previous/ for a rollback) in place of the
# installed one, which becomes previous/ (the one kept before is dropped). Each part is
# moved away and its replacement moved in right after: two renames, no copy in between.
switch_version() {
    kept=$root$prefix/previous.new
    rm -rf "$kept"
    mkdir "$kept"
    for part in $version_parts; do
        if [ -d "$root$prefix/$part" ]; then mv "$root$prefix/$part" "$kept/$part"; fi
        mv "$1/$part" "$root$prefix/$part"
    done
    rm -rf "$root$prefix/previous"
    if [ -d "$kept/app" ]; then mv "$kept" "$root$prefix/previous"; else rm -rf "$kept"; fi
    changed=yes
}

# Writes file $1 to $2 with mode $3, unless it is already there.
install_file() {
    if cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "$3" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.new"
    chmod "$3" "$2.new"
    mv "$2.new" "$2"
    changed=yes
    say "installed ${2#"$root"}"
}

# Makes $1 a symbolic link to $2, unless it is one.
install_link() {
    if [ -L "$1" ] && [ "$(readlink "$1")" = "$2" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$1")"
    ln -sfn "$2" "$1"
    changed=yes
    say "linked ${1#"$root"} -> $2"
}

# The runtime (the rule is runtime_files() in service/install_tree.py): the modules and
# folders of modules but the tests and developer tools, config.toml, install.sh (its
# --uninstall and --rollback need nothing else, so the release folder can go), the licences
# and, from a release, its VERSION stamp.
stage_app() {
    tree stage "$source_dir" "$1"
    for needed in supervisor.py config.py config.toml service/can_link.py; do
        [ -f "$1/$needed" ] || fail "$source_dir is not a pylon-venus source tree: $needed is missing"
    done
}

# Unpacks each bundled wheel set after checking it against its SHA256SUMS.
stage_lib() {
    found=""
    for set_dir in "$vendor_dir"/py*/; do
        [ -f "$set_dir/SHA256SUMS" ] || continue
        set_name=$(basename "$set_dir")
        tree unpack "$1/$set_name" "$set_dir/SHA256SUMS" || fail "bundle again with dev/bundle-deps.sh"
        found="$found $set_name"
    done
    [ -n "$found" ] || fail "no bundled dependencies in $vendor_dir: run dev/bundle-deps.sh (needs PyPI) or use a release archive"
}

# Byte code made now, as hashes of the sources (reproducible): under systemd the service
# cannot write it, and a Cerbo GX takes long to compile python-can at every start.
compile_tree() {
    PYTHONHASHSEED=0 "$python" -m compileall -q --invalidation-mode checked-hash -d "$2" "$1" >/dev/null ||
        fail "$python cannot compile $2: $(PYTHONHASHSEED=0 "$python" -m compileall -q -d "$2" "$1" 2>&1 | head -n 5)"
}

python_lib_set() {
    if "$python" -S -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then echo py39; else echo py38; fi
}

# The CAN interfaces the kernel has (type 280, ARPHRD_CAN).
can_interfaces() {
    for type_file in "$root"/sys/class/net/*/type; do
        [ -f "$type_file" ] && [ "$(cat "$type_file")" = 280 ] && basename "$(dirname "$type_file")"
    done
    return 0
}

choose_can_iface() {
    if [ -n "$can_iface" ]; then
        echo "$can_iface"
        return
    fi
    found=$(can_interfaces)
    case "$(echo "$found" | wc -w)" in
        0)
            say "no CAN interface found; the config names can0 (change it, or pass --can IFACE)" >&2
            echo can0
            ;;
        1) echo "$found" ;;
        *) fail "several CAN interfaces: $(echo "$found" | tr '\n' ' ')- choose the inverter's with --can IFACE (on a Cerbo GX the BMS-Can port is can1)" ;;
    esac
}

render() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@CONFIG@|$user_config|g" -e "s|@CHANNEL@|${channel:-}|g" \
        -e "s|@STATE@|$state_dir|g" "$1" >"$2"
}

# Runs can_link.py of the staged (or installed) tree with the user's config.
can_link() {
    tree=$1
    shift
    command=$1
    shift
    PYTHONPATH="$tree/lib/$(python_lib_set)" "$python" "$tree/app/service/can_link.py" "$command" --config "$config_file" "$@"
}

# --- rc.local (Venus) --------------------------------------------------------------------
rc_local_add_hook() {
    file=$root$rc_local
    if [ ! -e "$file" ]; then
        printf '#!/bin/sh\n%s\n' "$rc_local_hook" >"$file"
        chmod 755 "$file"
        state_add rc_local created
        changed=yes
        say "created $rc_local with the boot hook"
        return
    fi
    if grep -qxF "$rc_local_hook" "$file"; then
        return 0
    fi
    mode=$(stat -c %a "$file")
    if [ ! -x "$file" ]; then
        state_add rc_local_mode "$mode"
        say "$rc_local was not executable, so Venus did not run it; it is now (its other lines run at boot too)"
        mode=755
    fi
    cp "$file" "$file.pylon-venus"
    if [ -n "$(tail -c 1 "$file")" ]; then
        echo >>"$file.pylon-venus"
        state_add rc_local_newline added
    fi
    # Before a closing "exit", which would keep an appended line from running.
    last=$(grep -n -v -E '^[[:space:]]*(#|$)' "$file.pylon-venus" | tail -n 1)
    if echo "${last#*:}" | grep -qE '^[[:space:]]*exit([[:space:]]+[0-9]+)?[[:space:]]*$'; then
        awk -v hook="$rc_local_hook" -v at="${last%%:*}" 'NR == at { print hook } { print }' \
            "$file.pylon-venus" >"$file.pylon-venus.2"
        mv "$file.pylon-venus.2" "$file.pylon-venus"
    else
        echo "$rc_local_hook" >>"$file.pylon-venus"
    fi
    chmod "$mode" "$file.pylon-venus"
    mv "$file.pylon-venus" "$file"
    changed=yes
    say "added the boot hook to $rc_local"
}

rc_local_remove_hook() {
    file=$root$rc_local
    if [ ! -f "$file" ] || ! grep -qxF "$rc_local_hook" "$file"; then
        return 0
    fi
    grep -vxF "$rc_local_hook" "$file" >"$file.pylon-venus" || true
    if [ "$(state_get rc_local)" = created ] && [ "$(cat "$file.pylon-venus")" = "#!/bin/sh" ]; then
        rm -f "$file" "$file.pylon-venus"
        say "removed $rc_local (the install had created it)"
        return
    fi
    if [ -n "$(state_get rc_local_newline)" ]; then
        printf '%s' "$(cat "$file.pylon-venus")" >"$file.pylon-venus.2"
        mv "$file.pylon-venus.2" "$file.pylon-venus"
    fi
    mode=$(state_get rc_local_mode)
    chmod "${mode:-$(stat -c %a "$file")}" "$file.pylon-venus"
    mv "$file.pylon-venus" "$file"
    say "removed the boot hook from $rc_local"
}

# --- Venus CAN profile -------------------------------------------------------------------
venus_profile_switch() {
    if ! live; then
        say "--root: not calling D-Bus; on the device /Settings/Canbus/$channel/Profile becomes 8 (up at 500 kbit/s, no Venus services; 0 before Venus v3.50)"
        return
    fi
    if [ -z "$(state_get "can_profile_$channel")" ]; then
        before=$(can_link "$root$prefix" venus-profile) || before=""
        case "$before" in
            "" | *[!0-9]*)
                say "could not read the Venus profile of $channel (above); plug the adapter in and run install.sh again" >&2
                return 0
                ;;
        esac
        # What uninstall puts back.
        state_add "can_profile_$channel" "$before"
    fi
    can_link "$root$prefix" venus-profile --set driver ||
        say "could not set the Venus profile of $channel (above); run install.sh again once the adapter is in" >&2
}

venus_profile_restore() {
    [ -f "$root$state_file" ] || return 0
    sed -n 's/^can_profile_\(.*\)=\([0-9]*\)$/\1 \2/p' "$root$state_file" | while read -r iface profile; do
        if live; then
            can_link "$root$prefix" venus-profile --channel "$iface" --set "$profile" ||
                say "could not restore the Venus profile $profile of $iface (above)" >&2
        else
            say "--root: not calling D-Bus; on the device /Settings/Canbus/$iface/Profile goes back to $profile"
        fi
    done
}

# --- install -------------------------------------------------------------------------------
install() {
    command -v "$python" >/dev/null || fail "no $python: Venus OS and Debian ship it; apt install python3"
    "$python" -S -c 'import sys; sys.exit(sys.version_info < (3, 8))' || fail "$python is older than 3.8"
    [ -z "$can_iface" ] || check_iface_name "$can_iface"
    config_file=$root$user_config
    channel=""
    if [ ! -f "$config_file" ]; then
        channel=$(choose_can_iface)
    fi
    changed=no
    [ -d "$root$prefix" ] || created_prefix=yes
    mkdir -p "$root$prefix"
    stage=$root$prefix/.staging
    rm -rf "$stage"
    # A failed first install leaves nothing behind.
    trap 'rm -rf "$stage"; [ -z "${created_prefix:-}" ] || [ -d "$root$prefix/app" ] || rmdir "$root$prefix"' EXIT
    mkdir -p "$stage/bin" "$stage/service/log"
    stage_app "$stage/app"
    stage_lib "$stage/lib"
    [ -d "$stage/lib/$(python_lib_set)" ] || fail "$vendor_dir has no $(python_lib_set) set for $("$python" -V 2>&1)"
    compile_tree "$stage/app" "$prefix/app"
    compile_tree "$stage/lib/$(python_lib_set)" "$prefix/lib/$(python_lib_set)"
    render "$source_dir/service/pylon-venus" "$stage/bin/pylon-venus"
    chmod 755 "$stage/bin/pylon-venus"

    if [ -n "$channel" ]; then
        render "$source_dir/service/config.user.toml" "$stage/config.toml"
        config_file=$stage/config.toml
    fi
    # The new version must accept the user's config before anything is replaced.
    shown=$(can_link "$stage" show) || fail "$user_config is not valid for this version (above); fix it and run install.sh again"
    check_channel "$shown"

    if ! is_installed_version "$stage"; then
        if [ -d "$root$prefix/app" ]; then
            say "upgrading $(version_of "$root$prefix") to $(version_of "$stage"); the version replaced is kept for install.sh --rollback"
        fi
        switch_version "$stage"
        say "installed $prefix/app, lib and bin: version $(version_of "$root$prefix")"
    fi
    if [ "$config_file" = "$stage/config.toml" ]; then
        mkdir -p "$(dirname "$root$user_config")"
        install_file "$stage/config.toml" "$root$user_config" 644
        config_file=$root$user_config
    fi
    install_services
    rm -rf "$stage"
    if [ "$changed" = no ]; then
        say "pylon-venus is installed and up to date: nothing changed"
    else
        say "done; your settings: $user_config"
    fi
}

# The CAN channel to prepare from can_link.py's "interface channel bitrate" ($1); --can must agree.
check_channel() {
    shown=$1
    configured=$(echo "$shown" | cut -d' ' -f2)
    if [ -n "$can_iface" ] && [ "$configured" != "$can_iface" ]; then
        fail "--can $can_iface: $user_config names channel $configured; change [can] there instead"
    fi
    channel=""
    if [ "${shown%% *}" = socketcan ]; then
        channel=$configured
        check_iface_name "$channel"
    else
        say "can.interface = ${shown%% *} in $user_config: no CAN port to prepare"
    fi
}

# The service files of the installed version, and its (re)start.
install_services() {
    if [ "$target" = venus ]; then
        install_venus
    else
        install_systemd
    fi
}

# --- rollback ------------------------------------------------------------------------------
# The version the last upgrade replaced comes back, once it has accepted the user's config;
# the one rolled back from becomes previous/ (so a second --rollback goes forward again).
rollback() {
    [ -d "$root$prefix/previous/app" ] || fail "no previous version in $prefix/previous: nothing to roll back to (an upgrade keeps one)"
    config_file=$root$user_config
    [ -f "$config_file" ] || fail "no $user_config: install first"
    shown=$(can_link "$root$prefix/previous" show) ||
        fail "$user_config is not valid for the previous version $(version_of "$root$prefix/previous") (above); fix it and run install.sh --rollback again"
    check_channel "$shown"
    changed=no
    from=$(version_of "$root$prefix")
    switch_version "$root$prefix/previous"
    say "rolled back from $from to $(version_of "$root$prefix"); install.sh --rollback again goes back to $from"
    # The service files of the version now installed.
    source_dir=$root$prefix/app
    stage=$root$prefix/.staging
    rm -rf "$stage"
    mkdir -p "$stage"
    install_services
    rm -rf "$stage"
    say "done; your settings ($user_config) and state files are as they were"
}

install_venus() {
    install_file "$source_dir/service/run" "$root$prefix/service/run" 755
    install_file "$source_dir/service/log/run" "$root$prefix/service/log/run" 755
    rc_local_add_hook
    [ -z "$channel" ] || venus_profile_switch
    [ -d "$root/service" ] || return 0
    if [ -L "$root$service_link" ]; then
        # An upgrade: the running service restarts on the new files.
        [ "$changed" = no ] || on_device svc -t "$service_link" || true
    fi
    # A new link is started by svscan within 5 s.
    install_link "$root$service_link" "$prefix/service"
}

install_systemd() {
    install_file "$source_dir/service/pylon-venus.service" "$root$units/pylon-venus.service" 644
    # What `systemctl enable` makes; the CAN unit follows the interface's device unit, so it
    # runs whenever the interface appears.
    install_link "$root$units/multi-user.target.wants/pylon-venus.service" "$units/pylon-venus.service"
    device_link=$root$units/sys-subsystem-net-devices-$channel.device.wants/pylon-venus-can.service
    for link in "$root$units"/sys-subsystem-net-devices-*.device.wants/pylon-venus-can.service; do
        [ "$link" = "$device_link" ] || remove_link "$link"
    done
    if [ -n "$channel" ]; then
        render "$source_dir/service/pylon-venus-can.service" "$stage/pylon-venus-can.service"
        install_file "$stage/pylon-venus-can.service" "$root$units/pylon-venus-can.service" 644
        install_link "$device_link" "$units/pylon-venus-can.service"
    elif [ -f "$root$units/pylon-venus-can.service" ]; then
        rm -f "$root$units/pylon-venus-can.service"
        changed=yes
        say "removed $units/pylon-venus-can.service"
    fi
    if [ -d "$root/usr/local/bin" ]; then
        install_link "$root/usr/local/bin/pylon-venus" "$prefix/bin/pylon-venus"
    fi
    on_device systemctl daemon-reload
    if [ "$changed" = yes ]; then
        if [ -n "$channel" ] && [ -e "$root/sys/class/net/$channel" ]; then
            on_device systemctl restart pylon-venus-can.service
        fi
        on_device systemctl restart pylon-venus.service
    else
        on_device systemctl start pylon-venus.service
    fi
}

# Removes a link, and the .wants directory it leaves empty.
remove_link() {
    [ -L "$1" ] || return 0
    rm -f "$1"
    changed=yes
    case "$1" in
        *.wants/*) rmdir "$(dirname "$1")" 2>/dev/null || true ;;
    esac
    say "removed ${1#"$root"}"
}

# Tells supervise to stop the service and exit, and waits for it (daemontools' way to
# remove a service), so that nothing runs from the directory about to be deleted.
stop_venus_service() {
    on_device svc -dx "$prefix/service" "$prefix/service/log"
    live || return 0
    waited=0
    while { svok "$prefix/service" || svok "$prefix/service/log"; } 2>/dev/null && [ $waited -lt 10 ]; do
        sleep 1
        waited=$((waited + 1))
    done
}

# --- uninstall -----------------------------------------------------------------------------
uninstall() {
    if [ "$target" = venus ]; then
        if [ -L "$root$service_link" ]; then
            rm -f "$root$service_link"
            say "removed $service_link"
            stop_venus_service
        fi
        config_file=$root$user_config
        venus_profile_restore
        rc_local_remove_hook
        rm -rf "$root/var/log/pylon-venus"
    else
        on_device systemctl stop pylon-venus.service pylon-venus-can.service || true
        remove_link "$root$units/multi-user.target.wants/pylon-venus.service"
        for link in "$root$units"/sys-subsystem-net-devices-*.device.wants/pylon-venus-can.service; do
            remove_link "$link"
        done
        rm -f "$root$units/pylon-venus.service" "$root$units/pylon-venus-can.service"
        [ ! -L "$root/usr/local/bin/pylon-venus" ] || remove_link "$root/usr/local/bin/pylon-venus"
        rm -rf "$root/etc/pylon-venus"
        on_device systemctl daemon-reload
    fi
    if [ -d "$root$prefix" ]; then
        rm -rf "$root$prefix"
        say "removed $prefix, with your settings ($user_config)"
    fi
    say "pylon-venus is uninstalled"
}

case "$action" in
    install) install ;;
    rollback) rollback ;;
    uninstall) uninstall ;;
esac
