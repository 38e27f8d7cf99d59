//! One connection: connect, TLS, bind, rootDSE, and searches whose every failure — including
//! a panic in ldap3's connection task — comes back as an [`LdapSourceError`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::asn1::{parse_tag, StructureTag, PL};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, ResultEntry, Scope, SearchStream};
use partnersync_source::ServerKind;

use crate::config::LdapConfig;
use crate::error::{result_code_name, LdapSourceError};

/// Paged results (RFC 2696).
pub(crate) const PAGED_OID: &str = "1.2.840.113556.1.4.319";
/// AD DirSync.
pub(crate) const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
/// AD Show Deleted.
pub(crate) const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// RFC 4533 Sync Request.
pub(crate) const SYNC_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
/// The AD capability "this is an Active Directory DC".
const AD_CAPABILITY_OID: &str = "1.2.840.113556.1.4.800";

/// What the rootDSE says about the server.
#[derive(Debug, Clone, Default)]
pub(crate) struct RootDse {
    pub naming_contexts: Vec<String>,
    pub default_naming_context: Option<String>,
    pub supported_controls: Vec<String>,
    pub capabilities: Vec<String>,
    pub vendor_name: Option<String>,
    pub structural_object_class: Option<String>,
    pub highest_committed_usn: Option<u64>,
    pub ds_service_name: Option<String>,
    pub dns_host_name: Option<String>,
}

impl RootDse {
    pub(crate) fn supports(&self, oid: &str) -> bool {
        self.supported_controls.iter().any(|c| c == oid)
    }

    pub(crate) fn kind(&self) -> ServerKind {
        let vendor = self.vendor_name.clone().unwrap_or_default();
        if self.capabilities.iter().any(|c| c == AD_CAPABILITY_OID) {
            ServerKind::ActiveDirectory
        } else if vendor.contains("389") || vendor.contains("Fedora") || vendor.contains("Red Hat")
        {
            ServerKind::Ds389
        } else if self
            .structural_object_class
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("OpenLDAProotDSE"))
            || vendor.contains("OpenLDAP")
        {
            ServerKind::OpenLdap
        } else if vendor.is_empty() {
            ServerKind::OtherLdap("unknown".into())
        } else {
            ServerKind::OtherLdap(vendor)
        }
    }
}

/// Error mapping that needs no borrow of the connection: the URL, the timeout, and what
/// became of ldap3's connection task.
#[derive(Clone)]
pub(crate) struct ConnInfo {
    pub url: String,
    pub timeout: Duration,
    task_end: Arc<Mutex<Option<String>>>,
}

