#!/bin/sh
# SPDX-License-Identifier: MIT
# Linkage: every function the public headers export (VDPA_EXPORT) is
# defined by libvdpa-user.so and listed in the symbol map, and the library
# exports nothing that no header declares. TAP; 77 when not built.
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
so=$build/libvdpa-user.so
map=$top/vdpa-user/libvdpa-user.map
if [ ! -e "$so" ] || ! command -v nm >/dev/null; then
	echo "1..0 # SKIP $so or nm missing"
	exit 77
fi
declared=$(grep -h 'VDPA_EXPORT' "$top"/include/vdpa-user/*.h | grep -v '#define' |
	sed -E 's/^.*[ *]([a-z_0-9]+)\(.*$/\1/' | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u)
n=0 fail=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi; }
count=$(echo "$declared" | wc -l)
[ "$count" -ge 20 ]; ok $? "the headers declare $count exported functions"
for f in $declared; do
	echo "$exported" | grep -qx "$f"; r1=$?
	grep -qE "^[[:space:]]*$f;" "$map"; r2=$?
	[ $r1 = 0 ] && [ $r2 = 0 ]
	ok $? "$f: exported by the library and listed in the map"
done
extra=$(echo "$exported" | while read -r e; do echo "$declared" | grep -qx "$e" || echo "$e"; done)
[ -z "$extra" ]; ok $? "no undeclared exports${extra:+: $(echo $extra)}"
echo "1..$n"
[ $fail = 0 ]
