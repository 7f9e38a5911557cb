#!/bin/sh
# SPDX-License-Identifier: MIT
# Build (or reuse) a small Linux bzImage (KERNEL: 6.1, the default, or 6.12,
# Debian's linux-source-$KERNEL) with vhost-vdpa + vdpa_sim built
# in, for the real-kernel rig. Prints the bzImage path as the last line of
# stdout; everything else goes to stderr.
#
# The image is cached outside the work tree, keyed by the Debian source
# package version and the hash of kernel.config:
#   ${VDPA_KERNEL_CACHE:-/var/cache/vdpa-user/kernel}/<version>-<sha>/bzImage
# Concurrent runs serialise on a per-key flock; the second one reuses the
# first one's image.
#
# Environment:
#   KERNEL             6.1 (default) or 6.12
#   VDPA_KERNEL_CACHE  cache directory (default /var/cache/vdpa-user/kernel)
#   VDPA_KERNEL_JOBS   make -j (default: nproc)
#   VDPA_KERNEL_NICE   nice increment for the build (default 10)
#   VDPA_KERNEL_KEEP   1 = keep the unpacked build tree after success
#   VDPA_KERNEL_CONFIG another fragment instead of kernel.config (experiments)
# Exit: 0 built/reused, 77 kernel source unavailable, 1 build/config failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
frag=${VDPA_KERNEL_CONFIG:-$here/kernel.config}
cache=${VDPA_KERNEL_CACHE:-/var/cache/vdpa-user/kernel}
jobs=${VDPA_KERNEL_JOBS:-$(nproc)}
nice_inc=${VDPA_KERNEL_NICE:-10}
kernel=${KERNEL:-6.1}
case $kernel in 6.1|6.12) ;; *) echo "build-kernel: KERNEL=$kernel: 6.1 or 6.12" >&2; exit 1 ;; esac
pkg=linux-source-$kernel
if [ "$kernel" = 6.12 ] && [ -z "${VDPA_KERNEL_CONFIG:-}" ]; then
	# VDUSE needs ARCH_HAS_DMA_OPS since 6.3, which x86 selects only
	# with GART or Xen: nothing here uses it, leave it out
	mkdir -p "${TMPDIR:-/tmp}"
	frag612=$(mktemp "${TMPDIR:-/tmp}/kernel-6.12.XXXXXX.config")
	grep -v '^CONFIG_VDPA_USER=' "$frag" >"$frag612"
	frag=$frag612
	trap 'rm -f "$frag612"' EXIT
fi
tarball=/usr/src/$pkg.tar.xz

log() { echo "build-kernel: $*" >&2; }
die() { log "$*"; exit 1; }

if ! "$here/../install-deps.sh" kernel >&2; then
	log "SKIP: cannot install the kernel build dependencies"
	exit 77
fi
[ -r "$tarball" ] || { log "SKIP: $tarball not found"; exit 77; }

ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo unknown)
sha=$(sha256sum "$frag" | cut -c1-12)
key=$ver-$sha
dir=$cache/$key
mkdir -p "$cache"

# One builder per key; others wait here and then find the image.
exec 9>"$cache/$key.lock"
if ! flock -n 9; then
	log "another build of $key is running; waiting for it"
	flock 9
fi

if [ -s "$dir/bzImage" ]; then
	log "cached: $dir/bzImage"
	echo "$dir/bzImage"
	exit 0
fi

start=$(date +%s)
work=$cache/$key.build
rm -rf "$work"
mkdir -p "$work"
log "unpacking $tarball into $work"
tar -xJf "$tarball" -C "$work" --strip-components=1

cd "$work"
mk() { nice -n "$nice_inc" make -s ARCH=x86_64 "$@"; }
mk tinyconfig >"$work/config.log" 2>&1 ||
	die "make tinyconfig failed; see $work/config.log"
scripts/kconfig/merge_config.sh -m .config "$frag" >>"$work/config.log" 2>&1 ||
	die "merge_config.sh failed; see $work/config.log"
mk olddefconfig >>"$work/config.log" 2>&1 ||
	die "make olddefconfig failed; see $work/config.log"

# Verify: every =y in the fragment must be =y now, every "is not set" unset.
bad=
for opt in $(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=y$/\1/p' "$frag"); do
	grep -qx "$opt=y" .config || bad="$bad $opt"
done
for opt in $(sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p' "$frag"); do
	grep -qx "$opt=y" .config && bad="$bad $opt(should be off)"
done
[ -z "$bad" ] || die "options not as wanted after olddefconfig:$bad
  (missing dependency? see $work/.config and $work/config.log)"
log "config verified ($(grep -c '=y$' "$frag") options); building bzImage with -j$jobs"

if ! mk -j"$jobs" bzImage >"$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log" >&2
	die "kernel build failed; full log in $work/build.log"
fi

mkdir -p "$dir.tmp"
cp arch/x86/boot/bzImage "$dir.tmp/bzImage"
cp .config "$dir.tmp/config"
echo "$(( $(date +%s) - start ))" >"$dir.tmp/build-seconds"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
cd /
[ "${VDPA_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$work"
log "built $dir/bzImage in $(cat "$dir/build-seconds") s"
echo "$dir/bzImage"