impl ConnInfo {
    /// Turns an ldap3 error into one an administrator can act on.
    pub(crate) async fn map_err(&self, e: ldap3::LdapError, operation: &str) -> LdapSourceError {
        use ldap3::LdapError as E;
        match e {
            E::LdapResult { result } => self.result_error(result, operation, ""),
            E::Timeout { .. } => LdapSourceError::Timeout {
                url: self.url.clone(),
                operation: operation.to_string(),
                seconds: self.timeout.as_secs(),
            },
            other => {
                // The op failed because the connection task ended: say why it ended. The
                // watcher records that right after the task ends, so wait for it briefly.
                for _ in 0..20 {
                    if let Some(reason) = self.task_end.lock().ok().and_then(|g| g.clone()) {
                        return LdapSourceError::ConnectionLost {
                            url: self.url.clone(),
                            reason: format!("{reason} (during {operation})"),
                        };
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                LdapSourceError::ConnectionLost {
                    url: self.url.clone(),
                    reason: format!("{other} (during {operation})"),
                }
            }
        }
    }

    /// An error for a non-success result.
    pub(crate) fn result_error(
        &self,
        r: LdapResult,
        operation: &str,
        base: &str,
    ) -> LdapSourceError {
        match r.rc {
            3 => LdapSourceError::TimeLimitExceeded {
                base: base.to_string(),
            },
            32 if !base.is_empty() => LdapSourceError::NoSuchBase {
                base: base.to_string(),
            },
            rc => LdapSourceError::Operation {
                operation: operation.to_string(),
                rc,
                text: if r.text.trim().is_empty() {
                    result_code_name(rc).to_string()
                } else {
                    format!("{} ({})", r.text.trim(), result_code_name(rc))
                },
                matched: r.matched,
            },
        }
    }

    fn timeout_error(&self, operation: &str) -> LdapSourceError {
        LdapSourceError::Timeout {
            url: self.url.clone(),
            operation: operation.to_string(),
            seconds: self.timeout.as_secs(),
        }
    }
}

/// A bound connection.
pub(crate) struct Session {
    pub ldap: Ldap,
    pub info: ConnInfo,
    pub root: RootDse,
    pub bind_dn: String,
}

/// The attributes asked of the rootDSE.
const ROOT_DSE_ATTRS: &[&str] = &[
    "namingContexts",
    "defaultNamingContext",
    "supportedControl",
    "supportedCapabilities",
    "vendorName",
    "structuralObjectClass",
    "highestCommittedUSN",
    "dsServiceName",
    "dnsHostName",
];

impl Session {
    /// Connects, secures, binds and reads the rootDSE.
    pub(crate) async fn open(cfg: &LdapConfig) -> Result<Session, LdapSourceError> {
        let url = cfg.url.trim().to_string();
        let password = cfg.password()?;
        let bind_dn = cfg.bind_dn.clone().unwrap_or_default();
        if password.is_some() && !cfg.is_encrypted() && !cfg.allow_plaintext_bind {
            return Err(LdapSourceError::PlaintextBindRefused { url, bind_dn });
        }
        if cfg.insecure_skip_verify && cfg.is_encrypted() {
            eprintln!(
                "WARNING: insecure_skip_verify is set: the TLS certificate of {url} is NOT checked; \
                 anyone on the network path can impersonate the server and read the bind password. \
                 Use ca_file instead."
            );
        }
        let connector = tls_connector(cfg, cfg.insecure_skip_verify)?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.connect_timeout())
            .set_connector(connector)
            .set_starttls(cfg.starttls && !cfg.is_ldaps());
        let (conn, ldap) = match LdapConnAsync::with_settings(settings, &url).await {
            Ok(pair) => pair,
            Err(e) => return Err(connect_error(cfg, &url, e).await),
        };
        let task_end = Arc::new(Mutex::new(None));
        let watcher_slot = Arc::clone(&task_end);
        let drive = tokio::spawn(conn.drive());
        tokio::spawn(async move {
            let reason = match drive.await {
                Ok(Ok(())) => "the server closed the connection".to_string(),
                Ok(Err(e)) => format!("connection error: {e}"),
                Err(j) if j.is_panic() => format!(
                    "ldap3's connection task crashed on a reply it could not handle ({}); the \
                     server probably answered with a response or control ldap3 does not support",
                    panic_message(j.into_panic())
                ),
                Err(_) => "the connection task was cancelled".to_string(),
            };
            if let Ok(mut slot) = watcher_slot.lock() {
                *slot = Some(reason);
            }
        });
        let info = ConnInfo {
            url: url.clone(),
            timeout: cfg.operation_timeout(),
            task_end,
        };
        let mut session = Session {
            ldap,
            info,
            root: RootDse::default(),
            bind_dn: bind_dn.clone(),
        };
        if let Some(pw) = password {
            let res = tokio::time::timeout(
                cfg.operation_timeout(),
                session.ldap.simple_bind(&bind_dn, &pw.0),
            )
            .await
            .map_err(|_| session.info.timeout_error("bind"))?;
            let res = match res {
                Ok(r) => r,
                Err(e) => return Err(session.info.map_err(e, "bind").await),
            };
            match res.rc {
                0 => {}
                49 => return Err(LdapSourceError::BadCredentials { bind_dn }),
                8 | 13 => {
                    return Err(LdapSourceError::StrongAuthRequired {
                        url,
                        text: res.text,
                    })
                }
                _ => {
                    return Err(session
                        .info
                        .result_error(res, &format!("bind as {bind_dn}"), ""))
                }
            }
        }
        session.root = session.read_root_dse().await?;
        Ok(session)
    }

    async fn read_root_dse(&mut self) -> Result<RootDse, LdapSourceError> {
        let entries = self
            .search_all("", Scope::Base, "(objectClass=*)", ROOT_DSE_ATTRS, vec![])
            .await?;
        let Some(e) = entries.into_iter().next() else {
            return Err(LdapSourceError::Protocol {
                url: self.info.url.clone(),
                reason: "the server returned no rootDSE".into(),
            });
        };
        let all = |name: &str| -> Vec<String> {
            e.attrs
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v.iter().map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect()
        };
        let one = |name: &str| all(name).into_iter().next();
        Ok(RootDse {
            naming_contexts: all("namingContexts"),
            default_naming_context: one("defaultNamingContext"),
            supported_controls: all("supportedControl"),
            capabilities: all("supportedCapabilities"),
            vendor_name: one("vendorName"),
            structural_object_class: one("structuralObjectClass"),
            highest_committed_usn: one("highestCommittedUSN").and_then(|u| u.trim().parse().ok()),
            ds_service_name: one("dsServiceName"),
            dns_host_name: one("dnsHostName"),
        })
    }

    /// A small search, collected (rootDSE, base lookups). Non-success results are errors.
    pub(crate) async fn search_all(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        controls: Vec<RawControl>,
    ) -> Result<Vec<RawEntry>, LdapSourceError> {
        let info = self.info.clone();
        search_all(&mut self.ldap, &info, base, scope, filter, attrs, controls).await
    }

    /// Starts a streaming search; `page_size` adds the paged-results control.
    pub(crate) async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<String>,
        controls: Vec<RawControl>,
        page_size: Option<u32>,
    ) -> Result<Search<'_>, LdapSourceError> {
        let info = self.info.clone();
        start_search(
            &mut self.ldap,
            info,
            base,
            scope,
            filter,
            attrs,
            controls,
            page_size,
        )
        .await
    }
}

