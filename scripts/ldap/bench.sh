#!/usr/bin/env bash
# Benchmark (not a test): full read of BENCH_USERS (default 100,000) users from a throwaway
# slapd through partnersync-ldap, side by side with `ldapsearch -E pr=1000/noprompt` on the
# same data in the same run, with the reader's peak RSS; then a delta read after 100 changes.
#
#   scripts/ldap/bench.sh          (as root the first time: installs slapd via apt-get)
#
# Env: BENCH_USERS, BENCH_RUNS (3), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SLAPD_DIR=${BENCH_SLAPD_DIR:-/tmp/partnersync-bench-slapd}
export SLAPD_USERS=${BENCH_USERS:-100000}
RUNS=${BENCH_RUNS:-3}
trap 'scripts/ldap/slapd.sh stop' EXIT
scripts/ldap/slapd.sh start
# shellcheck disable=SC1091
. "$SLAPD_DIR/env"
BASE="ou=People,$LDAP_BASE"
PWFILE="$SLAPD_DIR/bench.pw"
(umask 077; printf %s "$LDAP_BIND_PW" > "$PWFILE")

cargo build --release -q -p partnersync-ldap --example bench_read
BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_read"

now() { date +%s.%N; }
for run in $(seq 1 "$RUNS"); do
  t0=$(now)
  n=$(ldapsearch -x -H "$LDAP_URL" -D "$LDAP_BIND_DN" -y "$PWFILE" -b "$BASE" \
        -E pr=1000/noprompt -LLL '(objectClass=inetOrgPerson)' '*' entryUUID | grep -c '^dn:')
  t1=$(now)
  awk -v n="$n" -v a="$t0" -v b="$t1" -v r="$run" \
    'BEGIN { printf "run %d ldapsearch -E pr=1000/noprompt: %d entries in %.2f s = %.0f entries/s\n", r, n, b - a, n / (b - a) }'
  printf 'run %d ' "$run"; "$BIN" full "$SLAPD_DIR/env" "$BASE"
done

"$BIN" full "$SLAPD_DIR/env" "$BASE" "$SLAPD_DIR/cookie" >/dev/null
# 100 changes spread over the directory: 98 modified, 2 deleted.
{
  for i in $(seq 1 98); do
    printf 'dn: uid=user%06d,%s\nchangetype: modify\nreplace: displayName\ndisplayName: changed %d\n\n' "$((i * 997 % SLAPD_USERS + 1))" "$BASE" "$i"
  done
  printf 'dn: uid=user%06d,%s\nchangetype: delete\n\n' "$((SLAPD_USERS - 1))" "$BASE"
  printf 'dn: uid=user%06d,%s\nchangetype: delete\n\n' "$((SLAPD_USERS - 2))" "$BASE"
} > "$SLAPD_DIR/changes.ldif"
(umask 077; printf %s "$LDAP_ADMIN_PW" > "$SLAPD_DIR/admin.pw")
ldapmodify -x -H "$LDAP_URL" -D "$LDAP_ADMIN_DN" -y "$SLAPD_DIR/admin.pw" -f "$SLAPD_DIR/changes.ldif" >/dev/null
"$BIN" delta "$SLAPD_DIR/env" "$BASE" "$SLAPD_DIR/cookie"
