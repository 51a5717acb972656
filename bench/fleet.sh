#!/usr/bin/env bash
# The fleet: propagation, throughput and memory of three rampart nodes in
# network namespaces (bench/cmd/fleetbench, root), and the low-and-slow
# scenario split over three nodes (bench/cmd/fleetsim, no root).
#
# Usage: sudo bench/fleet.sh
#
# Environment:
#   BANS=1000000   bans the loader node shares (0: propagation only)
#   PROBES=200     bans timed one at a time for propagation
#   SEED=1         attacksim seed
#   OUT=bench/out/fleet
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/go-env.sh

BANS=${BANS:-1000000}
PROBES=${PROBES:-200}
SEED=${SEED:-1}
OUT=${OUT:-bench/out/fleet}
mkdir -p "$OUT"

echo "== build" >&2
go build -o "$OUT/rampart" ./cmd/rampart
go build -o "$OUT/attacksim" ./bench/cmd/attacksim
go build -o "$OUT/fleetsim" ./bench/cmd/fleetsim
go build -o "$OUT/fleetbench" ./bench/cmd/fleetbench

echo "== low and slow over three nodes (fleetsim)" >&2
"$OUT/attacksim" -o "$OUT/sim" -seed "$SEED" -scenarios slow,legit >/dev/null
"$OUT/fleetsim" -dir "$OUT/sim" -nodes 1
"$OUT/fleetsim" -dir "$OUT/sim" -nodes 3 -share=false
"$OUT/fleetsim" -dir "$OUT/sim" -nodes 3

if [ "$(id -u)" != 0 ]; then
	echo "not root: skipping the live fleet (namespaces and nftables need root)" >&2
	exit 0
fi
echo "== three live nodes (fleetbench)" >&2
"$OUT/fleetbench" -rampart "$OUT/rampart" -o "$OUT/live" -probes "$PROBES" -bans "$BANS"
