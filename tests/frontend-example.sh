#!/bin/bash
# SPDX-License-Identifier: MIT
# examples/frontend-migrate.c as a user builds it: `make install` into a
# DESTDIR, then cc with nothing but `pkg-config --cflags --libs vdpa-user`
# pointed into it, linked against the installed shared library, run with
# LD_LIBRARY_PATH. Then the front-end migrates between two vdpa-sim
# processes on private sockets: without the device-state extension (the
# library replays the class state), with a destination failing after the
# source was suspended (rollback), and with the extension. TAP; 77 when
# pkg-config or the build is missing.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
n=0 fail=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /'; }

if ! command -v pkg-config >/dev/null; then
	echo "1..0 # SKIP pkg-config is not installed (Debian: apt-get install pkg-config)"
	exit 77
fi
if [ ! -x "$build/vdpa-sim" ] || [ ! -e "$build/libvdpa-user.so" ]; then
	echo "1..0 # SKIP $build is not built (make BUILD=$build)"
	exit 77
fi
cc=${CC:-cc}
# a sanitizer build installs an instrumented library: the example must be too
ccflags=()
# shellcheck disable=SC2054 # the commas belong to the option
[ "${SANITIZE:-}" = 1 ] &&
	ccflags=(-fsanitize=address,undefined -fno-omit-frame-pointer)

work=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-fe-example.XXXXXX") || exit 1
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

dest=$build/destdir
rm -rf "$dest"

# ---- install, as a packager would ------------------------------------------
# A clean make: not the one running `make check` (its jobserver, its
# SANITIZE, which would rename the build directory again).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE \
	make -C "$top" --no-print-directory install BUILD="$build" \
	DESTDIR="$dest" PREFIX=/usr >"$work/install.log" 2>&1
r=$?
ok $r "make install DESTDIR=$dest PREFIX=/usr"
[ $r = 0 ] || tail -n 20 "$work/install.log" | diag
r=0
[ -e "$dest/usr/include/vdpa-user/migrate.h" ] || r=1
for h in "$top"/include/vdpa-user/*.h; do
	cmp -s "$h" "$dest/usr/include/vdpa-user/$(basename "$h")" ||
		{ r=1; echo "not installed: $h" | diag; }
done
ok $r "every public header is installed, migrate.h included"
pc=$dest/usr/lib/pkgconfig/vdpa-user.pc
grep -qx 'prefix=/usr' "$pc" 2>/dev/null && grep -qx 'libdir=/usr/lib' "$pc" &&
	grep -qx 'includedir=/usr/include' "$pc"
ok $? "vdpa-user.pc names the install prefix /usr, not the build's"

# ---- pkg-config into the DESTDIR (man pkg-config: PKG_CONFIG_SYSROOT_DIR) ----
export PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_LIBDIR=$dest/usr/lib/pkgconfig
unset PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs vdpa-user 2>"$work/pc.err")
r=$?
ok $r "pkg-config --cflags --libs vdpa-user: $flags"
[ $r = 0 ] || diag <"$work/pc.err"
case " $flags " in *" -I$dest/usr/include "*) r=0 ;; *) r=1 ;; esac
case " $flags " in *" -L$dest/usr/lib "*) ;; *) r=1 ;; esac
ok $r "the flags point into the DESTDIR"
exe=$work/frontend-migrate
# shellcheck disable=SC2086 # word splitting of pkg-config's output
"$cc" -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wformat=2 -Wvla \
	-Wmissing-prototypes -Wstrict-prototypes -Werror "${ccflags[@]}" \
	-o "$exe" "$top/examples/frontend-migrate.c" $flags >"$work/cc.log" 2>&1
r=$?
ok $r "examples/frontend-migrate.c builds against the installed headers and library"
[ $r = 0 ] || diag <"$work/cc.log"
LD_LIBRARY_PATH=$dest/usr/lib ldd "$exe" 2>/dev/null |
	grep -q "libvdpa-user.so.0 => $dest/usr/lib/libvdpa-user.so.0"
ok $? "with LD_LIBRARY_PATH it resolves to $dest/usr/lib/libvdpa-user.so.0"
# the static archive links with exactly what Libs.private adds
priv=$(pkg-config --static --libs-only-l vdpa-user | sed 's/-lvdpa-user//')
# shellcheck disable=SC2046,SC2086
"$cc" -std=gnu11 -D_GNU_SOURCE "${ccflags[@]}" -o "$work/frontend-migrate-static" \
	"$top/examples/frontend-migrate.c" $(pkg-config --cflags vdpa-user) \
	"$dest/usr/lib/libvdpa-user.a" $priv >"$work/cc-static.log" 2>&1
r=$?
ok $r "libvdpa-user.a links with Libs.private alone ($priv)"
[ $r = 0 ] || diag <"$work/cc-static.log"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

# ---- the front-end between two simulators ----------------------------------
sim=$dest/usr/bin/vdpa-sim
[ -x "$sim" ] || sim=$build/vdpa-sim
start_sim() {	# tag, simulator options...
	local tag=$1
	shift
	"$sim" --type net --queue-pairs 2 --socket "$work/$tag.sock" "$@" \
		2>>"$work/sim.log" &
	pids+=($!)
	for _ in $(seq 200); do
		[ -S "$work/$tag.sock" ] && return 0
		sleep 0.05
	done
	return 1
}
stop_sims() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	pids=()
	rm -f "$work"/*.sock
}
run() {	# name, expected summary regex, sim options, -- front-end options
	local name=$1 want=$2 sopts=() out r
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do sopts+=("$1"); shift; done
	shift
	if ! start_sim src "${sopts[@]}" || ! start_sim dst "${sopts[@]}"; then
		ok 1 "$name: simulators did not start"
		stop_sims
		return
	fi
	out=$(LD_LIBRARY_PATH=$dest/usr/lib timeout 120 "$exe" "sim:$work/src.sock" \
		"sim:$work/dst.sock" "$@" 2>"$work/fe.err")
	r=$?
	echo "$out" | diag
	[ $r = 0 ] || diag <"$work/fe.err"
	ok $r "$name: exit status 0"
	echo "$out" | tail -n 1 | grep -qE "$want"
	ok $? "$name: the summary says so"
	stop_sims
}
if [ -x "$exe" ]; then
	# frames counted and passed are not 0, and some frames went to the
	# provisioned MAC: "0 of them let through" is not "0 of 0"
	clean='[1-9][0-9]* frames: lost 0, duplicated 0, corrupt 0, stalls 0; [1-9][0-9]* passed .*; [1-9][0-9]* to the provisioned MAC [0-9a-f:]+, 0 of them let through$'
	run "no state extension (library replay)" \
		"^frontend-migrate: OK: migrated .*$clean" --no-state --
	run "no state extension, destination fails after SUSPEND" \
		"^frontend-migrate: OK: the destination failed .*rolled back to .*$clean" \
		--no-state -- --fail-destination -v
	run "with the state extension" \
		"^frontend-migrate: OK: migrated .*$clean" --
	run "with the state extension, destination fails after SUSPEND" \
		"^frontend-migrate: OK: the destination failed .*rolled back to .*$clean" \
		-- --fail-destination
fi
echo "1..$n"
[ $fail = 0 ]
