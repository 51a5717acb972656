#!/usr/bin/env bash
# Policy servers under load: the real daemon (`rampart run`, firewall backend
# "log", a jail per service, state in a temporary directory) serving the
# Postfix policy delegation protocol and Dovecot's auth policy on loopback,
# driven by bench/cmd/policyload: 10,000 tarpitted Postfix sessions held
# open while worker connections send requests as fast as answers come and
# then at a fixed rate. See the "Policy servers" section of bench/RESULTS.md.
#
# Usage: bench/policy.sh          (from anywhere; root only to raise the
#                                  open-files hard limit when it is short)
#
# Environment:
#   HELD=10000        tarpitted sessions held open (each one connection)
#   TARPIT=25s        the tarpit delay for them (postfix_policy.tarpit)
#   WORKERS=100       load connections (Postfix smtpd processes / Dovecot clients)
#   DURATION=30s      length of each load phase
#   RATE=20000        requests per second of the paced phases
#   PHASES=postfix-max,postfix-paced,dovecot-max,dovecot-paced
#   BASELINE=true     run postfix-max once before any session is held
#   DAEMON_CPUS=      taskset CPU list for the daemon (default: not pinned)
#   LOAD_CPUS=        taskset CPU list for the generator (default: not pinned)
#   LOAD_PROCS=       GOMAXPROCS of the generator (default: Go's choice)
#   POSTFIX_SOCKET=tcp  tcp (127.0.0.1:port) or unix (a socket in the run directory)
#   CONTROL=true      then run the Postfix phases against policyload -echo,
#                     a minimal server, for comparison
#   NICE=             niceness of both the daemon and the generator, e.g. -10
#                     so other jobs on a shared machine disturb them less
#   OUT=bench/out/policy   binaries, config, logs and results
#   RAMPART=          a prebuilt rampart binary (default: build ./cmd/rampart)
#   RAMPART_REV=      build rampart from this git revision instead of the tree
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/go-env.sh

HELD=${HELD:-10000}
TARPIT=${TARPIT:-25s}
WORKERS=${WORKERS:-100}
DURATION=${DURATION:-30s}
RATE=${RATE:-20000}
PHASES=${PHASES:-postfix-max,postfix-paced,dovecot-max,dovecot-paced}
BASELINE=${BASELINE:-true}
OUT=${OUT:-bench/out/policy}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

echo "== build" >&2
if [ -z "${RAMPART:-}" ]; then
	if [ -n "${RAMPART_REV:-}" ]; then
		src=$(mktemp -d)
		git archive "$RAMPART_REV" | tar -x -C "$src"
		(cd "$src" && go build -o "$OUT/rampart" ./cmd/rampart)
		rm -rf "$src"
		rampart_src="git $(git rev-parse --short "$RAMPART_REV")"
	else
		go build -o "$OUT/rampart" ./cmd/rampart
		rampart_src="working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd internal || echo ' + local changes')"
	fi
	RAMPART=$OUT/rampart
else
	rampart_src="prebuilt $RAMPART"
fi
go build -o "$OUT/policyload" ./bench/cmd/policyload

# Open files: HELD + WORKERS + a few on each side. Go raises its soft limit
# to the hard limit at start; the hard limit is raised here when short (root).
need=$((HELD + 2 * WORKERS + 1024))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	ulimit -Hn "$need" 2>/dev/null || { echo "error: open files hard limit $(ulimit -Hn) < $need; run as root or lower HELD" >&2; exit 1; }
fi
ulimit -n "$(ulimit -Hn)"

# Free loopback ports (another daemon may hold the usual 10023/10024).
read -r PF_PORT DC_PORT < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')

RUN=$(mktemp -d /tmp/rampart-policy.XXXXXX)
case ${POSTFIX_SOCKET:=tcp} in
tcp) PF_ADDR=127.0.0.1:$PF_PORT ;;
unix) PF_ADDR=unix:$RUN/postfix-policy.sock ;;
*) echo "error: POSTFIX_SOCKET=$POSTFIX_SOCKET (want tcp or unix)" >&2; exit 1 ;;
esac
DAEMON_PID=
cleanup() {
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID"
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	rm -rf "$RUN"
}
trap cleanup EXIT
mkdir -p "$RUN/state"
: >"$RUN/mail.log"
AUTH="Basic $(printf 'dovecot:bench-%s' "$RANDOM$RANDOM" | base64)"
printf '%s\n' "$AUTH" >"$RUN/dovecot-auth"
cat >"$RUN/rampart.toml" <<EOF
[daemon]
state_dir = "$RUN/state"
socket = "$RUN/rampart.sock"
log_level = "warn"

