#!/usr/bin/env bash
# Redis with Sentinel under a partition of the primary: how often Stasis catches the
# non-linearizable history, over N runs with seeds 1..N. Prints one line per run (seed,
# verdict, lost acknowledged writes, writes and cas left indeterminate (`info`, e.g. WAIT
# short of replicas), the checker's sentence) and the count caught. Needs root,
# redis-server and redis-sentinel.
#
# Usage: scripts/redis-findings.sh [--wait N TIMEOUT] [runs] [workload seconds] [extra stasis test args...]
#   --wait N TIMEOUT: the built-in spec with `wait_replicas = N`, `wait_timeout = TIMEOUT`
#   (every write and successful cas is followed by `WAIT N TIMEOUT`; one acknowledged by
#   fewer than N replicas is recorded as info, not ok).
# STASIS_BIN=path uses that stasis binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
sut=redis
wait_desc="no WAIT"
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
if [[ ${1:-} == --wait ]]; then
  [[ $# -ge 3 && $2 =~ ^[0-9]+$ ]] || { echo "usage: $0 --wait N TIMEOUT [runs] [secs] [args...]" >&2; exit 2; }
  sut="$store/redis-wait.toml"
  sed -e "s/^wait_replicas = 0$/wait_replicas = $2/" -e "s/^wait_timeout = .*/wait_timeout = \"$3\"/" \
    harness/suts/redis.toml >"$sut"
  grep -q "^wait_replicas = $2$" "$sut" || { echo "$0: could not set wait_replicas in the spec" >&2; exit 2; }
  wait_desc="WAIT $2 $3"
  shift 3
fi
runs=${1:-10}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
if [[ -n ${STASIS_BIN:-} ]]; then
  stasis=$STASIS_BIN
else
  cargo build --release --locked -p harness >/dev/null
  stasis=target/release/stasis
fi
printf '%-5s %-17s %6s %6s %s\n' seed verdict lost info "violation"
caught=0
for seed in $(seq 1 "$runs"); do
  set +e
  "$stasis" test --sut "$sut" --nemesis partition --shapes isolate-leader \
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
info = sum(r["ops"].get(f, {}).get("info", 0) for f in ("write", "cas"))
print(f"{seed:<5} {r['verdict']:<17} {len(r['lost_writes']['lost']):>6} {info:>6} {e[:90]}")
PY
done
echo "caught not linearizable: $caught of $runs runs (${secs}s workload each, partition isolate-leader, $wait_desc; $(redis-server --version | cut -d' ' -f3), $(date -u +%F))"
