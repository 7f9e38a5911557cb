#!/bin/bash
# SPDX-License-Identifier: MIT
# What `make install PREFIX=/usr DESTDIR=...` puts where, after a `make`
# with the default prefix: vdpa-user.pc for /usr, the version header, man1
# and man3 (a page of every exported function's name that man(1) finds),
# the bash completion; `make uninstall` takes it all away again. And how
# the Makefile picks its build directory and checks its dependencies: BUILD
# given is used as it is (also with SANITIZE=1), libmnl and libpci are
# probed, Debian packages are installed only as root with apt-get, a
# missing dependency is named. TAP; 77 when not built.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
if [ ! -x "$build/vdpa-user" ] || [ ! -e "$build/libvdpa-user.so" ]; then
	echo "1..0 # SKIP $build is not built (make BUILD=$build)"
	exit 77
fi
n=0 fail=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /' | head -n 20; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-install.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# A clean make: not the one running `make check` (its jobserver, its
# SANITIZE and BUILD).
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE -u BUILD \
		make -C "$top" --no-print-directory "$@"
}
version=$(mk -s --eval 'print-version: ; @echo $(VERSION)' print-version)
funcs=$(sed -n 's/^[[:space:]]*\(vdpa_[a-z0-9_]*\);$/\1/p' \
	"$top/vdpa-user/libvdpa-user.map")

# ---- install ---------------------------------------------------------------------
dest=$build/destdir-install
rm -rf "$dest"
mk install BUILD="$build" DESTDIR="$dest" PREFIX=/usr >"$work/install.log" 2>&1
r=$?
ok $r "make install DESTDIR=$dest PREFIX=/usr"
[ $r = 0 ] || diag <"$work/install.log"
pc=$dest/usr/lib/pkgconfig/vdpa-user.pc
grep -qx 'prefix=/usr' "$pc" && grep -qx 'libdir=/usr/lib' "$pc" &&
	grep -qx 'includedir=/usr/include' "$pc" && grep -qx "Version: $version" "$pc"
ok $? "vdpa-user.pc: prefix /usr (the build's says $(sed -n 's/^prefix=//p' "$build/vdpa-user.pc")), version $version"
if command -v pkg-config >/dev/null; then
	v=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_LIBDIR=$dest/usr/lib/pkgconfig \
		pkg-config --modversion vdpa-user 2>&1)
	[ "$v" = "$version" ]
	ok $? "pkg-config --modversion vdpa-user: $v"
fi
cmp -s "$top/include/vdpa-user/version.h" "$dest/usr/include/vdpa-user/version.h"
ok $? "<vdpa-user/version.h> is installed"
printf '#include <stdio.h>\n#include <vdpa-user/vdpa-user.h>\nint main(void) { return puts(VDPA_USER_VERSION) < 0; }\n' |
	${CC:-cc} -x c -I"$dest/usr/include" -o "$work/v" - 2>"$work/cc.log" &&
	[ "$("$work/v")" = "$version" ]
ok $? "<vdpa-user/vdpa-user.h> brings VDPA_USER_VERSION"
[ -x "$dest/usr/bin/vdpa-user" ] && [ -x "$dest/usr/bin/vdpa-sim" ] &&
	[ "$("$dest/usr/bin/vdpa-user" -V)" = "vdpa-user $version, libvdpa-user $version" ]
