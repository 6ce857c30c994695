#!/usr/bin/env bash
# The main job on the built-in default: install what is missing, build, and run.
# Until the harness can run a cluster, the default job is the environment check.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
cargo build --release --locked -p harness -p node
exec target/release/stasis doctor "$@"
