#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# /init of the rig's guest (scripts/vm/mkinitramfs.sh puts it there).
# Creates vdpa_sim devices, runs each test binary against their
# /dev/vhost-vdpa-N and prints TAP between @@VDPA-RIG markers, then the
# summary line the host parses, then powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/ TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
# pseudo-terminals for the tests of what the CLI shows on a terminal
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
. /rig/config
B=/rig/build
export LD_LIBRARY_PATH=$B

finish() {
	echo "@@VDPA-RIG SUMMARY pass=$pass fail=$fail skip=$skip status=$1"
	echo "@@VDPA-RIG END"
	sync
	reboot -f
	sleep 5
	poweroff -f
}
pass=0 fail=0 skip=0 n=0 PCI=

echo
echo "@@VDPA-RIG BEGIN"
echo "# kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB"
# TCG on a loaded host can calibrate the TSC wrong at boot; the guest's
# clock (and every timeout in it) then runs fast: say what it calibrated
echo "# clock: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null) (of $(cat /sys/devices/system/clocksource/clocksource0/available_clocksource 2>/dev/null))," \
	"$(dmesg | grep -m1 -i -E 'tsc.*(MHz|calibrat)' | sed 's/^\[[^]]*\] *//')"

# Create a vdpa device with the project's CLI, else with iproute2's vdpa.
add_dev() {
	if [ -x $B/vdpa-user ] && $B/vdpa-user dev add "$@" >/tmp/add.log 2>&1; then
		echo "# $1 $2: created with vdpa-user dev add"
		return 0
	fi
	if [ -x $B/vdpa-user ]; then
		echo "# note: vdpa-user dev add failed ($(head -n1 /tmp/add.log)); using iproute2 vdpa"
	else
		echo "# note: no vdpa-user CLI in the image; using iproute2 vdpa"
	fi
	vdpa dev add "$@"
}

# /dev/vhost-vdpa-N of vdpa device $1 (waits for devtmpfs).
vhost_of() {
	i=0
	while [ $i -lt 50 ]; do
		for d in /sys/bus/vdpa/devices/$1/vhost-vdpa-*; do
			if [ -e "$d" ] && [ -c "/dev/${d##*/}" ]; then
				echo "/dev/${d##*/}"
				return 0
			fi
		done
		i=$((i + 1))
		sleep 0.1
	done
	return 1
}

echo "# vdpa mgmtdev: $(vdpa mgmtdev show 2>&1 | tr '\n' ' ')"
add_dev name vdpa0 mgmtdev vdpasim_net mac 00:11:22:33:44:55 ||
	echo "# vdpa0 (vdpasim_net) could not be created"
add_dev name vdpa1 mgmtdev vdpasim_blk ||
	echo "# vdpa1 (vdpasim_blk) could not be created"
# a second net device of the same model and configuration: a migration target
add_dev name vdpa3 mgmtdev vdpasim_net mac 00:11:22:33:44:55 ||
	echo "# vdpa3 (second vdpasim_net) could not be created"
NET=$(vhost_of vdpa0) || NET=
BLK=$(vhost_of vdpa1) || BLK=
NET2=$(vhost_of vdpa3) || NET2=
echo "# net device: vdpa0 -> ${NET:-none}; blk device: vdpa1 -> ${BLK:-none}"
vdpa dev show 2>&1 | sed 's/^/# /'