/// A small search on `ldap`, collected. Non-success results are errors.
pub(crate) async fn search_all(
    ldap: &mut Ldap,
    info: &ConnInfo,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    controls: Vec<RawControl>,
) -> Result<Vec<RawEntry>, LdapSourceError> {
    let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
    let mut search = start_search(
        ldap,
        info.clone(),
        base,
        scope,
        filter,
        attrs,
        controls,
        None,
    )
    .await?;
    let mut out = Vec::new();
    while let Some(e) = search.next().await? {
        out.push(e);
    }
    let (res, info) = search.finish().await?;
    if res.rc != 0 {
        return Err(info.result_error(res, &format!("search under '{base}'"), base));
    }
    Ok(out)
}

/// Starts a streaming search on `ldap`; `page_size` adds the paged-results control.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_search<'a>(
    ldap: &'a mut Ldap,
    info: ConnInfo,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
    controls: Vec<RawControl>,
    page_size: Option<u32>,
) -> Result<Search<'a>, LdapSourceError> {
    {
        let operation = format!("search under '{base}'");
        // EntriesOnly drops referrals (SearchEntry parsing would choke on them) but also
        // intermediate responses, which syncrepl needs: those searches skip referrals in
        // `next_item` instead.
        let wants_intermediates = controls.iter().any(|c| c.ctype == SYNC_OID);
        let mut adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = Vec::new();
        if !wants_intermediates {
            adapters.push(Box::new(EntriesOnly::new()));
        }
        if let Some(size) = page_size {
            adapters.push(Box::new(PagedResults::new(
                i32::try_from(size).unwrap_or(500),
            )));
        }
        if !controls.is_empty() {
            ldap.with_controls(controls);
        }
        let started = tokio::time::timeout(
            info.timeout,
            ldap.streaming_search_with(adapters, base, scope, filter, attrs),
        )
        .await
        .map_err(|_| info.timeout_error(&operation))?;
        let stream = match started {
            Ok(s) => s,
            Err(e) => return Err(info.map_err(e, &operation).await),
        };
        Ok(Search {
            stream,
            info,
            operation,
        })
    }
}

/// An entry as the server sent it: its DN, attribute descriptions and raw values.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
    pub controls: Vec<ldap3::controls::Control>,
}

/// A running search.
pub(crate) struct Search<'a> {
    stream: SearchStream<'a, String, Vec<String>>,
    info: ConnInfo,
    operation: String,
}

/// One item of a search: an entry, or an intermediate response (syncrepl's syncInfo).
pub(crate) enum Item {
    Entry(RawEntry),
    Intermediate(ResultEntry),
}

