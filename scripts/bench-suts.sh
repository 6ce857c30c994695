#!/usr/bin/env bash
# The same workload (no faults, same concurrency, unthrottled, the systems' default
# settings, the same seed) against 3-node etcd over its native gRPC API, etcd over its v3
# JSON gateway, Stasis Raft and Stasis Multi-Paxos, each in network namespaces; prints
# throughput and p50/p99 latency side by side, ROUNDS times (the systems alternate, so load
# from elsewhere on the machine spreads over all of them), then the Raft / etcd-gRPC
# throughput ratio of each round, then etcd's own `etcdctl check perf` on a 3-member
# loopback cluster (60 s; skipped with CHECK_PERF=0). check perf is a pass/fail check at a
# fixed rate (the small load: 150 writes/s from 50 clients), not a throughput ceiling.
# Needs root. Usage: scripts/bench-suts.sh [seconds] [concurrency] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
secs=${1:-20}
conc=${2:-16}
rounds=${3:-1}
scripts/setup.sh >/dev/null
cargo build --release --locked -p harness -p node >/dev/null
store=$(mktemp -d)
etcd_pids=()
cleanup() {
  for p in "${etcd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$store"
}
trap cleanup EXIT
# etcd over gRPC: the built-in spec with api = "grpc".
sed -e 's/^api = "gateway"/api = "grpc"/' -e 's/^name = "etcd"/name = "etcd-grpc"/' \
  harness/suts/etcd.toml >"$store/etcd-grpc.toml"
grep -q '^api = "grpc"' "$store/etcd-grpc.toml"
declare -A spec=([etcd-grpc]="$store/etcd-grpc.toml" [etcd-gateway]=etcd [raft]=raft [multipaxos]=multipaxos)
systems=(etcd-grpc etcd-gateway raft multipaxos)
declare -A ops
printf '%-5s %-12s %9s %12s %10s %10s %s\n' round system "ops/s" completions "p50 ms" "p99 ms" verdict
for round in $(seq 1 "$rounds"); do
  for sut in "${systems[@]}"; do
    out="$store/$sut-$round.out"
    if ! target/release/stasis test --sut "${spec[$sut]}" --nemesis none --settings default \
        --seed 1 --rate 0 --concurrency "$conc" --time-limit "${secs}s" --store "$store" \
        --name "bench-$sut-$round" >"$out" 2>&1; then
      printf '%-5s %-12s %s\n' "$round" "$sut" "run failed: $(grep -m1 -i 'error\|stasis test:' "$out" || tail -1 "$out")"
      continue
    fi
    line=$(python3 - "$store/bench-$sut-$round/latest" <<'PY'
import json, sys
d = sys.argv[1]
h = json.load(open(d + "/harness.json"))
r = json.load(open(d + "/results.json"))
a = next(l for l in r["latency"] if l["f"] == "all")
print(f"{h['ops_per_s']:.0f} {h['completions']} {a['p50_ms']:.2f} {a['p99_ms']:.2f} {r['verdict']}")
PY
)
    read -r rate n p50 p99 verdict <<<"$line"
    ops[$sut-$round]=$rate
    printf '%-5s %-12s %9s %12s %10s %10s %s\n' "$round" "$sut" "$rate" "$n" "$p50" "$p99" "$verdict"
  done
done
for round in $(seq 1 "$rounds"); do
  r=${ops[raft-$round]:-}
  e=${ops[etcd-grpc-$round]:-}
  g=${ops[etcd-gateway-$round]:-}
  if [[ -n $r && -n $e && -n $g ]]; then
    echo "round $round: raft / etcd-grpc = $(python3 -c "print(f'{$r/$e:.2f}')")x, etcd-grpc / etcd-gateway = $(python3 -c "print(f'{$e/$g:.2f}')")x"
  fi
done
echo "(3 nodes, concurrency $conc, ${secs}s per run, --settings default --seed 1, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(etcd --version | head -1), $(date -u +%FT%H:%MZ), commit $(git rev-parse --short HEAD))"

# etcd's own figure: `etcdctl check perf` (the small load: 50 clients for 60 s) against a
# 3-member cluster on loopback ports 23xx (no namespaces: etcdctl runs on the host).
if [[ ${CHECK_PERF:-1} == 1 ]]; then
  peers=""
  for k in 1 2 3; do peers+="${peers:+,}stasis-p$k=http://127.0.0.1:2${k}380"; done
  for k in 1 2 3; do
    etcd --name "stasis-p$k" --data-dir "$store/perf-$k" \
      --listen-client-urls "http://127.0.0.1:2${k}379" --advertise-client-urls "http://127.0.0.1:2${k}379" \
      --listen-peer-urls "http://127.0.0.1:2${k}380" --initial-advertise-peer-urls "http://127.0.0.1:2${k}380" \
      --initial-cluster "$peers" --initial-cluster-state new --initial-cluster-token stasis-perf \
      >"$store/perf-$k.log" 2>&1 &
    etcd_pids+=($!)
  done
  eps=http://127.0.0.1:21379,http://127.0.0.1:22379,http://127.0.0.1:23379
  for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "etcdctl check perf (3 members on loopback, etcd's small load):"
  # The progress bar redraws with carriage returns: keep only the verdict lines.
  ETCDCTL_API=3 etcdctl --endpoints "$eps" check perf --load s 2>&1 | tr '\r' '\n' \
    | grep -vE '[0-9]+ / [0-9]+ +[0-9.]+%|^ *$' | sed 's/^/  /' || echo "  etcdctl check perf failed"
fi
