#!/usr/bin/env bash
# The harness's mutation score (issue 19): of the bugs nobody planted, how many does the
# nightly campaign catch?
#
#  1. cargo-mutants mutates the consensus and storage code (node/src/raft, node/src/paxos,
#     node/src/storage, node/src/kv.rs: flipped operators, replaced return values, deleted
#     statements) and runs the node's own unit, simulation and storage-crash tests against
#     each mutant (`cargo test -p node --lib --test storage_crash`; the real-process
#     cluster tests are left out: slow, and timing-dependent under load). Caught and
#     unviable mutants are done; the survivors ("missed") are bugs our own tests miss.
#  2. Each survivor's stasis-node is built from its diff, and the campaign (default
#     campaigns/nightly.toml: node settings varied per run, every nemesis, three
#     workloads; plus the `disk` nemesis cells, which the nightly campaign leaves out only
#     because of etcd's known power-loss finding; --no-disk leaves them out here too) runs
#     against it with --fail-fast and a fixed budget, on the protocol the mutant touches
#     (raft/ -> raft, paxos/ -> multipaxos, storage/ and kv.rs -> both).
#  3. The same campaign runs on the unmutated node with the same budget per protocol:
#     any violation there is a false alarm (or a real bug) and fails the script.
#  4. OUT/table.md: each survivor, killed or not, the run that killed it and the time to
#     the first violation; the kill rate over survivors not listed as equivalent in
#     scripts/mutation-equivalent.txt (name, then a reason; shown, never counted).
#
# Usage: sudo scripts/mutation.sh [--out DIR] [--shard K/N] [--budget 8m]
#                                 [--campaign FILE] [--jobs J] [--skip-generate] [--no-disk]
#   --shard K/N      only the K-th of N slices of the mutants (nightly: a rotating slice)
#   --skip-generate  reuse OUT/mutants.out from an earlier run (re-run only the campaigns)
# Exit: 0 when done and the unmutated node had no violation; 1 on a false alarm; 3 on a
# harness or tool error. Needs root (the campaigns make network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
root=$(pwd)

out=target/mutation
shard=""
budget=8m
campaign=campaigns/nightly.toml
jobs=1
generate=1
disk=1
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --shard) shard=${2:?--shard needs K/N}; shift 2 ;;
    --budget) budget=${2:?--budget needs a duration}; shift 2 ;;
    --campaign) campaign=${2:?--campaign needs a file}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --skip-generate) generate=0; shift ;;
    --no-disk) disk=0; shift ;;
    *) echo "mutation.sh: unknown argument $1 (see the usage at the top of the script)" >&2; exit 3 ;;
  esac
done
mkdir -p "$out"
out=$(readlink -f "$out")
campaign=$(readlink -f "$campaign")
if ((disk)); then
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
cargo build --release --locked -p harness -p node
stasis=$root/target/release/stasis

# 1. Mutants and the node's own tests.
if ((generate)); then
  args=(mutants --package node --no-shuffle -j "$jobs" --output "$out"
    --file 'node/src/raft/**' --file 'node/src/paxos/**'
    --file 'node/src/storage/**' --file node/src/kv.rs
    --exclude 'node/src/**/tests.rs' --exclude 'node/src/**/bug_tests.rs'
    --exclude 'node/src/raft/sim.rs'
    --cargo-test-arg=--lib --cargo-test-arg=--test=storage_crash
    --timeout 300 --build-timeout 600)
  if [[ -n $shard ]]; then
    args+=(--shard "$shard")
  fi
  echo "mutation.sh: cargo ${args[*]}"
  rc=0
  cargo "${args[@]}" || rc=$?
  # 0: all caught; 2: some missed; 3: some timed out. Anything else is a tool failure.
  if ((rc != 0 && rc != 2 && rc != 3)); then
    echo "mutation.sh: cargo mutants failed (exit $rc); see $out/mutants.out/debug.log" >&2
    exit 3
  fi
fi
outcomes=$out/mutants.out/outcomes.json
if [[ ! -f $outcomes ]]; then
  echo "mutation.sh: no $outcomes: run without --skip-generate first" >&2
  exit 3
fi

# The survivors: index, protocol(s), diff path, name.
python3 - "$outcomes" "$out/survivors.tsv" "$out/counts.txt" <<'EOF'
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
EOF
echo "mutation.sh: outcomes of the node's own tests:"
sed 's/^/  /' "$out/counts.txt"
n=$(wc -l <"$out/survivors.tsv")
echo "mutation.sh: $n survivors to run the campaign against"

# 2. One tree to build the survivors in (removed at exit, also after Ctrl-C).
tree=$out/tree
remove_tree() {
  git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true
}
cleanup() {
  remove_tree
  if [[ -n ${with_disk:-} ]]; then rm -f "$with_disk"; fi
}
trap cleanup EXIT
remove_tree
git worktree add --detach "$tree" HEAD >/dev/null
mkdir -p "$out/bins" "$out/results"

