#!/usr/bin/env bash
# Throughput and latency of a 3-node stasis-node cluster (Raft or Multi-Paxos) on 127.0.0.1 with fsync on,
# driven by redis-benchmark against the leader, without and with pipelining.
# Usage: scripts/bench-node.sh [requests (default 100000)] [clients (default 50)]
# Env: PROTOCOL=raft|multipaxos (default raft), READ_MODE=read-index|lease (default
# read-index; raft only), BASE_PORT (default 27100).
# Needs redis-benchmark and redis-cli (Debian: apt-get install -y redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
requests=${1:-100000}
clients=${2:-50}
read_mode=${READ_MODE:-read-index}
protocol=${PROTOCOL:-raft}
base=${BASE_PORT:-27100}
for tool in redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench-node: $tool not found; install redis-tools (apt-get install -y redis-tools)" >&2; exit 3; }
done
cargo build --release --locked -p node >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/stasis-node
data=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$data"
}
trap cleanup EXIT INT TERM
peers="n1=127.0.0.1:$((base + 11)),n2=127.0.0.1:$((base + 12)),n3=127.0.0.1:$((base + 13))"
for i in 1 2 3; do
  "$bin" --id "n$i" --listen "127.0.0.1:$((base + i))" --peer-listen "127.0.0.1:$((base + 10 + i))" \
    --peers "$peers" --data-dir "$data/n$i" --protocol "$protocol" --read-mode "$read_mode" 2>"$data/n$i.log" &
  pids+=($!)
done
leader_port=
for _ in $(seq 100); do
  for i in 1 2 3; do
    if redis-cli -p $((base + i)) STATUS 2>/dev/null | grep -q '"role":"leader"'; then
      leader_port=$((base + i)); break 2
    fi
  done
  sleep 0.1
done
[[ -n $leader_port ]] || { echo "bench-node: no leader after 10s; logs in $data" >&2; trap - EXIT; exit 1; }
printf '%-5s %-10s %12s %10s %10s\n' test pipeline "req/s" "p50 ms" "p99 ms"
for pipeline in 1 16; do
  redis-benchmark -h 127.0.0.1 -p "$leader_port" -t set,get -n "$requests" -c "$clients" \
    -P "$pipeline" -r 100000 --csv 2>/dev/null |
    python3 -c '
import csv, sys
rows = list(csv.reader(sys.stdin))
head = rows[0]
for r in rows[1:]:
    d = dict(zip(head, r))
    print("{:<5} {:<10} {:>12.0f} {:>10.3f} {:>10.3f}".format(
        d["test"], sys.argv[1], float(d["rps"]), float(d["p50_latency_ms"]), float(d["p99_latency_ms"])))
' "$pipeline"
done
echo "($protocol, 3 nodes, fsync on, read mode $read_mode, $clients clients, $requests requests, $(nproc) cores, $(uname -r), $(date -u +%F))"
