#!/bin/bash
# SPDX-License-Identifier: MIT
# The manual against the code: every function of the symbol map has a man3
# page of its name (the page of its header, built as a .so link), whose
# SYNOPSIS carries the header's prototype word for word; every public
# header has its page; no page declares a function the library does not
# export; the full programs of the EXAMPLES compile and link. vdpa-user(1)
# has a section for every command `vdpa-user help` lists, naming each of its
# options, the global options and EXAMPLES that are real commands;
# vdpa-sim(1) names every option of sim-device/opts.c. Every page renders
# without a groff warning and carries the version of version.h. TAP; 77
# when not built.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
cli=$build/vdpa-user
if [ ! -x "$cli" ] || [ ! -e "$build/man3/.links" ]; then
	echo "1..0 # SKIP $build is not built (make BUILD=$build)"
	exit 77
fi
man=$top/docs/man
map=$top/vdpa-user/libvdpa-user.map
n=0 fail=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /' | head -n 20; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vdpa-man.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# one line per prototype, blanks collapsed, no blank after ( or before )
norm() {
	sed -e 's/[[:space:]]\{1,\}/ /g' -e 's/( /(/g' -e 's/ )/)/g' \
		-e 's/^ //' -e 's/ $//'
}
fname() { sed -E 's/^[^(]*[ *]([a-z_0-9]+)\(.*$/\1/'; }
# the exported declarations of the headers
header_decls() {
	awk '/VDPA_EXPORT/ && !/#define/ { d = ""; c = 1 }
	     c { d = d " " $0 }
	     c && /;/ { print d; c = 0 }' "$@" | sed 's/VDPA_EXPORT//' | norm
}
# the prototypes of a page's SYNOPSIS (.nf block, roff escapes undone)
man_decls() {
	sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$1" | sed -n '/^\.nf/,/^\.fi/p' |
		grep -v '^\.' | sed -e 's/\\f[BIPR]//g' -e 's/\\-/-/g' \
		-e 's/\\e/\\/g' -e 's/\\&//g' |
		awk '{ d = d " " $0 } /;/ { print d; d = "" }' | norm
}
# the names of a page's NAME section
man_names() {
	sed -n '/^\.SH NAME/{n;s/ \\- .*//;s/[,\\]/ /g;p;q;}' "$1"
}