run_campaign() { # label node-bin systems -> writes results/label.json, returns campaign's exit
  local label=$1 bin=$2 systems=$3 store=$out/store/$1 rc=0
  rm -rf "$store"
  "$stasis" campaign "$campaign" --store "$store" --node-bin "$bin" --fail-fast \
    --systems "$systems" --budget "$budget" >"$out/results/$label.log" 2>&1 || rc=$?
  cp "$(readlink -f "$store/campaigns/latest")/campaign.json" "$out/results/$label.json" 2>/dev/null || true
  return $rc
}

# 3. The unmutated node, per protocol: any violation is a false alarm.
false_alarm=0
for p in raft multipaxos; do
  rc=0
  run_campaign "baseline-$p" "$root/target/release/stasis-node" "$p" || rc=$?
  echo "mutation.sh: unmutated $p: campaign exit $rc"
  if ((rc == 1)); then false_alarm=1; fi
done

while IFS=$'\t' read -r i systems diff name; do
  (cd "$tree" && git checkout -q -- . && patch -s -p0 <"$out/mutants.out/$diff")
  if ! (cd "$tree" && CARGO_TARGET_DIR=$out/target cargo build --release --locked -p node -q); then
    echo "mutation.sh: survivor $i does not build in release: $name" >&2
    echo "unviable" >"$out/results/m$i.status"
    continue
  fi
  cp "$out/target/release/stasis-node" "$out/bins/m$i"
  rc=0
  run_campaign "m$i" "$out/bins/m$i" "$systems" || rc=$?
  echo "$rc" >"$out/results/m$i.status"
  echo "mutation.sh: survivor $i ($name): campaign exit $rc"
done <"$out/survivors.tsv"
(cd "$tree" && git checkout -q -- .)

# 4. The table.
python3 - "$out" scripts/mutation-equivalent.txt "$(git rev-parse --short HEAD)" "$budget" <<'EOF'
import json, os, sys, datetime
out, eq_file, commit, budget = sys.argv[1:5]
equivalent = {}
if os.path.exists(eq_file):
    for line in open(eq_file):
        line = line.rstrip("\n")
        if line and not line.startswith("#") and "\t" in line:
            name, why = line.split("\t", 1)
            equivalent[name] = why
def first_violation(label):
    """(run, seconds until it, runs made, first finding's run or None)."""
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
killed = counted = detected = 0
times = []
for line in open(os.path.join(out, "survivors.tsv")):
    i, systems, diff, name = line.rstrip("\n").split("\t", 3)
    status_file = os.path.join(out, "results", "m%s.status" % i)
    status = open(status_file).read().strip() if os.path.exists(status_file) else "not run"
    run, t, runs, finding = first_violation("m" + i)
    eq = equivalent.get(name)
    if eq:
        verdict = "equivalent: " + eq
    elif status == "1":
        verdict = "killed"
        killed += 1
        counted += 1
        times.append(t)
    elif finding is not None:
        # No violation, but the harness reported the system broken (e.g. a node that
        # cannot restart after a power loss): detected, counted apart from killed.
        verdict = "detected (finding, no violation)"
        detected += 1
        counted += 1
        run, t = finding
    elif status in ("0", "2"):
        verdict = "alive"
        counted += 1
    else:
        verdict = "error (%s)" % status
        counted += 1
    rows.append("| %s | %s | %s | %s | %s | %s |" % (
        i, name.replace("|", "\\|"), systems, verdict,
        "run %d" % run if run else "%d runs" % runs,
        "%.0f s" % t if t is not None else "-"))
times.sort()
median = times[len(times) // 2] if times else None
with open(os.path.join(out, "table.md"), "w") as f:
    f.write("Mutation score, commit %s, %s, budget %s per survivor\n\n" % (
        commit, datetime.date.today().isoformat(), budget))
    f.write("counts of the node's own tests: %s\n\n" % ", ".join(
        l.strip() for l in open(os.path.join(out, "counts.txt"))))
    f.write("killed by the campaign: %d of %d non-equivalent survivors (%.0f%%), median time to first violation %s; detected by a finding only: %d\n\n" % (
        killed, counted, 100.0 * killed / counted if counted else 0.0,
        "%.0f s" % median if median is not None else "-", detected))
    f.write("| # | mutant | systems | verdict | runs | time to violation |\n|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
print(open(os.path.join(out, "table.md")).read())
EOF
if ((false_alarm)); then
  echo "mutation.sh: FAILED: the unmutated node had a violation (see $out/results/baseline-*.log)" >&2
  exit 1
fi
echo "mutation.sh: done; table in $out/table.md"
