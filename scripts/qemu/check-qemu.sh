#!/bin/sh
# SPDX-License-Identifier: MIT
# make check-qemu: live migration of a QEMU guest whose virtio-net and
# virtio-blk devices are served by `vdpa-user serve` in front of vdpa-sim,
# against the same guest behind DPDK's dpdk-testpmd (docs/vhost-user.md).
#
# Steps: QEMU >= 10, dpdk-testpmd, python3 (install-deps.sh qemu) ->
# cached guest kernel (scripts/vm/build-kernel.sh with guest-kernel.config)
# -> initramfs with the static guest program (mkinitramfs.sh) -> the
# scenarios (rig.py): TAP, then `# qemu-migration: {json}`.
#
# Environment: BUILD (default build), VDPA_KERNEL_* (build-kernel.sh),
# VDPA_QEMU_KEEP=1 keep the logs, VDPA_QEMU_ONLY=baseline,serve,...
# Exit: 0 all passed, 1 a failure, 77 cannot run here (says why).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
rig=$build/qemu-rig
mkdir -p "$rig"

say() { echo "check-qemu: $*" >&2; }

if ! "$top/scripts/install-deps.sh" qemu; then
	say "SKIP: QEMU >= 10 (bookworm-backports), dpdk-testpmd or python3 cannot be installed here"
	exit 77
fi
qemu=$(command -v qemu-system-x86_64) || { say "SKIP: no qemu-system-x86_64"; exit 77; }
qver=$("$qemu" --version | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n1)
case $qver in
[1-9][0-9].*) ;;
*) say "SKIP: QEMU $qver is older than 10 (no vhost-user device state)"; exit 77 ;;
esac
py=/usr/bin/python3
[ -x "$py" ] || { say "SKIP: $py not found"; exit 77; }
[ -x "$build/vdpa-user" ] && [ -x "$build/vdpa-sim" ] || {
	say "FAIL: $build/vdpa-user or $build/vdpa-sim missing (make BUILD=$build all)"
	exit 1
}

out=$(VDPA_KERNEL_CONFIG=$here/guest-kernel.config "$top/scripts/vm/build-kernel.sh")
krc=$?
kernel=$(echo "$out" | tail -n 1)
case $krc in
0) ;;
77) say "SKIP: kernel source not available for the guest kernel"; exit 77 ;;
*) say "FAIL: guest kernel build failed (exit $krc)"; exit 1 ;;
esac

"$here/mkinitramfs.sh" "$rig/initramfs.gz" || { say "FAIL: initramfs"; exit 1; }

set -- --build "$build" --kernel "$kernel" --initrd "$rig/initramfs.gz"
[ "${VDPA_QEMU_KEEP:-0}" = 1 ] && set -- "$@" --keep
[ -n "${VDPA_QEMU_ONLY:-}" ] && set -- "$@" --only "$VDPA_QEMU_ONLY"
exec "$py" "$here/rig.py" "$@"
