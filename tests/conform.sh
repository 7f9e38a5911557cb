#!/bin/bash
# SPDX-License-Identifier: MIT
# `vdpa-user conform` proves it catches what it claims. A clean vdpa-sim
# (net and blk, default and the 6.1 / 6.12 kernel personalities) passes
# every check, skipping only for a capability it lacks, with that reason,
# and the clean runs are not vacuous (requests were in flight, kicks were
# sent while suspended, cycles ran, the migrations happened). Then, for
# every fault `vdpa-sim --fault help` lists and every class it applies to,
# conform against a simulator with that fault fails exactly the check the
# fault names and no other (checks built on it are skipped, naming it).
# Bad usage: one line, exit 2. TAP; 77 when not built.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
cli=$build/vdpa-user
sim=$build/vdpa-sim
if [ ! -x "$cli" ] || [ ! -x "$sim" ]; then
	echo "1..0 # SKIP $build is not built (make BUILD=$build)"
	exit 77
fi
n=0 fail=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /' | head -n 20; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-conform.XXXXXX") || exit 1
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

# Latency is judged against 400 ms here, not the 100 ms default: the
# slow-* faults take 600 ms, and a loaded CI machine must not fail a clean
# simulator on scheduling delay (the default is exercised by the docs' runs).
LIM="--latency-limit 400"

# start_sim NAME TYPE ARGS...: a simulator on $work/NAME.sock, waited for
start_sim() {
	local name=$1 type=$2 i
	shift 2
	rm -f "$work/$name.sock"
	"$sim" --type "$type" --socket "$work/$name.sock" "$@" \
		2>"$work/$name.err" &
	pids+=($!)
	eval "pid_$name=$!"
	for i in $(seq 100); do
		[ -S "$work/$name.sock" ] && return 0
		sleep 0.02
	done
	return 1
}
stop_sims() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	pids=()
}

# One check per line: "ID RESULT<tab>REASON<tab>" and its JSON object. The
# escaped quotes of the texts are set aside first (\x01) so [^"] holds.
split_checks() {	# json file -> $work/checks
	sed 's/\\"/\x01/g' "$1" | sed 's/{"id":/\n{"id":/g' | tail -n +2 |
		sed 's/^{"id":"\([^"]*\)".*"result":"\([a-z]*\)","reason":\(null\|"[^"]*"\).*$/\1 \2\t\3\t&/' \
		>"$work/checks"
}
# the reason of check ID
reason_of() {
	grep "^$1 " "$work/checks" | cut -f2
}
# measured VALUE of check ID: measure ID KEY
measure() {
	grep "^$1 " "$work/checks" | grep -o "\"$2\":[0-9.]*" | head -n 1 | cut -d: -f2
}

# conform_run TYPE "SIMARGS" "PEERARGS": both simulators, conform -j
conform_run() {
	local type=$1 a=$2 p=$3 disk=()
	if [ "$type" = blk ]; then
		truncate -s 64M "$work/disk"
		disk=(--backing "$work/disk")
	fi
	# shellcheck disable=SC2086 # word lists
	start_sim a "$type" "${disk[@]}" $a || return 1
	# shellcheck disable=SC2086
	start_sim b "$type" "${disk[@]}" $p || return 1
	timeout 120 "$cli" conform "sim:$work/a.sock" --peer "sim:$work/b.sock" $LIM -j \
		>"$work/out.json" 2>"$work/err"
	rc=$?
	stop_sims
	split_checks "$work/out.json"
	return 0
}

