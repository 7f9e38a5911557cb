#!/bin/sh
# SPDX-License-Identifier: MIT
# make check-kernel: run the project's test binaries against Linux
# vhost-vdpa + vdpa_sim inside a small TCG guest (docs/kernel-rig.md).
#
# Steps: kernel deps -> cached bzImage (build-kernel.sh) -> initramfs with
# $BUILD/tests/* (mkinitramfs.sh) -> boot (run-guest.sh) -> print the
# guest's TAP -> compare the differential script's kernel answers with the
# simulator's on the host.
#
# Environment: BUILD (default build), VDPA_RIG_* (see run-guest.sh and
# mkinitramfs.sh), VDPA_KERNEL_* (see build-kernel.sh),
# KERNEL=6.1 (default) or 6.12: which Linux the guest runs; each has its
# own expected differential answers (tests/differential.expected for 6.1,
# tests/differential-$KERNEL.expected otherwise).
# VDPA_RIG_UPDATE_EXPECTED=1 to rewrite the expected answers from
# this run's kernel answers.
# Exit: 0 all passed, 1 a failure, 77 the rig cannot run here (says why).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
rig=$build/rig
mkdir -p "$rig"

say() { echo "check-kernel: $*" >&2; }
now() { date +%s; }
t0=$(now)

if ! "$top/scripts/install-deps.sh" kernel; then
	say "SKIP: kernel rig dependencies missing and not installable"
	exit 77
fi
command -v qemu-system-x86_64 >/dev/null || {
	say "SKIP: qemu-system-x86_64 not available"; exit 77; }

out=$("$here/build-kernel.sh")
krc=$?
kernel=$(echo "$out" | tail -n 1)
case $krc in
0) ;;
77) say "SKIP: kernel source not available"; exit 77 ;;
*) say "FAIL: kernel build failed (exit $krc)"; exit 1 ;;
esac
t1=$(now)

BUILD=$build "$here/mkinitramfs.sh" "$rig/initramfs.gz" || exit 1
t2=$(now)

say "booting $kernel (timeout ${VDPA_RIG_TIMEOUT:-900} s)"
# 6.12: the vdpasim_blk devices share one disk, so that `vdpa-user conform
# --peer` can migrate blk between two of them (6.1 has no such parameter)
append=${VDPA_RIG_APPEND:-}
[ "${KERNEL:-6.1}" = 6.1 ] || append="$append vdpa_sim_blk.shared_backend=1"
VDPA_RIG_APPEND=$append \
	"$here/run-guest.sh" "$kernel" "$rig/initramfs.gz" "$rig/console.log"
rc=$?
t3=$(now)
[ $rc = 77 ] && exit 77
tr -d '\r' <"$rig/console.log" >"$rig/console.txt"

# The guest's TAP: everything between the markers, minus the markers.
# (firmware escape codes may precede the first marker on its line)
sed -n '/@@VDPA-RIG BEGIN/,/^@@VDPA-RIG END/p' "$rig/console.txt" |
	sed '/^@@VDPA-RIG DIFFERENTIAL BEGIN/,/^@@VDPA-RIG DIFFERENTIAL END/d' |
	sed '/^@@VDPA-RIG CONFORM BEGIN/,/^@@VDPA-RIG CONFORM END/d' |
	grep -v '@@VDPA-RIG' >"$rig/guest.tap"
# vdpa-user conform's JSON reports, one per kernel and device class
# (scripts/vm/conform-summary.sh turns them into docs/conformance-kernel.md)
for c in net blk; do
	f=$rig/conform-${KERNEL:-6.1}-$c.json
	rm -f "$f"
	sed -n "/^@@VDPA-RIG CONFORM BEGIN $c\$/,/^@@VDPA-RIG CONFORM END/p" \
		"$rig/console.txt" | grep -v '^@@VDPA-RIG' >"$f"
	[ -s "$f" ] || rm -f "$f"
done
sed -n '/^@@VDPA-RIG DIFFERENTIAL BEGIN/,/^@@VDPA-RIG DIFFERENTIAL END/p' \
	"$rig/console.txt" | grep -v '^@@VDPA-RIG' >"$rig/differential.kernel"
summary=$(grep '^@@VDPA-RIG SUMMARY' "$rig/console.txt" | tail -n 1)

echo "# ==== guest (Linux vhost-vdpa + vdpa_sim) ===="
cat "$rig/guest.tap"
for c in net blk; do
	f=$rig/conform-${KERNEL:-6.1}-$c.json
	[ -s "$f" ] && command -v jq >/dev/null || continue
	echo "# conform $c ($f):"
	jq -r '.checks[] | "#   \(.result)\t\(.id)" +
		(if .result == "pass" then "" else ": \(.reason)" end)' "$f" 2>&1 |
		head -n 60
done
status=1
if [ -z "$summary" ]; then
	say "no summary from the guest (qemu exit $rc$([ $rc = 124 ] && echo ', timed out')); console tail:"
	tail -n 30 "$rig/console.txt" | sed 's/^/#   /' >&2
else
	echo "# $summary"
	case $summary in *status=0*) status=0 ;; esac
fi

# Differential: the kernel's answers vs the simulator's, on the host.
diffbin=$build/tests/differential
case ${KERNEL:-6.1} in
6.1) expected=$top/tests/differential.expected ;;
*) expected=$top/tests/differential-$KERNEL.expected ;;
esac
if [ -s "$rig/differential.kernel" ] && [ -x "$diffbin" ]; then
	echo "# ==== differential: simulator (host) vs kernel (guest) ===="
	if ! VDPA_DIFF_EXPECTED=$rig/differential.kernel \
	     VDPA_DIFF_KERNEL=${KERNEL:-6.1} "$diffbin"; then
		status=1
	fi
	if ! cmp -s "$rig/differential.kernel" "$expected"; then
		if [ "${VDPA_RIG_UPDATE_EXPECTED:-0}" = 1 ]; then
			cp "$rig/differential.kernel" "$expected"
			echo "# updated $expected from this run"
		else
			echo "# the kernel's answers differ from $expected:"
			diff -u "$expected" "$rig/differential.kernel" 2>&1 | sed 's/^/#   /'
			echo "# (VDPA_RIG_UPDATE_EXPECTED=1 make check-kernel records them)"
		fi
	fi
elif [ -x "$diffbin" ]; then
	echo "# differential: the guest produced no answers"
fi

kb=$(cat "$(dirname "$kernel")/build-seconds" 2>/dev/null || echo '?')
echo "# timings: kernel $((t1 - t0)) s this run (first build took $kb s)," \
	"initramfs $((t2 - t1)) s, guest boot+tests $((t3 - t2)) s," \
	"total $(( $(now) - t0 )) s"
echo "# console log: $rig/console.txt"
if [ $status = 0 ]; then
	echo "check-kernel: PASS"
else
	echo "check-kernel: FAIL"
fi
exit $status
