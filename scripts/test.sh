#!/usr/bin/env bash
# The whole check: test tools, formatting, lints, every test, then the deployment assets.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-tools.sh

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked

# The same command as the image build in deploy/container/Containerfile; the deployment
# tests run the gate containers' arguments through this binary.
cargo build --release --locked
WASMGATE_BIN=target/release/wasmgate scripts/test-deploy.sh
