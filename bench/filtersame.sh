#!/usr/bin/env bash
# Checks that two rampart builds find exactly the same things: the --json
# output of `rampart test --filter all` (plain, --mode aggressive,
# --successes, and both) must be byte-identical over
#   - a loggen log (300,000 lines, seed 2),
#   - attacksim's auth.log and mail.log (seed 1),
#   - every corpus log in internal/filter/testdata/corpus,
#   - the log lines of the filter case tables (internal/filter/testdata/cases),
#   - mutants of those lines and of loggen's: text cut out, repeated,
#     spliced in from another line, or a forged address, port, separator
#     inserted (deterministic: python's random with a fixed seed).
# For optimisations of the filter and logline code, which must not change
# behaviour.
#
# Usage: bench/filtersame.sh OLD NEW   (rampart binaries or git revisions)
#
# A revision is built from `git archive REV`. Inputs and outputs go to
# $OUT (default bench/out/filtersame). Exit status 1 on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/go-env.sh

[ $# -eq 2 ] || { echo "usage: $0 OLD NEW (binaries or git revisions)" >&2; exit 2; }
OUT=${OUT:-bench/out/filtersame}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# binary ARG NAME: prints the path of a rampart binary for ARG, building a
# git revision into $OUT/NAME when ARG is not an executable file.
binary() {
	if [ -x "$1" ] && [ -f "$1" ]; then
		echo "$1"
		return
	fi
	local src
	src=$(mktemp -d)
	git archive "$1" | tar -x -C "$src"
	(cd "$src" && go build -o "$OUT/$2" ./cmd/rampart)
	rm -rf "$src"
	echo "$OUT/$2"
}
old=$(binary "$1" rampart-old)
new=$(binary "$2" rampart-new)

# The inputs: generated once, reused.
in=$OUT/in
mkdir -p "$in"
if [ ! -s "$in/loggen-300000-2.log" ]; then
	go run ./bench/cmd/loggen -n 300000 -seed 2 -o "$in/loggen-300000-2.log"
fi
if [ ! -s "$in/attacksim/auth.log" ]; then
	go run ./bench/cmd/attacksim -seed 1 -o "$in/attacksim" 2>/dev/null
fi
sed -n 's/^> //p' internal/filter/testdata/cases/*.txt >"$in/cases.log"
if [ ! -s "$in/mutants.log" ]; then
	{ head -n 50000 "$in/loggen-300000-2.log"; cat "$in/cases.log" internal/filter/testdata/corpus/*/*.log; } |
		python3 -c '
import random, sys
rng = random.Random(7)
lines = [l.rstrip("\n") for l in sys.stdin]
ins = [" from 6.6.6.6 port 1 ssh2", "rip=6.6.6.6", "[6.6.6.6]", " port ", " ", ":", "::", "<", ">", "(", ")",
       ", ", "2001:db8::1", "fe80::1%eth0", "1.2.3.4", "a.b", "-", "\t", "user=<x>", " [preauth]", "): ", "[", "]"]
out = []
for l in lines:
    for _ in range(3):
        for _ in range(rng.randint(1, 3)):
            j = rng.randint(0, len(l))
            k = rng.randrange(4)
            if k == 0:
                l = l[:j] + rng.choice(ins) + l[j:]
            elif k == 1:
                l = l[:j] + l[j + rng.randint(0, 8):]
            elif k == 2:
                o = rng.choice(lines)
                i = rng.randint(0, len(o))
                l = l[:j] + o[i:i + rng.randint(0, 30)] + l[j:]
            else:
                l = l[:j] + l[j:] + l[j:]
        out.append(l)
sys.stdout.write("\n".join(out) + "\n")
' >"$in/mutants.log"
fi
inputs=("$in/loggen-300000-2.log" "$in/attacksim/auth.log" "$in/attacksim/mail.log" "$in/cases.log" "$in/mutants.log")
for f in internal/filter/testdata/corpus/*/*.log; do
	inputs+=("$f")
done

fail=0
runs=0
for flags in "" "--mode aggressive" "--successes" "--mode aggressive --successes"; do
	for f in "${inputs[@]}"; do
		# --year keeps year-less stamps' dates independent of the clock.
		for year in "" "--year 2025"; do
			# shellcheck disable=SC2086
			"$old" test --filter all --json $flags $year "$f" >"$OUT/old.json" 2>&1 || true
			# shellcheck disable=SC2086
			"$new" test --filter all --json $flags $year "$f" >"$OUT/new.json" 2>&1 || true
			runs=$((runs + 1))
			if ! cmp -s "$OUT/old.json" "$OUT/new.json"; then
				echo "DIFFERENT: --json $flags $year $f" >&2
				diff "$OUT/old.json" "$OUT/new.json" | head -5 >&2
				fail=1
			fi
		done
	done
done
if [ $fail -ne 0 ]; then
	echo "filtersame: outputs differ" >&2
	exit 1
fi
echo "filtersame: $runs runs over ${#inputs[@]} files, all identical"
