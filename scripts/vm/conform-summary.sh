#!/bin/sh
# SPDX-License-Identifier: MIT
# Markdown summary of `vdpa-user -j conform` reports (the rig keeps them as
# $BUILD/rig/conform-KERNEL-CLASS.json): one table per report, a row per
# check with its result and its measurements (or the reason it did not
# pass). docs/conformance-kernel.md is made with it.
#
# usage: conform-summary.sh [--matrix] REPORT.json...
#   --matrix  one table instead: a row per check, a column per report
# Exit: 0, 1 a report that jq cannot read, 77 no jq.
set -eu
matrix=0
[ "${1:-}" = --matrix ] && { matrix=1; shift; }
[ $# -gt 0 ] || { echo "usage: conform-summary.sh [--matrix] REPORT.json..." >&2; exit 1; }
command -v jq >/dev/null || { echo "conform-summary: SKIP: jq not found" >&2; exit 77; }

# every report checked before anything is printed
for f in "$@"; do
	jq -e '(.checks | type) == "array" and (.summary | type) == "object"' \
		"$f" >/dev/null 2>&1 ||
		{ echo "conform-summary: $f: not a conform report" >&2; exit 1; }
done
if [ $matrix = 1 ]; then
	names=$(for f in "$@"; do basename "$f" .json; done | jq -R . | jq -s -c .)
	jq -r -s --argjson names "$names" '
		(["check"] + $names | "| " + join(" | ") + " |"),
		("|---" * ($names | length + 1) + "|"),
		(. as $r | [$r[].checks[].id] | reduce .[] as $i ([];
			if index([$i]) then . else . + [$i] end) | .[] as $id |
		 "| `\($id)` | " + ([$r[] | (.checks[] | select(.id == $id) |
			.result) // "-"] | join(" | ")) + " |")' "$@"
	exit 0
fi
for f in "$@"; do
	base=$(basename "$f" .json)
	jq -r --arg name "$base" '
		def meas: [.measured | to_entries[] |
			"\(.key)=\(.value | if type == "number" and . != floor
				then (. * 10 | round / 10) else . end)"] | join(", ");
		"### \($name): \(.device)\(if .peer then " --peer \(.peer)" else "" end)",
		"",
		"class \(.class), backend features \(.backend_features), " +
		"suspend \(.suspend), resume \(.resume), device_state " +
		"\(.device_state): **\(.result)** (\(.summary.pass) passed, " +
		"\(.summary.fail) failed, \(.summary.skip) skipped)",
		"",
		"| check | result | measured / reason |",
		"|---|---|---|",
		(.checks[] | "| `\(.id)` | \(.result) | " +
			(if .result == "pass" then meas else
			 (.reason | gsub("\\|"; "/")) end) + " |"),
		""' "$f" || { echo "conform-summary: $f: not a conform report" >&2; exit 1; }
done