impl Search<'_> {
    /// The next entry (intermediate responses are skipped).
    pub(crate) async fn next(&mut self) -> Result<Option<RawEntry>, LdapSourceError> {
        loop {
            match self.next_item().await? {
                Some(Item::Entry(e)) => return Ok(Some(e)),
                Some(Item::Intermediate(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next entry or intermediate response.
    pub(crate) async fn next_item(&mut self) -> Result<Option<Item>, LdapSourceError> {
        let next = tokio::time::timeout(self.info.timeout, self.stream.next())
            .await
            .map_err(|_| self.info.timeout_error(&self.operation))?;
        match next {
            Ok(None) => Ok(None),
            Ok(Some(re)) if re.is_ref() => Box::pin(self.next_item()).await,
            Ok(Some(re)) if re.is_intermediate() => Ok(Some(Item::Intermediate(re))),
            Ok(Some(re)) => match parse_entry(re) {
                Some(e) => Ok(Some(Item::Entry(e))),
                None => Err(LdapSourceError::Protocol {
                    url: self.info.url.clone(),
                    reason: format!("a malformed search result entry during {}", self.operation),
                }),
            },
            Err(e) => Err(self.info.map_err(e, &self.operation).await),
        }
    }

    /// Ends the search and returns its result (non-success codes are returned, not errors,
    /// so callers can interpret them) and the connection info.
    pub(crate) async fn finish(mut self) -> Result<(LdapResult, ConnInfo), LdapSourceError> {
        let res = tokio::time::timeout(self.info.timeout, self.stream.finish())
            .await
            .map_err(|_| self.info.timeout_error(&self.operation))?;
        // ldap3 reports a broken stream as rc 80 with its own text; find the real cause.
        if res.rc == 80 && self.info.task_end.lock().ok().is_some_and(|g| g.is_some()) {
            let e = self
                .info
                .map_err(ldap3::LdapError::EndOfStream, &self.operation)
                .await;
            return Err(e);
        }
        Ok((res, self.info))
    }
}

/// Parses a SearchResultEntry without ldap3's panicking `SearchEntry::construct`.
fn parse_entry(re: ResultEntry) -> Option<RawEntry> {
    let controls = re.1;
    let tag = re.0;
    let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attrs = Vec::new();
    for partial in parts.next()?.expect_constructed()? {
        let mut pa = partial.expect_constructed()?.into_iter();
        let name = String::from_utf8(pa.next()?.expect_primitive()?).ok()?;
        let values = pa
            .next()?
            .expect_constructed()?
            .into_iter()
            .map(StructureTag::expect_primitive)
            .collect::<Option<Vec<_>>>()?;
        attrs.push((name, values));
    }
    Some(RawEntry {
        dn,
        attrs,
        controls,
    })
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The TLS settings: system roots plus `ca_file`; no checks at all when `insecure`.
fn tls_connector(
    cfg: &LdapConfig,
    insecure: bool,
) -> Result<native_tls::TlsConnector, LdapSourceError> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|e| LdapSourceError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut found = 0;
        for block in pem_blocks(&pem) {
            let cert =
                native_tls::Certificate::from_pem(&block).map_err(|e| LdapSourceError::Config {
                    field: "ca_file",
                    reason: format!("'{}' holds an unreadable certificate: {e}", path.display()),
                })?;
            builder.add_root_certificate(cert);
            found += 1;
        }
        if found == 0 {
            return Err(LdapSourceError::Config {
                field: "ca_file",
                reason: format!("'{}' holds no PEM certificate", path.display()),
            });
        }
    }
    if insecure {
        builder.danger_accept_invalid_certs(true);
        builder.danger_accept_invalid_hostnames(true);
    }
    builder.build().map_err(|e| LdapSourceError::Tls {
        url: cfg.url.clone(),
        reason: e.to_string(),
    })
}

/// The `-----BEGIN CERTIFICATE-----` blocks of a PEM bundle.
fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(len) = rest[start..].find("-----END CERTIFICATE-----") else {
            break;
        };
        let end = start + len + "-----END CERTIFICATE-----".len();
        out.push(rest.as_bytes()[start..end].to_vec());
        rest = &rest[end..];
    }
    out
}

/// Classifies a failed connect; for an untrusted certificate, connects once more without
/// checking (and without binding) to say which certificate the server presents.
async fn connect_error(cfg: &LdapConfig, url: &str, e: ldap3::LdapError) -> LdapSourceError {
    use ldap3::LdapError as E;
    match e {
        E::Timeout { .. } => LdapSourceError::Timeout {
            url: url.to_string(),
            operation: "connecting".into(),
            seconds: cfg.connect_timeout_secs,
        },
        E::NativeTLS { source } => {
            let reason = source.to_string();
            let lower = reason.to_ascii_lowercase();
            if lower.contains("verify failed")
                || lower.contains("certificate")
                || lower.contains("self-signed")
                || lower.contains("self signed")
            {
                LdapSourceError::UntrustedCertificate {
                    url: url.to_string(),
                    certificate: presented_certificate(cfg, url).await,
                    reason,
                }
            } else {
                LdapSourceError::Tls {
                    url: url.to_string(),
                    reason,
                }
            }
        }
        E::LdapResult { result } => LdapSourceError::Tls {
            url: url.to_string(),
            reason: format!(
                "StartTLS was refused: {} ({})",
                result.text,
                result_code_name(result.rc)
            ),
        },
        E::Io { source } => LdapSourceError::Unreachable {
            url: url.to_string(),
            reason: source.to_string(),
        },
        E::UrlParsing { source } => LdapSourceError::Config {
            field: "url",
            reason: format!("'{url}' is not a valid URL: {source}"),
        },
        other => LdapSourceError::Unreachable {
            url: url.to_string(),
            reason: other.to_string(),
        },
    }
}

async fn presented_certificate(cfg: &LdapConfig, url: &str) -> Option<String> {
    let connector = tls_connector(cfg, true).ok()?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.connect_timeout())
        .set_connector(connector)
        .set_starttls(cfg.starttls && !cfg.is_ldaps());
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await.ok()?;
    let task = tokio::spawn(conn.drive());
    let der = tokio::time::timeout(cfg.connect_timeout(), ldap.get_peer_certificate())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let _ = ldap.unbind().await;
    task.abort();
    certificate_summary(&der?)
}

