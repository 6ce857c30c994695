#!/usr/bin/env bash
# Benchmark of `stasis check` against Porcupine's published timings.
# For every history in ../shared/testdata/EXPECTED.tsv and for the generated histories
# (../shared/tools/gen-history.py, the arguments of the checker issue), prints per file:
# ops, verdict, median wall time of the whole process (parse included), median time of the
# check alone (from --json), peak RSS, and the Porcupine reference with our target (half).
# Also the adversarial single-register histories of issue 25 (../shared/tools/
# gen-adversarial.py: crashed writes left open, stale and phantom reads, all-concurrent
# ops), checked with --timeout 10s and --max-memory 2G (the issue's goal).
# Then the reader alone (`stasis check --parse-only`: read, validate and pair, no check) on
# the generated JSONL histories, on one thread and on one per core, in MB/s.
# Usage: scripts/bench-checker.sh [runs per file (default 5)] [--quick: skip 1M-op histories]
# Env: BENCH_DIR (generated histories are cached there; default target/bench-histories).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
runs=${1:-5}
quick=${2:-}
shared=../shared
[[ -f $shared/testdata/EXPECTED.tsv ]] || { echo "bench-checker: $shared/testdata not found (shared/ must sit beside the repository)" >&2; exit 3; }
command -v python3 >/dev/null || { echo "bench-checker: python3 is needed (apt-get install -y python3)" >&2; exit 3; }
cargo build --release --locked -p harness >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/stasis
gen=${BENCH_DIR:-${CARGO_TARGET_DIR:-target}/bench-histories}
mkdir -p "$gen"
make() { # name args...
  local name=$1; shift
  [[ -s $gen/$name.jsonl ]] || python3 "$shared/tools/gen-history.py" "$@" --jsonl "$gen/$name.jsonl" 2>/dev/null
}
make g100k-ok --ops 100000 --keys 10 --clients 50 --seed 2
make g100k-bad --ops 100000 --keys 10 --clients 50 --seed 2 --bad
if [[ $quick != --quick ]]; then
  make g1m-ok --ops 1000000 --keys 1000 --clients 100 --seed 1
  make g1m-bad --ops 1000000 --keys 1000 --clients 100 --seed 1 --bad
fi
adv() { # name mode args...
  local name=$1; shift
  [[ -s $gen/$name.log ]] || python3 "$shared/tools/gen-adversarial.py" "$@" --out "$gen/$name.log" 2>/dev/null
}
for c in 0.1 0.02; do
  adv "adv-sim20x2000-c$c-ok" sim --clients 20 --ops 2000 --crash $c --seed 1
  adv "adv-sim20x2000-c$c-stale" sim --clients 20 --ops 2000 --crash $c --seed 1 --bad stale
  adv "adv-sim20x2000-c$c-phantom" sim --clients 20 --ops 2000 --crash $c --seed 1 --bad phantom
done
adv adv-sim50x1000-c0.3-ok sim --clients 50 --ops 1000 --crash 0.3 --seed 1
adv adv-overlap40-ok overlap --ops 40 --seed 1
adv adv-overlap40-phantom overlap --ops 40 --seed 1 --bad phantom
echo "# stasis check benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$bin" "$runs" "$shared/testdata" "$gen" <<'PY'
import json, os, statistics, subprocess, sys, time
bin_, runs, data, gen = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# Porcupine (Go, 2-core Debian 12): (check alone s, whole process s, peak RSS MiB); None = not published.
porc = {
    "porcupine/jepsen/etcd_002.log": (0.164, None, None),
    "porcupine/jepsen/etcd_007.log": (0.109, None, None),
    "porcupine/kv/c50-ok.txt by-key": (0.220, None, 60),
    "porcupine/kv/c50-bad.txt by-key": (0.025, None, None),
    "porcupine/kv/c10-ok.txt none": (1.97, None, 280),
    "porcupine/kv/c10-bad.txt none": (2.37, None, 280),
    "g1m-ok": (2.43, 9.05, 1.16 * 1024),
    "g1m-bad": (2.25, None, None),
    "g100k-ok": (2.19, 2.83, 1.7 * 1024),
    "g100k-bad": (3.25, None, 2.0 * 1024),
}
# Adversarial rows: (name, expected verdict); the goal is decided within 10 s and 2 GiB.
ADV = [(f"adv-sim20x2000-c{c}-{b}", "linearizable" if b == "ok" else "not-linearizable")
       for c in ("0.1", "0.02") for b in ("ok", "stale", "phantom")]