ok $? "the CLI and the simulator; vdpa-user -V says $version"
m=$dest/usr/share/man
r=0
for p in "$top"/docs/man/*.1; do
	cmp -s "$p" "$m/man1/$(basename "$p")" || { r=1; echo "man1: $p" | diag; }
done
ok $r "man1: vdpa-user(1), vdpa-sim(1)"
r=0
for p in "$top"/docs/man/*.3; do
	cmp -s "$p" "$m/man3/$(basename "$p")" || { r=1; echo "man3: $p" | diag; }
done
ok $r "man3: libvdpa-user(3) and a page per header ($(ls "$top"/docs/man/*.3 | wc -l))"
bad=
for f in $funcs; do
	t=$(sed -n 's/^\.so man3\///p' "$m/man3/$f.3" 2>/dev/null)
	[ -n "$t" ] && [ -e "$m/man3/$t" ] || bad="$bad $f"
done
[ -z "$bad" ]
ok $? "man3: every exported function ($(echo $funcs | wc -w)) has a page of its name, pointing at an installed page${bad:+; not:$bad}"
if command -v man >/dev/null; then
	out=$(MANPATH=$m man 3 vdpa_migrate 2>&1 | head -n 1)
	grep -q 'VDPA-USER-MIGRATE(3)' <<<"$out"
	ok $? "MANPATH=... man 3 vdpa_migrate shows vdpa-user-migrate(3)"
	out=$(MANPATH=$m man 3 vdpa_version 2>&1 | head -n 1)
	grep -q 'VDPA-USER-VERSION(3)' <<<"$out"
	ok $? "man 3 vdpa_version shows vdpa-user-version(3)"
fi
comp=$dest/usr/share/bash-completion/completions
cmp -s "$top/completions/vdpa-user" "$comp/vdpa-user" &&
	[ "$(readlink "$comp/vdpa-sim")" = vdpa-user ]
ok $? "bash completion in share/bash-completion/completions (vdpa-user, vdpa-sim)"
mk uninstall BUILD="$build" DESTDIR="$dest" PREFIX=/usr >"$work/uninstall.log" 2>&1
left=$(find "$dest" ! -type d)
[ -z "$left" ]
ok $? "make uninstall removes every file it installed${left:+; left: $(echo $left | head -c 300)}"
rm -rf "$dest"

# ---- the build directory ------------------------------------------------------------
pb() { mk -s --eval 'print-build: ; @echo $(BUILD)' print-build "$@"; }
[ "$(pb)" = build ]
ok $? "make: build"
[ "$(pb SANITIZE=1)" = build-san ]
ok $? "make SANITIZE=1: build-san (CI's make check SANITIZE=1)"
[ "$(pb SANITIZE=1 BUILD=x)" = x ]
ok $? "make SANITIZE=1 BUILD=x: x, as given"
[ "$(BUILD=y env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE make -C "$top" -s --no-print-directory \
	--eval 'print-build: ; @echo $(BUILD)' print-build SANITIZE=1)" = y ]
ok $? "BUILD=y in the environment, SANITIZE=1: y"
[ "$(pb SANITIZE=fuzz BUILD=x)" = x-fuzz ]
ok $? "the fuzz build of make check keeps its own directory (x-fuzz)"
plan=$(mk -n SANITIZE=1 BUILD="$work/sanx" all 2>&1)
grep -q -- "-o $work/sanx/obj/" <<<"$plan" && grep -q -- '-fsanitize=address' <<<"$plan" &&
	! grep -q "$work/sanx-san" <<<"$plan"
ok $? "make -n SANITIZE=1 BUILD=DIR all: sanitizer objects into DIR"

# ---- dependencies: probed; Debian packages only as root with apt-get ---------------
stub=$work/stub
mkdir -p "$stub"
for t in dpkg-query apt-get; do
	printf '#!/bin/sh\necho "%s $*" >>%s\nexit %s\n' "$t" "$work/called" \
		"$([ $t = apt-get ] && echo 0 || echo 1)" >"$stub/$t"
	chmod +x "$stub/$t"
done
probe_dir=$work/probe
if printf '#include <libmnl/libmnl.h>\n#include <pci/pci.h>\nint main(void) { return 0; }\n' |
	${CC:-cc} -x c -o /dev/null - -lmnl -lpci >/dev/null 2>&1; then
	rm -f "$work/called"
	PATH=$stub:$PATH mk BUILD="$probe_dir" "$probe_dir/.deps-ok" >"$work/probe.log" 2>&1
	r=$?
	[ $r = 0 ] && [ ! -e "$work/called" ]
	ok $? "libmnl and libpci present: the probe passes, no package manager asked"
	[ $r = 0 ] || diag <"$work/probe.log"
	[ -e "$work/called" ] && diag <"$work/called"
else
	echo "# libmnl/libpci not installed here: the passing probe is not checked"
fi
rm -rf "$probe_dir" "$work/called"
PATH=$stub:$PATH mk BUILD="$probe_dir" CC=false "$probe_dir/.deps-ok" >"$work/probe.log" 2>&1
r=$?
[ $r != 0 ] && grep -q 'libmnl and libpci' "$work/probe.log" &&
	grep -q 'libmnl-dev libpci-dev' "$work/probe.log"
ok $? "a compiler that cannot build with them: make fails and names what to install"
if [ "$(id -u)" = 0 ]; then
	grep -q '^apt-get install' "$work/called" 2>/dev/null
	ok $? "as root with apt-get: the Debian packages were asked for"
else
	! grep -q '^apt-get' "$work/called" 2>/dev/null
	ok $? "not root: apt-get was not run"
fi
rm -rf "$probe_dir" "$work/called"
# no dpkg at all (another distribution): the script says what to look for
mkdir -p "$work/nodpkg"
for t in sh id printf echo cat grep; do
	p=$(command -v $t) && ln -s "$p" "$work/nodpkg/$t"
done
out=$(PATH=$work/nodpkg "$top/scripts/install-deps.sh" build 2>&1)
r=$?
[ $r = 1 ] && grep -q 'not a Debian system' <<<"$out" && grep -q 'libmnl-dev' <<<"$out"
ok $? "install-deps.sh without dpkg: exit 1 and the packages named: $out"

echo "1..$n"
[ $fail = 0 ]
