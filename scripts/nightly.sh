#!/usr/bin/env bash
# The nightly job: install what is missing, build release, run the selftest (the seeded
# bugs must be caught), correct raft and multipaxos under the disk nemesis, then the nightly
# campaign (campaigns/nightly.toml, 45-minute budget), raft and multipaxos under the net
# nemesis with a 20ms±10ms baseline, the simulation stage (stasis sim over fresh seeds,
# 10 minutes per protocol, correct cores), a slice of the mutation score and the parser
# fuzzing (scripts/fuzz.sh: each target until $FUZZ_EXECS executions, default 10 million,
# or $FUZZ_SECONDS, default 3600, whichever comes first; the corpus grows night after night
# in <store>/fuzz), the controller chaos test (35 SIGKILLs of `stasis test` at
# random moments, net and disk nemeses included) and the durability test (120 kill -9
# cycles per protocol, no acknowledged write lost), and the runs on ssh hosts. Exits
# non-zero if any fails: the selftest's exit code if it fails, else the failing stage's
# (1 not linearizable, 2 unknown, 3 harness error). Needs root.
# Usage: sudo scripts/nightly.sh [--store DIR]   (default store: ./store)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

store=store
if [[ ${1:-} == --store ]]; then
  store=${2:?--store needs a directory}
  shift 2
