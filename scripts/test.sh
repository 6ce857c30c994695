#!/usr/bin/env bash
# The whole test suite: install what is missing, then every test of the workspace.
# Needs root (namespaces, iptables); CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
# No module cycles in any crate (issue 15: shared types live in their own module).
python3 scripts/module-cycles.py checker harness node fuzz
cargo test --workspace --locked "$@"
