#!/bin/sh
# SPDX-License-Identifier: MIT
# Install missing Debian packages for a purpose (build, kernel, tools, qemu,
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
qemu)   # QEMU 10 (from bookworm-backports, see install_qemu10 below), DPDK's
	# testpmd as the baseline vhost-user back-end, python3 for QMP
	pkgs="dpdk dpdk-dev librte-net-vhost23 librte-mempool-ring23 python3 cpio gzip" ;;
*) echo "install-deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps.sh: not a Debian system (no dpkg-query): install the" \
		"equivalents of:$(printf ' %s' $pkgs)" >&2
	exit 1
fi
# QEMU >= 10 (vhost-user device state): Debian bookworm has 7.2, so add
# bookworm-backports with the mirror the system's own apt sources use (no
# host name of ours) and install qemu-system-x86 from there.
qemu_major() {
	v=$(dpkg-query -W -f='${Status} ${Version}' qemu-system-x86 2>/dev/null) || return 0
	case $v in "install ok installed "*) ;; *) return 0 ;; esac
	v=${v##* }; v=${v#*:}; echo "${v%%.*}"
}
backports_mirror() {
	# first deb URI of a "bookworm" suite in deb822 or one-line sources
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++)
			if ($i == "bookworm") s = 1 }
			/^$/ { if (s && u != "") { print u; exit } u = ""; s = 0 }
			END { if (s && u != "") print u }' "$f" | head -n1
	done | head -n1
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }'
}
install_qemu10() {
	[ "$(qemu_major)" -ge 10 ] 2>/dev/null && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "install-deps.sh: QEMU >= 10 needed (have $(qemu_major || true)); as root:" \
			"apt-get install -t bookworm-backports qemu-system-x86" >&2
		return 1
	fi
	if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		mirror=$(backports_mirror | head -n1)
		[ -n "$mirror" ] || { echo "install-deps.sh: no bookworm mirror in the apt sources" >&2; return 1; }
		echo "install-deps.sh: adding bookworm-backports from $mirror" >&2
		printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$mirror" >/etc/apt/sources.list.d/vdpa-user-backports.sources
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || return 1
	apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >&2 || return 1
	[ "$(qemu_major)" -ge 10 ] 2>/dev/null || {
		echo "install-deps.sh: bookworm-backports gave qemu-system-x86 $(qemu_major), not >= 10" >&2
		return 1
	}
}
if [ "${1:-build}" = qemu ]; then
	install_qemu10 || exit 1
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
