#!/usr/bin/env bash
# Filter throughput and memory: Rampart against fail2ban-regex (Debian's
# fail2ban, stock sshd/postfix/dovecot filters) and sshguard's parser
# (Debian's sshguard), on one generated mixed syslog file.
#
# Usage: bench/throughput.sh            (from anywhere; root not needed)
#
# Environment:
#   N=1000000      lines to generate
#   SEED=1         generator seed (same seed, same file)
#   F2B_N=$N       lines fail2ban-regex reads (the first F2B_N of the file);
#                  set it lower only when the full file is impractical
#   REPEAT=3       runs of the fast tools (rampart, sshg-parser); the median
#                  CPU time and the largest peak RSS are reported
#   OUT=bench/out  where the binaries, the log and the raw outputs go
#   RAMPART=       a prebuilt rampart binary (default: build ./cmd/rampart)
#   RAMPART_REV=   build rampart from this git revision (git archive) instead
#                  of the working tree, e.g. HEAD while the tree is mid-edit
#   PIPELINE=1     then run bench/pipeline.sh (the full pipeline on an
#                  attack-heavy log; 0 skips it)
#
# Every measurement is one process under /usr/bin/time -v: CPU is user+sys
# seconds (all threads), memory is "Maximum resident set size".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/go-env.sh

N=${N:-1000000}
SEED=${SEED:-1}
F2B_N=${F2B_N:-$N}
REPEAT=${REPEAT:-3}
OUT=${OUT:-bench/out}
SSHG=/usr/libexec/sshguard/sshg-parser
F2B_FILTERS=/etc/fail2ban/filter.d