if [ "$RIG_PCI" = 1 ]; then
	for p in /sys/bus/pci/devices/*; do
		[ "$(cat $p/vendor)" = 0x1af4 ] || continue
		drv=$(basename "$(readlink $p/driver 2>/dev/null)" 2>/dev/null)
		echo "# pci ${p##*/} $(cat $p/vendor):$(cat $p/device) driver=${drv:-none}"
		if [ -n "$drv" ] && [ "$drv" != vp-vdpa ] && [ -d /sys/bus/pci/drivers/vp-vdpa ]; then
			echo vp-vdpa >$p/driver_override
			echo ${p##*/} >$p/driver/unbind
			echo ${p##*/} >/sys/bus/pci/drivers/vp-vdpa/bind 2>/dev/null ||
				echo "# vp-vdpa did not bind ${p##*/}"
		fi
	done
	for m in $(vdpa mgmtdev show 2>/dev/null | sed -n 's/^\(pci\/[^:]*:[^:]*:[^:]*\):.*/\1/p'); do
		echo "# vp-vdpa management device $m"
		if add_dev name vdpa2 mgmtdev "$m"; then
			PCI=$(vhost_of vdpa2) || PCI=
			echo "# pci device: vdpa2 -> ${PCI:-none}"
		fi
		break
	done
fi

if [ -z "$NET" ] && [ -z "$BLK" ]; then
	echo "not ok 1 - vdpa_sim devices appear as /dev/vhost-vdpa-N"
	echo "1..1"
	fail=1
	finish 1
fi
n=$((n + 1)); pass=$((pass + 1))
echo "ok $n - vdpa_sim devices appear as /dev/vhost-vdpa-N (net ${NET:-none}, blk ${BLK:-none})"

# our netlink commands against iproute2's vdpa, byte for byte
for c in "mgmtdev show" "dev config show" "dev config show vdpa0" \
	 "dev vstats show vdpa0 qidx 0"; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	ours=$($B/vdpa-user -j $c 2>&1); orc=$?
	# shellcheck disable=SC2086
	theirs=$(vdpa -j $c 2>&1); trc=$?
	if [ "$ours" = "$theirs" ]; then
		pass=$((pass + 1))
		echo "ok $n - vdpa-user -j $c matches iproute2 vdpa -j"
	elif [ $orc -ne 0 ] &&
	     echo "$ours" | grep -q "not supported" &&
	     echo "$theirs" | grep -q "not supported"; then
		pass=$((pass + 1))
		echo "ok $n - vdpa-user -j $c: refused like iproute2 (not supported by this kernel)"
	else
		echo "ok $n - vdpa-user -j $c matches iproute2 vdpa -j # TODO differs"
		echo "#   ours:   $ours"
		echo "#   vdpa:   $theirs"
	fi
done

# bad input: one line, non-zero exit, nothing half-created
bad_add() {
	n=$((n + 1))
	out=$($B/vdpa-user dev add "$@" 2>&1); rc=$?
	lines=$(echo "$out" | wc -l)
	if [ $rc -ne 0 ] && [ "$lines" = 1 ] && [ ! -e /sys/bus/vdpa/devices/$2 ]; then
		pass=$((pass + 1))
		echo "ok $n - dev add $*: refused in one line ($out)"
	else
		fail=$((fail + 1))
		echo "not ok $n - dev add $*: rc=$rc, $lines lines: $out"
	fi
}
bad_add name bad0 mgmtdev nosuch_mgmtdev
bad_add name bad1 mgmtdev vdpasim_blk mac 00:11:22:33:44:66
n=$((n + 1))
out=$($B/vdpa-user dev add name vdpa0 mgmtdev vdpasim_net 2>&1); rc=$?
if [ $rc -ne 0 ] && [ -e /sys/bus/vdpa/devices/vdpa0 ]; then
	pass=$((pass + 1)); echo "ok $n - dev add of an existing name refused, the original kept ($out)"
else
	fail=$((fail + 1)); echo "not ok $n - dev add of an existing name: rc=$rc $out"
fi
n=$((n + 1))
out=$($B/vdpa-user dev del nosuch 2>&1); rc=$?
if [ $rc -ne 0 ]; then
	pass=$((pass + 1)); echo "ok $n - dev del of an unknown name refused ($out)"
else
	fail=$((fail + 1)); echo "not ok $n - dev del nosuch succeeded"
fi
n=$((n + 1))
if $B/vdpa-user dev add name tmp9 mgmtdev vdpasim_net >/dev/null 2>&1 &&
   vhost_of tmp9 >/dev/null && $B/vdpa-user dev info tmp9 >/tmp/info9 2>&1 &&
   $B/vdpa-user dev del tmp9 && [ ! -e /sys/bus/vdpa/devices/tmp9 ]; then
	pass=$((pass + 1)); echo "ok $n - dev add, dev info by vdpa name (sysfs -> /dev/vhost-vdpa-N), dev del"
else
	fail=$((fail + 1)); echo "not ok $n - dev add/info/del round trip: $(cat /tmp/info9 2>/dev/null)"
fi

# identity and model URI, as migration compatibility sees them
n=$((n + 1))
info=$($B/vdpa-user -j dev info vdpa0 2>&1)
if echo "$info" | grep -q '"model":"vdpa://vdpasim_net/net"'; then
	pass=$((pass + 1)); echo "ok $n - dev info vdpa0: model vdpa://vdpasim_net/net"
else
	fail=$((fail + 1)); echo "not ok $n - dev info vdpa0: $info"
	echo "#   vhost-vdpa-0 device: $(readlink -f /sys/class/vhost-vdpa/vhost-vdpa-0/device)"
fi
if [ -n "$PCI" ]; then
	n=$((n + 1))
	info=$($B/vdpa-user -j dev info "$PCI" 2>&1)
	if echo "$info" | grep -q 'model.*pci://1af4/1041/'; then
		pass=$((pass + 1)); echo "ok $n - dev info $PCI (vp_vdpa): libpci identity and model URI"
		echo "$info" | sed 's/^/#   /'
	else
		fail=$((fail + 1)); echo "not ok $n - dev info $PCI: $info"
		$B/vdpa-user -vv dev info "$PCI" 2>&1 | tail -n 4 | sed 's/^/#   /'
	fi
fi

export VDPA_TEST_NET_DEV=$NET VDPA_TEST_NET_DEV2=${NET2:-} VDPA_TEST_BLK_DEV=$BLK VDPA_TEST_PCI_DEV=${PCI:-} BUILD=$B
for name in $RIG_TESTS; do
	t=$B/tests/$name
	n=$((n + 1))
	start=$(cut -d' ' -f1 /proc/uptime)
	if [ "$name" = differential ]; then
		VDPA_DIFF_DEV=$NET VDPA_DIFF_BLK_DEV=$BLK \
		VDPA_DIFF_RECORD=/tmp/differential.out \
			timeout "$RIG_TEST_TIMEOUT" "$t" >/tmp/test.log 2>&1
	else
		timeout "$RIG_TEST_TIMEOUT" "$t" >/tmp/test.log 2>&1
	fi
	rc=$?
	end=$(cut -d' ' -f1 /proc/uptime)
	secs=$(awk "BEGIN { printf \"%.1f\", $end - $start }")
	sed 's/^/    /' /tmp/test.log
	case $rc in
	0) pass=$((pass + 1)); echo "ok $n - $name (${secs} s)" ;;
	77) skip=$((skip + 1)); echo "ok $n - $name # SKIP $(grep -m1 'SKIP' /tmp/test.log | sed 's/.*SKIP *//')" ;;
	*) fail=$((fail + 1)); echo "not ok $n - $name (exit $rc, ${secs} s)" ;;
	esac
	if [ "$name" = differential ] && [ -s /tmp/differential.out ]; then
		echo "@@VDPA-RIG DIFFERENTIAL BEGIN"
		cat /tmp/differential.out
		echo "@@VDPA-RIG DIFFERENTIAL END"
	fi
