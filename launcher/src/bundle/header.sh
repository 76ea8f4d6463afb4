#!/bin/sh
# A self-extracting enroot-ts bundle (doc/cmd/bundle.md): this POSIX sh header, then a tar archive of the
# container's root filesystem whose /.enroot holds a Node runtime and the enroot-ts launcher. Neither enroot,
# Node nor bash is needed on the host. `enroot bundle` filled in the values below.
description=@DESCRIPTION@
compression=@COMPRESSION@
decompress=@DECOMPRESS@
target_dir=@TARGET_DIR@
header_size=@HEADER_SIZE@
payload_size=@PAYLOAD_SIZE@
uncompressed_kb=@UNCOMPRESSED_KB@
sha256_sum=@SHA256_SUM@
runtime_version=@RUNTIME_VERSION@
build_glibc=@BUILD_GLIBC@

self=$0

usage() {
    cat <<EOF
Usage: ${self##*/} [options] [--] [COMMAND] [ARG...]

 Options:
   -i, --info           Display the information about this bundle
   -k, --keep           Keep the bundle extracted in the target directory
   -q, --quiet          Suppress the informational messages
   -v, --verify         Verify that the host configuration is compatible with the bundle
   -x, --extract        Extract the bundle in the target directory and exit (implies --keep)

   -c, --conf CONFIG    Specify a configuration script to run before the container starts
   -e, --env KEY[=VAL]  Export an environment variable inside the container
       --rc SCRIPT      Override the command script inside the container
   -r, --root           Ask to be remapped to root inside the container
   -w, --rw             Make the container root filesystem writable
   -m, --mount FSTAB    Perform a mount from the host inside the container (colon-separated)
EOF
}

err() { printf '[ERROR] %s\n' "$*" >&2; exit 1; }
info() { [ -n "$quiet" ] || printf '[INFO] %s\n' "$*" >&2; }
payload() { tail -c "+$((header_size + 1))" "$self"; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---- options: the bundle's own are consumed; start's are kept in order and moved before `--` COMMAND ----
opt_info= opt_verify= opt_keep= opt_extract= quiet=
n=$#
while [ "$n" -gt 0 ]; do
    arg=$1
    case $arg in
    --) shift; n=$((n - 1)); break ;;
    -i|--info) opt_info=y ;;
    -v|--verify) opt_verify=y ;;
    -k|--keep) opt_keep=y ;;
    -x|--extract) opt_extract=y opt_keep=y ;;
    -q|--quiet) quiet=y ;;
    -h|--help) usage; exit 0 ;;
    -r|--root|-w|--rw) set -- "$@" "$arg" ;;
    -c|--conf|-e|--env|-m|--mount|--rc)
        if [ "$n" -lt 2 ] || [ -z "$2" ]; then printf '[ERROR] Option requires a value: %s\n' "$arg" >&2; usage >&2; exit 1; fi
        set -- "$@" "$arg" "$2"; shift; n=$((n - 1)) ;;
    --conf=?*|--env=?*|--mount=?*|--rc=?*) set -- "$@" "$arg" ;;
    # enroot prints the usage and exits 0 here; a typo should neither start the container nor look like success
    -?*) printf '[ERROR] Unknown option: %s\n' "$arg" >&2; usage >&2; exit 1 ;;
    *) break ;;
    esac
    shift; n=$((n - 1))
done
# "$@" is now: the n arguments left (COMMAND ARG...), then the kept options; rotate it to OPTIONS -- COMMAND ARG...
set -- "$@" --
while [ "$n" -gt 0 ]; do set -- "$@" "$1"; shift; n=$((n - 1)); done

# ---- the checksum comes first, whatever was asked ----
if [ "$sha256_sum" != 0 ]; then
    have sha256sum || err "Command not found: sha256sum"
    sum=$(payload | sha256sum) || err "Checksum validation failed"
    [ "${sum%% *}" = "$sha256_sum" ] || err "Checksum validation failed"
fi

if [ -n "$opt_info" ]; then
    [ "$sha256_sum" = 0 ] || printf 'Checksum: %s\n' "$sha256_sum"
    printf 'Compression: %s\nDescription: %s\nRuntime version: %s\nTarget directory: %s\nUncompressed size: %s KB\n' \
        "$compression" "$description" "$runtime_version" "$target_dir" "$uncompressed_kb"
    exit 0
