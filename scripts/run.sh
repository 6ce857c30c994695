#!/usr/bin/env bash
# The main job on the built-in default: install what is missing, build, and run
# `stasis test` — a 3-node Raft cluster for 60 s under a mix of all faults. Extra
# arguments go to `stasis test` (e.g. --nemesis partition --time-limit 30s). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
cargo build --release --locked -p harness -p node
exec target/release/stasis test "$@"
