//! Shared helpers for the integration tests against the servers that `scripts/ldap/*.sh`
//! start. Each script writes an env file; the tests find it through
//! `PARTNERSYNC_SLAPD_ENV` / `PARTNERSYNC_SAMBA_ENV`. Without it a test prints that it is
//! skipped — unless `PARTNERSYNC_REQUIRE_SERVERS=1` (scripts/test.sh), where a missing or
//! unreachable server fails the test with the server's log.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use partnersync_core::Anchor;
use partnersync_ldap::{LdapConfig, LdapSource, LdapSourceError};
use partnersync_source::{
    Cookie, DeltaRead, DeltaSummary, EntryCollector, ReadSummary, SourceDirectory, SourceError,
};

/// A running test server, as its env file describes it.
pub struct Server {
    pub vars: HashMap<String, String>,
    pub prefix: &'static str,
}

impl Server {
    pub fn get(&self, key: &str) -> String {
        let k = format!("{}_{key}", self.prefix);
        self.vars
            .get(&k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing from the env file"))
    }

    pub fn log_tail(&self) -> String {
        let path = self.get("LOG");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A config reading `base` as the sync account, over the plain URL without TLS.
    pub fn config(&self, base: &str) -> LdapConfig {
        let mut c = LdapConfig::new(self.get("URL"));
        c.base_dns = vec![base.to_string()];
        c.bind_dn = Some(self.get("BIND_DN"));
        c.password_env = Some(self.password_var("BIND_PW"));
        c.starttls = false;
        c.allow_plaintext_bind = true;
        c.connect_timeout_secs = 5;
        c.operation_timeout_secs = 60;
        c
    }

    /// Puts a password from the env file into a process environment variable and returns its
    /// name (the config takes passwords from the environment only).
    pub fn password_var(&self, key: &str) -> String {
        let var = format!("PARTNERSYNC_TEST_{}_{key}", self.prefix);
        std::env::set_var(&var, self.get(key));
        var
    }

    /// An admin connection for seeding and changing the directory.
    pub async fn admin(&self) -> Admin {
        let (conn, mut ldap) = LdapConnAsync::new(&self.get("URL"))
            .await
            .expect("admin connect");
        ldap3::drive!(conn);
        ldap.simple_bind(&self.get("ADMIN_DN"), &self.get("ADMIN_PW"))
            .await
            .expect("admin bind")
            .success()
            .expect("admin bind result");
        Admin { ldap }
    }
}

fn load(env_var: &str, prefix: &'static str, test: &str) -> Option<Server> {
    let required = std::env::var("PARTNERSYNC_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
    let Some(path) = std::env::var_os(env_var).map(PathBuf::from) else {
        if required {
            panic!("{test}: {env_var} is not set but PARTNERSYNC_REQUIRE_SERVERS=1; start the server with scripts/ldap/");
        }
        eprintln!("SKIPPED {test}: {env_var} is not set (start the server with scripts/ldap/ and point {env_var} at its env file)");
        return None;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            if required {
                panic!("{test}: cannot read {}: {e}", path.display());
            }
            eprintln!("SKIPPED {test}: cannot read {}: {e}", path.display());
            return None;
        }
    };
    let vars: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect();
    let server = Server { vars, prefix };
    let url = server.get("URL");
    let hostport = url.split("://").nth(1).unwrap_or("").trim_end_matches('/');
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:389")
    };
    let reachable = hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok());
    if !reachable {
        if required {
            panic!(
                "{test}: the server at {url} does not answer; its log ends with:\n{}",
                server.log_tail()
            );
        }
        eprintln!("SKIPPED {test}: the server at {url} does not answer");
        return None;
    }
    Some(server)
}

pub fn slapd(test: &str) -> Option<Server> {
    load("PARTNERSYNC_SLAPD_ENV", "LDAP", test)
}

pub fn samba(test: &str) -> Option<Server> {
    load("PARTNERSYNC_SAMBA_ENV", "AD", test)
}

/// A name unique to this run, for a test's own OU.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t-{name}-{}-{nanos}", std::process::id())
}

pub struct Admin {
    pub ldap: ldap3::Ldap,
}

impl Admin {
    pub async fn add(&mut self, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
        let attrs: Vec<(&str, HashSet<&str>)> = attrs
            .into_iter()
            .map(|(n, v)| (n, v.into_iter().collect()))
            .collect();
        self.ldap
            .add(dn, attrs)
            .await
            .expect("add")
            .success()
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    }