funcs=$(sed -n 's/^[[:space:]]*\(vdpa_[a-z0-9_]*\);$/\1/p' "$map" | sort)
header_decls "$top"/include/vdpa-user/*.h | sort -u >"$work/h.decls"
: >"$work/m.decls"
for p in "$man"/*.3; do
	man_decls "$p" >>"$work/m.decls"
done
sort -u -o "$work/m.decls" "$work/m.decls"
count=$(echo "$funcs" | wc -l)
[ "$count" -ge 100 ]
ok $? "the map lists $count functions"

# every exported function: its page, a link of its name, its prototype
missing=() nolink=() badproto=() twice=()
for f in $funcs; do
	pages=$(for p in "$man"/*.3; do
		man_names "$p" | tr ' ' '\n' | grep -qx "$f" && basename "$p"
	done)
	case $(echo "$pages" | grep -c .) in
	0) missing+=("$f"); continue ;;
	1) ;;
	*) twice+=("$f") ;;
	esac
	page=$(echo "$pages" | head -n 1)
	grep -qx ".so man3/$page" "$build/man3/$f.3" 2>/dev/null || nolink+=("$f")
	decl=$(grep -E "^[^(]*[ *]$f\(" "$work/h.decls")
	if [ -z "$decl" ] || ! man_decls "$man/$page" | grep -qxF "$decl"; then
		badproto+=("$f")
		{ echo "$f: header:"; echo "  ${decl:-(none)}"; echo "$f: $page:";
		  man_decls "$man/$page" | grep -E "[ *]$f\(" | sed 's/^/  /'; } |
			diag
	fi
done
[ ${#missing[@]} = 0 ]
ok $? "every exported function is named by a man3 page${missing[*]:+; none names: ${missing[*]}}"
[ ${#twice[@]} = 0 ]
ok $? "by one page only${twice[*]:+; more than one: ${twice[*]}}"
[ ${#nolink[@]} = 0 ]
ok $? "each has a man3 page of its own name (.so of its header's)${nolink[*]:+; not: ${nolink[*]}}"
[ ${#badproto[@]} = 0 ]
ok $? "each page's SYNOPSIS has the header's prototype word for word${badproto[*]:+; not: ${badproto[*]}}"

# nothing documented that is not exported
stale=$(fname <"$work/m.decls" | sort -u | while read -r f; do
	echo "$funcs" | grep -qx "$f" || echo "$f"
done)
[ -z "$stale" ]
ok $? "no page declares a function the library does not export${stale:+: $(echo $stale)}"
bad=$(ls "$build/man3" | sed 's/\.3$//' | while read -r f; do
	echo "$funcs" | grep -qx "$f" || echo "$f"
done)
[ -z "$bad" ]
ok $? "no link page for a name the library does not export${bad:+: $(echo $bad)}"

# every public header has its page
for h in "$top"/include/vdpa-user/*.h; do
	b=$(basename "$h")
	p=$(for f in "$man"/vdpa-user-*.3; do
		sed 's/\\-/-/g' "$f" | grep -qxF ".B #include <vdpa-user/$b>" &&
			echo "$f"
	done | head -n 1)
	[ -n "$p" ]
	ok $? "<vdpa-user/$b> has its page${p:+: $(basename "$p")}"
done
for p in "$man"/vdpa-user-*.3; do
	grep -q "^\.BR $(basename "$p" .3) (3)" "$man/libvdpa-user.3"
	ok $? "libvdpa-user(3) lists $(basename "$p" .3)(3)"
done

# the EXAMPLES that are whole programs compile and link, as a user's would
# (against a sanitizer build's library: instrumented too)
san=()
# shellcheck disable=SC2054 # the commas belong to the option
[ "${SANITIZE:-}" = 1 ] && san=(-fsanitize=address,undefined)
ex=0
for p in "$man"/*.3; do
	sed -n '/^\.SH EXAMPLES/,/^\.SH /p' "$p" | sed -n '/^\.EX/,/^\.EE/p' |
		grep -v '^\.E[XE]' | sed -e 's/\\-/-/g' -e 's/\\e/\\/g' \
		>"$work/ex.c"
	grep -q 'int main' "$work/ex.c" || continue
	ex=$((ex + 1))
	${CC:-cc} -std=gnu11 -Wall -Wextra -Werror "${san[@]}" -I"$top/include" \
		-o "$work/ex" "$work/ex.c" -L"$build" -lvdpa-user \
		>"$work/log" 2>&1
	r=$?
	ok $r "the example of $(basename "$p") compiles and links"
	[ $r = 0 ] || diag <"$work/log"
done
[ $ex -ge 2 ]
ok $? "$ex man3 pages have a whole program as example"

# renders without warnings; the version of version.h
version=$(printf '%s.%s.%s' \
	"$(sed -n 's/^#define VDPA_USER_VERSION_MAJOR \([0-9]*\)$/\1/p' "$top/include/vdpa-user/version.h")" \
	"$(sed -n 's/^#define VDPA_USER_VERSION_MINOR \([0-9]*\)$/\1/p' "$top/include/vdpa-user/version.h")" \
	"$(sed -n 's/^#define VDPA_USER_VERSION_PATCH \([0-9]*\)$/\1/p' "$top/include/vdpa-user/version.h")")
for p in "$man"/*.1 "$man"/*.3; do
	b=$(basename "$p")
	if command -v groff >/dev/null; then
		out=$(groff -man -ww -z "$p" 2>&1)
		[ -z "$out" ]
		ok $? "$b renders without groff warnings"
		[ -z "$out" ] || echo "$out" | diag
	fi
	grep -q "^\.TH [^ ]* [13] [0-9]* \"[a-z-]* $version\"" "$p"
	ok $? "$b: .TH says version $version"
done
command -v groff >/dev/null || echo "# groff not installed: rendering not checked"

# ---- vdpa-user(1) against the CLI's own help ------------------------------
page=$man/vdpa-user.1
# the source as text: fonts and escapes undone
sed -e 's/\\f[BIPR]//g' -e 's/\\-/-/g' -e 's/\\(em/--/g' -e 's/\\e/\\/g' \
	-e 's/\\&//g' "$page" >"$work/page"
"$cli" help >"$work/help" 2>&1
cmds=$(sed -n 's/^  vdpa-user \([a-z-]*\)\( [a-z][a-z]*\)\{0,1\}.*$/\1\2/p' "$work/help")
ncmds=$(echo "$cmds" | grep -c .)
[ "$ncmds" -ge 10 ]
ok $? "vdpa-user help lists $ncmds commands"
while read -r c; do
	# its .SS, up to the next .SS or .SH
	awk -v c="$c" '/^\.S[SH] / { inside = (index($0, ".SS " c " ") == 1 ||
		$0 == ".SS " c) } inside' "$work/page" >"$work/sec"
	# a verbless command's words are a prefix of others': take the shortest
	[ -s "$work/sec" ]
	ok $? "vdpa-user(1) has a section for '$c'"
	read -r -a w <<<"$c"
	"$cli" help "${w[@]}" >"$work/cmdhelp" 2>&1
	opts=$(sed -n '/^Options:/,/^$/s/^  \([a-z_-][a-z_-]*\).*$/\1/p' "$work/cmdhelp")
	[ -z "$opts" ] && continue
	# an entry of its own: .TP, then .B/.BI/.BR OPTION
	miss=$(for o in $opts; do
		grep -qE -- "^\.B[IR]? \"?$o( |\"|$)" "$work/sec" || echo "$o"
	done)
	[ -z "$miss" ]
	ok $? "'$c': its section has an entry for each of its options ($(echo $opts))${miss:+; missing: $(echo $miss)}"
done <<<"$cmds"
sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$work/page" >"$work/opts"
gopts=$(sed -n '/^Options, before or after/,/^$/p' "$work/help" |
	grep -o -- '--*[a-zA-Z][a-z-]*' | sort -u)
miss=$(for o in $gopts; do grep -q -- "^\.B.* $o\b\|^\.B.*\"$o\b\|^\.B $o\b\|^\.BR $o\b\|^\.BI $o\b" "$work/opts" ||
	grep -qw -- "$o" "$work/opts" || echo "$o"; done)
[ -n "$gopts" ] && [ -z "$miss" ]
ok $? "OPTIONS names every global option ($(echo $gopts))${miss:+; missing: $(echo $miss)}"
sed -n '/^\.SH EXAMPLES/,/^\.SH /p' "$work/page" >"$work/examples"
excmds=$(grep '^vdpa-user ' "$work/examples")
nex=$(echo "$excmds" | grep -c .)
[ "$nex" -ge 5 ]
ok $? "EXAMPLES has $nex vdpa-user command lines"
bad=$(echo "$excmds" | while read -r _ a b _; do
	"$cli" help "$a" "$b" >/dev/null 2>&1 || "$cli" help "$a" >/dev/null 2>&1 ||
		echo "$a $b"
done)
[ -z "$bad" ]
ok $? "each example is a command vdpa-user knows${bad:+; not: $bad}"

# ---- vdpa-sim(1) against sim-device/opts.c --------------------------------
sed -e 's/\\f[BIPR]//g' -e 's/\\-/-/g' "$man/vdpa-sim.1" >"$work/sim"
sopts=$(sed -n 's/^[[:space:]]*{ "\([a-z-]*\)", [a-z_]*_argument,.*$/\1/p' \
	"$top/sim-device/opts.c")
nsopts=$(echo "$sopts" | grep -c .)
[ "$nsopts" -ge 15 ]
ok $? "sim-device/opts.c has $nsopts long options"
miss=$(for o in $sopts; do grep -q -- "^\.B.*--$o\b" "$work/sim" || echo "--$o"; done)
[ -z "$miss" ]
ok $? "vdpa-sim(1) has an entry for each${miss:+; missing: $(echo $miss)}"
shorts=$(sed -n 's/^.*getopt_long(argc, argv, "\([^"]*\)".*$/\1/p' \
	"$top/sim-device/opts.c" | tr -d ':' | fold -w1)
miss=$(for o in $shorts; do grep -q -- "^\.B.*-$o\b" "$work/sim" || echo "-$o"; done)
[ -n "$shorts" ] && [ -z "$miss" ]
ok $? "and for each short option ($(echo $shorts))${miss:+; missing: $(echo $miss)}"
"$build/vdpa-sim" --help >"$work/simhelp" 2>&1
miss=$(grep -o -- '--[a-z-]*' "$work/simhelp" | sort -u | while read -r o; do
	grep -q -- "$o\b" "$work/sim" || echo "$o"; done)
[ -z "$miss" ]
ok $? "and for each option of vdpa-sim --help${miss:+; missing: $(echo $miss)}"
grep -q '^\.SH EXAMPLES' "$work/sim"
ok $? "vdpa-sim(1) has EXAMPLES"

echo "1..$n"
[ $fail = 0 ]
