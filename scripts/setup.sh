#!/usr/bin/env bash
# Installs everything the product and its tests need on a Debian 12 machine, then builds.
# Idempotent: a second run only checks. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  squashfs-tools squashfs-tools-ng squashfuse fuse3 fuse-overlayfs    # image writer/reader, direct starts
  skopeo docker-registry apache2-utils openssl busybox-static zstd pigz  # test registry and images
  slurm-wlm slurmctld slurmd munge libslurm-dev slurm-wlm-plugins-dev    # Slurm cluster and the shim's headers
  libpmix2 libpmix-dev openmpi-bin libopenmpi-dev                       # srun --mpi=pmix (mpi_pmix_v4 dlopens libpmix.so) and the MPI test image
  podman runc slirp4netns                                               # podman:// import tests (rootless, runc: crun refuses hybrid cgroups)
  uidmap util-linux procps psmisc iproute2 gcc make g++ python3 tar
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  # no service auto-start: the suite starts its own daemons
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The suite runs the product as an unprivileged user: that user must be able to reach the checkout
# (a clone under /root is mode 0700). Grant traverse-only access (o+x) on the ancestors, not listing.
d=$(pwd)
while [ "$d" != "/" ]; do
  [ "$(stat -c %A "$d" | cut -c10)" = "x" ] || [ "$(stat -c %A "$d" | cut -c10)" = "t" ] || chmod o+x "$d"
  d=$(dirname "$d")
done

# A normal distribution makes /dev/fuse usable by users (udev); containers and CI machines often do not.
[ -c /dev/fuse ] && chmod 0666 /dev/fuse

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# The addon first: the build's training run (scripts/bundle.mjs) starts a container with it.
if [ -f native/binding.gyp ]; then
  [ -f native/build/Release/enroot_native.node ] && [ -z "$(find native/src native/binding.gyp -newer native/build/Release/enroot_native.node)" ] || npm run --silent build:native >/dev/null
fi
# A second run skips the TypeScript build when nothing changed since the last one.
if [ ! -f dist/cli.js ] || [ ! -f dist/enroot.cjs ] || [ -n "$(find launcher/src scripts/gen-conf.mjs scripts/bundle.mjs scripts/train-registry.mjs bin -newer dist/cli.js -print -quit)" ]; then
  npm run --silent build
  touch dist/cli.js
fi
if [ -f spank/Makefile ]; then make -s -C spank; fi