    /// Adds `ou=<name>` under `parent` and returns its DN.
    pub async fn add_ou(&mut self, parent: &str, name: &str) -> String {
        let ou = format!("ou={name},{parent}");
        self.add(
            &ou,
            vec![
                ("objectClass", vec!["organizationalUnit"]),
                ("ou", vec![name]),
            ],
        )
        .await;
        ou
    }

    pub async fn add_bytes(&mut self, dn: &str, attrs: Vec<(Vec<u8>, Vec<Vec<u8>>)>) {
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .map(|(n, v)| (n, v.into_iter().collect()))
            .collect();
        self.ldap
            .add(dn, attrs)
            .await
            .expect("add")
            .success()
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    }

    pub async fn replace(&mut self, dn: &str, attr: &str, value: &str) {
        self.ldap
            .modify(dn, vec![Mod::Replace(attr, [value].into_iter().collect())])
            .await
            .expect("modify")
            .success()
            .unwrap_or_else(|e| panic!("modify {dn}: {e}"));
    }

    pub async fn rename(&mut self, dn: &str, rdn: &str, new_superior: Option<&str>) {
        self.ldap
            .modifydn(dn, rdn, true, new_superior)
            .await
            .expect("modifydn")
            .success()
            .unwrap_or_else(|e| panic!("rename {dn}: {e}"));
    }

    pub async fn delete(&mut self, dn: &str) {
        self.ldap
            .delete(dn)
            .await
            .expect("delete")
            .success()
            .unwrap_or_else(|e| panic!("delete {dn}: {e}"));
    }

    /// One attribute's first value, as raw bytes.
    pub async fn value(&mut self, dn: &str, attr: &str) -> Vec<u8> {
        let (entries, _) = self
            .ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
            .await
            .expect("search")
            .success()
            .expect("search result");
        let e = SearchEntry::construct(entries.into_iter().next().expect("entry"));
        e.bin_attrs
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(attr))
            .map(|(_, v)| v[0].clone())
            .or_else(|| {
                e.attrs
                    .into_iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(attr))
                    .map(|(_, v)| v[0].clone().into_bytes())
            })
            .unwrap_or_else(|| panic!("{dn} has no {attr}"))
    }
}

pub async fn full(source: &LdapSource) -> (EntryCollector, ReadSummary) {
    let mut c = EntryCollector::new();
    let s = source
        .full_read(&mut c)
        .await
        .unwrap_or_else(|e| panic!("full read: {e}"));
    (c, s)
}

pub async fn delta(source: &LdapSource, cookie: &Cookie) -> (EntryCollector, DeltaSummary) {
    let mut c = EntryCollector::new();
    match source
        .delta_read(cookie, &mut c)
        .await
        .unwrap_or_else(|e| panic!("delta read: {e}"))
    {
        DeltaRead::Changes(s) => (c, s),
        DeltaRead::FullReadRequired { reason } => panic!("unexpected FullReadRequired: {reason}"),
    }
}

pub async fn full_read_required(source: &LdapSource, cookie: &Cookie) -> String {
    let mut c = EntryCollector::new();
    match source
        .delta_read(cookie, &mut c)
        .await
        .unwrap_or_else(|e| panic!("delta read: {e}"))
    {
        DeltaRead::FullReadRequired { reason } => {
            assert!(c.entries.is_empty() && c.deleted.is_empty());
            reason
        }
        DeltaRead::Changes(s) => panic!("expected FullReadRequired, got {s:?}"),
    }
}

/// The error of a read, as the LDAP error.
pub fn ldap_error(e: SourceError) -> LdapSourceError {
    match e {
        SourceError::Backend(b) => match b.downcast::<LdapSourceError>() {
            Ok(e) => *e,
            Err(other) => panic!("not an LDAP error: {other}"),
        },
        other => panic!("not a backend error: {other}"),
    }
}

pub fn dns(c: &EntryCollector) -> BTreeSet<String> {
    c.entries
        .iter()
        .map(|e| e.dn.to_ascii_lowercase())
        .collect()
}

pub fn anchors(c: &EntryCollector) -> BTreeSet<Anchor> {
    c.deleted.iter().cloned().collect()
}
