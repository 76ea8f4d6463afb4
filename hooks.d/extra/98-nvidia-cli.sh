#! /bin/bash
# 98-nvidia through nvidia-container-cli (libnvidia-container), the way enroot does it (doc/gpu.md).
# The built-in hook needs no extra package and is faster; an administrator who prefers NVIDIA's tool
# replaces the system hooks.d/98-nvidia.sh with a link to this file:
#   ln -sf /usr/share/enroot/hooks.d/98-nvidia-cli.sh /etc/enroot/hooks.d/98-nvidia.sh
set -euo pipefail
shopt -s lastpipe
export PATH="${PATH}:/usr/sbin:/sbin"

# NVIDIA_* from the container environment, unless the hook's own environment sets them (last line wins).
tac "${ENROOT_ENVIRON}" | grep "^NVIDIA_" | while IFS='=' read -r key value; do
    [ -v "${key}" ] || export "${key}=${value}"
done || :

if [ -z "${NVIDIA_VISIBLE_DEVICES-}" ] || [ "${NVIDIA_VISIBLE_DEVICES}" = "void" ]; then
    exit 0
fi
if ! command -v nvidia-container-cli > /dev/null; then
    echo "[ERROR] Command not found: nvidia-container-cli, see https://github.com/NVIDIA/libnvidia-container" >&2
    exit 1
fi
if ! grep -q "^nvidia_uvm " /proc/modules 2> /dev/null; then
    echo "[WARN] Kernel module nvidia_uvm is not loaded. Make sure the NVIDIA device driver is installed and loaded." >&2
fi

cli_args=("--no-cgroups" "--ldconfig=@$(command -v ldconfig.real || command -v ldconfig)")
if [ "${NVIDIA_VISIBLE_DEVICES}" != "none" ]; then
    cli_args+=("--device=${NVIDIA_VISIBLE_DEVICES}")
fi
if [ -n "${NVIDIA_MIG_CONFIG_DEVICES-}" ]; then
    cli_args+=("--mig-config=${NVIDIA_MIG_CONFIG_DEVICES}")
fi
if [ -n "${NVIDIA_MIG_MONITOR_DEVICES-}" ]; then
    cli_args+=("--mig-monitor=${NVIDIA_MIG_MONITOR_DEVICES}")
fi
compute=""
IFS=',' read -r -a caps <<< "${NVIDIA_DRIVER_CAPABILITIES:-utility}"
for cap in "${caps[@]}"; do
    case "${cap}" in
    all)
        cli_args+=("--compute" "--compat32" "--display" "--graphics" "--utility" "--video")
        compute=y
        ;;
    compute|compat32|display|graphics|utility|video)
        cli_args+=("--${cap}")
        [ "${cap}" = "compute" ] && compute=y
        ;;
    *)
        echo "[ERROR] Unknown NVIDIA driver capability: ${cap}" >&2
        exit 1
        ;;
    esac
done
if [ -z "${NVIDIA_DISABLE_REQUIRE-}" ]; then
    for req in $(compgen -e "NVIDIA_REQUIRE_" || :); do
        cli_args+=("--require=${!req}")
    done
fi
if [ -n "${compute}" ]; then
    # GDRCopy and IMEX channels (enroot commit 48c750e)
    echo "/dev/gdrdrv /dev/gdrdrv none x-create=file,bind,ro,nosuid,noexec,nofail,silent" >> "${ENROOT_MOUNTS}"
    echo "/dev/nvidia-caps-imex-channels /dev/nvidia-caps-imex-channels none x-create=dir,bind,ro,nosuid,noexec,nofail,silent" >> "${ENROOT_MOUNTS}"
fi

# Not exec'd: without --pid, nvidia-container-cli configures the mount namespace of its parent, which must be
# this hook (inside the container's namespaces), not the launcher that started it.
nvidia-container-cli --user ${NVIDIA_DEBUG_LOG:+--debug=/dev/stderr} configure "${cli_args[@]}" "${ENROOT_ROOTFS}"