done
# vdpa-user conform against Linux vdpa_sim (docs/conformance-kernel.md): a
# failed check on the real kernel fails the rig (our check or the kernel is
# wrong). The JSON report goes between @@VDPA-RIG CONFORM markers; the host
# keeps it as $BUILD/rig/conform-CLASS.json.
conform() {	# class dev [peer]
	n=$((n + 1))
	if [ -z "$2" ]; then
		skip=$((skip + 1)); echo "ok $n - conform $1 # SKIP no $1 device"
		return
	fi
	start=$(cut -d' ' -f1 /proc/uptime)
	if [ -n "$3" ]; then
		timeout "$RIG_TEST_TIMEOUT" $B/vdpa-user -j conform "$2" --peer "$3" >/tmp/conform.json 2>/tmp/conform.err
	else
		timeout "$RIG_TEST_TIMEOUT" $B/vdpa-user -j conform "$2" >/tmp/conform.json 2>/tmp/conform.err
	fi
	rc=$?
	secs=$(awk "BEGIN { printf \"%.1f\", $(cut -d' ' -f1 /proc/uptime) - $start }")
	echo "@@VDPA-RIG CONFORM BEGIN $1"
	cat /tmp/conform.json
	echo "@@VDPA-RIG CONFORM END"
	sum=$(sed -n 's/.*"summary":{"pass":\([0-9]*\),"fail":\([0-9]*\),"skip":\([0-9]*\)}.*/pass \1, fail \2, skip \3/p' /tmp/conform.json)
	sed 's/^/    # /' /tmp/conform.err
	what="conform $1 $2${3:+ --peer $3}: ${sum:-no summary} (${secs} s)"
	if [ $rc -eq 0 ] && [ -n "$sum" ]; then
		pass=$((pass + 1)); echo "ok $n - $what"
	else
		# the failed checks: the host lists them from the JSON
		fail=$((fail + 1)); echo "not ok $n - $what (exit $rc)"
	fi
}
if [ -x $B/vdpa-user ] && $B/vdpa-user help 2>/dev/null | grep -qw conform; then
	# a blk peer needs the same disk: vdpa_sim_blk.shared_backend (6.12;
	# 6.1 gives every vdpasim_blk its own RAM disk)
	BLK2=
	if [ "$(cat /sys/module/vdpa_sim_blk/parameters/shared_backend 2>/dev/null)" = Y ] &&
	   vdpa dev add name vdpa4 mgmtdev vdpasim_blk 2>/dev/null; then
		BLK2=$(vhost_of vdpa4) || BLK2=
	else
		echo "# conform blk: no --peer (vdpasim_blk devices do not share a disk on this kernel)"
	fi
	conform net "$NET" "${NET2:-}"
	conform blk "$BLK" "$BLK2"
