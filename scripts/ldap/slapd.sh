#!/usr/bin/env bash
# Throwaway OpenLDAP slapd for partnersync's integration tests and benchmark.
#
#   slapd.sh start     install (if needed, as root), configure, bulk-load users, start
#   slapd.sh stop      stop the instance started by this script and delete its dir
#   slapd.sh restart   restart the running instance (same dir, port and data); drops
#                      syncprov's in-memory session log, so the next syncrepl is a present phase
#   slapd.sh env       print the path of the env file the tests read
#
# The instance lives in $SLAPD_DIR (default /tmp/partnersync-slapd) and listens on a free
# loopback port (plain + StartTLS) and the next free one (LDAPS). Everything a test needs is
# written to $SLAPD_DIR/env (sourceable; point PARTNERSYNC_SLAPD_ENV at it):
#   LDAP_URL LDAP_LDAPS_URL LDAP_CA LDAP_BASE LDAP_BIND_DN LDAP_BIND_PW LDAP_ADMIN_DN LDAP_ADMIN_PW
#   LDAP_LIMITED_DN LDAP_LIMITED_PW LDAP_NOSYNC_BASE LDAP_LOG LDAP_UNTRUSTED_CA
# The passwords are throwaway test values for a loopback-only server.
#
# Schema: core, cosine, inetorgperson, plus userPrincipalName and extensionAttribute1..15 with
# their real AD/Exchange OIDs on an auxiliary class `contosoPartnerAux`. syncprov is on
# dc=contoso,dc=com; a second database dc=nosync,dc=example has no syncprov (error tests).
# TLS: a generated CA signs the server certificate (SAN localhost, 127.0.0.1).
#
# Env: SLAPD_DIR, SLAPD_USERS (number of uid=userNNNNNN,ou=People users; default 1000).
# Based on ../shared/reference/ldap-servers.md §4.
set -euo pipefail
DIR=${SLAPD_DIR:-/tmp/partnersync-slapd}
USERS=${SLAPD_USERS:-1000}
BASE="dc=contoso,dc=com"
NOSYNC_BASE="dc=nosync,dc=example"
ADMIN_PW='Secret123!'
READER_PW='Reader123!'
LIMITED_PW='Limited123!'
LDAPI="ldapi://$(printf %s "$DIR/ldapi" | sed 's#/#%2F#g')"

log() { printf '[slapd.sh] %s\n' "$*" >&2; }

