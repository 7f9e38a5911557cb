#!/bin/bash
# SPDX-License-Identifier: MIT
# The public headers as a C++ program includes them: each
# include/vdpa-user/*.h alone and all together compile with
# g++ -std=c++11 -Wall -Wextra -Werror -pedantic-errors, against the
# system's <linux/*.h> as an installed copy would (and against the vendored
# 6.1 ones); a C++ program that takes the address of every function of the
# symbol map links against libvdpa-user.so (extern "C": no mangled names)
# and runs; each header alone also compiles as strict C11. And the version:
# the macros, vdpa_version() and the Makefile agree. TAP; 77 without a C++
# compiler.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
cxx=${CXX:-}
if [ -z "$cxx" ]; then
	for c in g++ c++ clang++; do
		command -v "$c" >/dev/null && { cxx=$c; break; }
	done
fi
if [ -z "$cxx" ] || ! command -v "$cxx" >/dev/null; then
	echo "1..0 # SKIP no C++ compiler (Debian: apt-get install g++)"
	exit 77
fi
cc=${CC:-cc}
n=0 fail=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /' | head -n 30; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-cxx.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# -I the public headers only, as -I$(includedir): never the vendored uapi
cxxflags=(-std=c++11 -Wall -Wextra -Werror -pedantic-errors -I"$top/include")
headers=("$top"/include/vdpa-user/*.h)
echo "# $("$cxx" --version | head -n 1)"

for h in "${headers[@]}"; do
	b=$(basename "$h")
	printf '#include <vdpa-user/%s>\n#include <vdpa-user/%s>\n' "$b" "$b" \
		>"$work/one.cc"
	"$cxx" "${cxxflags[@]}" -fsyntax-only "$work/one.cc" >"$work/log" 2>&1
	r=$?
	ok $r "C++11: <vdpa-user/$b> alone (and twice)"
	[ $r = 0 ] || diag <"$work/log"
done

# all together, in both orders, against the system's and the vendored uapi
{ for h in "${headers[@]}"; do echo "#include <vdpa-user/$(basename "$h")>"; done; } \
	>"$work/all.cc"
{ for ((i = ${#headers[@]} - 1; i >= 0; i--)); do
	echo "#include <vdpa-user/$(basename "${headers[i]}")>"; done; } >"$work/rev.cc"
for f in all rev; do
	"$cxx" "${cxxflags[@]}" -fsyntax-only "$work/$f.cc" >"$work/log" 2>&1
	r=$?
	ok $r "C++11: every header together ($f order)"
	[ $r = 0 ] || diag <"$work/log"
done
"$cxx" "${cxxflags[@]}" -isystem "$top/include/uapi" -fsyntax-only \
	"$work/all.cc" >"$work/log" 2>&1
r=$?
ok $r "C++11: every header together, the vendored Linux 6.1 uapi as system headers"
[ $r = 0 ] || diag <"$work/log"
for std in c++14 c++17 c++20; do
	"$cxx" "${cxxflags[@]}" -std=$std -fsyntax-only "$work/all.cc" \
		>"$work/log" 2>&1
	r=$?
	ok $r "$std: every header together"
	[ $r = 0 ] || diag <"$work/log"
done

# C: each header alone, strict C11 (the project builds as gnu11)
for h in "${headers[@]}"; do
	b=$(basename "$h")
	echo "#include <vdpa-user/$b>" >"$work/one.c"
	"$cc" -std=c11 -Wall -Wextra -Werror -pedantic-errors -I"$top/include" \
		-fsyntax-only "$work/one.c" >"$work/log" 2>&1
	r=$?
	ok $r "C11: <vdpa-user/$b> alone"
	[ $r = 0 ] || diag <"$work/log"
done

# Linking from C++: every function of the map by address. A header without
# extern "C" leaves a mangled name undefined.
map=$top/vdpa-user/libvdpa-user.map
funcs=$(sed -n 's/^[[:space:]]*\(vdpa_[a-z0-9_]*\);$/\1/p' "$map")
nfuncs=$(echo "$funcs" | wc -l)
{
	cat "$work/all.cc"
	echo '#include <cstdio>'
	echo '#include <cstring>'
	echo 'typedef void (*any_fn)(void);'
	echo 'static any_fn table[] = {'
	for f in $funcs; do echo "	reinterpret_cast<any_fn>(&$f),"; done
	echo '};'
	echo 'int main() {'
	echo '	unsigned int i, n = 0;'
	echo '	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)'
	echo '		n += table[i] != 0;'
	echo '	std::printf("%u %s %s\n", n, vdpa_version(), VDPA_USER_VERSION);'
	echo '	return std::strcmp(vdpa_version(), VDPA_USER_VERSION) != 0;'
	echo '}'
} >"$work/link.cc"
if [ -e "$build/libvdpa-user.so" ]; then
	san=()
	# shellcheck disable=SC2054 # the commas belong to the option
	[ "${SANITIZE:-}" = 1 ] && san=(-fsanitize=address,undefined)
	"$cxx" "${cxxflags[@]}" "${san[@]}" -o "$work/link" "$work/link.cc" \
		-L"$build" -lvdpa-user >"$work/log" 2>&1
	r=$?
	ok $r "C++ links all $nfuncs functions of the map against libvdpa-user.so"
	[ $r = 0 ] || diag <"$work/log"
	out=$(LD_LIBRARY_PATH=$build "$work/link" 2>&1)
	r=$?
	echo "$out" | diag
	[ $r = 0 ] && [ "${out%% *}" = "$nfuncs" ]
	ok $? "it runs: $nfuncs addresses, vdpa_version() == VDPA_USER_VERSION"
else
	echo "# $build/libvdpa-user.so not built: link test skipped"
fi

# The version: macros, the string, the Makefile, the man pages
v=$(printf '#include <vdpa-user/version.h>\n#include <cstdio>\nint main() { std::printf("%%d.%%d.%%d %%s\\n", VDPA_USER_VERSION_MAJOR, VDPA_USER_VERSION_MINOR, VDPA_USER_VERSION_PATCH, VDPA_USER_VERSION); return !(VDPA_USER_CHECK_VERSION(0, 0, 0) && !VDPA_USER_CHECK_VERSION(VDPA_USER_VERSION_MAJOR + 1, 0, 0) && !VDPA_USER_CHECK_VERSION(VDPA_USER_VERSION_MAJOR, VDPA_USER_VERSION_MINOR, VDPA_USER_VERSION_PATCH + 1)); }\n' |
	"$cxx" "${cxxflags[@]}" -x c++ -o "$work/ver" - 2>&1 && "$work/ver")
r=$?
set -- $v
[ $r = 0 ] && [ "${1:-x}" = "${2:-y}" ]
ok $? "VDPA_USER_VERSION \"${2:-}\" is MAJOR.MINOR.PATCH (${1:-}); VDPA_USER_CHECK_VERSION compares"
mk=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top" --no-print-directory \
	--eval 'print-version: ; @echo $(VERSION)' print-version 2>/dev/null)
[ -n "$mk" ] && [ "$mk" = "${1:-}" ]
ok $? "the Makefile's VERSION ($mk) is the header's"

echo "1..$n"
[ $fail = 0 ]
