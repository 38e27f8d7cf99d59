#!/usr/bin/env bash
# The whole test suite, as the README documents it and .ci/run calls it.
#
# Installs what the tests need (idempotently), then runs: formatting check, clippy with
# warnings as errors, every test in the workspace, the documentation build (warnings are
# errors), and the examples build. Exits non-zero on the first failure.
#
# Env: CARGO_TARGET_DIR (default: target/ in the checkout), PARTNERSYNC_SKIP_LINT=1 to run
# the tests only (for quick local iterations; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
rustc --version
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

if [ "${PARTNERSYNC_SKIP_LINT:-0}" != 1 ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check

  step "cargo clippy (all targets, -D warnings)"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast

if [ "${PARTNERSYNC_SKIP_LINT:-0}" != 1 ]; then
  step "cargo doc (warnings are errors)"
  RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

  step "examples and benches compile"
  cargo build --workspace --examples --locked
  cargo check --benches --locked -p partnersync
fi

step "done"