install_pkgs() {
  if command -v slapd >/dev/null && command -v ldapsearch >/dev/null && command -v slapadd >/dev/null \
     && command -v openssl >/dev/null; then return; fi
  if [ "$(id -u)" != 0 ]; then log "slapd/ldap-utils are missing and installing them needs root"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  # no default DB/config in /etc/ldap and no attempt to start the system slapd
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  local added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slapd ldap-utils openssl >/dev/null
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

write_schema() {
  # AD/Exchange attribute names *and* OIDs; the class OID is a private UUID-based arc (2.25.x).
  local i oid may="userPrincipalName"
  printf "attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'\n  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )\n"
  for i in $(seq 1 15); do
    if [ "$i" -le 10 ]; then oid="1.2.840.113556.1.2.$((422 + i))"; else oid="1.2.840.113556.1.2.$((588 + i))"; fi
    printf "attributetype ( %s NAME 'extensionAttribute%s'\n  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )\n" "$oid" "$i"
    may="$may \$ extensionAttribute$i"
  done
  printf "objectclass ( 2.25.60040446901969048705739502873957962545.1.1 NAME 'contosoPartnerAux'\n  SUP top AUXILIARY MAY ( %s ) )\n" "$may"
}

gen_users() { # $1 = count
  awk -v n="$1" -v base="$BASE" 'BEGIN {
    for (i = 1; i <= n; i++) {
      u = sprintf("user%06d", i)
      printf "dn: uid=%s,ou=People,%s\n", u, base
      printf "objectClass: inetOrgPerson\nobjectClass: contosoPartnerAux\n"
      printf "uid: %s\ncn: Partner User %d\nsn: User%d\ngivenName: Partner\n", u, i, i
      printf "displayName: Partner User %d\nmail: %s@partner.example\n", i, u
      printf "userPrincipalName: %s@contoso.com\nemployeeType: partner\n", u
      printf "extensionAttribute1: %s\n\n", (i % 2 == 0) ? "Partner" : "Member"
    } }'
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() { # a free loopback port whose successor is free too
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if port_free "$p" && port_free "$((p + 1))"; then echo "$p"; return; fi
  done
  log "no free loopback port found"; exit 1
}

make_certs() { # CA + server cert signed by it, and an unrelated CA for "untrusted" tests
  local t="$DIR/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=partnersync test CA (slapd)" \
    -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$t/key.pem" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$(hostname)" > "$t/ext.cnf"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 3650 -extfile "$t/ext.cnf" -out "$t/cert.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=some other CA" \
    -keyout "$t/other-ca.key" -out "$t/other-ca.pem" 2>/dev/null
  chmod 600 "$t"/*.key "$t/key.pem"
}

write_conf() {
  cat > "$DIR/slapd.conf" <<CONF
include  /etc/ldap/schema/core.schema
include  /etc/ldap/schema/cosine.schema
include  /etc/ldap/schema/inetorgperson.schema
include  $DIR/contoso.schema
pidfile  $DIR/slapd.pid
argsfile $DIR/slapd.args
logfile  $DIR/slapd.log
loglevel stats
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
TLSCACertificateFile  $DIR/tls/ca.pem
TLSCertificateFile    $DIR/tls/cert.pem
TLSCertificateKeyFile $DIR/tls/key.pem

database config
rootdn "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"

database mdb
suffix   "$BASE"
rootdn   "cn=admin,$BASE"
rootpw   $ADMIN_PW
directory $DIR/db
maxsize  2147483648
dbnosync
index objectClass eq
index entryCSN,entryUUID eq
index uid,cn,mail,userPrincipalName,extensionAttribute1,extensionAttribute2 eq
limits dn.exact="cn=syncreader,$BASE" size=unlimited time=unlimited
access to attrs=userPassword
  by self write by anonymous auth by * none
access to *
  by dn.exact="cn=syncreader,$BASE" read
  by dn.exact="cn=limited,$BASE" read
  by self read
  by * none
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 10000

database mdb
suffix   "$NOSYNC_BASE"
rootdn   "cn=admin,$NOSYNC_BASE"
rootpw   $ADMIN_PW
directory $DIR/db2
index objectClass eq
limits dn.exact="cn=syncreader,$BASE" size=unlimited time=unlimited
access to * by dn.exact="cn=syncreader,$BASE" read by * none
CONF
}

seed() {
  {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: contoso\no: Contoso\n\n' "$BASE"
    printf 'dn: cn=syncreader,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: syncreader\nuserPassword: %s\n\n' "$BASE" "$READER_PW"
    printf 'dn: cn=limited,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: limited\nuserPassword: %s\n\n' "$BASE" "$LIMITED_PW"
    printf 'dn: ou=People,%s\nobjectClass: organizationalUnit\nou: People\n\n' "$BASE"
    gen_users "$USERS"
  } > "$DIR/seed.ldif"
  slapadd -q -w -f "$DIR/slapd.conf" -b "$BASE" -l "$DIR/seed.ldif"
  {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: nosync\no: No syncprov\n\n' "$NOSYNC_BASE"
    printf 'dn: cn=someone,%s\nobjectClass: person\ncn: someone\nsn: One\n\n' "$NOSYNC_BASE"
  } > "$DIR/seed2.ldif"
  slapadd -q -f "$DIR/slapd.conf" -b "$NOSYNC_BASE" -l "$DIR/seed2.ldif"
}

launch() { # $1 = port
  local port=$1 tls_port=$(($1 + 1))
  slapd -f "$DIR/slapd.conf" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/ $LDAPI" || return 1
  for _ in $(seq 1 100); do
    ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base -LLL dn >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

write_env() { # $1 = port
  cat > "$DIR/env" <<ENV
LDAP_URL=ldap://127.0.0.1:$1
LDAP_LDAPS_URL=ldaps://127.0.0.1:$(($1 + 1))
LDAP_CA=$DIR/tls/ca.pem
LDAP_UNTRUSTED_CA=$DIR/tls/other-ca.pem
LDAP_BASE=$BASE
LDAP_BIND_DN=cn=syncreader,$BASE
LDAP_BIND_PW=$READER_PW
LDAP_ADMIN_DN=cn=admin,$BASE
LDAP_ADMIN_PW=$ADMIN_PW
LDAP_LIMITED_DN=cn=limited,$BASE
LDAP_LIMITED_PW=$LIMITED_PW
LDAP_NOSYNC_BASE=$NOSYNC_BASE
LDAP_USERS=$USERS
LDAP_LOG=$DIR/slapd.log
LDAP_PORT=$1
ENV
}

running() { [ -f "$DIR/slapd.pid" ] && grep -qx slapd "/proc/$(cat "$DIR/slapd.pid")/comm" 2>/dev/null; }

start() {
  install_pkgs
  if running; then log "already running (pid $(cat "$DIR/slapd.pid")), env $DIR/env"; return; fi
  rm -rf "$DIR"; mkdir -p "$DIR/db" "$DIR/db2" "$DIR/tls"
  write_schema > "$DIR/contoso.schema"
  make_certs
  write_conf
  seed
  local port _
  for _ in 1 2 3 4 5; do
    port=$(pick_port)
    if launch "$port"; then
      write_env "$port"
      log "up: ldap://127.0.0.1:$port ldaps://127.0.0.1:$((port + 1)) pid $(cat "$DIR/slapd.pid"), $USERS users, env $DIR/env"
      return
    fi
    log "could not start on port $port, trying another"
    running && kill "$(cat "$DIR/slapd.pid")" 2>/dev/null || true
  done
  log "slapd failed to start; diagnostics:"
  timeout 5 slapd -f "$DIR/slapd.conf" -h "ldap://127.0.0.1:$(pick_port)/" -d 1 2>&1 | tail -20 >&2 || true
  exit 1
}

kill_instance() {
  if running; then
    local pid; pid=$(cat "$DIR/slapd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
}

stop() {
  kill_instance
  rm -rf "$DIR"
}

restart() {
  [ -f "$DIR/env" ] || { log "not started"; exit 1; }
  local port; port=$(sed -n 's/^LDAP_PORT=//p' "$DIR/env")
  kill_instance
  launch "$port" || { log "restart failed"; tail -20 "$DIR/slapd.log" >&2; exit 1; }
  log "restarted on port $port"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  env) echo "$DIR/env" ;;
  *) echo "usage: $0 start|stop|restart|env" >&2; exit 2 ;;
esac
