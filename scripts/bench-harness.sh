#!/usr/bin/env bash
# Record-rate benchmark: a 3-node cluster with no faults, --rate 0 (as fast as the
# cluster answers), on this machine's cores. Prints ops/s recorded and the harness's CPU
# share, per concurrency. Needs root. Usage: scripts/bench-harness.sh [raft|multipaxos] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
sut=${1:-raft}
secs=${2:-20}
cargo build --release --locked -p harness -p node >/dev/null
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
printf '%-6s %-12s %11s %12s %14s %9s\n' sut concurrency completions "ops/s" "harness cpu s" "cpu share"
for c in 4 16 64; do
  target/release/stasis test --sut "$sut" --nemesis none --rate 0 --concurrency "$c" \
    --time-limit "${secs}s" --store "$store" --name "bench-$c" >/dev/null 2>&1 || true
  f="$store/bench-$c/latest/harness.json"
  if [[ ! -f $f ]]; then echo "run with concurrency $c failed: see $store/bench-$c/latest" >&2; exit 1; fi
  python3 - "$f" "$sut" "$c" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<6} {sys.argv[3]:<12} {h['completions']:>11} {h['ops_per_s']:>12.0f} {h['harness_cpu_s']:>14.1f} {100*h['harness_cpu_share_of_one_core']:>8.0f}%")
PY
done
echo "($(nproc) cores, $(uname -r), $(date -u +%F))"
