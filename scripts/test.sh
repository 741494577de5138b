#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, formatting, lints, then every test with
# snapshots checked (never written).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
INSTA_UPDATE=no cargo test --locked --all-targets
