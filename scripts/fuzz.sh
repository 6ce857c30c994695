#!/usr/bin/env bash
# Fuzzes every parser (fuzz/, see its src/engine.rs for why this engine): builds
# stasis-fuzz with LLVM coverage counters on Stasis' own crates (profile `fuzz`: optimized,
# overflow checks on), then runs each target in its own process for SECONDS (default 60),
# growing a working corpus. Crashing inputs (and inputs that make a parser allocate
# absurdly) go to the artifacts directory; any makes the script exit 1.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: every target)
#   FUZZ_WORK=DIR   working directory (default target/fuzz-work): corpus/, artifacts/,
#                   results.jsonl (one JSON row per target and run)
#   FUZZ_SEED=N     mutator seed (default: the clock)
#   FUZZ_EXECS=N    also stop a target after N executions (whichever comes first: the
#                   nightly asks for 10 million with a time cap)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "fuzz.sh: SECONDS must be a whole number, got '$seconds' (usage: scripts/fuzz.sh [SECONDS] [TARGET...])" >&2
  exit 3
fi
shift || true
work=${FUZZ_WORK:-target/fuzz-work}
seed=${FUZZ_SEED:-$(date +%s)}
execs=()
if [[ -n ${FUZZ_EXECS:-} ]]; then
  if ! [[ $FUZZ_EXECS =~ ^[0-9]+$ ]]; then
    echo "fuzz.sh: FUZZ_EXECS must be a whole number, got '$FUZZ_EXECS'" >&2
    exit 3
  fi
  execs=(--execs "$FUZZ_EXECS")
fi
mkdir -p "$work/corpus" "$work/artifacts"

echo "fuzz.sh: building stasis-fuzz with coverage (target/fuzz-cov, profile fuzz)"
RUSTC_WRAPPER="$PWD/fuzz/rustc-cov.sh" CARGO_TARGET_DIR=target/fuzz-cov \
  nice -n 10 cargo build --locked --profile fuzz -p stasis-fuzz
bin=target/fuzz-cov/fuzz/stasis-fuzz

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <("$bin" list | awk '{print $1}')
fi

echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each${FUZZ_EXECS:+ or $FUZZ_EXECS executions, whichever comes first}, seed $seed, work dir $work"
rc=0
for t in "${targets[@]}"; do
  # The coverage runtime writes a profile at exit unless told not to.
  out=$(LLVM_PROFILE_FILE=/dev/null nice -n 10 "$bin" run "$t" --seconds "$seconds" "${execs[@]}" --seed "$seed" \
    --corpus "$work/corpus" --artifacts "$work/artifacts" --json "$work/results.jsonl" 2>&1) || {
    status=$?
    rc=1
    echo "$out"
    echo "fuzz.sh: target $t FAILED (exit $status; inputs in $work/artifacts)" >&2
    continue
  }
  # First target: the header lines; then only each target's row.
  if [[ $t == "${targets[0]}" ]]; then echo "$out"; else echo "$out" | tail -n +3; fi
done
if ((rc)); then
  echo "fuzz.sh: FAILED: crashes found; reproduce with: $bin replay TARGET FILE" >&2
else
  echo "fuzz.sh: no crashes"
fi
exit $rc
