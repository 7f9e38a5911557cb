#!/bin/bash
# SPDX-License-Identifier: MIT
# The CLI as a new user meets it: `vdpa-user help`, `--help` and `-h` list
# every command; `help COMMAND`, `COMMAND --help`, `COMMAND -h` (also after
# arguments) and `OBJECT help` print that command's usage and exit 0; an
# unknown command is one line on stderr; -V prints the CLI's and the
# library's version; global options work after the command without taking
# a command option's value; and the bash completion offers every command,
# option and value the help names. TAP; 77 when not built.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
cli=$build/vdpa-user
sim=$build/vdpa-sim
if [ ! -x "$cli" ] || [ ! -x "$sim" ]; then
	echo "1..0 # SKIP $build is not built (make BUILD=$build)"
	exit 77
fi
n=0 fail=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /' | head -n 15; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-cli-help.XXXXXX") || exit 1
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
# run CLI args...: $out, $err, $rc
run() {
	"$cli" "$@" >"$work/out" 2>"$work/err"
	rc=$?
	out=$(cat "$work/out")
	err=$(cat "$work/err")
}

# ---- the list of commands ---------------------------------------------------
run help
cp "$work/out" "$work/help"
[ $rc = 0 ] && [ -z "$err" ] && grep -q '^Commands:' "$work/help"
ok $? "vdpa-user help: the commands on stdout, exit 0"
for a in --help -h; do
	run $a
	[ $rc = 0 ] && [ -z "$err" ] && cmp -s "$work/out" "$work/help"
	ok $? "vdpa-user $a: the same"
done
run -j --help
[ $rc = 0 ] && cmp -s "$work/out" "$work/help"
ok $? "vdpa-user -j --help: the same"
cmds=$(sed -n 's/^  vdpa-user \([a-z-]*\)\( [a-z][a-z]*\)\{0,1\}.*$/\1\2/p' "$work/help")
for c in "dev show" "dev info" "dev add" "dev del" "dev config" "dev vstats" \
	"mgmtdev show" traffic migrate migrate-out migrate-in "state show" \
	"state check" demo; do
	echo "$cmds" | grep -qx "$c"
	ok $? "the list has '$c'"
done
grep -q -- '--max-state' "$work/help" && grep -q -- '-V, --version' "$work/help"
ok $? "and the global options, -V and --max-state among them"
run
[ $rc != 0 ] && [ -z "$out" ] && grep -q '^Commands:' "$work/err"
ok $? "vdpa-user alone: the list on stderr, exit $rc"

# ---- one command's help, every way of asking ---------------------------------
while read -r c; do
	read -r -a w <<<"$c"
	run help "${w[@]}"
	cp "$work/out" "$work/h1"
	[ $rc = 0 ] && [ -z "$err" ] && head -n 1 "$work/h1" | grep -q "^Usage: vdpa-user $c\b"
	ok $? "vdpa-user help $c: its usage on stdout, exit 0"
	same=0
	for args in "${w[*]} --help" "${w[*]} -h" "-h ${w[*]}" \
		"${w[*]} sim:$work/none.sock --help" "${w[*]} ARG -v -h"; do
		# shellcheck disable=SC2086
		run $args
		if [ $rc != 0 ] || [ -n "$err" ] || ! cmp -s "$work/out" "$work/h1"; then
			same=1
			echo "vdpa-user $args: rc $rc; $err" | diag
		fi
	done
	ok $same "vdpa-user $c --help / -h / -h before / after arguments: the same, exit 0"
	grep -q "^Options:" "$work/h1" || continue
	opts=$(sed -n '/^Options:/,/^$/s/^  \([a-z_-][a-z_-]*\).*$/\1/p' "$work/h1")
	miss=$(for o in $opts; do grep -q -- "$o" <<<"$(head -n 3 "$work/h1")" || echo "$o"; done)
	[ -z "$miss" ]
	ok $? "'$c': each option it lists is in its usage line${miss:+; not: $miss}"
done <<<"$cmds"

