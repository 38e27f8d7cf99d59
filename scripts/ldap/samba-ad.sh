#!/usr/bin/env bash
# Throwaway Samba AD DC (LDAP service only) for partnersync's integration tests.
#
#   samba-ad.sh start   install (if needed, as root), provision contoso.com into $SAMBA_DIR,
#                       add Exchange extensionAttribute1..15 to the schema, create the
#                       least-privilege sync account, seed users and a large group, start
#   samba-ad.sh stop    stop the instance started by this script and delete its dir
#   samba-ad.sh env     print the path of the env file the tests read
#
# Samba's LDAP ports (389/636) cannot be changed, so the instance gets its own loopback
# address, $SAMBA_IP (default 127.0.0.22). Everything a test needs is written to
# $SAMBA_DIR/env (sourceable; point PARTNERSYNC_SAMBA_ENV at it):
#   AD_URL AD_LDAPS_URL AD_CA AD_UNTRUSTED_CA AD_BASE AD_BIND_DN AD_BIND_PW AD_ADMIN_DN
#   AD_ADMIN_PW AD_NODIRSYNC_DN AD_NODIRSYNC_PW AD_GROUP_DN AD_GROUP_MEMBERS AD_LOG
# The passwords are throwaway test values for a loopback-only server.
#
# The sync account `syncsvc` (in CN=Users, outside the synced OUs: binding updates it) has
# "Replicating Directory Changes" on the domain head and list/read on CN=Deleted Objects, so
# DirSync shows deletions; `nodirsync` is a plain user (missing-privilege tests).
# Seed: $SAMBA_USERS users (default 1600) in OU=Partners, all members of
# CN=All Partners,OU=Groups (above AD's 1,500-value range limit).
#
# Env: SAMBA_DIR (/tmp/partnersync-samba), SAMBA_IP, SAMBA_USERS.
# Based on ../shared/reference/ldap-servers.md §4. Keep the data small: Samba's adds slow
# down as the directory grows.
set -euo pipefail
DIR=${SAMBA_DIR:-/tmp/partnersync-samba}
IP=${SAMBA_IP:-127.0.0.22}
USERS=${SAMBA_USERS:-1600}
REALM=CONTOSO.COM; DOMAIN=CONTOSO; BASE="DC=contoso,DC=com"
ADMIN_PW='Passw0rd!Adm1n'     # must satisfy AD complexity rules
SYNC_PW='Sync!Passw0rd1'
NODIRSYNC_PW='NoDs!Passw0rd1'
GROUP_DN="CN=All Partners,OU=Groups,$BASE"

log() { printf '[samba-ad.sh] %s\n' "$*" >&2; }

install_pkgs() {
  if command -v samba >/dev/null && command -v samba-tool >/dev/null && command -v ldbmodify >/dev/null \
     && command -v ldapsearch >/dev/null && command -v openssl >/dev/null && [ -d /usr/share/samba/setup ]; then return; fi
  if [ "$(id -u)" != 0 ]; then log "samba is missing and installing it needs root"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  local added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends samba samba-ad-dc samba-ad-provision \
    samba-dsdb-modules samba-vfs-modules winbind ldb-tools ldap-utils openssl >/dev/null
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

schema_ldif() { # Exchange extensionAttribute1..15 with their real attributeIDs
  local S="CN=Schema,CN=Configuration,$BASE" i oid
  for i in $(seq 1 15); do
    if [ "$i" -le 10 ]; then oid="1.2.840.113556.1.2.$((422 + i))"; else oid="1.2.840.113556.1.2.$((588 + i))"; fi
    printf 'dn: CN=ms-Exch-Extension-Attribute-%s,%s\nchangetype: add\nobjectClass: top\nobjectClass: attributeSchema\n' "$i" "$S"
    printf 'cn: ms-Exch-Extension-Attribute-%s\nattributeID: %s\nattributeSyntax: 2.5.5.12\noMSyntax: 64\n' "$i" "$oid"
    printf 'isSingleValued: TRUE\nlDAPDisplayName: extensionAttribute%s\nrangeLower: 1\nrangeUpper: 1024\nsearchFlags: 1\n\n' "$i"
  done
}
schema_class_ldif() {
  printf 'dn: CN=User,CN=Schema,CN=Configuration,%s\nchangetype: modify\nadd: mayContain\n' "$BASE"
  for i in $(seq 1 15); do printf 'mayContain: extensionAttribute%s\n' "$i"; done
  printf -- '-\n\n'
}

gen_users() { # $1 = count
  awk -v n="$1" -v base="$BASE" 'BEGIN {
    for (i = 1; i <= n; i++) {
      u = sprintf("puser%05d", i)
      printf "dn: CN=%s,OU=Partners,%s\nobjectClass: user\n", u, base
      printf "sAMAccountName: %s\nuserPrincipalName: %s@partners.contoso.com\n", u, u
      printf "givenName: Partner\nsn: User%05d\ndisplayName: Partner User %05d\n", i, i
      printf "mail: %s@partner.example\nuserAccountControl: 544\n", u
      printf "extensionAttribute1: %s\n\n", (i % 2 == 0) ? "Partner" : "Member"
    } }'
}

