#!/usr/bin/env bash
# `make gauntlet` (after `make image`): the reliability gauntlet of issue 7.
#
#   1. scenarios 1-8: `go test ./gauntlet/` with GAUNTLET_LONG=1 (the
#      50-round storm and the 10-minute soak included), against a private
#      containerd, the real image and the real binaries;
#   2. scenario 9: every `Fuzz*` target of the repository, one at a time,
#      for GAUNTLET_FUZZTIME each (default 20s);
#
# then prints one table (also in build/gauntlet-table.txt) and exits 1 when
# any row failed.
#
# Knobs: GAUNTLET_FUZZTIME (go test -fuzztime: 20s, 1m, 5000x),
# GAUNTLET_SOAK (soak length, default 10m), GAUNTLET_STORM_ROUNDS (50),
# GAUNTLET_ONLY=scenarios|fuzz (run one half, keep the other half's last rows).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

fuzztime=${GAUNTLET_FUZZTIME:-20s}
only=${GAUNTLET_ONLY:-}
mkdir -p build
rows=build/gauntlet-rows.tsv
# GAUNTLET_ONLY re-runs one half and keeps the other half's rows from the
# last run, so the table stays whole.
case "$only" in
scenarios) grep -P '^9\t' "$rows" >"$rows.keep" 2>/dev/null ;;
fuzz) grep -vP '^9\t' "$rows" >"$rows.keep" 2>/dev/null ;;
*) : >"$rows.keep" ;;
esac
mv "$rows.keep" "$rows"
failed=0

# addrow ID NAME RESULT RECOVER LOST NOTE
addrow() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$rows"; }

run_scenarios() {
	echo "== gauntlet scenarios 1-8 (go test ./gauntlet/, GAUNTLET_LONG=1)"
	GAUNTLET_LONG=1 GAUNTLET_ROWS="$PWD/$rows" \
		go test -count=1 -timeout 90m -v ./gauntlet/ 2>&1 | tee build/gauntlet.log |
		grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|(ok|FAIL)\s)' || true
	if [ "${PIPESTATUS[0]}" -ne 0 ]; then failed=1; fi
	if ! grep -q . "$rows"; then
		addrow "1-8" "scenarios" "FAIL" "-" "-" "go test ./gauntlet/ reported no rows: see build/gauntlet.log"
		failed=1
	fi
}

# fuzz_targets prints "IMPORTPATH TARGET" for every Fuzz* function: go test
# -list prints a package's names, then its "ok IMPORTPATH" line.
fuzz_targets() {
	go test -list '^Fuzz' ./... 2>&1 | tee build/gauntlet-fuzz-list.log | awk '
		/^Fuzz/ { names[n++] = $1; next }
		/^ok[ \t]/ { for (i = 0; i < n; i++) print $2, names[i]; n = 0; next }
		/^FAIL[ \t]/ { for (i = 0; i < n; i++) print "LISTFAIL", $2; n = 0; print "LISTFAIL", $2 }'
}

run_fuzz() {
	echo "== gauntlet scenario 9: every Fuzz target for $fuzztime"
	local targets pkg name dir out rc execs new crashes list
	targets=$(fuzz_targets | sort -u)
	list=""
	while read -r pkg name; do
		[ -n "$pkg" ] || continue
		if [ "$pkg" = LISTFAIL ]; then
			addrow 9 "fuzz: $name" FAIL - - "go test -list failed: the package does not build (build/gauntlet-fuzz-list.log)"
			failed=1
			continue
		fi
		dir=$(go list -f '{{.Dir}}' "$pkg")
		list="$list ${pkg#github.com/a7garden/oxios/}.$name"
		echo "-- $pkg $name"
		# New files under testdata/fuzz are the crashers the fuzzer saved.
		local before after
		before=$(find "$dir/testdata/fuzz/$name" -type f 2>/dev/null | sort)
		out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -timeout 30m "$pkg" 2>&1)
		rc=$?
		after=$(find "$dir/testdata/fuzz/$name" -type f 2>/dev/null | sort)
		crashes=$(comm -13 <(echo "$before") <(echo "$after") | sed "s|^$PWD/||" | tr '\n' ' ')
		execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1 | cut -d' ' -f2)
		new=$(echo "$out" | grep -o 'total: [0-9]*' | tail -1 | cut -d' ' -f2)
		local short=${pkg#github.com/a7garden/oxios/}
		if [ $rc -eq 0 ] && [ "${execs:-0}" -eq 0 ]; then
			# go test passes when -fuzztime ends during the baseline run
			# over the corpus: nothing new was tried, so say so.
			addrow 9 "fuzz $short.$name" INCOMPLETE - - "$fuzztime ended before fuzzing began (still replaying the corpus: busy machine?); raise GAUNTLET_FUZZTIME"
			failed=1
		elif [ $rc -eq 0 ]; then
			addrow 9 "fuzz $short.$name" PASS - nothing "$fuzztime, $execs execs, corpus ${new:-?}"
		else
			echo "$out" | tail -30
			addrow 9 "fuzz $short.$name" FAIL - - "crash saved as ${crashes:-?} (a regression test for its owner): $(echo "$out" | grep -m1 -E 'panic|--- FAIL|Error' | tr '\t' ' ')"
			failed=1
		fi
	done <<<"$targets"
	# Issue 7 names what must be fuzzed; say which of those has no target.
	while IFS=';' read -r what re owner; do
		if ! echo "$list" | tr ' ' '\n' | grep -Eq "$re"; then
			addrow 9 "fuzz: $what" MISSING - - "no Fuzz target matching $re (asked $owner)"
			failed=1
		fi
	done <<'EOF'
config parser;^runtime/config\.Fuzz;HOST
probe specs;^health\.FuzzParseSpec;HEALTH
durations;Fuzz.*Duration;HEALTH/HOST
signal names;Fuzz.*(Signal|Rewrite);INIT
unit rendering;^hostsvc\.Fuzz.*(ExecStart|Unit|Systemd);SVC
plist rendering;^hostsvc\.Fuzz.*(Plist|Launchd);SVC
health endpoint requests;^health\.Fuzz.*(Endpoint|Handler|Request|HTTP|Serve);HEALTH
EOF
}

case "$only" in
scenarios) run_scenarios ;;
fuzz) run_fuzz ;;
"") run_scenarios; run_fuzz ;;
*) echo "GAUNTLET_ONLY=$only: want scenarios or fuzz" >&2; exit 2 ;;
esac

{
	echo
	echo "oxios reliability gauntlet ($(date -u +%Y-%m-%dT%H:%MZ), $(git describe --always --dirty 2>/dev/null))"
	{ printf '#\tscenario\tresult\trecover\tlost\tnotes\n'; sort -t$'\t' -k1,1V -s "$rows"; } |
		column -t -s$'\t'
} | tee build/gauntlet-table.txt
if grep -qP '\t(FAIL|MISSING|INCOMPLETE)\t' "$rows"; then failed=1; fi
exit $failed