ADV += [("adv-sim50x1000-c0.3-ok", "linearizable"), ("adv-overlap40-ok", "linearizable"),
        ("adv-overlap40-phantom", "not-linearizable")]
rows = []
for line in open(os.path.join(data, "EXPECTED.tsv")):
    if line.startswith("#") or not line.strip():
        continue
    f, fmt, model, init, part, expected = line.rstrip("\n").split("\t")
    args = [os.path.join(data, f), "--format", fmt, "--model", model, "--partition", part]
    if init != "-":
        args += ["--initial", init]
    name = f + (" " + part if f.startswith("porcupine/kv") else "")
    rows.append((name, args, expected))
for g in ["g100k-ok", "g100k-bad", "g1m-ok", "g1m-bad"]:
    p = os.path.join(gen, g + ".jsonl")
    if os.path.exists(p):
        rows.append((g, [p], "not-linearizable" if g.endswith("bad") else "linearizable"))
for g, expected in ADV:
    p = os.path.join(gen, g + ".log")
    if os.path.exists(p):
        rows.append((g, [p, "--timeout", "10s", "--max-memory", "2G"], expected))

def run(args):
    t = time.perf_counter()
    budget = [] if "--timeout" in args else ["--timeout", "10m"]
    p = subprocess.Popen([bin_, "check", "--json"] + budget + args,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    d = json.loads(out)
    methods = sorted({p.get("method", "search") for p in d["partitions"]})
    return wall, d["elapsed_ms"] / 1000, ru.ru_maxrss / 1024, d["verdict"], d["ops"], ru.ru_utime + ru.ru_stime, "+".join(methods)

def fmt_s(x):
    return "-" if x is None else (f"{x*1000:.1f} ms" if x < 1 else f"{x:.2f} s")

print(f"| file | ops | verdict | method | whole (median) | check (median) | CPU user+sys (median) | peak RSS | Porcupine check / whole / RSS | target met |")
print("|---|---|---|---|---|---|---|---|---|---|")
bad = 0
for name, args, expected in rows:
    res = [run(args) for _ in range(runs)]
    wall = statistics.median(r[0] for r in res)
    chk = statistics.median(r[1] for r in res)
    rss = max(r[2] for r in res)
    cpu = statistics.median(r[5] for r in res)
    verdict, ops = res[0][3], res[0][4]
    ok = verdict == expected
    ref = porc.get(name)
    met = ""
    if name.startswith("adv-"):
        met = "yes" if ok and wall <= 10 and rss <= 2048 else "NO"
    if ref:
        pc, pw, pr = ref
        checks = []
        if pw is not None:
            checks.append(wall <= pw / 2)
        else:
            checks.append(chk <= pc / 2)
        if pr is not None:
            checks.append(rss <= pr / 2)
        met = "yes" if all(checks) else "NO"
        refs = f"{fmt_s(pc)} / {fmt_s(pw)} / {'-' if pr is None else f'{pr:.0f} MiB'}"
    else:
        refs = ""
    if not ok:
        bad += 1
    print(f"| {name} | {ops} | {verdict}{'' if ok else ' (WRONG, expected ' + expected + ')'} | {res[0][6]} | {fmt_s(wall)} | {fmt_s(chk)} | {fmt_s(cpu)} | {rss:.0f} MiB | {refs} | {met} |")
    sys.stdout.flush()
# The reader alone: read, validate and pair (stasis check --parse-only), one thread and
# one per core.
print()
print("| file (parse alone) | MB | threads | parse (median) | MB/s | CPU user+sys (median) |")
print("|---|---|---|---|---|---|")
for g in ["g100k-ok", "g1m-ok", "g1m-bad"]:
    p = os.path.join(gen, g + ".jsonl")
    if not os.path.exists(p):
        continue
    for threads in ("1", "0"):
        res = []
        for _ in range(runs):
            q = subprocess.Popen([bin_, "check", "--parse-only", "--threads", threads, p],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out = q.stdout.read()
            _, status, ru = os.wait4(q.pid, 0)
            d = json.loads(out)
            res.append((d["parse_ms"] / 1000, d["bytes"], ru.ru_utime + ru.ru_stime))
        s = statistics.median(r[0] for r in res)
        mb = res[0][1] / 1e6
        cpu = statistics.median(r[2] for r in res)
        label = "1" if threads == "1" else f"{os.cpu_count()} (one per core)"
        print(f"| {g} | {mb:.0f} | {label} | {fmt_s(s)} | {mb / s:.0f} | {fmt_s(cpu)} |")
        sys.stdout.flush()
sys.exit(1 if bad else 0)
PY