else
	n=$((n + 1)); skip=$((skip + 1))
	echo "ok $n - conform # SKIP this vdpa-user has no conform command"
fi

# Benchmark, not a test: the same CLI driver, packet size and count through
# Linux vdpa_sim and through vdpa-sim, both inside this guest.
rate_of() { sed -n 's/.*"rate":\([0-9.]*\).*/\1/p'; }
if [ -n "$NET" ] && [ -x $B/vdpa-sim ]; then
	kr=$($B/vdpa-user -j traffic "$NET" --count 100000 --size 64 2>/dev/null | rate_of)
	$B/vdpa-sim --type net --socket /tmp/bench.sock 2>/dev/null &
	sp=$!
	i=0
	while [ ! -S /tmp/bench.sock ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	sr=$($B/vdpa-user -j traffic sim:/tmp/bench.sock --count 100000 --size 64 2>/dev/null | rate_of)
	kill $sp 2>/dev/null; wait $sp 2>/dev/null
	if [ -n "$kr" ] && [ -n "$sr" ]; then
		echo "# bench: net loopback, 64-byte packets, 100000 each, same driver (vdpa-user traffic) in this TCG guest:" \
			"Linux vdpa_sim $(printf %.0f "$kr") pkt/s, vdpa-sim $(printf %.0f "$sr") pkt/s," \
			"ratio vdpa_sim/vdpa-sim $(awk "BEGIN { printf \"%.2f\", $kr / $sr }")"
	else
		echo "# bench: net loopback comparison did not run (kernel '${kr}', sim '${sr}')"
	fi
fi
echo "1..$n"
dmesg | grep -i -E 'vdpa|vhost|BUG|WARNING' | tail -n 20 | sed 's/^/# dmesg: /'
[ $fail -eq 0 ] && finish 0
finish 1
