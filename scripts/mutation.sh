#!/usr/bin/env bash
# The harness's mutation score (issue 19): of the bugs nobody planted, how many does the
# harness catch?
#
#  1. cargo-mutants mutates the consensus and storage code (node/src/raft, node/src/paxos,
#     node/src/storage, node/src/kv.rs: flipped operators, replaced return values, deleted
#     statements) and runs the node's own unit, simulation and storage-crash tests against
#     each mutant (`cargo test -p node --lib --test storage_crash`; the real-process
#     cluster tests are left out: slow, and timing-dependent under load). Caught and
#     unviable mutants are done; the survivors ("missed") are bugs our own tests miss.
#     All mutants, a --shard K/N slice of them, or a --sample N of them drawn at random
#     with --sample-seed S (Python's random.Random(S).sample over the sorted names of
#     `cargo mutants --list`: the same N, S and code give the same mutants).
#  2. Each survivor's tree is built (stasis and stasis-node, profile `mutation`:
#     optimized like release, quick incremental builds) and faced with two stages, on the
#     protocol the mutant touches (raft/ -> raft, paxos/ -> multipaxos, storage/ and
#     kv.rs -> both):
#     a. sim: `stasis sim` (the same node cores and storage code, deterministic, crash /
#        power-loss / partition / clock / disk / network-timing faults and membership
#        changes, --sim-faults, default every kind, each schedule a `--swarm` subset of
#        them unless --sim-swarm off; values of 1 KiB; node settings varied per schedule)
#        from seed --sim-seed
#        for --sim-budget of wall time per protocol, stopping at the first failing
#        schedule; this only tests the mutant because `stasis` itself is built from the
#        mutated tree. A violation (of linearizability, or a membership change answered
#        "definitely not made" that took effect) kills; a schedule without progress after
#        its last fault healed (sim exit 4), a node panic (the sim process dies), a message
#        storm or a sim that does not end within budget + 5 min are recorded as such.
#     b. campaign, if the sim did not kill it: the real stasis-node processes under the
#        campaign (default campaigns/nightly.toml: node settings varied per run, every
#        nemesis, three workloads; plus the `disk` nemesis cells, which the nightly
#        campaign leaves out only because of etcd's known power-loss finding; --no-disk
#        leaves them out here too) with --fail-fast and --budget, its cells in a random
#        order seeded per survivor (`campaign --shuffle`). --budget 0 skips it.
#  3. The same stages run on the unmutated tree first (same seeds, same budgets, per
#     protocol): any violation there is a false alarm (or a real bug) and fails the script.
#  4. OUT/table.md: each survivor, killed or not, by which stage, and the time to the
#     first violation; the kill rate over survivors not listed as equivalent in
#     scripts/mutation-equivalent.txt (name, then a reason; shown, never counted).
#
# Usage: sudo scripts/mutation.sh [--out DIR] [--shard K/N | --sample N [--sample-seed S]]
#            [--sim-budget 60s] [--sim-seed S] [--sim-faults KINDS] [--sim-swarm on|off]
#            [--budget 8m]
#            [--campaign FILE] [--jobs J]
#            [--skip-generate] [--skip-baseline] [--no-disk] [--target-dir DIR]
#   --shard K/N      only the K-th of N slices of the mutants (nightly: a rotating slice)
#   --sample N       N mutants drawn at random (seed --sample-seed, default 19)
#   --sim-budget D   wall time of the sim stage per protocol and survivor (0s: no sim)
#   --sim-faults K   the sim stage's --faults (default every kind:
#                    all,reconfig,persist,stall,torn,freeze,tcp,outage,lag,apply)
#   --sim-swarm on|off  each sim schedule a seed-drawn subset of --sim-faults (default on)
#   --budget D       campaign budget per survivor (0: no real-process campaign)
#   --skip-generate  reuse OUT/mutants.out from an earlier run (re-run only the stages)
#   --skip-baseline  keep the unmutated runs already in OUT/results (same budgets and seed)
#   --target-dir DIR cargo's target directory for every build (default: the workspace's)
# Exit: 0 when done and the unmutated node had no violation; 1 on a false alarm; 3 on a
# harness or tool error. Needs root (the campaigns make network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
root=$(pwd)

