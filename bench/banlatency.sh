#!/usr/bin/env bash
# Ban latency, Rampart against fail2ban: from the failure line that crosses
# maxretry being appended to the followed log, to the attacker's address
# being an element of the daemon's nftables set. Both daemons run one after
# the other in one fresh network namespace created here (never the host's
# firewall), on the same input: bench/cmd/banlat writes the lines and
# watches the kernel's nftables notifications. Then, optionally, a
# daemon-level bulk run: BULK distinct addresses with one failure each
# (maxretry 1) appended at once, timed until the last is in the kernel.
#
#   sudo bench/banlatency.sh                 # 1,000 measured bans each, 5 warm-up
#   sudo N=200 BULK=0 bench/banlatency.sh    # quicker, no bulk run
#
# Environment: N (measured bans, 1000), WARMUP (5), SETTLE (pause between the
# first four failures and the fifth, 100ms), JITTER (longest random pause
# before each address, 1s; see bench/cmd/banlat), OBSERVER (netlink or nft:
# `nft monitor` as a child), BULK (100000; 0 skips), F2B_BACKEND (pyinotify
# when python3-pyinotify is installed, else polling), F2B_ACTION
# (nftables-multiport), OUT (bench/out/banlatency), REV (build rampart and
# banlat from this git revision instead of the working tree), RT (1: run banlat, and
# only banlat, at real-time priority with chrt -f 10, so on a loaded machine
# its clock reads and the notifications it waits for are not delayed behind
# other processes; the daemons keep normal priority. 0: no).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000}
WARMUP=${WARMUP:-5}
SETTLE=${SETTLE:-100ms}
JITTER=${JITTER:-1s}
RT=${RT:-1}
OBSERVER=${OBSERVER:-netlink}
BULK=${BULK:-100000}
F2B_ACTION=${F2B_ACTION:-nftables-multiport}
OUT=${OUT:-bench/out/banlatency}