/// "subject CN=…, issued by CN=…" from a DER certificate.
pub(crate) fn certificate_summary(der: &[u8]) -> Option<String> {
    let (_, cert) = parse_tag(der).ok()?;
    let mut tbs = cert
        .expect_constructed()?
        .into_iter()
        .next()?
        .expect_constructed()?;
    // [0] version is optional and context-specific.
    if tbs
        .first()
        .is_some_and(|t| t.class != ldap3::asn1::TagClass::Universal)
    {
        tbs.remove(0);
    }
    // serialNumber, signature, issuer, validity, subject
    let issuer = name_to_string(tbs.get(2)?)?;
    let subject = name_to_string(tbs.get(4)?)?;
    Some(format!("subject {subject}, issued by {issuer}"))
}

fn name_to_string(name: &StructureTag) -> Option<String> {
    let PL::C(rdns) = &name.payload else {
        return None;
    };
    let mut parts = Vec::new();
    for rdn in rdns {
        let PL::C(atvs) = &rdn.payload else { continue };
        for atv in atvs {
            let PL::C(pair) = &atv.payload else { continue };
            let (PL::P(oid), PL::P(value)) = (&pair.first()?.payload, &pair.get(1)?.payload) else {
                continue;
            };
            let label = match oid.as_slice() {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x55, 0x04, 0x06] => "C",
                _ => continue,
            };
            parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
        }
    }
    Some(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_kinds_come_from_the_root_dse() {
        let mut r = RootDse {
            capabilities: vec![AD_CAPABILITY_OID.into()],
            ..Default::default()
        };
        assert_eq!(r.kind(), ServerKind::ActiveDirectory);
        r.capabilities.clear();
        r.structural_object_class = Some("OpenLDAProotDSE".into());
        assert_eq!(r.kind(), ServerKind::OpenLdap);
        r.structural_object_class = None;
        r.vendor_name = Some("389 Project".into());
        assert_eq!(r.kind(), ServerKind::Ds389);
        r.vendor_name = Some("ApacheDS".into());
        assert_eq!(r.kind(), ServerKind::OtherLdap("ApacheDS".into()));
        r.supported_controls = vec![PAGED_OID.into()];
        assert!(r.supports(PAGED_OID) && !r.supports(DIRSYNC_OID));
    }

    #[test]
    fn pem_bundles_split_into_certificates() {
        let two = b"x\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_blocks(two).len(), 2);
        assert!(pem_blocks(b"nothing").is_empty());
    }

    #[test]
    fn malformed_entries_are_none_not_panics() {
        let tag = StructureTag {
            class: ldap3::asn1::TagClass::Application,
            id: 4,
            payload: PL::P(vec![1, 2, 3]),
        };
        assert!(parse_entry(ResultEntry::new(tag)).is_none());
        assert!(certificate_summary(&[0x30, 0x03, 0x01]).is_none());
    }
}