out=target/mutation
shard=""
sample=""
sample_seed=19
sim_budget=60s
sim_seed=1
sim_faults=all,reconfig,persist,stall,torn,freeze,tcp,outage,lag,apply
sim_swarm=on
budget=8m
campaign=campaigns/nightly.toml
jobs=1
generate=1
baseline=1
disk=1
target_dir=$root/target
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --shard) shard=${2:?--shard needs K/N}; shift 2 ;;
    --sample) sample=${2:?--sample needs a number}; shift 2 ;;
    --sample-seed) sample_seed=${2:?--sample-seed needs a number}; shift 2 ;;
    --sim-budget) sim_budget=${2:?--sim-budget needs a duration}; shift 2 ;;
    --sim-seed) sim_seed=${2:?--sim-seed needs a number}; shift 2 ;;
    --sim-faults) sim_faults=${2:?--sim-faults needs fault kinds}; shift 2 ;;
    --sim-swarm) sim_swarm=${2:?--sim-swarm needs on or off}; shift 2 ;;
    --budget) budget=${2:?--budget needs a duration}; shift 2 ;;
    --campaign) campaign=${2:?--campaign needs a file}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --skip-generate) generate=0; shift ;;
    --skip-baseline) baseline=0; shift ;;
    --no-disk) disk=0; shift ;;
    --target-dir) target_dir=${2:?--target-dir needs a directory}; shift 2 ;;
    *) echo "mutation.sh: unknown argument $1 (see the usage at the top of the script)" >&2; exit 3 ;;
  esac
done
if [[ -n $shard && -n $sample ]]; then
  echo "mutation.sh: --shard and --sample exclude each other" >&2
  exit 3
fi
if [[ -n $sample && ! $sample =~ ^[1-9][0-9]*$ ]] || [[ ! $sample_seed =~ ^[0-9]+$ ]] ||
  [[ ! $sim_seed =~ ^[0-9]+$ ]]; then
  echo "mutation.sh: --sample needs a positive number, --sample-seed and --sim-seed a number" >&2
  exit 3
fi
# Durations in seconds (30s, 5m, 1h; a bare number is seconds).
seconds() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;; *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
  esac
}
for d in "$sim_budget" "$budget"; do
  if [[ ! $d =~ ^[0-9]+[hms]?$ ]]; then
    echo "mutation.sh: bad duration $d (30s, 5m, 1h)" >&2
    exit 3
  fi
done
case $sim_swarm in
  on) swarm_flag=(--swarm) ;;
  off) swarm_flag=() ;;
  *) echo "mutation.sh: --sim-swarm must be on or off, got '$sim_swarm'" >&2; exit 3 ;;
esac
sim_secs=$(seconds "$sim_budget")
campaign_secs=$(seconds "$budget")
mkdir -p "$out" "$target_dir"
out=$(readlink -f "$out")
target_dir=$(readlink -f "$target_dir")
campaign=$(readlink -f "$campaign")
if ((disk && campaign_secs > 0)); then
  # The same campaign with the disk nemesis added to its fault sets (written beside the
  # original so relative spec paths still resolve; removed at exit).
  with_disk=$(dirname "$campaign")/.mutation-$$-$(basename "$campaign")
  # First, so that a short budget reaches them (cells run system by system, fault set by
  # fault set).
  sed -E 's/^nemesis = \[(.*)\]/nemesis = ["disk", \1]/' "$campaign" >"$with_disk"
  trap 'rm -f "$with_disk"' EXIT
  if ! grep -q '"disk"' "$with_disk"; then
    echo "mutation.sh: cannot add the disk nemesis to $campaign (no one-line nemesis = [...])" >&2
    rm -f "$with_disk"
    exit 3
  fi
  campaign=$with_disk
fi

scripts/setup.sh
if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "mutation.sh: installing cargo-mutants (the standard Rust mutation tool)"
  cargo install cargo-mutants --locked
fi
if ! command -v patch >/dev/null 2>&1; then
  apt-get install -y -qq patch
fi
export CARGO_TARGET_DIR=$target_dir

