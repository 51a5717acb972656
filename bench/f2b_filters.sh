#!/usr/bin/env bash
# Imported fail2ban filters: Rampart reading Debian's fail2ban filter.d files
# (rampart test --filter-file /etc/fail2ban/filter.d/NAME.conf) against
# fail2ban-regex with the same files, on one generated mixed syslog file.
# CPU is user+sys seconds of one process (/usr/bin/time -v), the least of
# REPEAT runs of each (other processes on the machine inflate both sides;
# the least is the closest to the tool's own cost).
#
# Usage: bench/f2b_filters.sh      N=200000 lines, REPEAT=3, FILTERS="sshd postfix dovecot"
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/go-env.sh
N=${N:-200000}
REPEAT=${REPEAT:-3}
FILTERS=${FILTERS:-sshd postfix dovecot}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
go build -o "$OUT/rampart" ./cmd/rampart
go build -o "$OUT/loggen" ./bench/cmd/loggen
LOG=$OUT/mixed-$N-1.log
[ -s "$LOG" ] || "$OUT/loggen" -n "$N" -seed 1 -o "$LOG"
cpu() { awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.2f", u+s}' "$1"; }
# least CPU of REPEAT runs of "$@", its output in $OUT/$tag.out
least() {
	local tag=$1 best="" t
	shift
	for _ in $(seq "$REPEAT"); do
		/usr/bin/time -v -o "$OUT/$tag.time" "$@" >"$OUT/$tag.out" 2>&1 || true
		t=$(cpu "$OUT/$tag.time")
		if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$t; fi
	done
	echo "$best"
}
echo "rampart $(git rev-parse --short HEAD), fail2ban $(dpkg-query -W -f '${Version}' fail2ban), $N lines, least of $REPEAT runs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| filter | rampart CPU s | rampart matched | fail2ban-regex CPU s | fail2ban matched | lines/CPU-s rampart | lines/CPU-s fail2ban | x |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
for f in $FILTERS; do
	rc=$(least "r-$f" "$OUT/rampart" test --filter-file "/etc/fail2ban/filter.d/$f.conf" "$LOG")
	fc=$(least "f-$f" fail2ban-regex -l error --print-no-missed --print-no-ignored "$LOG" "/etc/fail2ban/filter.d/$f.conf")
	rm=$(awk '/^Lines:/{print $4}' "$OUT/r-$f.out")
	fm=$(awk '/^Lines:/{for(i=2;i<=NF;i++) if($i ~ /^matched/) {print $(i-1); exit}}' "$OUT/f-$f.out")
	awk -v f="$f" -v rc="$rc" -v fc="$fc" -v rm="$rm" -v fm="$fm" -v n="$N" 'BEGIN{
		printf "| %s | %.2f | %s | %.2f | %s | %.0f | %.0f | %.1fx |\n", f, rc, rm, fc, fm, n/rc, n/fc, fc/rc }'
done