for b in /usr/bin/time fail2ban-regex "$SSHG"; do
	command -v "$b" >/dev/null || { echo "error: $b not found (apt-get install time fail2ban sshguard)" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

echo "== build" >&2
if [ -z "${RAMPART:-}" ]; then
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
	RAMPART=$OUT/rampart
else
	rampart_src="prebuilt $RAMPART"
fi
go build -o "$OUT/loggen" ./bench/cmd/loggen

LOG=$OUT/mixed-$N-$SEED.log
if [ ! -s "$LOG" ]; then
	echo "== generate $N lines (seed $SEED)" >&2
	"$OUT/loggen" -n "$N" -seed "$SEED" -o "$LOG.tmp" && mv "$LOG.tmp" "$LOG"
fi
lines=$(wc -l <"$LOG")
F2B_LOG=$LOG
if [ "$F2B_N" -lt "$lines" ]; then
	F2B_LOG=$OUT/mixed-$N-$SEED-head$F2B_N.log
	head -n "$F2B_N" "$LOG" >"$F2B_LOG"
fi
f2b_lines=$(wc -l <"$F2B_LOG")

# Which of the three filters this rampart has (the others are reported missing).
want=(sshd postfix dovecot)
have=()
missing=()
for f in "${want[@]}"; do
	if "$RAMPART" filters | awk '{print $1}' | grep -qx "$f"; then have+=("$f"); else missing+=("$f"); fi
done
if [ ${#have[@]} -eq 0 ]; then echo "error: rampart has none of: ${want[*]}" >&2; exit 1; fi
all=$(IFS=,; echo "${have[*]}")

# measure NAME STDOUT CMD...: runs CMD once under /usr/bin/time -v, stdout to
# STDOUT, stdin from $IN (default /dev/null), and appends
# "NAME cpu_s rss_kib wall" to $OUT/measure.txt.
measure() {
	local name=$1 stdout=$2
	shift 2
	if ! /usr/bin/time -v -o "$OUT/$name.time" "$@" <"${IN:-/dev/null}" >"$stdout" 2>"$OUT/$name.err"; then
		echo "error: $name failed:" >&2
		cat "$OUT/$name.err" "$OUT/$name.time" >&2
		exit 1
	fi
	awk -v name="$name" -F': ' '
		/User time/ {u=$2} /System time/ {s=$2}
		/Maximum resident set size/ {m=$2} /Elapsed \(wall clock\)/ {w=$2}
		END {printf "%s %.2f %d %s\n", name, u+s, m, w}' "$OUT/$name.time" >>"$OUT/measure.txt"
}

# repeat NAME STDOUT CMD...: measure REPEAT times as NAME.1, NAME.2, ...
repeat() {
	local name=$1
	shift
	for i in $(seq "$REPEAT"); do measure "$name.$i" "$@"; done
}

{
	echo "Machine and versions"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), nproc $(nproc)"
	echo "- kernel: $(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "- load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- rampart: $rampart_src; $(go version | cut -d' ' -f3-)"
	echo "- fail2ban $(fail2ban-regex -V 2>/dev/null || dpkg-query -W -f '${Version}' fail2ban) ($(dpkg-query -W -f '${Version}' fail2ban) deb), $(python3 --version)"
	echo "- sshguard $(dpkg-query -W -f '${Version}' sshguard) deb"
	echo "- log: $LOG, $lines lines, $(du -m "$LOG" | cut -f1) MB, seed $SEED"
} >"$OUT/machine.md"

: >"$OUT/measure.txt"
echo "== rampart: ${all} (one pass), then each filter alone; $REPEAT runs each" >&2
repeat rampart-all "$OUT/rampart-all.out" "$RAMPART" test --filter "$all" "$LOG"
for f in "${have[@]}"; do
	repeat "rampart-$f" "$OUT/rampart-$f.out" "$RAMPART" test --filter "$f" "$LOG"
done

echo "== sshguard: sshg-parser < log; $REPEAT runs" >&2
IN=$LOG repeat sshguard /dev/null "$SSHG"
"$SSHG" <"$LOG" >"$OUT/sshguard.out" # untimed, to count what it found

for f in "${want[@]}"; do
	echo "== fail2ban-regex $f ($f2b_lines lines; this takes a while)" >&2
	measure "f2b-$f" "$OUT/f2b-$f.out" fail2ban-regex -r -l error --print-no-missed --print-no-ignored \
		"$F2B_LOG" "$F2B_FILTERS/$f.conf"
done

# The table. Rates are lines per CPU-second; "rampart x" is how many times
# more lines per CPU-second the Rampart run in the same section achieved.
awk -v lines="$lines" -v f2b_lines="$f2b_lines" -v repeat="$REPEAT" -v all="$all" \
	-v missing="${missing[*]:-}" -v have="${have[*]}" -v out="$OUT" '
function median(name,   n, i, j, t, v) {
	n = 0
	for (i = 1; i <= repeat; i++) v[++n] = cpu[name "." i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return v[int((n + 1) / 2)]
}
function maxrss(name,   i, m) {
	m = 0
	for (i = 1; i <= repeat; i++) if (rss[name "." i] > m) m = rss[name "." i]
	return m
}
function row(label, n, c, r, base) {
	printf "| %-50s | %9d | %8.2f | %12.0f | %8.1f | %9s |\n", label, n, c, (c > 0 ? n / c : 0), r / 1024, \
		(base > 0 && c > 0 ? sprintf("%.1fx", base / (n / c)) : "-")
}
function header(title) {
	printf "\n%s\n\n", title
	printf "| %-50s | %9s | %8s | %12s | %8s | %9s |\n", "tool", "lines", "CPU s", "lines/CPU-s", "RSS MiB", "rampart x"
	printf "|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------------------", "----------:", "---------:", "-------------:", "---------:", "----------:"
}
FILENAME ~ /measure.txt$/ { cpu[$1] = $2; rss[$1] = $3; next }
FILENAME ~ /rampart-[a-z]*\.out$/ {
	split(FILENAME, p, "rampart-"); k = p[2]; sub(/\.out$/, "", k)
	if ($1 == "Lines:") { rmatched[k] = $4; }
	if ($1 == "Events:") { revents[k] = $2 }
	if ($1 ~ /^[a-z-]+$/ && NF == 2 && $2 ~ /^[0-9]+$/) { kinds[k] = kinds[k] " " $1 "=" $2; if ($1 == "auth-success") succ[k] = $2 }
	next
}
FILENAME ~ /f2b-[a-z]*\.out$/ {
	split(FILENAME, p, "f2b-"); k = p[2]; sub(/\.out$/, "", k)
	if ($1 == "Lines:") { fmatched[k] = $6; fignored[k] = $4 }
	next
}
FILENAME ~ /sshguard\.out$/ { sg[$1]++; sgn++; next }
END {
	ra = median("rampart-all"); rr = maxrss("rampart-all"); rate = lines / ra
	header(sprintf("Throughput on one file of %d lines (Rampart and sshguard: median CPU of %d runs, largest RSS)", lines, repeat))
	row("rampart test --filter " all " (1 pass)", lines, ra, rr, 0)
	fc = 0; fr = 0
	nf = split("sshd postfix dovecot", F, " ")
	for (i = 1; i <= nf; i++) {
		f = F[i]; c = cpu["f2b-" f]; fc += c; if (rss["f2b-" f] > fr) fr = rss["f2b-" f]
		row("fail2ban-regex " f, f2b_lines, c, rss["f2b-" f], rate)
	}
	row("fail2ban-regex, 3 filters (sum; RSS: max)", 3 * f2b_lines, fc, fr, rate)
	sc = median("sshguard"); sr = maxrss("sshguard")
	row("sshguard sshg-parser (all services)", lines, sc, sr, rate)

	header("Per filter: one filter, one pass each")
	nh = split(have, H, " ")
	for (i = 1; i <= nh; i++) {
		f = H[i]; c = median("rampart-" f); r = maxrss("rampart-" f)
		row("rampart test --filter " f, lines, c, r, 0)
		row("fail2ban-regex " f, f2b_lines, cpu["f2b-" f], rss["f2b-" f], lines / c)
	}

	printf "\nMatches (sanity check: each tool really applied its filters)\n\n"
	printf "| %-50s | %s |\n", "run", "matched"
	printf "|%s|%s|\n", "----------------------------------------------------", "------------------------------------------------------------"
	printf "| %-50s | %s lines, %s events, %d failures:%s |\n", "rampart " all, rmatched["all"], revents["all"], revents["all"] - succ["all"], kinds["all"]
	for (i = 1; i <= nh; i++) { f = H[i]; printf "| %-50s | %s lines, %s events, %d failures:%s |\n", "rampart " f, rmatched[f], revents[f], revents[f] - succ[f], kinds[f] }
	for (i = 1; i <= nf; i++) { f = F[i]; printf "| %-50s | %s lines matched (+%s lines matched only helper/ignored rules) |\n", "fail2ban-regex " f, fmatched[f], fignored[f] }
	printf "| %-50s | %d attacks: sshd %d, dovecot %d, postfix %d |\n", "sshguard", sgn, sg["100"], sg["210"], sg["260"]

	printf "\nTargets\n\n"
	f2brate = 3 * f2b_lines / fc
	printf "- %.1fx fail2ban-regex lines/CPU-s (target >= 50x): %s\n", rate / f2brate, (rate / f2brate >= 50 ? "met" : "NOT met")
	sgx = (sc > 0 ? rate / (lines / sc) : 0)
	printf "- %.1fx sshguard lines/CPU-s (target >= 3x): %s\n", sgx, (sgx >= 3 ? "met" : "NOT met (or too fast to time: raise N)")
	printf "- Rampart peak RSS %.1f MiB (target < 32 MiB): %s\n", rr / 1024, (rr / 1024 < 32 ? "met" : "NOT met")
	if (missing != "") printf "\nWARNING: rampart has no filter named: %s; the Rampart runs used only: %s\n", missing, all
}' "$OUT/measure.txt" "$OUT"/rampart-*.out "$OUT"/f2b-*.out "$OUT/sshguard.out" >"$OUT/table.md"
echo "- load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.md"
cat "$OUT/machine.md" "$OUT/table.md"

# The whole pipeline (filters and engine) on an attack-heavy log, against
# sshguard's parser and blocker and fail2ban-regex: bench/pipeline.sh.
if [ "${PIPELINE:-1}" = 1 ]; then
	echo
	RAMPART=$RAMPART OUT=$OUT N=$N SEED=$SEED REPEAT=$REPEAT bench/pipeline.sh
fi