# The trees mutants are made in (OUT/tree: cargo mutants --in-place) and survivors built
# in (OUT/build): plain copies of HEAD with a git repository of their own (to reset them
# between mutants), so nothing is registered in the project's repository and a killed run
# leaves no mutated source behind in the worktree. Two trees, so that the survivors'
# incremental builds do not start over after every mutant cargo mutants tried. Made afresh
# for each generation; --skip-generate keeps the trees the diffs were made in.
make_tree() {
  rm -rf "$1"
  mkdir -p "$1"
  git -C "$root" archive HEAD | tar -x -C "$1"
  git -C "$1" init -q
  git -C "$1" add -A
  git -C "$1" -c user.name=stasis -c user.email=stasis@invalid commit -q \
    -m "HEAD of $(git -C "$root" rev-parse --short HEAD)"
}
tree=$out/tree
build=$out/build
for t in "$tree" "$build"; do
  if ((generate)) || [[ ! -d $t/.git ]]; then make_tree "$t"; fi
done
reset_tree() {
  git -C "$tree" checkout -q -- . 2>/dev/null || true
  git -C "$build" checkout -q -- . 2>/dev/null || true
}
reset_tree
trap 'reset_tree; if [[ -n ${with_disk:-} ]]; then rm -f "$with_disk"; fi' EXIT

# 1. Mutants and the node's own tests.
scope=(--package node
  --file 'node/src/raft/**' --file 'node/src/paxos/**'
  --file 'node/src/storage/**' --file node/src/kv.rs
  --exclude 'node/src/**/tests.rs' --exclude 'node/src/**/bug_tests.rs'
  --exclude 'node/src/raft/sim.rs'
  # The simulator's in-memory filesystem (SimFs, SimState, SimFile in storage/file.rs) is
  # a test double, not node code: the running node uses RealFs. Its 94 mutants (of 1,326
  # at 277bf22) change the tester's disk model, which no test of the node can observe.
  --exclude-re 'Sim(Fs|State|File)\b')
if ((generate)); then
  args=(mutants "${scope[@]}" --output "$out"
    --cargo-arg=--lib --cargo-arg=--test=storage_crash
    --timeout 300 --build-timeout 600)
  # One job: in the tree itself (its build shares the target directory); more: cargo
  # mutants copies the tree once per job.
  if ((jobs == 1)); then args+=(--in-place); else args+=(-j "$jobs"); fi
  if [[ -n $shard ]]; then
    args+=(--no-shuffle --shard "$shard")
  elif [[ -n $sample ]]; then
    # A reproducible random sample: the names cargo-mutants lists, sorted, sampled with a
    # fixed seed, selected by one anchored regex. Shuffled, so that a run cut short has
    # still tested a random part of the sample.
    (cd "$tree" && cargo mutants "${scope[@]}" --list >"$out/all-mutants.txt")
    python3 - "$out/all-mutants.txt" "$sample" "$sample_seed" "$out/sample.txt" "$out/sample.re" <<'PY'
import random, re, sys
names = sorted(l.rstrip("\n") for l in open(sys.argv[1]) if l.strip())
n, seed = int(sys.argv[2]), int(sys.argv[3])
if n > len(names):
    sys.exit("mutation.sh: --sample %d but only %d mutants" % (n, len(names)))
chosen = sorted(random.Random(seed).sample(names, n))
open(sys.argv[4], "w").write("\n".join(chosen) + "\n")
esc = lambda s: re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s)
open(sys.argv[5], "w").write("^(" + "|".join(esc(c) for c in chosen) + ")$")
print("mutation.sh: sample of %d of %d mutants (seed %d) in %s" % (n, len(names), seed, sys.argv[4]))
PY
    args+=(--shuffle --re "$(cat "$out/sample.re")")
  else
    args+=(--no-shuffle)
  fi
  echo "mutation.sh: cargo mutants in $tree"
  rc=0
  (cd "$tree" && cargo "${args[@]}") || rc=$?
  reset_tree
  # 0: all caught; 2: some missed; 3: some timed out. Anything else is a tool failure.
  if ((rc != 0 && rc != 2 && rc != 3)); then
    echo "mutation.sh: cargo mutants failed (exit $rc); see $out/mutants.out/debug.log" >&2
    exit 3
  fi
