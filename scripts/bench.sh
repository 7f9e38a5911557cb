#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every benchmark binary in $BUILD/bench; each prints its own figures
# (and the baseline it compares against, measured in the same run).
# Arguments go to each binary: `scripts/bench.sh blk-state transfer` runs
# only those figures of bench/perf (docs/benchmarks.md).
set -u
BUILD=${BUILD:-build}
rc=0
for b in "$BUILD"/bench/*; do
	[ -x "$b" ] || continue
	echo "== $(basename "$b")"
	"$b" "$@" || rc=1
done
exit $rc
