#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the QEMU migration rig's initramfs: the static guest program
# (scripts/qemu/guest/qguest.c) as /init, nothing else.
# Usage: mkinitramfs.sh OUT.gz
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1
cc=${CC_GUEST:-gcc}
stage=$(mktemp -d "${TMPDIR:-/tmp}/qguest.XXXXXX")
trap 'rm -rf "$stage"' EXIT
$cc -static -O2 -std=gnu11 -Wall -Wextra -Wshadow -Werror \
	-o "$stage/init" "$here/guest/qguest.c"
(cd "$stage" && echo init | cpio -o -H newc --quiet) | gzip -9 >"$out.tmp"
mv "$out.tmp" "$out"