fi
# A build killed half-way (cargo mutants' --build-timeout, an interrupted run) can leave
# the incremental cache inconsistent: every later mutant then fails to link and is
# reported unviable although it compiles. Seen once (2026-12-07); say so loudly.
stale=$(grep -l "undefined hidden symbol" "$out"/mutants.out/log/*.log 2>/dev/null | wc -l || true)
if ((stale > 0)); then
  echo "mutation.sh: WARNING: $stale mutant build(s) failed to link (undefined hidden symbol):" \
    "a stale incremental cache, not unviable mutants; remove $target_dir/debug/incremental" \
    "and run again" >&2
fi
outcomes=$out/mutants.out/outcomes.json
if [[ ! -f $outcomes ]]; then
  echo "mutation.sh: no $outcomes: run without --skip-generate first" >&2
  exit 3
fi

# The survivors: index, protocol(s), diff path, name.
python3 - "$outcomes" "$out/survivors.tsv" "$out/counts.txt" <<'PY'
import json, sys
outcomes = json.load(open(sys.argv[1]))
counts = {}
rows = []
for o in outcomes["outcomes"]:
    sc = o["scenario"]
    if not isinstance(sc, dict) or "Mutant" not in sc:
        continue
    summary = o["summary"]
    counts[summary] = counts.get(summary, 0) + 1
    if summary != "MissedMutant":
        continue
    m = sc["Mutant"]
    path = m["file"]
    if "/raft/" in path:
        systems = "raft"
    elif "/paxos/" in path:
        systems = "multipaxos"
    else:
        systems = "raft,multipaxos"
    name = m.get("name") or "%s:%s: %s" % (path, m["span"]["start"]["line"], m.get("replacement", ""))
    rows.append((systems, o["diff_path"], name.replace("\t", " ")))
with open(sys.argv[2], "w") as f:
    for i, (systems, diff, name) in enumerate(rows):
        f.write("%d\t%s\t%s\t%s\n" % (i, systems, diff, name))
with open(sys.argv[3], "w") as f:
    for k in sorted(counts):
        f.write("%s %d\n" % (k, counts[k]))
PY
echo "mutation.sh: outcomes of the node's own tests:"
sed 's/^/  /' "$out/counts.txt"
n=$(wc -l <"$out/survivors.tsv")
echo "mutation.sh: $n survivors to run the sim and the campaign against"
mkdir -p "$out/bins" "$out/results"

# Builds stasis and stasis-node from the tree as it is into bins/LABEL-{stasis,node}.
build_tree() {
  (cd "$build" && cargo build --profile mutation --locked -p harness -p node -q) || return 1
  cp "$target_dir/mutation/stasis" "$out/bins/$1-stasis"
  cp "$target_dir/mutation/stasis-node" "$out/bins/$1-node"
}

# The sim stage: LABEL BIN SYSTEMS -> results/LABEL.sim, one line per protocol run:
# "protocol exit wall_s schedules storms stalls aborts" (stalls: schedules without progress
# after the heal; aborts: membership answers proved false); stops at the first protocol
# that does not pass.
# Returns 0 when every protocol passed, 1 otherwise.
run_sim() {
  local label=$1 bin=$2 systems=$3 p rc line
  : >"$out/results/$label.sim"
  ((sim_secs > 0)) || return 0
  for p in ${systems//,/ }; do
    rc=0
    rm -rf "$out/store/$label-sim"
    # The node timing knobs as in the nightly's sim stage (scripts/nightly.sh).
    timeout --kill-after 10 $((sim_secs + 300)) "$bin" sim --protocol "$p" \
      --seed "$sim_seed" --seeds 1000000000 --budget "$sim_budget" --no-shrink \
      --faults "$sim_faults" "${swarm_flag[@]}" --value-bytes 1024 \
      --node-arg=--tick-ms --node-arg=10 --node-arg=--election-ticks --node-arg=60 \
      --node-arg=--heartbeat-ticks --node-arg=10 \
      --store "$out/store/$label-sim" >"$out/results/$label-sim-$p.log" 2>&1 || rc=$?
    line=$(grep -E '^sim: [0-9]+ schedules' "$out/results/$label-sim-$p.log" | tail -1 || true)
    stall=$(grep -E '^sim: [0-9]+ without progress' "$out/results/$label-sim-$p.log" | tail -1 || true)
    python3 - "$p" "$rc" "$line" "$stall" >>"$out/results/$label.sim" <<'PY'
import re, sys
p, rc, line, stall = sys.argv[1:5]
m = re.search(r"^sim: (\d+) schedules.* in ([0-9.]+) s ", line)
storms = re.search(r"(\d+) message storms", line)
aborts = re.search(r"(\d+) of them membership answers proved false", line)
stalls = re.search(r"^sim: (\d+) without progress", stall)
sched, wall = (m.group(1), m.group(2)) if m else ("-", "-")
print(p, rc, wall, sched, storms.group(1) if storms else "0",
      stalls.group(1) if stalls else "0", aborts.group(1) if aborts else "0")
PY
    if ((rc != 0)); then return 1; fi
  done
  return 0
}

# The campaign stage: LABEL NODE-BIN SYSTEMS ORDER -> results/LABEL.json; returns its
# exit. ORDER seeds the run order (`campaign --shuffle`): a budget of a few runs tries
# different cells for different survivors instead of the file's first cells every time.
run_campaign() {
  local label=$1 bin=$2 systems=$3 order=$4 store=$out/store/$1 rc=0
  rm -rf "$store"
  "$out/bins/base-stasis" campaign "$campaign" --store "$store" --node-bin "$bin" \
    --fail-fast --systems "$systems" --budget "$budget" --shuffle "$order" \
    >"$out/results/$label.log" 2>&1 || rc=$?
  cp "$(readlink -f "$store/campaigns/latest")/campaign.json" "$out/results/$label.json" \
    2>/dev/null || true
  return $rc
}

# 2. The unmutated tree, per protocol, same stages: any violation is a false alarm.
reset_tree
if ! build_tree base; then
  echo "mutation.sh: the unmutated tree does not build (profile mutation)" >&2
  exit 3
fi
false_alarm=0
for p in raft multipaxos; do
  if ((!baseline)); then
    if [[ ! -f $out/results/base-$p.sim ]]; then
      echo "mutation.sh: --skip-baseline but no $out/results/base-$p.sim" >&2
      exit 3
    fi
    continue
  fi
  run_sim "base-$p" "$out/bins/base-stasis" "$p" || true
  echo "mutation.sh: unmutated $p: sim (protocol exit wall schedules storms) $(cat "$out/results/base-$p.sim")"
  # Exit 2 (a check that gave up) is no violation; anything else but 0 is (exit 4, no
  # progress after the heal, is a false alarm of the progress check).
  if grep -qvE "^$p [02] " "$out/results/base-$p.sim"; then false_alarm=1; fi
  if ((campaign_secs > 0)); then
    rc=0
    run_campaign "base-$p" "$out/bins/base-node" "$p" 0 || rc=$?
    echo "mutation.sh: unmutated $p: campaign exit $rc"
    if ((rc == 1)); then false_alarm=1; fi
  fi
done

# 3. The survivors: the sim first, the campaign for those the sim did not kill.
while IFS=$'\t' read -r -u 3 i systems diff name; do
  if cut -f1 scripts/mutation-equivalent.txt | grep -qxF -- "$name"; then
    # Marked equivalent by hand: shown in the table with its reason, not run.
    echo "equivalent" >"$out/results/m$i.status"
    echo "mutation.sh: survivor $i ($name): listed as equivalent, not run"
    continue
  fi
  reset_tree
  (cd "$build" && patch -s -p0 <"$out/mutants.out/$diff")
  if ! build_tree "m$i"; then
    echo "mutation.sh: survivor $i does not build (profile mutation): $name" >&2
    echo "unviable" >"$out/results/m$i.status"
    continue
  fi
  if run_sim "m$i" "$out/bins/m$i-stasis" "$systems"; then
    if ((campaign_secs > 0)); then
      rc=0
      run_campaign "m$i" "$out/bins/m$i-node" "$systems" $((i + 1)) || rc=$?
      echo "$rc" >"$out/results/m$i.status"
      echo "mutation.sh: survivor $i ($name): sim passed; campaign exit $rc"
    else
      echo "not run" >"$out/results/m$i.status"
      echo "mutation.sh: survivor $i ($name): sim passed; no campaign"
    fi
  else
    echo "sim" >"$out/results/m$i.status"
    echo "mutation.sh: survivor $i ($name): sim (protocol exit wall schedules storms) $(tail -1 "$out/results/m$i.sim")"
  fi
  # The survivor's stasis is ~30 MB; its node stays (campaign runs replay with it).
  rm -f "$out/bins/m$i-stasis"
done 3<"$out/survivors.tsv"
reset_tree

# 4. The table.
python3 - "$out" scripts/mutation-equivalent.txt "$(git rev-parse --short HEAD)" "$budget" \
  "$sim_budget" "$sim_seed" "$sim_faults, swarm $sim_swarm, values of 1 KiB" <<'PY'
import json, os, sys, datetime
out, eq_file, commit, budget, sim_budget, sim_seed, sim_faults = sys.argv[1:8]
equivalent = {}
if os.path.exists(eq_file):
    for line in open(eq_file):
        line = line.rstrip("\n")
        if line and not line.startswith("#") and "\t" in line:
            name, why = line.split("\t", 1)
            equivalent[name] = why
def sim_result(label):
    """[(protocol, exit, wall_s, schedules, storms, stalls, aborts)] of the sim stage."""
    rows = []
    try:
        for line in open(os.path.join(out, "results", label + ".sim")):
            f = line.split()
            # Lines written before the progress and abort checks have 5 fields.
            p, rc, wall, sched, storms = f[:5]
            stalls, aborts = (f[5], f[6]) if len(f) >= 7 else ("0", "0")
            rows.append((p, int(rc), None if wall == "-" else float(wall), sched, int(storms),
                         int(stalls), int(aborts)))
    except OSError:
        pass
    return rows
def campaign_result(label):
    """(run, seconds until the violation, runs made, first finding's (run, s) or None)."""
    try:
        c = json.load(open(os.path.join(out, "results", label + ".json")))
    except OSError:
        return None, None, 0, None
    t = 0.0
    finding = None
    for i, cell in enumerate(c["cells"]):
        if cell["verdict"] == "skipped":
            break
        t += cell["time_s"]
        if cell["verdict"] == "invalid":
            return i + 1, t, i + 1, finding
        if finding is None and "finding:" in (cell.get("explanation") or ""):
            finding = (i + 1, t)
    return None, None, sum(1 for x in c["cells"] if x["verdict"] != "skipped"), finding
rows = []
tally = {"sim": 0, "sim-crash": 0, "campaign": 0, "detected": 0, "alive": 0, "error": 0}
counted = 0
times = []
for line in open(os.path.join(out, "survivors.tsv")):
    i, systems, diff, name = line.rstrip("\n").split("\t", 3)
    status_file = os.path.join(out, "results", "m%s.status" % i)
    status = open(status_file).read().strip() if os.path.exists(status_file) else "missing"
    sims = sim_result("m" + i)
    # Wall time of the sim stage (a sim that died or hung has no summary line: its
    # budget, or budget + 5 min for a hang, is an upper bound).
    sim_wall = sum(r[2] if r[2] is not None else 0.0 for r in sims)
    sim_text = ", ".join("%s %s%s" % (p, s, "" if rc == 0 else " (exit %d)" % rc)
                         for p, rc, _, s, *_ in sims) or "-"
    run, t, runs, finding = campaign_result("m" + i)
    camp_text = "-" if status in ("sim", "unviable", "not run", "missing", "equivalent") else (
        "run %d" % run if run else "%d runs" % runs)
    eq = equivalent.get(name)
    failed = [r for r in sims if r[1] != 0]
    stage, when = "-", None
    if status == "unviable":
        verdict = "unviable (does not build in profile mutation)"
    elif eq:
        verdict = "equivalent: " + eq
    else:
        counted += 1
        if failed and failed[0][1] == 1:
            verdict, stage, when = "killed", "sim (%s)" % failed[0][0], sim_wall
            if failed[0][6]:
                verdict = "killed (a membership answer proved false)"
            tally["sim"] += 1
        elif failed and failed[0][1] == 4:
            # No violation, but no progress after the last fault healed (the baseline
            # passes the same check): detected, counted apart from kills.
            verdict, stage, when = "detected (no progress after the heal)", "sim (%s)" % failed[0][0], sim_wall
            tally["detected"] += 1
        elif failed and failed[0][1] == 124:
            verdict, stage = "detected (the sim did not end: a hang)", "sim (%s)" % failed[0][0]
            tally["detected"] += 1
        elif failed and failed[0][1] == 2:
            verdict, stage, when = "detected (sim: a check gave up)", "sim (%s)" % failed[0][0], sim_wall
            tally["detected"] += 1
        elif failed and failed[0][1] != 3:
            verdict = "killed (the sim process died, exit %d: a node panic)" % failed[0][1]
            stage = "sim (%s)" % failed[0][0]
            tally["sim-crash"] += 1
        elif failed:
            verdict = "error (sim exit 3)"
            tally["error"] += 1
        elif status == "1":
            verdict, stage, when = "killed", "campaign", sim_wall + t
            tally["campaign"] += 1
        elif finding is not None or any(r[4] for r in sims):
            # No violation, but the harness reported the system broken (a node that cannot
            # restart after a power loss, a message storm): detected, counted apart.
            verdict = "detected (finding, no violation)"
            if finding is not None:
                stage, when = "campaign", sim_wall + finding[1]
            else:
                stage, when = "sim (storm)", sim_wall
            tally["detected"] += 1
        elif status in ("0", "2", "not run"):
            verdict = "alive"
            tally["alive"] += 1
        else:
            verdict = "error (campaign %s)" % status
            tally["error"] += 1
    if verdict.startswith("killed") and when is not None:
        times.append(when)
    rows.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        i, name.replace("|", "\\|"), systems, verdict, stage,
        "%.0f s" % when if when is not None else "-", sim_text, camp_text))
times.sort()
median = times[len(times) // 2] if times else None
killed = tally["sim"] + tally["sim-crash"] + tally["campaign"]
with open(os.path.join(out, "table.md"), "w") as f:
    f.write("Mutation score, commit %s, %s; sim stage %s per protocol from seed %s (faults %s); campaign budget %s per survivor\n\n" % (
        commit, datetime.date.today().isoformat(), sim_budget, sim_seed, sim_faults, budget))
    f.write("node's own tests: %s\n\n" % ", ".join(
        l.strip() for l in open(os.path.join(out, "counts.txt"))))
    f.write("killed: %d of %d non-equivalent survivors (%.0f%%): %d by a sim violation, %d by a node panic in the sim, %d by the campaign; median time to kill %s; detected without a violation: %d; alive: %d; errors: %d\n\n" % (
        killed, counted, 100.0 * killed / counted if counted else 0.0,
        tally["sim"], tally["sim-crash"], tally["campaign"],
        "%.0f s" % median if median is not None else "-", tally["detected"], tally["alive"], tally["error"]))
    f.write("| # | mutant | systems | verdict | stage | time to kill | sim schedules | campaign |\n|---|---|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
    base = []
    for p in ("raft", "multipaxos"):
        sims = sim_result("base-" + p)
        r, _, runs, _ = campaign_result("base-" + p)
        base.append("%s: sim %s; campaign %s" % (
            p, ", ".join("%s schedules, exit %d, %s s" % (s, rc, w) for _, rc, w, s, *_ in sims) or "-",
            "violation in run %d" % r if r else "%d runs" % runs))
    f.write("\nunmutated: " + "; ".join(base) + "\n")
print(open(os.path.join(out, "table.md")).read())
PY
if ((false_alarm)); then
  echo "mutation.sh: FAILED: the unmutated node had a violation (see $out/results/base-*)" >&2
  exit 1
fi
echo "mutation.sh: done; table in $out/table.md"