ids=""
# ---- clean simulators --------------------------------------------------------
# allowed skips: class ID -> reason pattern
allowed_skip() {	# id reason personality type
	case "$3:$4:$1" in
	*:net:blk.inflight-atomic) [[ $2 == *"not a blk device"* ]] ;;
	6.1:*:resume.*|6.1:*:latency.resume) [[ $2 == *"no RESUME"* ]] ;;
	noloop:net:resume.no-loss|noloop:net:peer.migrate)
		[[ $2 == *"does not come back on RX"* ]] ;;
	*) false ;;
	esac
}
for pers in default 6.1 6.12 noloop; do
	for type in net blk; do
		kargs=""
		case $pers in
		noloop) [ "$type" = net ] || continue; kargs="--no-loopback" ;;
		6.*) kargs="--kernel $pers" ;;
		esac
		conform_run "$type" "$kargs" "$kargs"
		total=$(wc -l <"$work/checks")
		bad=$(while IFS=$'\t' read -r head reason _; do
			read -r id res <<<"$head"
			[ "$res" = pass ] && continue
			if [ "$res" = skip ] && allowed_skip "$id" "$reason" "$pers" "$type"; then
				continue
			fi
			echo "$id $res $reason"
		done <"$work/checks")
		[ "$rc" = 0 ] && [ "$total" -ge 15 ] && [ -z "$bad" ] && [ ! -s "$work/err" ]
		ok $? "clean $type simulator ($pers): every check passes, skips only for what it lacks (rc $rc, $total checks)"
		[ -n "$bad" ] && echo "$bad" | diag
		[ -s "$work/err" ] && diag <"$work/err"
		[ -z "$ids" ] && ids=$(cut -d' ' -f1 "$work/checks" | tr '\n' ' ')
		# not vacuous: what each check saw
		v=0
		x=$(measure suspend.quiesce-used in_flight_at_suspend)
		y=$(measure suspend.quiesce-used kicked_while_suspended)
		[ "${x:-0}" -gt 0 ] && [ "${y:-0}" -gt 0 ] || v=1
		x=$(measure suspend.quiesce-buffers bytes_watched)
		[ "${x:-0}" -gt 0 ] || v=1
		if [ "$pers" != noloop ]; then
			x=$(measure peer.migrate migrations)
			[ "${x:-0}" = 2 ] || v=1
		else
			grep -q '"loopback":false' "$work/out.json" || v=1
		fi
		x=$(measure state.roundtrip state_bytes)
		[ "${x:-0}" -gt 0 ] || v=1
		if [ "$type" = blk ]; then
			x=$(measure blk.inflight-atomic in_flight_at_suspend)
			[ "${x:-0}" -gt 0 ] || v=1
		fi
		if [ "$pers" != 6.1 ]; then
			x=$(measure resume.no-loss cycles)
			[ "$pers" = noloop ] || [ "${x:-0}" -ge 5 ] || v=1
			x=$(measure resume.pending-kick served_after_resume)
			[ "${x:-0}" -gt 0 ] || v=1
		fi
		ok $v "  and not vacuously: requests in flight at SUSPEND, kicks while suspended, cycles, both migrations"
	done
done

# ---- every fault trips its check and no other ----------------------------------
"$sim" --fault help >"$work/faults" 2>"$work/err"
nf=$(grep -c . "$work/faults")
[ $? = 0 ] && [ "$nf" -ge 10 ] && [ ! -s "$work/err" ]
ok $? "vdpa-sim --fault help: $nf faults, one per line"
miss=$(while read -r name check _; do
	[[ " $ids " == *" $check "* ]] || echo "$name -> $check"
done <"$work/faults")
[ -z "$miss" ]
ok $? "each names a check conform has${miss:+; not: $miss}"
while read -r name check rest; do
	classes=$(echo "$rest" | sed 's/.*\[\(.*\)\]$/\1/')
	for type in $classes; do
		# a fault of the peer check is the peer's: it is where the state goes
		if [ "${check%%.*}" = peer ]; then
			conform_run "$type" "" "--fault $name"
		else
			conform_run "$type" "--fault $name" ""
		fi
		failed=$(awk '$2 == "fail" { print $1 }' "$work/checks" | tr '\n' ' ')
		reason=$(reason_of "$check")
		[ "$rc" = 1 ] && [ "$failed" = "$check " ]
		ok $? "--fault $name ($type): fails $check and nothing else (rc $rc; failed: ${failed:-none})"
		[ "$failed" = "$check " ] || diag <"$work/out.json"
		[ "$failed" = "$check " ] && echo "#   $reason"
	done
done <"$work/faults"

