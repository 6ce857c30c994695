#!/usr/bin/env bash
# ZooKeeper 3.8 under kill, pause and partition, N runs per read mode (sync reads, and
# getData alone); prints one line per run (seed, verdict, outcomes, the violating op) and a
# count of violations per mode. Run directories stay in the store for `stasis replay`.
# Needs root, Java and Debian's zookeeper (scripts/setup.sh).
# Usage: scripts/zookeeper-runs.sh [runs] [seconds] [sync|nosync|both] [store]
# STASIS_BIN=path uses that binary instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
runs=${1:-10}
secs=${2:-60}
modes=${3:-both}
store=${4:-$(mktemp -d)}
mkdir -p "$store"
if [[ -z ${STASIS_BIN:-} ]]; then
  cargo build --release --locked -p harness >/dev/null
  STASIS_BIN=target/release/stasis
fi
spec_dir=$(mktemp -d)
trap 'rm -rf "$spec_dir"' EXIT
"$STASIS_BIN" --version >/dev/null
# The built-in spec with getData alone.
python3 - "$spec_dir/zookeeper-nosync.toml" <<'PY'
import subprocess, sys
text = open("harness/suts/zookeeper.toml").read()
assert "sync_reads = true" in text
text = text.replace("sync_reads = true", "sync_reads = false").replace(
    'name = "zookeeper"', 'name = "zookeeper-nosync"')
open(sys.argv[1], "w").write(text)
PY
case $modes in
  sync) list=(zookeeper) ;;
  nosync) list=("$spec_dir/zookeeper-nosync.toml") ;;
  both) list=(zookeeper "$spec_dir/zookeeper-nosync.toml") ;;
  *) echo "zookeeper-runs.sh: mode must be sync, nosync or both, not $modes" >&2; exit 3 ;;
esac
echo "store: $store"
for sut in "${list[@]}"; do
  mode=$([[ $sut == zookeeper ]] && echo sync || echo nosync)
  printf '%-6s %3s %20s %17s %6s %5s %5s %6s  %s\n' mode run seed verdict ok fail info faults violation
  bad=0
  for ((i = 1; i <= runs; i++)); do
    out=$store/$mode-$i.out
    "$STASIS_BIN" test --sut "$sut" --nemesis kill,pause,partition --nemesis-interval 5s \
      --time-limit "${secs}s" --store "$store" --name "zk-$mode-$i" >"$out" 2>&1 || true
    dir=$store/zk-$mode-$i/latest
    if [[ ! -f $dir/results.json ]]; then
      printf '%-6s %3d run failed: %s\n' "$mode" "$i" "$(tail -1 "$out")"
      bad=$((bad + 1))
      continue
    fi
    line=$(python3 - "$dir" "$mode" "$i" <<'PY'
import json, sys
d, mode, i = sys.argv[1:]
r = json.load(open(d + "/results.json"))
t = json.load(open(d + "/test.json"))
n = {"ok": 0, "fail": 0, "info": 0}
for f in r["ops"].values():
    for k in n:
        n[k] += f.get(k, 0)
expl = (r.get("check") or {}).get("explanation") or {}
b = expl.get("blocked") or {}
viol = "-"
if b:
    during = [w["f"] for w in r.get("fault_windows", []) if w["start_ns"] <= b["call"] <= w["stop_ns"]]
    node = next((o.get("node") for o in map(json.loads, open(d + "/history.jsonl"))
                 if o["index"] == b["complete_index"]), None)
    viol = (f"{expl.get('key')} {b['description']} at {b['call'] / 1e9:.3f} s, process {b['process']} on {node}, "
            f"{'during ' + ','.join(during) if during else 'no fault active'}")
print(f"{mode:<6} {i:>3} {t['seed']:>20} {r['verdict']:>17} {n['ok']:>6} {n['fail']:>5} {n['info']:>5} {len(r['faults']):>6}  {viol}")
PY
)
    echo "$line"
    [[ $line == *" linearizable "* ]] || bad=$((bad + 1))
  done
  echo "$mode: $bad of $runs runs not linearizable (or failed); ${secs}s each, $(nproc) cores, $(date -u +%F)"
done
