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

step "build dependencies (Debian packages)"
# native-tls (the LDAP source) links OpenSSL; the machine image has these, but a script
# that needs them installs them.
missing=()
for pkg in libssl-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
echo "ok"

# Throwaway LDAP servers for the partnersync-ldap integration tests (scripts/ldap/): slapd
# and a Samba AD DC, installed if missing and started in the background while the code
# compiles, stopped on exit. Under this script a server test that cannot reach its server
# fails (PARTNERSYNC_REQUIRE_SERVERS=1).
LDAP_TEST_DIR=$(mktemp -d /tmp/partnersync-test-ldap.XXXXXX)
export SLAPD_DIR="$LDAP_TEST_DIR/slapd" SAMBA_DIR="$LDAP_TEST_DIR/samba"
stop_ldap_servers() {
  wait "$LDAP_START_PID" 2>/dev/null || true # never leave a half-started server behind
  scripts/ldap/slapd.sh stop >/dev/null 2>&1 || true
  scripts/ldap/samba-ad.sh stop >/dev/null 2>&1 || true
  rm -rf "$LDAP_TEST_DIR"
}
trap stop_ldap_servers EXIT
(scripts/ldap/slapd.sh start && scripts/ldap/samba-ad.sh start) >"$LDAP_TEST_DIR/start.log" 2>&1 &
LDAP_START_PID=$!

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

step "LDAP test servers (scripts/ldap/)"
if ! wait "$LDAP_START_PID"; then
  cat "$LDAP_TEST_DIR/start.log" >&2
  echo "starting the LDAP test servers failed" >&2
  exit 1
fi
cat "$LDAP_TEST_DIR/start.log"
export PARTNERSYNC_SLAPD_ENV="$SLAPD_DIR/env" PARTNERSYNC_SAMBA_ENV="$SAMBA_DIR/env"
export PARTNERSYNC_REQUIRE_SERVERS=1

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
