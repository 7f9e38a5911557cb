#!/bin/sh
# SPDX-License-Identifier: MIT
# Install missing Debian packages for a purpose (build, kernel, tools,
# fuzz). As root with apt-get it runs apt-get itself; otherwise it names
# what is missing and fails (on a host without dpkg: what to look for).
# The build calls it only when its probe finds no libmnl or libpci;
# `make deps` and `make fuzz` call it directly.
set -eu
case "${1:-build}" in
build)  pkgs="gcc make pkg-config libmnl-dev libpci-dev" ;;
kernel) pkgs="linux-source-${KERNEL:-6.1} flex bison bc libelf-dev xz-utils cpio busybox-static qemu-system-x86 iproute2" ;;
tools)  pkgs="valgrind clang libclang-rt-14-dev g++" ;;
fuzz)   pkgs="clang libclang-rt-14-dev" ;;
*) echo "install-deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps.sh: not a Debian system (no dpkg-query): install the" \
		"equivalents of:$(printf ' %s' $pkgs)" >&2
	exit 1
fi
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "missing Debian packages:$missing (run: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
