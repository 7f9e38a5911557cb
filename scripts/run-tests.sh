#!/bin/bash
# SPDX-License-Identifier: MIT
# Run TAP test binaries; exit 77 = skipped. Prints a closing line
# "N passed, N failed, N skipped" and fails if any test binary failed.
# VALGRIND=1 runs each under valgrind's leak checker.
set -u
pass=0 fail=0 skip=0 failed=()
for t in "$@"; do
	name=$(basename "$t")
	echo "# ---- $name"
	if [ "${VALGRIND:-0}" = 1 ]; then
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--error-exitcode=99 --track-fds=no "$t"
	else
		timeout 600 "$t"
	fi
	rc=$?
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skip=$((skip + 1)); echo "# $name: skipped" ;;
	*) fail=$((fail + 1)); failed+=("$name(rc=$rc)") ;;
	esac
done
echo "#"
[ ${#failed[@]} -gt 0 ] && echo "# failed: ${failed[*]}"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