die() { echo "banlatency: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it creates a network namespace and nftables tables inside it)"
for b in ip nft fail2ban-server fail2ban-client go vmstat; do
	command -v "$b" >/dev/null || die "needs $b on PATH"
done
# fail2ban's own interpreter (its shebang), not whichever python3 is first
# on PATH, decides whether pyinotify is there.
F2B_PY=$(head -1 "$(command -v fail2ban-server)" | sed 's/^#! *//; s/ .*//')
if [[ -z ${F2B_BACKEND:-} ]]; then
	if "$F2B_PY" -c 'import pyinotify' 2>/dev/null; then F2B_BACKEND=pyinotify; else F2B_BACKEND=polling; fi
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/rampart-banlat.XXXXXX)
NS=rampart-banlat-$$
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	# Anything still running in the namespace was started by this script.
	for p in $(ip netns pids "$NS" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null || true
	done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building"
SRC=.
if [[ -n ${REV:-} ]]; then
	SRC=$TMP/src
	mkdir -p "$SRC"
	git archive "$REV" | tar -x -C "$SRC"
fi
(cd "$SRC" && go build -o "$TMP/bin/rampart" ./cmd/rampart && go build -o "$TMP/bin/banlat" ./bench/cmd/banlat)

# child runs a command as a child the EXIT trap knows about and waits for it,
# so an interrupt stops it and cleans up at once.
child() {
	"$@" &
	local p=$!
	PIDS+=("$p")
	wait "$p"
}

# The machine's state by the second (run queue, idle, steal), to line the
# slowest bans up with what else was happening.
vmstat -n -t 1 >"$OUT/vmstat.txt" &
PIDS+=($!)

ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { ip netns exec "$NS" "$@"; }
BANLAT=("$TMP/bin/banlat")
if [[ $RT == 1 ]]; then
	command -v chrt >/dev/null || die "RT=1 needs chrt (util-linux)"
	BANLAT=(chrt -f 10 "$TMP/bin/banlat")
fi

{
	echo "date: $(date -u +%FT%TZ)"
	if [[ -n ${REV:-} ]]; then
		echo "rampart: $(git rev-parse --short "$REV") (git archive)"
	else
		echo "rampart: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd internal || echo ' (+ uncommitted changes in the working tree)')"
	fi
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "kernel: $(uname -r)"
	echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "nft: $(nft --version)"
	echo "fail2ban: $(fail2ban-server --version | head -1), backend $F2B_BACKEND, action $F2B_ACTION, $F2B_PY $("$F2B_PY" -c 'import sys; print(sys.version.split()[0])')"
	echo "observer: $OBSERVER; N=$N WARMUP=$WARMUP SETTLE=$SETTLE JITTER=$JITTER BULK=$BULK RT=$RT"
	echo "loadavg at start: $(cat /proc/loadavg)"
	echo "cpu pressure at start: $(head -1 /proc/pressure/cpu 2>/dev/null)"
} | tee "$OUT/machine.txt"

# rampart_config DIR MAXRETRY: a daemon with one sshd jail following
# DIR/log/auth.log (a directory of its own: the daemon's output and store
# stay out of the watched directory); the scenarios across addresses are off, so each address is
# banned by its own failures only, as in fail2ban.
rampart_config() {
	cat >"$1/rampart.toml" <<EOF
[daemon]
state_dir = "$1/state"
socket = "$1/ctl.sock"
log_level = "info"

[firewall]
backend = "nftables"
table = "rampart"

[spray]
enabled = false
[prefixes]
enabled = false
[surge]
enabled = false
[slow]
enabled = false

[jail.sshd]
filter = "sshd"
files = ["$1/log/auth.log"]
maxretry = $2
findtime = "10m"
bantime = "10m"
EOF
	"$TMP/bin/rampart" check-config --config "$1/rampart.toml" >/dev/null
}

# start_rampart DIR: runs `rampart run` in the namespace until it answers.
# (ip netns exec execs the command, so $! is the daemon's pid.)
start_rampart() {
	mkdir -p "$1/log"
	: >"$1/log/auth.log"
	ip netns exec "$NS" "$TMP/bin/rampart" run --config "$1/rampart.toml" >"$1/rampart.log" 2>&1 &
	RAMPART_PID=$!
	PIDS+=("$RAMPART_PID")
	for _ in $(seq 100); do
		"$TMP/bin/rampart" status --socket "$1/ctl.sock" >/dev/null 2>&1 && return 0
		kill -0 "$RAMPART_PID" 2>/dev/null || { cat "$1/rampart.log"; die "rampart exited"; }
		sleep 0.1
	done
	cat "$1/rampart.log"
	die "rampart did not answer on its socket"
}

stop_rampart() {
	kill -TERM "$RAMPART_PID"
	wait "$RAMPART_PID" || true
	inns "$TMP/bin/rampart" run --config "$1/rampart.toml" --flush
}

echo "== rampart: ban latency"
R=$TMP/rampart
mkdir -p "$R"
rampart_config "$R" 5
start_rampart "$R"
child ip netns exec "$NS" "${BANLAT[@]}" latency -label rampart -table rampart -log "$R/log/auth.log" \
	-n "$N" -warmup "$WARMUP" -settle "$SETTLE" -jitter "$JITTER" -observer "$OBSERVER" -o "$OUT/rampart.json"
stop_rampart "$R"
cp "$R/rampart.log" "$OUT/rampart.log"

echo "== fail2ban: ban latency"
F=$TMP/f2b
mkdir -p "$F"
cp -a /etc/fail2ban "$F/etc"
rm -f "$F/etc/jail.d/"* "$F/etc/fail2ban.d/"*
cat >"$F/etc/fail2ban.local" <<EOF
[Definition]
loglevel = INFO
logtarget = $F/fail2ban.log
socket = $F/fail2ban.sock
pidfile = $F/fail2ban.pid
dbfile = :memory:
EOF
cat >"$F/etc/jail.local" <<EOF
[DEFAULT]
banaction = $F2B_ACTION
banaction_allports = nftables-allports
backend = $F2B_BACKEND

[sshd]
enabled = true
backend = $F2B_BACKEND
port = ssh
logpath = $F/log/auth.log
maxretry = 5
findtime = 10m
bantime = 10m
EOF
mkdir -p "$F/log"
: >"$F/log/auth.log"
F2B=(-c "$F/etc" -s "$F/fail2ban.sock" -p "$F/fail2ban.pid")
ip netns exec "$NS" fail2ban-server -f -x "${F2B[@]}" >"$F/server.out" 2>&1 &
F2B_PID=$!
PIDS+=("$F2B_PID")
for i in $(seq 300); do
	fail2ban-client "${F2B[@]}" status sshd >/dev/null 2>&1 && break
	kill -0 "$F2B_PID" 2>/dev/null || { cat "$F/server.out" "$F/fail2ban.log"; die "fail2ban-server exited"; }
	[[ $i == 300 ]] && { cat "$F/server.out" "$F/fail2ban.log"; die "fail2ban did not start its sshd jail"; }
	sleep 0.1
done
fail2ban-client "${F2B[@]}" get sshd logpath
child ip netns exec "$NS" "${BANLAT[@]}" latency -label fail2ban -table f2b-table -log "$F/log/auth.log" \
	-n "$N" -warmup "$WARMUP" -settle "$SETTLE" -jitter "$JITTER" -observer "$OBSERVER" -o "$OUT/fail2ban.json"
fail2ban-client "${F2B[@]}" stop >/dev/null || kill -TERM "$F2B_PID"
wait "$F2B_PID" || true
cp "$F/fail2ban.log" "$OUT/fail2ban.log"

if [[ $BULK -gt 0 ]]; then
	echo "== rampart: $BULK bans through the daemon (log -> filter -> engine -> store -> nftables)"
	B=$TMP/bulk
	mkdir -p "$B"
	rampart_config "$B" 1
	start_rampart "$B"
	child ip netns exec "$NS" "${BANLAT[@]}" bulk -label rampart -table rampart -log "$B/log/auth.log" -n "$BULK" \
		-timeout 10m -o "$OUT/bulk.json" >"$OUT/bulk.txt"
	cat "$OUT/bulk.txt"
	stop_rampart "$B"
fi

echo "loadavg at end: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "== results"
"$TMP/bin/banlat" report -vmstat "$OUT/vmstat.txt" "$OUT/rampart.json" "$OUT/fail2ban.json" | tee "$OUT/report.md"