gen_group() { # $1 = member count
  printf 'dn: %s\nobjectClass: group\nsAMAccountName: allpartners\n' "$GROUP_DN"
  awk -v n="$1" -v base="$BASE" 'BEGIN { for (i = 1; i <= n; i++) printf "member: CN=puser%05d,OU=Partners,%s\n", i, base }'
  printf '\n'
}

make_certs() {
  local t="$DIR/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=partnersync test CA (samba)" \
    -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.contoso.com" -keyout "$t/key.pem" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:dc1.contoso.com,DNS:localhost,IP:%s\nextendedKeyUsage=serverAuth\n' "$IP" > "$t/ext.cnf"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 3650 -extfile "$t/ext.cnf" -out "$t/cert.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=some other CA" \
    -keyout "$t/other-ca.key" -out "$t/other-ca.pem" 2>/dev/null
  chmod 600 "$t"/*.key "$t/key.pem"   # samba refuses a key readable by others
}

ldap_up() { ldapsearch -x -H "ldap://$IP" -b "" -s base -LLL dnsHostName >/dev/null 2>&1; }
running() { [ -f "$DIR/run/samba.pid" ] && grep -qx samba "/proc/$(cat "$DIR/run/samba.pid")/comm" 2>/dev/null; }

start() {
  install_pkgs
  if running; then log "already running (pid $(cat "$DIR/run/samba.pid")), env $DIR/env"; return; fi
  if ldap_up; then log "something already answers LDAP on $IP:389; set SAMBA_IP to another 127.0.0.X"; exit 1; fi
  rm -rf "$DIR"; mkdir -p "$(dirname "$DIR")"
  samba-tool domain provision --targetdir="$DIR" --realm="$REALM" --domain="$DOMAIN" \
    --server-role=dc --dns-backend=NONE --host-name=dc1 --host-ip="$IP" \
    --adminpass="$ADMIN_PW" >"$DIR.provision.log" 2>&1 || { tail -20 "$DIR.provision.log" >&2; exit 1; }
  mkdir -p "$DIR/run" "$DIR/cache" "$DIR/tls"
  make_certs
  cat > "$DIR/etc/smb.conf" <<CONF
[global]
	netbios name = DC1
	realm = $REALM
	workgroup = $DOMAIN
	server role = active directory domain controller
	server services = ldap
	interfaces = $IP/8
	bind interfaces only = yes
	private dir = $DIR/private
	state directory = $DIR/state
	cache directory = $DIR/cache
	lock directory = $DIR
	binddns dir = $DIR/bind-dns
	pid directory = $DIR/run
	ncalrpc dir = $DIR/run/ncalrpc
	winbindd socket directory = $DIR/run/winbindd
	ntp signd socket directory = $DIR/run/ntp_signd
	log file = $DIR/log.samba
	logging = file
	log level = 1
	ldb:nosync = true
	tls keyfile = $DIR/tls/key.pem
	tls certfile = $DIR/tls/cert.pem
	tls cafile = $DIR/tls/ca.pem
	# simple binds over plain ldap:// (AD's default 'yes' demands TLS)
	ldap server require strong auth = no
[sysvol]
	path = $DIR/state/sysvol
	read only = No
[netlogon]
	path = $DIR/state/sysvol/contoso.com/scripts
	read only = No
CONF
  local conf="$DIR/etc/smb.conf" sam="$DIR/private/sam.ldb"
  # offline: schema extension, on the empty DB so the re-index is cheap
  schema_ldif > "$DIR/schema1.ldif"; schema_class_ldif > "$DIR/schema2.ldif"
  ldbmodify -H "$sam" --option="dsdb:schema update allowed=true" "$DIR/schema1.ldif" >/dev/null
  ldbmodify -H "$sam" --option="dsdb:schema update allowed=true" "$DIR/schema2.ldif" >/dev/null
  # offline: OUs, sync account with 'Replicating Directory Changes' + list/read on Deleted Objects
  samba-tool ou create "OU=Partners,$BASE" -H "$sam" -s "$conf" >/dev/null
  samba-tool ou create "OU=Groups,$BASE" -H "$sam" -s "$conf" >/dev/null
  samba-tool user create syncsvc "$SYNC_PW" -H "$sam" -s "$conf" >/dev/null
  samba-tool user create nodirsync "$NODIRSYNC_PW" -H "$sam" -s "$conf" >/dev/null
  local sid
  sid=$(ldbsearch -H "$sam" "(sAMAccountName=syncsvc)" objectSid | sed -n 's/^objectSid: //p')
  samba-tool dsacl set -H "$sam" -s "$conf" --objectdn="$BASE" \
    --sddl="(OA;;CR;1131f6aa-9c07-11d1-f79f-00c04fc2dcd2;;$sid)" >/dev/null
  printf 'dn: CN=Deleted Objects,%s\nchangetype: modify\nreplace: nTSecurityDescriptor\nnTSecurityDescriptor: D:PAI(A;;RPWPCCDCLCRCWOWDSDSW;;;SY)(A;;RPLC;;;BA)(A;;RPLC;;;%s)\n\n' \
    "$BASE" "$sid" > "$DIR/delobj.ldif"
  ldbmodify -H "$sam" --controls=show_deleted:1 --controls=sd_flags:1:4 "$DIR/delobj.ldif" >/dev/null
  # -M single: one process, less memory; --maximum-runtime: never outlive a CI run
  samba -s "$conf" -M single --maximum-runtime=7200 -D
  for _ in $(seq 1 150); do ldap_up && break; sleep 0.2; done
  ldap_up || { log "samba did not come up:"; tail -30 "$DIR/log.samba" >&2; exit 1; }
  if [ "$USERS" -gt 0 ]; then
    { gen_users "$USERS"; gen_group "$USERS"; } > "$DIR/seed.ldif"
    ldapadd -x -H "ldap://$IP" -D "Administrator@contoso.com" -w "$ADMIN_PW" -f "$DIR/seed.ldif" >/dev/null
  fi
  cat > "$DIR/env" <<ENV
AD_URL=ldap://$IP
AD_LDAPS_URL=ldaps://$IP
AD_CA=$DIR/tls/ca.pem
AD_UNTRUSTED_CA=$DIR/tls/other-ca.pem
AD_BASE=$BASE
AD_BIND_DN=syncsvc@contoso.com
AD_BIND_PW=$SYNC_PW
AD_ADMIN_DN=Administrator@contoso.com
AD_ADMIN_PW=$ADMIN_PW
AD_NODIRSYNC_DN=nodirsync@contoso.com
AD_NODIRSYNC_PW=$NODIRSYNC_PW
AD_GROUP_DN='$GROUP_DN'
AD_GROUP_MEMBERS=$USERS
AD_USERS=$USERS
AD_LOG=$DIR/log.samba
ENV
  log "up: ldap://$IP ldaps://$IP pid $(cat "$DIR/run/samba.pid"), $USERS users, env $DIR/env"
}

stop() {
  if running; then
    local pid; pid=$(cat "$DIR/run/samba.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$DIR" "$DIR.provision.log"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "$DIR/env" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
