#!/usr/bin/env bash
# Redis with Sentinel under a partition of the primary: how often Stasis catches the
# non-linearizable history, over N runs with seeds 1..N. Prints one line per run (seed,
# verdict, lost acknowledged writes, seconds from the first fault to the end of the
# workload) and the count caught. Needs root, redis-server and redis-sentinel.
# Usage: scripts/redis-findings.sh [runs] [workload seconds] [extra stasis test args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
runs=${1:-10}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
cargo build --release --locked -p harness >/dev/null
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
printf '%-5s %-17s %6s %s\n' seed verdict lost "violation"
caught=0
for seed in $(seq 1 "$runs"); do
  set +e
  target/release/stasis test --sut redis --nemesis partition --shapes isolate-leader \
    --time-limit "${secs}s" --seed "$seed" --store "$store" --name "redis-$seed" "$@" \
    >"$store/$seed.out" 2>&1
  code=$?
  set -e
  [[ $code == 1 ]] && caught=$((caught + 1))
  python3 - "$store/redis-$seed/latest" "$seed" "$code" <<'PY'
import json, sys
d, seed, code = sys.argv[1:]
try:
    r = json.load(open(d + "/results.json"))
except OSError:
    print(f"{seed:<5} {'error (exit ' + code + ')':<17}")
    sys.exit(0)
e = (r["check"].get("explanation") or {}).get("sentence", "")
print(f"{seed:<5} {r['verdict']:<17} {len(r['lost_writes']['lost']):>6} {e[:90]}")
PY
done
echo "caught not linearizable: $caught of $runs runs (${secs}s workload each, partition isolate-leader; $(redis-server --version | cut -d' ' -f3), $(date -u +%F))"
