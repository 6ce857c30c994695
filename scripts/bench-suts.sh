#!/usr/bin/env bash
# The same workload (no faults, same concurrency, unthrottled) against 3-node etcd, Stasis
# Raft and Stasis Multi-Paxos; prints throughput and p50/p99 latency side by side.
# Needs root. Usage: scripts/bench-suts.sh [seconds] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
secs=${1:-20}
conc=${2:-16}
cargo build --release --locked -p harness -p node >/dev/null
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
printf '%-11s %9s %12s %10s %10s %10s\n' system "ops/s" completions "p50 ms" "p99 ms" verdict
for sut in etcd raft multipaxos; do
  if ! target/release/stasis test --sut "$sut" --nemesis none --rate 0 --concurrency "$conc" \
      --time-limit "${secs}s" --store "$store" --name "bench-$sut" >"$store/$sut.out" 2>&1; then
    printf '%-11s %s\n' "$sut" "run failed: $(grep -m1 -i 'error\|stasis test:' "$store/$sut.out" || tail -1 "$store/$sut.out")"
    continue
  fi
  python3 - "$store/bench-$sut/latest" "$sut" <<'PY'
import json, sys
d = sys.argv[1]
h = json.load(open(d + "/harness.json"))
r = json.load(open(d + "/results.json"))
a = next(l for l in r["latency"] if l["f"] == "all")
print(f"{sys.argv[2]:<11} {h['ops_per_s']:>9.0f} {h['completions']:>12} {a['p50_ms']:>10.2f} {a['p99_ms']:>10.2f} {r['verdict']:>10}")
PY
done
echo "(3 nodes, concurrency $conc, ${secs}s, $(nproc) cores, $(uname -r), $(date -u +%F))"