# ---- tiny rings: no false failure, skips say why ----------------------------------
for c in "net 2" "blk 4" "blk 2"; do
	read -r type size <<<"$c"
	conform_run "$type" "--vq-size $size" "--vq-size $size"
	nf=$(awk '$2 == "fail"' "$work/checks" | grep -c .)
	nsk=$(awk '$2 == "skip"' "$work/checks" | grep -c .)
	why=$(awk -F'\t' '$1 ~ / skip$/ && $2 !~ /not a blk device/ { print $2 }' "$work/checks" | sort -u | head -n 2 | tr '\n' ' ')
	[ "$rc" = 0 ] && [ "$nf" = 0 ]
	ok $? "$type with $size-entry rings: nothing fails, $nsk skipped (${why:-none})"
done

# ---- a capability missing is a skip, not a failure -----------------------------
start_sim a net --no-suspend
"$cli" conform "sim:$work/a.sock" $LIM -j >"$work/out.json" 2>"$work/err"
rc=$?
stop_sims
split_checks "$work/out.json"
nsk=$(grep -c " skip	\"no SUSPEND" "$work/checks")
nf=$(awk '$2 == "fail"' "$work/checks" | grep -c .)
[ "$rc" = 0 ] && [ "$nf" = 0 ] && [ "$nsk" -ge 12 ]
ok $? "a device without SUSPEND: $nsk checks skip naming it, none fails, exit 0"

# ---- bad usage: one line on stderr, exit 2 ---------------------------------------
start_sim a net
bad_case() {	# name, args...
	local name=$1
	shift
	"$cli" conform "$@" >"$work/out" 2>"$work/err"
	rc=$?
	[ "$rc" = 2 ] && [ "$(grep -c . "$work/err")" = 1 ] && [ ! -s "$work/out" ]
	ok $? "conform $name: one line, exit 2 (rc $rc: $(head -c 150 "$work/err"))"
}
bad_case "without DEV"
bad_case "with --peer and no DEV2" "sim:$work/a.sock" --peer
bad_case "with an unknown option" "sim:$work/a.sock" --bogus
bad_case "with two devices" "sim:$work/a.sock" "sim:$work/a.sock"
bad_case "with --peer twice" "sim:$work/a.sock" --peer "sim:$work/x" --peer "sim:$work/y"
bad_case "with DEV as its own peer" "sim:$work/a.sock" --peer "sim:$work/a.sock"
bad_case "with a socket nobody serves" "sim:$work/none.sock"
bad_case "with a peer nobody serves" "sim:$work/a.sock" --peer "sim:$work/none.sock"
bad_case "with no such char device" /dev/vhost-vdpa-999
bad_case "with --latency-limit 0" "sim:$work/a.sock" --latency-limit 0
bad_case "with --latency-limit and no value" "sim:$work/a.sock" --latency-limit
"$cli" -j conform "sim:$work/none.sock" >"$work/out" 2>"$work/err"
rc=$?
[ "$rc" = 2 ] && grep -q '^{"error":"conform: sim:' "$work/out"
ok $? "-j with a device that cannot be opened: an {\"error\"} object, exit 2"
# the device is still usable after all that
"$cli" conform "sim:$work/a.sock" $LIM >"$work/out" 2>"$work/err"
rc=$?
[ "$rc" = 0 ] && grep -q '^1\.\.[0-9]' "$work/out" && grep -q '^ok 3 - suspend.quiesce-used' "$work/out"
ok $? "then conform on the same simulator: TAP, exit 0 (rc $rc)"
stop_sims
"$sim" --type net --socket "$work/x.sock" --fault no-such-fault >"$work/out" 2>"$work/err"
rc=$?
[ "$rc" = 2 ] && [ "$(grep -c . "$work/err")" = 1 ] && grep -q "no-such-fault" "$work/err" && [ ! -e "$work/x.sock" ]
ok $? "vdpa-sim --fault no-such-fault: one line naming it, exit 2, no socket"
"$sim" --type net --socket "$work/x.sock" --fault slow-suspend, >"$work/out" 2>"$work/err"
rc=$?
[ "$rc" = 2 ] && [ ! -e "$work/x.sock" ]
ok $? "vdpa-sim --fault with an empty name: refused, exit 2"

echo "1..$n"
[ "$fail" = 0 ]
