#!/usr/bin/env bash
# Rotating attackers: Rampart (default configuration) against fail2ban
# (Debian's, stock sshd, postfix[mode=aggressive] and dovecot jails) on the
# same simulated logs, scored against the simulator's ground truth.
#
# Usage: bench/rotation.sh            (from anywhere; root not needed)
#
# Environment:
#   SEED=1         attacksim seed (same seed, same logs)
#   SCALE=1        multiply the number of attacking addresses
#   OUT=bench/out/rotation   where binaries, logs and decisions go
#   RAMPART_REV=   build rampart from this git revision (git archive)
#                  instead of the working tree, e.g. HEAD while the tree is
#                  mid-edit
#
# Steps: build rampart, attacksim and score; generate auth.log, mail.log
# and truth.jsonl; `rampart replay --json --year Y` with the embedded
# defaults (no --config); bench/f2b_replay.py (fail2ban's own code with its
# clock set to each line's time); score both and print the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/go-env.sh

SEED=${SEED:-1}
SCALE=${SCALE:-1}
OUT=${OUT:-bench/out/rotation}
START=2025-03-10T06:00:00Z
YEAR=${START%%-*}
PY=/usr/bin/python3 # Debian's python, which has fail2ban's modules

[ -d /usr/lib/python3/dist-packages/fail2ban ] || { echo "error: Debian's fail2ban is not installed (apt-get install fail2ban)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Year-less syslog stamps are read as UTC by both tools.
export TZ=UTC

echo "== build" >&2
if [ -n "${RAMPART_REV:-}" ]; then
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	git archive "$RAMPART_REV" | tar -x -C "$src"
	(cd "$src" && go build -o "$OUT/rampart" ./cmd/rampart)
	rampart_src="git $(git rev-parse --short "$RAMPART_REV")"
else
	go build -o "$OUT/rampart" ./cmd/rampart
	rampart_src="working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd internal || echo ' + local changes')"
fi
go build -o "$OUT/attacksim" ./bench/cmd/attacksim
go build -o "$OUT/score" ./bench/cmd/score

echo "== generate (seed $SEED, scale $SCALE)" >&2
"$OUT/attacksim" -o "$OUT" -seed "$SEED" -scale "$SCALE" -start "$START"

echo "== rampart replay" >&2
/usr/bin/time -f "rampart: %es, %MkB max RSS" \
	"$OUT/rampart" replay --json --year "$YEAR" "$OUT/auth.log" "$OUT/mail.log" >"$OUT/rampart.jsonl"

echo "== fail2ban replay" >&2
/usr/bin/time -f "fail2ban: %es, %MkB max RSS" \
	"$PY" bench/f2b_replay.py --auth "$OUT/auth.log" --mail "$OUT/mail.log" --year "$YEAR" -o "$OUT/fail2ban.jsonl"

{
	"$OUT/score" -v -plain naive,relay-spray -truth "$OUT/truth.jsonl" rampart="$OUT/rampart.jsonl" fail2ban="$OUT/fail2ban.jsonl"
	echo
	echo "Versions"
	echo
	echo "- rampart: $rampart_src; $(go version | cut -d' ' -f3-)"
	echo "- fail2ban $(dpkg-query -W -f '${Version}' fail2ban) (Debian package), $("$PY" --version)"
	echo "- attacksim seed $SEED, scale $SCALE; $(wc -l <"$OUT/auth.log") auth.log and $(wc -l <"$OUT/mail.log") mail.log lines, $(wc -l <"$OUT/truth.jsonl") attempts"
} | tee "$OUT/table.md"
