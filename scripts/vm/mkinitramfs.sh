#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the rig's initramfs: busybox-static, the project's test binaries,
# CLI and simulator with their shared libraries, iproute2's `vdpa`, and
# guest-init.sh as /init.
#
# usage: mkinitramfs.sh OUTPUT.gz
# Environment:
#   BUILD            build directory holding tests/, vdpa-user, vdpa-sim
#                    (default build); binaries that are missing are skipped
#   VDPA_RIG_TESTS   space-separated test names to run (default: all in
#                    $BUILD/tests)
#   VDPA_RIG_PCI     1 = the guest also looks at a virtio-net-pci device
#   VDPA_RIG_TEST_TIMEOUT  seconds per test binary in the guest (default 240)
set -eu

out=${1:?usage: mkinitramfs.sh OUTPUT.gz}
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-build}
case $out in /*) ;; *) out=$PWD/$out ;; esac
case $build in /*) ;; *) build=$PWD/$build ;; esac

die() { echo "mkinitramfs: $*" >&2; exit 1; }

busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
	die "$busybox is not static (apt-get install busybox-static)"
vdpa=$(command -v vdpa || true)
[ -n "$vdpa" ] || die "iproute2's vdpa not found (apt-get install iproute2)"

mkdir -p "$(dirname "$out")"
root=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-rig-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" \
	"$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" \
	"$root/rig/build/tests" "$root/etc"

# Copy a dynamically linked binary to DEST and every library ldd names to
# the same path inside the image (the loader included).
add_bin() {
	cp -L "$1" "$2"
	LD_LIBRARY_PATH=$build ldd "$1" 2>/dev/null | awk '
		/=> \// { print $3; next }
		/^[ \t]*\// { print $1 }' | while read -r lib; do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

cp "$busybox" "$root/bin/busybox"
add_bin "$vdpa" "$root/sbin/vdpa"

tests=
if [ -d "$build/tests" ]; then
	for t in "$build"/tests/*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		name=$(basename "$t")
		if [ -n "${VDPA_RIG_TESTS:-}" ]; then
			case " $VDPA_RIG_TESTS " in *" $name "*) ;; *) continue ;; esac
		fi
		add_bin "$t" "$root/rig/build/tests/$name"
		tests="$tests $name"
	done
fi
for b in vdpa-user vdpa-sim; do
	[ -x "$build/$b" ] && add_bin "$build/$b" "$root/rig/build/$b"
done
# glibc dlopen()s libgcc_s for pthread_cancel() and unwinding; ldd does not
# name it, and without it a cancelled thread aborts the process.
gcc_s=$(ldconfig -p 2>/dev/null | awk '/libgcc_s\.so\.1 .*x86-64/ { print $NF; exit }')
if [ -n "$gcc_s" ] && [ ! -e "$root$gcc_s" ]; then
	mkdir -p "$root$(dirname "$gcc_s")"
	cp -L "$gcc_s" "$root$gcc_s"
fi
# The shared library, for anything linked against it at run time.
for so in "$build"/libvdpa-user.so*; do
	[ -e "$so" ] && cp -P "$so" "$root/rig/build/"
done

cat >"$root/rig/config" <<CFG
RIG_TESTS="$tests"
RIG_PCI=${VDPA_RIG_PCI:-0}
RIG_TEST_TIMEOUT=${VDPA_RIG_TEST_TIMEOUT:-240}
CFG
cp "$here/guest-init.sh" "$root/init"
chmod 0755 "$root/init"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

(cd "$root" && find . -print0 | sort -z |
	cpio --null -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "mkinitramfs: $out ($(du -k "$out" | cut -f1) KiB; tests:${tests:- none})" >&2
