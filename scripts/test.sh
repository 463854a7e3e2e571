#!/usr/bin/env bash
# The whole check: test tools, formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-tools.sh

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
