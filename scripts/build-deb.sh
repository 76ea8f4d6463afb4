#!/usr/bin/env bash
# Builds enroot-ts_<version>_<arch>.deb with dpkg-deb from `make install DESTDIR=<staging> prefix=/usr
# sysconfdir=/etc`: the CLI, the native addon, the SPANK plugin, the drop-ins and /etc/enroot.
#
#   bash scripts/build-deb.sh [--no-build] [-o DIR]
#
#   --no-build  package what `make` already built (no npm, no tsc); the tests use it
#   -o DIR      where the .deb goes (default: .build/)
#
# Environment: SLURM_PLUGINDIR (default Debian's /usr/lib/<multiarch>/slurm-wlm), DEB_COMPRESS (dpkg-deb
# -Z: xz by default, gzip is faster), DEBFULLNAME/DEBEMAIL for the Maintainer field.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."

nobuild=
outdir=.build
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) nobuild=1 ;;
    -o) outdir=${2:?-o needs a directory}; shift ;;
    *) echo "usage: $0 [--no-build] [-o DIR]" >&2; exit 2 ;;
  esac
  shift
done

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
plugindir=${SLURM_PLUGINDIR:-/usr/lib/${multiarch}/slurm-wlm}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
deb="$outdir/enroot-ts_${version}_${arch}.deb"

staging=$(mktemp -d "$outdir/deb-staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
root="$staging/root"

make -s install DESTDIR="$root" prefix=/usr sysconfdir=/etc slurmplugindir="$plugindir" NODE=/usr/bin/node \
  ${nobuild:+NOBUILD=1} >/dev/null

# Shared-library dependencies of the two binaries (libc, libstdc++), as dh_shlibdeps would compute them.
# dpkg-shlibdeps insists on a debian/control; node's own N-API symbols are not found in any library and
# only produce warnings.
shlibs=$(
  cd "$staging" && mkdir -p debian && printf 'Source: enroot-ts\n\nPackage: enroot-ts\nArchitecture: any\n' > debian/control &&
  dpkg-shlibdeps -O -e"root/usr/lib/enroot/native/build/Release/enroot_native.node" -e"root${plugindir}/spank_enroot.so" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p'
) || true
[ -n "$shlibs" ] || shlibs='libc6, libstdc++6'

# The plugin must match the Slurm release it runs with (SPANK checks the version it was built for).
slurm=$(dpkg-query -W -f='${Version}' libslurm-dev 2>/dev/null || echo unknown)

mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<EOF
Package: enroot-ts
Version: $version
Architecture: $arch
Maintainer: ${DEBFULLNAME:-enroot-ts developers} <${DEBEMAIL:-enroot-ts@localhost}>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: nodejs (>= 20), squashfs-tools, squashfs-tools-ng, squashfuse, fuse3, zstd, $shlibs
Recommends: pigz
Suggests: slurmd
Conflicts: enroot, enroot+caps
Section: admin
Priority: optional
Homepage: https://github.com/NVIDIA/enroot
Description: HPC container runtime: enroot's command line and pyxis's srun options
 Runs container images as unprivileged chroots, from the enroot command line on a
 login node and from srun --container-image on a Slurm cluster. Existing users keep
 their commands, configuration keys, drop-in files and srun options.
 .
 The SPANK plugin $plugindir/spank_enroot.so
 was built against Slurm $slurm and is not enabled: include
 /usr/share/enroot/spank_enroot.conf from plugstack.conf (doc/install.md).
EOF

# Everything under /etc is the administrator's: dpkg keeps local changes on upgrade.
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"

# Conffiles are not in md5sums (dpkg records their sums itself), as dh_md5sums does.
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# Nothing to configure. The runtime needs no setuid bit and no file capabilities (it uses unprivileged
# user namespaces), and Slurm's plugstack.conf is left to the administrator: every node of a cluster
# must load the plugin at the same time, with the same line (/usr/share/enroot/spank_enroot.conf).
set -e
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst"

dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