fi

# ---- -v: one line per check; a missing required one makes the status non-zero ----
verify_failed=
check() { # LABEL required|optional CONDITION...
    label=$1 kind=$2; shift 2
    if "$@"; then result=OK; else result="missing ($kind)"; [ "$kind" = optional ] || verify_failed=y; fi
    printf '%-46s: %s\n' "$label" "$result"
}
sysctl_is() { [ ! -r "$1" ] || [ "$(cat "$1")" "$2" "$3" ]; }
kconfig() { printf '%s\n' "$kconfig_text" | grep -Eq "^$1=[ym]"; }
glibc_ok() {
    v=$(getconf GNU_LIBC_VERSION 2>/dev/null) || return 1
    awk -v a="${v##* }" -v b="$build_glibc" 'BEGIN { split(a, x, "."); split(b, y, ".");
        for (i = 1; i <= 3; i++) { if (x[i] + 0 > y[i] + 0) exit 0; if (x[i] + 0 < y[i] + 0) exit 1 } exit 0 }'
}
verify() {
    printf 'Kernel version:\n\n%s\n\n' "$(cat /proc/version 2>/dev/null || uname -a)"
    kconfig_text= kconfig_file=
    release=$(uname -r)
    for f in /proc/config.gz "/boot/config-$release" "/usr/src/linux-$release/.config" /usr/src/linux/.config \
             "/lib/modules/$release/build/.config"; do
        [ -r "$f" ] || continue
        case $f in *.gz) kconfig_text=$(gzip -dc "$f" 2>/dev/null) || continue ;; *) kconfig_text=$(cat "$f") ;; esac
        kconfig_file=$f; break
    done
    if [ -n "$kconfig_file" ]; then
        printf 'Kernel configuration (%s):\n\n' "$kconfig_file"
        check CONFIG_NAMESPACES required kconfig CONFIG_NAMESPACES
        check CONFIG_USER_NS required kconfig CONFIG_USER_NS
        check CONFIG_SECCOMP_FILTER required kconfig CONFIG_SECCOMP_FILTER
        check CONFIG_OVERLAY_FS optional kconfig CONFIG_OVERLAY_FS
    else
        # enroot fails here ("Could not find kernel configuration"); the running kernel answers anyway.
        printf 'Kernel configuration: not found, probing the running kernel only\n'
    fi
    printf '\nRunning kernel:\n\n'
    check 'user namespaces (/proc/self/ns/user)' required test -e /proc/self/ns/user
    check user.max_user_namespaces required sysctl_is /proc/sys/user/max_user_namespaces -gt 0
    check user.max_mnt_namespaces required sysctl_is /proc/sys/user/max_mnt_namespaces -gt 0
    check kernel.unprivileged_userns_clone required sysctl_is /proc/sys/kernel/unprivileged_userns_clone -eq 1
    check kernel.apparmor_restrict_unprivileged_userns required sysctl_is /proc/sys/kernel/apparmor_restrict_unprivileged_userns -eq 0
    check 'seccomp (/proc/self/status)' required grep -q '^Seccomp:' /proc/self/status
    if have unshare; then check 'creating a user namespace (unshare -U)' required unshare -U true; fi
    check 'overlay filesystem (/proc/filesystems)' optional grep -qw overlay /proc/filesystems
    printf '\nUser space:\n\n'
    check "glibc >= $build_glibc (getconf GNU_LIBC_VERSION)" required glibc_ok
    check tar required have tar
    [ "$decompress" = cat ] || check "${decompress%% *}" required have "${decompress%% *}"
    [ "$sha256_sum" = 0 ] || check sha256sum required have sha256sum
    check nvidia-container-cli optional have nvidia-container-cli
    [ -z "$verify_failed" ]
}
if [ -n "$opt_verify" ]; then verify; exit; fi

# ---- extraction: into the target directory (--keep), or a temporary one removed at exit ----
have tar || err "Command not found: tar"
[ "$decompress" = cat ] || have "${decompress%% *}" || err "Command not found: ${decompress%% *}"

