#!/bin/sh
# SPDX-License-Identifier: MIT
# Boot the rig's guest under QEMU TCG and capture its serial console.
#
# usage: run-guest.sh BZIMAGE INITRAMFS CONSOLE_LOG
# Environment:
#   VDPA_RIG_TIMEOUT  seconds before QEMU is killed (default 900: the whole
#                     suite took 365 s on 6.1 on a loaded 2-core host)
#   VDPA_RIG_MEM      guest memory in MiB (default 512)
#   VDPA_RIG_SMP      guest CPUs (default 2)
#   VDPA_RIG_PCI      1 = add a modern-only virtio-net-pci device (vp_vdpa)
#   VDPA_RIG_APPEND   extra kernel command line
# Exit: QEMU's status (124 = timed out), 77 when QEMU is missing.
#
# TCG on purpose: nested KVM hung at boot on the machines this was written
# on, and -cpu host aborted on an MSR (shared/REFERENCE.md).
set -eu
kernel=${1:?usage: run-guest.sh BZIMAGE INITRAMFS CONSOLE_LOG}
initrd=${2:?usage: run-guest.sh BZIMAGE INITRAMFS CONSOLE_LOG}
log=${3:?usage: run-guest.sh BZIMAGE INITRAMFS CONSOLE_LOG}

qemu=$(command -v qemu-system-x86_64 || true)
if [ -z "$qemu" ]; then
	echo "run-guest: SKIP: qemu-system-x86_64 not found (apt-get install qemu-system-x86)" >&2
	exit 77
fi

set -- -accel tcg -m "${VDPA_RIG_MEM:-512}" -smp "${VDPA_RIG_SMP:-2}" \
	-nographic -no-reboot -nic none -monitor none -serial stdio \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 quiet loglevel=2 ${VDPA_RIG_APPEND:-}"
if [ "${VDPA_RIG_PCI:-0}" = 1 ]; then
	set -- "$@" -netdev hubport,id=rignet,hubid=0 \
		-device virtio-net-pci,disable-legacy=on,netdev=rignet
fi

rc=0
timeout -k 10 "${VDPA_RIG_TIMEOUT:-900}" "$qemu" "$@" </dev/null >"$log" 2>&1 || rc=$?
exit $rc
