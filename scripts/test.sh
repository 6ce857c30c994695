#!/usr/bin/env bash
# The whole test suite: install what is missing, then every test of the workspace.
# Needs root (namespaces, iptables); CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
cargo test --workspace --locked "$@"