remove=
cleanup() {
    [ -n "$remove" ] || return 0
    # a root filesystem may hold read-only directories: give the owner write access, then retry
    rm -rf "$remove" 2>/dev/null || { chmod -R u+rwX "$remove" 2>/dev/null; rm -rf "$remove"; }
    remove=
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$opt_keep" ]; then
    case $target_dir in /*) dest=$target_dir ;; *) dest=$PWD/$target_dir ;; esac
    parent=$(cd "${dest%/*}/" 2>/dev/null && pwd -P) || err "No such file or directory: ${dest%/*}"
    dest=${parent%/}/${dest##*/}
    if [ -e "$dest" ] || [ -L "$dest" ]; then err "File already exists: $dest"; fi
    rundir=${parent%/}/.${dest##*/}
    mkdir "$dest" || err "Could not create directory: $dest"
    remove=$dest
else
    tmp=${ENROOT_TEMP_PATH:-${TMPDIR:-/tmp}}
    base=$(mktemp -d "$tmp/${target_dir##*/}.XXXXXXXXXX") || err "Could not create a directory in $tmp"
    remove=$base
    parent=$base dest=$base/${target_dir##*/} rundir=$base/.run
    mkdir "$dest" || err "Could not create directory: $dest"
fi

avail=$(df -Pk "$parent" 2>/dev/null | awk 'NR == 2 { print $4 }')
if [ -n "$avail" ] && [ "$avail" -lt "$uncompressed_kb" ]; then
    err "Not enough space left in $parent ($uncompressed_kb KB needed)"
fi
info "Extracting bundle to $dest..."
payload | $decompress | tar -C "$dest" -x -p -f - || err "Could not extract the bundle to $dest"
if [ -n "$opt_extract" ]; then remove=; exit 0; fi
[ -z "$opt_keep" ] || remove=

# ---- start the container with the embedded launcher, which reads no host configuration ----
[ -s "$dest/.enroot/etc/config" ] && . "$dest/.enroot/etc/config"
ENROOT_LIBRARY_PATH=$dest/.enroot/lib
ENROOT_SYSCONF_PATH=$dest/.enroot/etc/system
ENROOT_CONFIG_PATH=$dest/.enroot/etc/user
ENROOT_DATA_PATH=$parent
ENROOT_RUNTIME_PATH=$rundir/runtime
ENROOT_CACHE_PATH=$rundir/cache
ENROOT_TEMP_PATH=$rundir/tmp
export ENROOT_LIBRARY_PATH ENROOT_SYSCONF_PATH ENROOT_CONFIG_PATH ENROOT_DATA_PATH ENROOT_RUNTIME_PATH \
    ENROOT_CACHE_PATH ENROOT_TEMP_PATH
unset NODE_OPTIONS NODE_PATH
(umask 077 && mkdir -p "$ENROOT_RUNTIME_PATH" "$ENROOT_CACHE_PATH" "$ENROOT_TEMP_PATH") || err "Could not create directory: $rundir"

# The launcher runs as a child, not exec'd: this shell outlives it to remove the temporary directory, and
# passes on the signals a job scheduler or `kill` sends (a terminal's ^C reaches the whole group anyway).
child= interrupted=
forward() { interrupted=y; [ -z "$child" ] || kill -s "$1" "$child" 2>/dev/null; }
trap 'forward HUP' HUP
trap 'forward TERM' TERM
trap '[ -t 0 ] && interrupted=y || forward INT' INT
# an asynchronous command would read /dev/null: give it this shell's standard input explicitly
exec 3<&0
"$dest/.enroot/bin/node" "$dest/.enroot/lib/@ENTRY@" bundle-run --rootfs "$dest" "$@" 0<&3 3<&- &
child=$!
exec 3<&-
status=
while :; do
    interrupted=
    wait "$child"; rc=$?
    # a signal interrupted the wait after the launcher had already been reaped: keep its status
    if [ "$rc" -eq 127 ] && [ -n "$status" ]; then break; fi
    status=$rc
    [ -n "$interrupted" ] || break
done
[ -z "$opt_keep" ] || rmdir "$ENROOT_RUNTIME_PATH" "$ENROOT_CACHE_PATH" "$ENROOT_TEMP_PATH" "$rundir" 2>/dev/null
exit "$status"
