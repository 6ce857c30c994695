#!/usr/bin/env bash
# Network-fault benchmarks. Needs root.
#   scripts/bench-net.sh delayer [seconds]       packets/s and CPU of the NFQUEUE delayer at
#       the cluster's top rate (--rate 0): no delayer, a delayer passing packets at once
#       (--net-latency 0ms), and a 20ms±10ms baseline.
#   scripts/bench-net.sh runs [count] [seconds]   correct raft and multipaxos under
#       --nemesis net, fresh seeds: verdicts, delayer counters, and each fault's probe
#       evidence (asked vs measured).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
mode=${1:-delayer}
cargo build --release --locked -p harness -p node >/dev/null
store=${STORE:-$(mktemp -d)}
stasis=target/release/stasis

case $mode in
delayer)
  secs=${2:-20}
  printf '%-10s %-14s %8s %10s %9s %11s %10s\n' sut delayer "ops/s" "packets/s" "held max" "delayer cpu" "harness cpu"
  for sut in raft multipaxos; do
    for lat in none 0ms '20ms±10ms'; do
      extra=()
      [[ $lat != none ]] && extra=(--net-latency "$lat")
      name="bench-net-$sut-${lat//[^a-z0-9]/}"
      "$stasis" test --sut "$sut" --nemesis none --rate 0 --concurrency 16 --settings default \
        --time-limit "${secs}s" --store "$store" --name "$name" "${extra[@]}" >/dev/null 2>&1 || true
      f="$store/$name/latest/harness.json"
      if [[ ! -f $f ]]; then echo "run $name failed: see $store/$name/latest" >&2; exit 1; fi
      python3 - "$f" "$sut" "$lat" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
n = h.get("net_delayer") or {}
s = h["workload_s"]
pps = n.get("queued", 0) / s
cpu = n.get("cpu_s", 0) / s
print(f"{sys.argv[2]:<10} {sys.argv[3]:<14} {h['ops_per_s']:>8.0f} {pps:>10.0f} {n.get('max_held', 0):>9} {100*cpu:>10.1f}% {100*h['harness_cpu_share_of_one_core']:>10.0f}%")
PY
    done
  done
  ;;
runs)
  count=${2:-10}
  secs=${3:-30}
  printf '%-10s %-20s %7s %-14s %8s %10s\n' sut seed exit verdict "ops/s" "packets/s"
  for sut in raft multipaxos; do
    for ((i = 1; i <= count; i++)); do
      seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
      name="net-$sut"
      rc=0
      "$stasis" test --sut "$sut" --nemesis net --time-limit "${secs}s" --seed "$seed" \
        --store "$store" --name "$name" >/dev/null 2>&1 || rc=$?
      dir=$(readlink -f "$store/$name/latest")
      python3 - "$dir" "$sut" "$seed" "$rc" <<'PY'
import json, sys, os
d, sut, seed, rc = sys.argv[1:]
r = json.load(open(os.path.join(d, "results.json")))
h = json.load(open(os.path.join(d, "harness.json"))) if os.path.exists(os.path.join(d, "harness.json")) else {}
n = h.get("net_delayer") or {}
pps = n.get("queued", 0) / max(h.get("workload_s", 1), 1e-9)
print(f"{sut:<10} {seed:<20} {rc:>7} {r.get('verdict','?'):<14} {h.get('ops_per_s', 0):>8.0f} {pps:>10.0f}")
with open(os.path.join(os.path.dirname(os.path.dirname(d)), "evidence.txt"), "a") as f:
    for x in r.get("faults", []):
        f.write(f"{sut} {seed} {json.dumps(x.get('value'))} :: {' | '.join(x.get('evidence', []))}\n")
PY
    done
  done
  echo "probe evidence of every fault: $store/evidence.txt"
  ;;
*)
  echo "bench-net.sh: unknown mode $mode (use delayer or runs)" >&2
  exit 3
  ;;
esac
echo "($(nproc) cores, $(uname -r), $(date -u +%F))"