fi
if (($#)); then
  echo "nightly.sh: unknown argument $1 (usage: scripts/nightly.sh [--store DIR])" >&2
  exit 3
fi

scripts/setup.sh
cargo build --release --locked -p harness -p node
stasis=target/release/stasis

echo "nightly.sh: selftest (one run per seeded bug)"
selftest_rc=0
"$stasis" selftest --time-limit-per-case 60s --runs 1 --store "$store" || selftest_rc=$?

echo "nightly.sh: disk faults (correct builds under --nemesis disk must stay linearizable)"
disk_rc=0
for sut in raft multipaxos; do
  "$stasis" test --sut "$sut" --nemesis disk --time-limit 60s --nemesis-interval 3s \
    --store "$store" --name "nightly-disk-$sut" || disk_rc=$?
done

echo "nightly.sh: campaign campaigns/nightly.toml"
campaign_rc=0
"$stasis" campaign campaigns/nightly.toml --store "$store" || campaign_rc=$?

# Network timing: both stasis-node protocols under the net nemesis over a baseline of
# 20ms±10ms on every link (the nodes as if in different datacenters).
net_rc=0
for sut in raft multipaxos; do
  echo "nightly.sh: $sut under --nemesis net --net-latency 20ms±10ms"
  rc=0
  "$stasis" test --sut "$sut" --nemesis net --net-latency '20ms±10ms' --time-limit 60s \
    --store "$store" --name "nightly-net-$sut" || rc=$?
  if ((rc != 0 && net_rc == 0)); then net_rc=$rc; fi
done

# The mutation score (issue 19): a rotating 1/16 slice of the node's mutants each night
# (about 80 mutants through the node's own tests); each survivor gets the sim stage
# (1 minute per protocol it touches, from seed 1) and, if the sim does not kill it, 5
# minutes of the nightly campaign (plus disk cells); the table goes to the store.
echo "nightly.sh: mutation score (scripts/mutation.sh, slice $(( 10#$(date +%j) % 16 + 1 ))/16)"
mutation_rc=0
scripts/mutation.sh --out "$store/mutation" --shard "$(( 10#$(date +%j) % 16 ))/16" --sim-budget 60s --sim-seed 1 --budget 5m || mutation_rc=$?

# Simulation: fresh seeds (from the clock, printed by stasis sim) for a wall-time budget
# per protocol; a failing seed leaves a run directory and its shrunk schedule. Every kind
# of `all` plus `persist` (kills at storage events, slow syncs that batch input),
# `stall` (batched, interleaved input), `torn` (power losses on a disk with no ordering
# guarantees), `tcp` (the runtime transport's connections: FIFO links, messages queued
# during a reconnect reach the receiver's next incarnation) and `reconfig` (membership
# changes, with 2 spare nodes), written values of 1 KiB (`--value-bytes`: batches span
# several disk sectors, as with real values). Exit 1 is a violation (of linearizability or
# of a definite membership answer), 4 a schedule without progress after its last fault
# healed or a node that could not restart.
sim_rc=0
sim_seed=$(date +%s)
for protocol in raft multipaxos; do
  echo "nightly.sh: sim $protocol (10 min over fresh seeds from $sim_seed)"
  rc=0
  "$stasis" sim --protocol "$protocol" --seed "$sim_seed" --seeds 1000000 --budget 10m \
    --faults all,persist,stall,torn,reconfig,tcp --value-bytes 1024 \
    --node-arg=--tick-ms --node-arg=10 --node-arg=--election-ticks --node-arg=60 \
    --node-arg=--heartbeat-ticks --node-arg=10 --store "$store" || rc=$?
  if ((rc != 0 && sim_rc == 0)); then sim_rc=$rc; fi
  # Swarm testing: every kind, each schedule a subset drawn from its seed (power outages of
  # several nodes, one node's slow links and group freezes included), so kinds that need
  # long stretches to themselves are not averaged away by the others.
  echo "nightly.sh: sim $protocol, swarm over every kind (10 min over fresh seeds from $sim_seed)"
  rc=0
  "$stasis" sim --protocol "$protocol" --seed "$sim_seed" --seeds 1000000 --budget 10m \
    --faults all,persist,stall,torn,freeze,tcp,outage,lag,apply,reconfig --swarm --value-bytes 1024 \
    --store "$store" || rc=$?
  if ((rc != 0 && sim_rc == 0)); then sim_rc=$rc; fi
done

# Fuzzing (issue 23): every parser, coverage-guided, the corpus kept in the store.
# Issue 23's goal is 10 million executions per target; the time cap keeps a slow night
# bounded. The slowest target, wal, runs 3-4 k/s on one core (10 M in 2,600-3,400 s): a
# 2,400 s cap stopped it at 9.0 M and 8.6 M, so the cap is an hour (the others reach 10 M
# in 260-1,850 s). results.jsonl in the fuzz directory has each target's count.
echo "nightly.sh: fuzz (scripts/fuzz.sh, ${FUZZ_EXECS:-10000000} executions or ${FUZZ_SECONDS:-3600}s per target)"
fuzz_rc=0
FUZZ_WORK="$store/fuzz" FUZZ_EXECS="${FUZZ_EXECS:-10000000}" scripts/fuzz.sh "${FUZZ_SECONDS:-3600}" || fuzz_rc=$?

# Controller chaos and acknowledged-write durability (issue 23), the full forms of the
# short tests CI runs (harness/tests/chaos.rs, harness/tests/durability.rs).
echo "nightly.sh: controller chaos (35 kills) and durability (120 kill cycles per protocol)"
chaos_rc=0
STASIS_CHAOS_KILLS=35 STASIS_CHAOS_ALL=1 cargo test --release --locked -p harness --test chaos \
  -- --test-threads 1 --nocapture || chaos_rc=$?
STASIS_DURABILITY_KILLS=120 cargo test --release --locked -p harness --test durability \
  -- --test-threads 1 --nocapture || chaos_rc=$?

# Remote hosts (issue 22): Multi-Paxos and etcd with kill, pause and partition, Multi-Paxos
# with clock faults and with disk faults, and both with every nemesis on five hosts, on
# namespaces each running its own sshd (the long forms of harness/tests/remote.rs).
echo "nightly.sh: remote hosts over ssh (multipaxos, etcd: kill/pause/partition, clock, every nemesis on five hosts)"
remote_rc=0
cargo test --release --locked -p harness --test remote -- --ignored multipaxos_and_etcd \
  --test-threads 1 --nocapture || remote_rc=$?

latest=$(readlink -f "$store/campaigns/latest" 2>/dev/null || true)
echo
echo "nightly.sh: selftest exit $selftest_rc, disk stage exit $disk_rc, campaign exit $campaign_rc, net exit $net_rc, sim exit $sim_rc, mutation exit $mutation_rc, fuzz exit $fuzz_rc, chaos/durability exit $chaos_rc, remote exit $remote_rc"
if [[ -n $latest ]]; then
  echo "nightly.sh: campaign results: $latest (summary.txt, junit.xml, campaign.json, runs/)"
fi
if ((selftest_rc != 0)); then
  echo "nightly.sh: FAILED: the selftest failed (exit $selftest_rc)" >&2
  exit "$selftest_rc"
fi
if ((disk_rc != 0)); then
  echo "nightly.sh: FAILED: a correct build failed under disk faults (exit $disk_rc)" >&2
  exit "$disk_rc"
fi
if ((mutation_rc != 0)); then
  echo "nightly.sh: FAILED: the mutation run failed (exit $mutation_rc; a violation on the unmutated node is a false alarm or a real bug)" >&2
  exit "$mutation_rc"
fi
if ((campaign_rc != 0)); then
  echo "nightly.sh: FAILED: the campaign did not pass (exit $campaign_rc; see summary.txt)" >&2
  exit "$campaign_rc"
fi
if ((net_rc != 0)); then
  echo "nightly.sh: FAILED: a run under the net nemesis did not pass (exit $net_rc)" >&2
  exit "$net_rc"
fi
if ((sim_rc != 0)); then
  echo "nightly.sh: FAILED: the simulation found a problem (exit $sim_rc; see the sim-* run directories)" >&2
  exit "$sim_rc"
fi
if ((fuzz_rc != 0)); then
  echo "nightly.sh: FAILED: fuzzing found a crash (inputs in $store/fuzz/artifacts; stasis-fuzz replay TARGET FILE)" >&2
  exit "$fuzz_rc"
fi
if ((chaos_rc != 0)); then
  echo "nightly.sh: FAILED: the controller chaos or durability test failed (exit $chaos_rc; its output above)" >&2
  exit "$chaos_rc"
fi
if ((remote_rc != 0)); then
  echo "nightly.sh: FAILED: a run on ssh hosts failed (exit $remote_rc; its output above)" >&2
  exit "$remote_rc"
fi
echo "nightly.sh: passed"