[firewall]
backend = "log"

[postfix_policy]
listen = "$PF_ADDR"
tarpit = "$TARPIT"
tarpit_max = "30s"

[dovecot_policy]
listen = "127.0.0.1:$DC_PORT"
auth_file = "$RUN/dovecot-auth"

[jail.postfix]
filter = "postfix"
mode = "aggressive"
files = ["$RUN/mail.log"]

[jail.dovecot]
filter = "dovecot"
files = ["$RUN/mail.log"]
EOF
cp "$RUN/rampart.toml" "$OUT/rampart.toml"

pin() { # pin CPUS CMD...: exec CMD, under taskset when CPUS is set and at
	# niceness NICE when set (call in a subshell)
	local cpus=$1
	shift
	[ -n "$cpus" ] && set -- taskset -c "$cpus" "$@"
	[ -n "${NICE:-}" ] && set -- nice -n "$NICE" "$@"
	exec "$@"
}

echo "== machine" >&2
{
	echo "date: $(date -u +%FT%TZ)"
	echo "cpu: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "kernel: $(uname -r); $(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release)"
	echo "go: $(go env GOVERSION); rampart: $rampart_src"
	echo "open files: hard $(ulimit -Hn), soft $(ulimit -n); somaxconn $(cat /proc/sys/net/core/somaxconn)"
	echo "postfix policy socket: $POSTFIX_SOCKET"
	echo "pinning: daemon ${DAEMON_CPUS:-any CPU}, generator ${LOAD_CPUS:-any CPU} (GOMAXPROCS ${LOAD_PROCS:-default}); niceness ${NICE:-0}"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

echo "== daemon on $PF_ADDR (postfix), 127.0.0.1:$DC_PORT (dovecot)" >&2
(pin "${DAEMON_CPUS:-}" "$RAMPART" run --config "$RUN/rampart.toml") >"$OUT/daemon.log" 2>&1 &
DAEMON_PID=$! # the subshell execs the daemon: this is its pid
for _ in $(seq 100); do
	[ -S "$RUN/rampart.sock" ] && break
	kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$OUT/daemon.log" >&2; exit 1; }
	sleep 0.1
done

echo "== load" >&2
status=0
(
	[ -n "${LOAD_PROCS:-}" ] && export GOMAXPROCS=$LOAD_PROCS
	pin "${LOAD_CPUS:-}" "$OUT/policyload" \
		-postfix "$PF_ADDR" -dovecot "127.0.0.1:$DC_PORT" -auth "$AUTH" \
		-control "$RUN/rampart.sock" -pid "$DAEMON_PID" \
		-held "$HELD" -ramp "$TARPIT" -workers "$WORKERS" -duration "$DURATION" -rate "$RATE" \
		-phases "$PHASES" -baseline="$BASELINE" -o "$OUT/result.json"
) | tee "$OUT/result.md" || status=$?
if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
	echo "error: the daemon is gone; its log:" >&2
	cat "$OUT/daemon.log" >&2
	exit 1
fi
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=

# The control: the same Postfix load against the least a Go server can do
# (policyload -echo: answers DUNNO without parsing), so what the machine,
# the kernel's loopback and the generator cost shows apart from Rampart.
if [ "${CONTROL:-true}" = true ] && [ $status -eq 0 ]; then
	echo "== control: the same Postfix load against a minimal server" >&2
	case $POSTFIX_SOCKET in
	tcp) ECHO_ADDR=127.0.0.1:$DC_PORT ;; # the daemon has released it
	unix) ECHO_ADDR=unix:$RUN/echo.sock ;;
	esac
	(pin "${DAEMON_CPUS:-}" "$OUT/policyload" -echo "$ECHO_ADDR") 2>"$OUT/echo.log" &
	DAEMON_PID=$!
	sleep 0.5
	(
		[ -n "${LOAD_PROCS:-}" ] && export GOMAXPROCS=$LOAD_PROCS
		pin "${LOAD_CPUS:-}" "$OUT/policyload" -postfix "$ECHO_ADDR" -dovecot "" -pid "$DAEMON_PID" \
			-held 0 -workers "$WORKERS" -duration "$DURATION" -rate "$RATE" \
			-phases postfix-max,postfix-paced -baseline=false -o "$OUT/control.json"
	) | tee "$OUT/control.md" || status=$?
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
exit $status
