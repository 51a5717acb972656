#!/usr/bin/env bash
# Shields under a connection flood: what a service still serves, and what
# the rules cost. Three network namespaces made here (never the host's
# firewall): a server running bench/cmd/shieldload's service (256 slots,
# each connection greeted and held until the client leaves, like a login
# prompt), an attacker, and a user on a link of its own. Each mode runs the
# same loads, one after the other:
#
#   control   no nftables table at all (the do-nothing control)
#   table     rampart running with its ban table, [shields] off
#   idle      rampart with a shield on the port whose limits are far above
#             the load: every rule evaluated, nothing dropped
#   shields   rampart with the default [shields.imap] limits on the port
#
# Loads: "held" floods RATE_HELD connections a second for 10s from one
# address and keeps those that get through, while the user connects 50
# times (served: greeted within 2s); "churn" opens and closes RATE_CHURN
# connections a second for 10s (REPEAT times). For each: the attempts made
# and completed, and the CPU time the flooder and the server were charged
# (user and system, softirq work done in their system calls included) per
# 1,000 attempts: the machine is shared, so its own totals would count
# other work too.
# The shield jails (flood, portscan) are off, so no ban takes over.
#
#   sudo bench/shields.sh               # OUT=bench/out/shields
#   sudo RATE_CHURN=5000 bench/shields.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE_HELD=${RATE_HELD:-500}
RATE_CHURN=${RATE_CHURN:-2000}
REPEAT=${REPEAT:-3}
OUT=${OUT:-bench/out/shields}
MODES=${MODES:-"control table idle shields"}
die() { echo "shields.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it creates network namespaces and nftables tables inside them)"
for b in ip nft go; do command -v "$b" >/dev/null || die "needs $b on PATH"; done
. scripts/go-env.sh
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/rampart" ./cmd/rampart
go build -o "$OUT/shieldload" ./bench/cmd/shieldload

srv=sb-srv-$$ atk=sb-atk-$$ cli=sb-cli-$$
rpid= spid=
cleanup() {
	[[ -n $rpid ]] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
	[[ -n $spid ]] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true
	for n in $srv $atk $cli; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
for n in $srv $atk $cli; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$srv" link add v-atk type veth peer name v0 netns "$atk"
ip -n "$srv" link add v-cli type veth peer name v0 netns "$cli"
ip -n "$srv" addr add 10.90.0.1/24 dev v-atk
ip -n "$srv" addr add 10.91.0.1/24 dev v-cli
ip -n "$atk" addr add 10.90.0.2/24 dev v0
ip -n "$cli" addr add 10.91.0.2/24 dev v0
for l in v-atk v-cli; do ip -n "$srv" link set "$l" up; done
ip -n "$atk" link set v0 up
ip -n "$cli" link set v0 up
ip netns exec "$srv" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
ip netns exec "$atk" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
for i in $(seq 50); do ip netns exec "$atk" ping -c1 -W1 10.90.0.1 >/dev/null 2>&1 && break; sleep 0.1; done

ip netns exec "$srv" ulimit -n 65536 2>/dev/null || true
ip netns exec "$srv" "$OUT/shieldload" serve -addr 0.0.0.0:1143 -slots 256 &
spid=$!

start_rampart() { # $1: the [shields] block
	local d="$OUT/rampart-state"
	rm -rf "$d"; mkdir -p "$d"; : >"$d/auth.log"
	cat >"$d/rampart.toml" <<EOT
[daemon]
state_dir = "$d"
socket = "$d/ctl.sock"
[firewall]
backend = "nftables"
[jail.sshd]
filter = "sshd"
files = ["$d/auth.log"]
$1
EOT
	ip netns exec "$srv" "$OUT/rampart" run --config "$d/rampart.toml" >"$OUT/rampart.log" 2>&1 &
	rpid=$!
	for i in $(seq 100); do [[ -S $d/ctl.sock ]] && return; sleep 0.1; done
	die "rampart did not start: $(tail -5 "$OUT/rampart.log")"
}
stop_rampart() {
	[[ -n $rpid ]] || return 0
	kill "$rpid"; wait "$rpid" 2>/dev/null || true; rpid=
	ip netns exec "$srv" nft delete table inet rampart 2>/dev/null || true
}
others='[shields.ssh]
enabled = false
[shields.submission]
enabled = false
[shields.smtp]
enabled = false
[shields.web]
enabled = false
[shields.flood]
enabled = false
[shields.portscan]
enabled = false'

busy() { awk '{ print $14 + $15 }' "/proc/$spid/stat"; } # the server's utime + stime
hz=$(getconf CLK_TCK)
results="$OUT/results.tsv"
printf 'mode\tload\ttried\tconnected\trate_per_s\tcpu_ms_per_1000\tuser_served_of_50\tuser_p50_ms\n' >"$results"
run_load() { # mode load
	local mode=$1 load=$2 b0 b1 flood probe=""
	sleep 3 # earlier connections time out of the listen queue and conntrack's SYN_SENT
	b0=$(busy)
	if [[ $load == held ]]; then
		ip netns exec "$atk" "$OUT/shieldload" flood -dst 10.90.0.1:1143 -src 10.90.0.2 -rate "$RATE_HELD" -for 10s -hold >"$OUT/flood.json" &
		local fpid=$!
		sleep 1
		probe=$(ip netns exec "$cli" "$OUT/shieldload" probe -dst 10.91.0.1:1143 -src 10.91.0.2 -n 50 -every 150ms)
		wait $fpid
	else
		ip netns exec "$atk" "$OUT/shieldload" flood -dst 10.90.0.1:1143 -src 10.90.0.2 -rate "$RATE_CHURN" -for 10s >"$OUT/flood.json"
	fi
	b1=$(busy)
	flood=$(cat "$OUT/flood.json")
	python3 - "$mode" "$load" "$flood" "${probe:-{\}}" "$b0" "$b1" "$hz" >>"$results" <<'PY'
import json, sys
mode, load, flood, probe, b0, b1, hz = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
cpu_ms = (b1 - b0) * 1000 / hz + flood["cpu_ms"]
per = cpu_ms * 1000 / max(flood["tried"], 1)
print("\t".join([mode, load, str(flood["tried"]), str(flood["connected"]), "%.0f" % flood["rate"], "%.1f" % per,
                 str(probe.get("served", "")), str(probe.get("p50_ms", ""))]))
PY
	tail -n1 "$results"
}

for mode in $MODES; do
	case $mode in
	control) ;;
	table) start_rampart "[shields]
enabled = false" ;;
	idle) start_rampart "$others
[shields.imap]
ports = [1143]
rate = 100000
burst = 100000
conns = 100000
net_conns = 1000000
syn_rate = 1000000
syn_burst = 1000000" ;;
	shields) start_rampart "$others
[shields.imap]
ports = [1143]" ;;
	*) die "unknown mode $mode" ;;
	esac
	run_load "$mode" held
	for r in $(seq "$REPEAT"); do run_load "$mode" churn; done
	if [[ $mode != control ]]; then
		ip netns exec "$srv" nft list table inet rampart | grep -c 'counter packets' >/dev/null || true
		"$OUT/rampart" status --socket "$OUT/rampart-state/ctl.sock" 2>/dev/null | sed -n '/^SHIELD/,/^closed-port/p' || true
	fi
	stop_rampart
done
echo "results: $results"
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
	echo "kernel: $(uname -r)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "rampart: git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