# every option a command parses (cmd-*.c) is in some command's help
for c in $(echo "$cmds" | tr ' ' '+'); do "$cli" help ${c//+/ }; done >"$work/allhelp" 2>&1
parsed=$(grep -ho 'strcmp([a-z_]*, "--[a-z-]*")' "$top"/vdpa-user/cli/cmd-*.c |
	sed 's/.*"\(--[a-z-]*\)".*/\1/' | sort -u)
miss=$(for o in $parsed; do grep -q -- "^  $o\b" "$work/allhelp" || echo "$o"; done)
[ -n "$parsed" ] && [ -z "$miss" ]
ok $? "every option the commands parse has a help entry ($(echo $parsed))${miss:+; missing: $(echo $miss)}"

run help migrate
for o in --traffic --via --count --size --queues --iterations direct; do
	grep -q -- "$o" "$work/out" || { echo "no $o" | diag; false; }
done
ok $? "migrate's help names --traffic --via (direct too) --count --size --queues --iterations"
run help migrate-out
grep -q '30 seconds' "$work/out"
ok $? "migrate-out's help says how long the peer may take"
for args in "dev help" "help dev" "dev -h" "dev --help"; do
	# shellcheck disable=SC2086
	run $args
	r=0
	for v in show info add del "config show" "vstats show"; do
		grep -q "^Usage: vdpa-user dev $v" "$work/out" || r=1
	done
	[ $rc = 0 ] && [ -z "$err" ] && [ $r = 0 ]
	ok $? "vdpa-user $args: every dev command's usage, exit 0"
done
run dev config help
[ $rc = 0 ] && head -n 1 "$work/out" | grep -q '^Usage: vdpa-user dev config show'
ok $? "vdpa-user dev config help: that command's usage"

# ---- errors: one line, naming what was wrong ---------------------------------
for args in frobnicate "help frobnicate"; do
	# shellcheck disable=SC2086
	run $args
	[ $rc = 1 ] && [ -z "$out" ] && [ "$(echo "$err" | wc -l)" = 1 ] &&
		grep -q "'frobnicate'" <<<"$err" && grep -q 'vdpa-user help' <<<"$err"
	ok $? "vdpa-user $args: exit 1, one line naming it and vdpa-user help: $err"
done
for args in "-j frobnicate --count 3" "--frob -j"; do
	# shellcheck disable=SC2086
	run $args
	[ $rc = 1 ] && [ "$(echo "$err" | wc -l)" = 1 ] &&
		[ "$out" = "{\"error\":\"${err#vdpa-user: }\"}" ]
	ok $? "vdpa-user $args: exit 1, the line on stderr and as JSON: $out"
done
run dev frob
[ $rc = 1 ] && [ "$(echo "$err" | wc -l)" = 1 ] && grep -q "'dev frob'" <<<"$err" &&
	grep -q 'show, info' <<<"$err"
ok $? "vdpa-user dev frob: one line with dev's verbs: $err"
run dev
[ $rc = 1 ] && [ "$(echo "$err" | wc -l)" = 1 ] && grep -q 'dev help' <<<"$err"
ok $? "vdpa-user dev: one line pointing at vdpa-user dev help: $err"
run --frob dev show
[ $rc = 1 ] && [ "$(echo "$err" | wc -l)" = 1 ] && grep -q -- "'--frob'" <<<"$err"
ok $? "an unknown option before the command: one line: $err"
run dev show --frob
grep -q -- '--frob' <<<"$err$out" && ! grep -q 'unknown option' <<<"$err"
ok $? "after the command it is the command's: $err"

# ---- version ----------------------------------------------------------------
version=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top" \
	--no-print-directory --eval 'print-version: ; @echo $(VERSION)' \
	print-version 2>/dev/null)
for args in -V --version "dev info -V" "traffic sim:x --count 3 --version"; do
	# shellcheck disable=SC2086
	run $args
	[ $rc = 0 ] && [ "$out" = "vdpa-user $version, libvdpa-user $version" ]
	ok $? "vdpa-user $args: $out"
done

# ---- global options after the command ------------------------------------------
"$sim" --type net --queue-pairs 2 --socket "$work/a.sock" 2>>"$work/sim.log" &
pids+=($!)
for _ in $(seq 200); do [ -S "$work/a.sock" ] && break; sleep 0.05; done
dev=sim:$work/a.sock
run dev info "$dev" -j
[ $rc = 0 ] && [ "${out:0:2}" = '{"' ] && [ "$(echo "$out" | wc -l)" = 1 ]
ok $? "dev info DEV -j: JSON"
run traffic "$dev" --count 500 -j -p
[ $rc = 0 ] && [ "${out:0:1}" = '{' ] && grep -q '^  "requests": 500,$' <<<"$out"
ok $? "traffic DEV --count N -j -p: pretty JSON, N requests"
run traffic -jp "$dev" --queues 2 --count 600
[ $rc = 0 ] && grep -q '^  "requests": 600,$' <<<"$out"
ok $? "traffic -jp DEV --queues 2 --count N: the same"
run -j traffic "$dev" --count 700 -v
[ $rc = 0 ] && grep -q '"requests":700,' <<<"$out"
ok $? "-j before, -v after"
run traffic "$dev" --count -j
[ $rc = 1 ] && [ -z "$out" ] && grep -q -- '--count' <<<"$err"
ok $? "traffic DEV --count -j: -j is --count's value, refused as a number: $err"
run migrate-out "$dev" --to -j
[ $rc = 1 ] && ! grep -q '^{' <<<"$out" && grep -q "'-j'" <<<"$err"
ok $? "migrate-out DEV --to -j: -j is the URI: $err"
printf 'not a state' >"$work/state"
run state show "$work/state" --max-state 4
[ $rc = 1 ] && grep -q 'larger than the 4-byte cap' <<<"$err"
ok $? "state show FILE --max-state 4: the cap applies: $err"
run state show "$work/state" --max-state
[ $rc = 1 ] && grep -q -- '--max-state needs' <<<"$err"
ok $? "--max-state without a value after the command: refused: $err"

# ---- bash completion ------------------------------------------------------------
comp=$top/completions/vdpa-user
if command -v bash >/dev/null && [ -r "$comp" ]; then
	# completions for a line (up to the cursor), one per line
	complete_line() {
		bash -c '
			source "$1"
			eval "${PRELUDE:-}"
			COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
			read -r -a COMP_WORDS <<<"$COMP_LINE"
			[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
			COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
			case ${COMP_WORDS[0]} in
			vdpa-sim) _vdpa_sim ;; *) _vdpa_user ;;
			esac
			printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$1"
	}
	bash -n "$comp"
	ok $? "completions/vdpa-user is valid bash"
	got=$(complete_line 'vdpa-user ')
	miss=$(for c in $(echo "$cmds" | cut -d' ' -f1 | sort -u) help; do
		grep -qx "$c" <<<"$got" || echo "$c"; done)
	[ -z "$miss" ]
	ok $? "vdpa-user <TAB>: every object${miss:+; missing: $miss}"
	miss=
	while read -r c; do
		read -r -a w <<<"$c"
		[ ${#w[@]} = 2 ] || continue
		complete_line "vdpa-user ${w[0]} " | grep -qx "${w[1]}" || miss="$miss '$c'"
	done <<<"$cmds"
	[ -z "$miss" ]
	ok $? "vdpa-user OBJECT <TAB>: every verb${miss:+; missing:$miss}"
	miss=
	while read -r c; do
		"$cli" help $c >"$work/h"
		opts=$(sed -n '/^Options:/,/^$/s/^  \(--[a-z-]*\).*$/\1/p' "$work/h")
		[ -z "$opts" ] && continue
		got=$(complete_line "vdpa-user $c x -")
		for o in $opts; do grep -qx -- "$o" <<<"$got" || miss="$miss $c:$o"; done
	done <<<"$cmds"
	[ -z "$miss" ]
	ok $? "vdpa-user COMMAND ... -<TAB>: every option of its help${miss:+; missing:$miss}"
	got=$(complete_line 'vdpa-user dev add vdpa0 ')
	miss=$(for k in mgmtdev mac mtu max_vqp device_features; do grep -qx "$k" <<<"$got" || echo "$k"; done)
	[ -z "$miss" ]
	ok $? "dev add NAME <TAB>: its keywords${miss:+; missing: $miss}"
	got=$(complete_line 'vdpa-user traffic -')
	miss=$(for o in -j --json -p --pretty -v --verbose --max-state -V --version -h --help; do
		grep -qx -- "$o" <<<"$got" || echo "$o"; done)
	[ -z "$miss" ]
	ok $? "the global options too${miss:+; missing: $miss}"
	[ "$(complete_line 'vdpa-user migrate a b --via ' | tr '\n' ' ')" = 'pipe socket file direct ' ]
	ok $? "--via <TAB>: pipe socket file direct"
	[ "$(complete_line 'vdpa-user migrate-in d --from ' | tr '\n' ' ')" = 'unix: tcp: file: ' ]
	ok $? "--from <TAB>: unix: tcp: file:"
	complete_line 'vdpa-user dev info ' | grep -qx 'sim:'
	ok $? "DEV <TAB>: sim: (and /dev/vhost-vdpa-*, vdpa device names)"
	# vdpa device names come from sysfs: two, as if there
	export PRELUDE='_vdpa_user_vdpa_names() { echo vdpa0; echo vdpa1; }'
	r=0
	for l in 'vdpa-user dev info v' 'vdpa-user migrate vdpa0 ' 'vdpa-user dev del ' \
		'vdpa-user dev config show v' 'vdpa-user dev vstats v'; do
		got=$(complete_line "$l" | tr '\n' ' ')
		case $l in
		*'migrate vdpa0 ') want='vdpa0 vdpa1 sim: ' ;;
		*) want='vdpa0 vdpa1 ' ;;
		esac
		[ "$got" = "$want" ] || { r=1; echo "'$l': '$got'" | diag; }
	done
	unset PRELUDE
	ok $r "vdpa device names (sysfs) for DEV and NAME"
	got=$(complete_line "vdpa-user -j traffic sim:$work/a.so")
	# bash replaces the part of the word after its last ':'
	[ "$got" = "$work/a.sock" ]
	ok $? "sim:PATH <TAB>: the socket ($got)"
	[ -z "$(complete_line 'vdpa-user traffic x --count ')" ]
	ok $? "--count <TAB>: nothing to offer"
	got=$(complete_line 'vdpa-sim --')
	miss=$(sed -n 's/^[[:space:]]*{ "\([a-z-]*\)", [a-z_]*_argument,.*$/\1/p' \
		"$top/sim-device/opts.c" | while read -r o; do
		grep -qx -- "--$o" <<<"$got" || echo "--$o"; done)
	[ -z "$miss" ]
	ok $? "vdpa-sim --<TAB>: every long option of sim-device/opts.c${miss:+; missing: $(echo $miss)}"
	[ "$(complete_line 'vdpa-sim --type ' | tr '\n' ' ')" = 'net blk ' ]
	ok $? "vdpa-sim --type <TAB>: net blk"
else
	echo "# bash or completions/vdpa-user missing: completion not checked"
fi

echo "1..$n"
[ $fail = 0 ]
