//! What every read shares: the plan (bases, attributes, anchor policy, delta mechanism),
//! turning a raw entry into an [`Entry`], range retrieval, the paged full read, and the
//! channel that carries entries from the LDAP task to the caller's sink.

use std::collections::BTreeSet;

use ldap3::{Ldap, Scope};
use partnersync_core::{Anchor, AttributeValue, Attributes, Entry};
use partnersync_source::{AnchorPolicy, DeltaMechanism, ServerKind};
use tokio::sync::mpsc;

use crate::config::{DeltaChoice, LdapConfig};
use crate::dn;
use crate::error::LdapSourceError;
use crate::session::{ConnInfo, RawEntry, Session, DIRSYNC_OID, PAGED_OID, SYNC_OID};

/// Attributes whose values are binary even when they happen to be valid UTF-8.
const BINARY_ATTRIBUTES: &[&str] = &[
    "objectGUID",
    "objectSid",
    "ms-DS-ConsistencyGuid",
    "mS-DS-ConsistencyGuid",
    "msExchMailboxGuid",
    "sIDHistory",
    "tokenGroups",
    "jpegPhoto",
    "thumbnailPhoto",
    "photo",
    "audio",
    "userCertificate",
    "cACertificate",
    "userSMIMECertificate",
    "msExchArchiveGUID",
    "parentGUID",
];

/// The resolved way to read this server.
#[derive(Clone)]
pub(crate) struct Plan {
    pub kind: ServerKind,
    pub bases: Vec<String>,
    pub base_rdns: Vec<Vec<String>>,
    pub naming_context: String,
    pub naming_contexts: Vec<String>,
    pub include: Vec<Vec<String>>,
    pub exclude: Vec<Vec<String>>,
    pub policy: AnchorPolicy,
    pub attrs: Vec<String>,
    pub anchor_attrs: Vec<String>,
    pub delta: DeltaMechanism,
    pub page_size: Option<u32>,
    pub server_identity: String,
    pub scope: String,
    pub filter: String,
    pub change_filter: String,
}

impl Plan {
    pub(crate) fn new(cfg: &LdapConfig, session: &Session) -> Result<Plan, LdapSourceError> {
        let root = &session.root;
        let kind = root.kind();
        let is_ad = kind == ServerKind::ActiveDirectory;
        let bases = if cfg.base_dns.is_empty() {
            match root
                .default_naming_context
                .clone()
                .or_else(|| root.naming_contexts.first().cloned())
            {
                Some(nc) => vec![nc],
                None => {
                    return Err(LdapSourceError::Config {
                        field: "base_dns",
                        reason: "is empty and the server names no naming context; set base_dns"
                            .into(),
                    })
                }
            }
        } else {
            cfg.base_dns.clone()
        };
        let first = dn::normalized_rdns(&bases[0]);
        let naming_contexts: Vec<String> = root
            .naming_contexts
            .iter()
            .filter(|nc| {
                let nc = dn::normalized_rdns(nc);
                bases
                    .iter()
                    .any(|b| dn::is_under(&dn::normalized_rdns(b), &nc))
            })
            .cloned()
            .collect();
        let naming_context = root
            .naming_contexts
            .iter()
            .filter(|nc| dn::is_under(&first, &dn::normalized_rdns(nc)))
            .max_by_key(|nc| nc.len())
            .cloned()
            .or_else(|| root.default_naming_context.clone())
            .unwrap_or_else(|| bases[0].clone());
        let anchor_attrs: Vec<String> = if !cfg.anchor.is_empty() {
            cfg.anchor.clone()
        } else if is_ad {
            vec!["ms-DS-ConsistencyGuid".into(), "objectGUID".into()]
        } else {
            vec!["entryUUID".into(), "nsUniqueId".into()]
        };
        let policy = AnchorPolicy::new(anchor_attrs.iter().map(String::as_str));
        let mut attrs: Vec<String> = if cfg.attributes.is_empty() {
            vec!["*".into()]
        } else {
            cfg.attributes.clone()
        };
        for a in &anchor_attrs {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.clone());
            }
        }
        let url = cfg.url.trim();
        let delta = resolve_delta(cfg, session, &anchor_attrs)?;
        let server_identity = match (&root.ds_service_name, is_ad) {
            (Some(ds), true) => format!("ad:{ds}"),
            _ => format!("ldap:{url}|{}", root.naming_contexts.join(";")),
        };
        let scope = format!(
            "bases={}|filter={}|include={}|exclude={}|attrs={}|anchor={}",
            bases.join(";"),
            cfg.filter.trim(),
            cfg.include_ous.join(";"),
            cfg.exclude_ous.join(";"),
            attrs.join(";"),
            anchor_attrs.join(";")
        )
        .to_ascii_lowercase();
        Ok(Plan {
            kind,
            naming_contexts: if naming_contexts.is_empty() {
                bases.clone()
            } else {
                naming_contexts
            },
            base_rdns: bases.iter().map(|b| dn::normalized_rdns(b)).collect(),
            bases,
            naming_context,
            include: cfg
                .include_ous
                .iter()
                .map(|d| dn::normalized_rdns(d))
                .collect(),
            exclude: cfg
                .exclude_ous
                .iter()
                .map(|d| dn::normalized_rdns(d))
                .collect(),
            policy,
            attrs,
            anchor_attrs,
            delta,
            page_size: root.supports(PAGED_OID).then_some(cfg.page_size),
            server_identity,
            scope,
            filter: cfg.filter.trim().to_string(),
            change_filter: cfg.change_filter.trim().to_string(),
        })
    }

    /// Whether a DN is inside the configured OU include/exclude lists.
    pub(crate) fn in_scope(&self, entry_dn: &str) -> bool {
        let rdns = dn::normalized_rdns(entry_dn);
        self.base_rdns.iter().any(|b| dn::is_under(&rdns, b))
            && (self.include.is_empty() || self.include.iter().any(|i| dn::is_under(&rdns, i)))
            && !self.exclude.iter().any(|x| dn::is_under(&rdns, x))
    }

    /// The anchor of a raw entry.
    pub(crate) fn anchor_of(&self, raw: &RawEntry) -> Result<Anchor, LdapSourceError> {
        let attributes = into_attributes(raw.attrs.clone());
        self.policy
            .anchor_of(&attributes)
            .map_err(|problem| LdapSourceError::Anchor {
                dn: raw.dn.clone(),
                problem,
            })
    }

    /// Turns a raw entry (ranges already resolved) into an entry, or its anchor when it is
    /// outside the bases or the OU lists. `under_base`: the entry came from a subtree
    /// search of one of the bases (so only the OU lists need checking).
    pub(crate) fn to_entry(
        &self,
        raw: RawEntry,
        under_base: bool,
    ) -> Result<Scoped, LdapSourceError> {
        let dn = raw.dn;
        let attributes = into_attributes(raw.attrs);
        let anchor = match self.policy.anchor_of(&attributes) {
            Ok(a) => a,
            Err(problem) => return Err(LdapSourceError::Anchor { dn, problem }),
        };
        let checked = under_base && self.include.is_empty() && self.exclude.is_empty();
        if !checked && !self.in_scope(&dn) {
            return Ok(Scoped::Out(anchor));
        }
        Ok(Scoped::In(Entry {
            anchor,
            dn,
            attributes,
        }))
    }
}

/// An entry in scope, or the anchor of one outside the OU lists.
pub(crate) enum Scoped {
    In(Entry),
    Out(Anchor),
}

fn resolve_delta(
    cfg: &LdapConfig,
    session: &Session,
    anchor_attrs: &[String],
) -> Result<DeltaMechanism, LdapSourceError> {
    let root = &session.root;
    let is_ad = root.kind() == ServerKind::ActiveDirectory;
    let uuid_anchor = anchor_attrs
        .first()
        .is_some_and(|a| a.eq_ignore_ascii_case("entryUUID"));
    let url = cfg.url.trim().to_string();
    Ok(match cfg.delta {
        DeltaChoice::Auto if is_ad && root.supports(DIRSYNC_OID) => DeltaMechanism::DirSync,
        DeltaChoice::Auto if is_ad && root.highest_committed_usn.is_some() => {
            DeltaMechanism::UsnChanged
        }
        DeltaChoice::Auto if !is_ad && root.supports(SYNC_OID) && uuid_anchor => {
            DeltaMechanism::SyncRepl
        }
        DeltaChoice::Auto | DeltaChoice::None => DeltaMechanism::FullReadOnly,
        DeltaChoice::DirSync => {
            if !root.supports(DIRSYNC_OID) {
                return Err(LdapSourceError::ControlNotSupported {
                    url,
                    mechanism: "dirsync",
                    control_name: "DirSync",
                    oid: DIRSYNC_OID,
                });
            }
            DeltaMechanism::DirSync
        }
        DeltaChoice::UsnChanged => {
            if !is_ad || root.highest_committed_usn.is_none() || root.ds_service_name.is_none() {
                return Err(LdapSourceError::Config {
                    field: "delta",
                    reason: format!(
                        "is \"usnchanged\" but {url} is not Active Directory (its rootDSE has no \
                         highestCommittedUSN/dsServiceName)"
                    ),
                });
            }
            DeltaMechanism::UsnChanged
        }
        DeltaChoice::SyncRepl => {
            if !root.supports(SYNC_OID) {
                return Err(LdapSourceError::SyncprovMissing {
                    base: cfg.base_dns.join("; "),
                    text: format!(
                        "the rootDSE of {url} does not list the Sync Request control {SYNC_OID}"
                    ),
                });
            }
            if !uuid_anchor {
                return Err(LdapSourceError::Config {
                    field: "delta",
                    reason: "is \"syncrepl\", which reports deletions by entryUUID: the anchor \
                             must be entryUUID"
                        .into(),
                });
            }
            DeltaMechanism::SyncRepl
        }
    })
}

fn into_attributes(attrs: Vec<(String, Vec<Vec<u8>>)>) -> Attributes {
    let mut attributes = Attributes::new();
    for (mut name, values) in attrs {
        if name.len() > 7 && name[name.len() - 7..].eq_ignore_ascii_case(";binary") {
            name.truncate(name.len() - 7);
        }
        let binary = BINARY_ATTRIBUTES
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&name));
        let values: Vec<AttributeValue> = values
            .into_iter()
            .map(|v| {
                if binary {
                    AttributeValue::Binary(v)
                } else {
                    AttributeValue::from_bytes(v)
                }
            })
            .collect();
        // The name moves into the attribute: no copy per attribute per entry.
        attributes.set(name, values);
    }
    attributes
}

/// `member;range=0-1499` → (`member`, 0, Some(1499)); `…-*` → None as the end.
pub(crate) fn parse_range(description: &str) -> Option<(&str, u64, Option<u64>)> {
    // Called for every attribute of every entry: no allocation unless there is a range.
    let pos = description
        .as_bytes()
        .windows(7)
        .position(|w| w.eq_ignore_ascii_case(b";range="))?;
    let name = &description[..pos];
    let range = &description[pos + ";range=".len()..];
    let range = range.split(';').next()?;
    let (lo, hi) = range.split_once('-')?;
    let lo = lo.parse().ok()?;
    let hi = if hi == "*" {
        None
    } else {
        Some(hi.parse().ok()?)
    };
    Some((name, lo, hi))
}

/// Fetches the rest of every ranged attribute (`member;range=0-1499`) of `raw`, so the entry
/// carries all values under the plain name.
pub(crate) async fn resolve_ranges(
    ldap: &mut Ldap,
    info: &ConnInfo,
    raw: &mut RawEntry,
) -> Result<(), LdapSourceError> {
    if !raw.attrs.iter().any(|(n, _)| parse_range(n).is_some()) {
        return Ok(());
    }
    let mut resolved = Vec::new();
    for (name, values) in std::mem::take(&mut raw.attrs) {
        let Some((base_name, _, mut end)) =
            parse_range(&name).map(|(b, l, h)| (b.to_string(), l, h))
        else {
            resolved.push((name, values));
            continue;
        };
        let mut all = values;
        let mut rounds = 0;
        while let Some(last) = end {
            rounds += 1;
            if rounds > 100_000 {
                return Err(LdapSourceError::Protocol {
                    url: info.url.clone(),
                    reason: format!("range retrieval of {base_name} on {} does not end", raw.dn),
                });
            }
            let want = format!("{base_name};range={}-*", last + 1);
            let found = crate::session::search_all(
                ldap,
                info,
                &raw.dn,
                Scope::Base,
                "(objectClass=*)",
                &[&want],
                vec![],
            )
            .await?;
            let next = found.into_iter().next().and_then(|e| {
                e.attrs.into_iter().find_map(|(n, v)| {
                    let (b, _, hi) = parse_range(&n)?;
                    b.eq_ignore_ascii_case(&base_name).then_some((v, hi))
                })
            });
            match next {
                Some((v, hi)) => {
                    all.extend(v);
                    end = hi;
                }
                None => end = None,
            }
        }
        resolved.push((base_name, all));
    }
    raw.attrs = resolved;
    Ok(())
}

/// What the LDAP task sends to the caller.
pub(crate) enum Event {
    Entry(Entry),
    Deleted(Anchor),
}

/// Sends entries to the caller's sink in batches.
pub(crate) struct Emitter {
    tx: mpsc::Sender<Vec<Event>>,
    buf: Vec<Event>,
    pub changed: u64,
    pub deleted: u64,
}

const BATCH: usize = 256;

impl Emitter {
    pub(crate) fn new(tx: mpsc::Sender<Vec<Event>>) -> Self {
        Emitter {
            tx,
            buf: Vec::with_capacity(BATCH),
            changed: 0,
            deleted: 0,
        }
    }

    pub(crate) async fn entry(&mut self, e: Entry) -> Result<(), LdapSourceError> {
        self.changed += 1;
        self.push(Event::Entry(e)).await
    }

    pub(crate) async fn deleted(&mut self, a: Anchor) -> Result<(), LdapSourceError> {
        self.deleted += 1;
        self.push(Event::Deleted(a)).await
    }

    async fn push(&mut self, ev: Event) -> Result<(), LdapSourceError> {
        self.buf.push(ev);
        if self.buf.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), LdapSourceError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
        self.tx
            .send(batch)
            .await
            .map_err(|_| LdapSourceError::Protocol {
                url: String::new(),
                reason: "the consumer stopped the read".into(),
            })
    }
}

/// The paged read of every base, streaming entries in scope; with `known`, collects their
/// anchors, one set per base.
pub(crate) async fn paged_read(
    session: &mut Session,
    plan: &Plan,
    filter: &str,
    out: &mut Emitter,
    mut known: Option<&mut Vec<BTreeSet<Vec<u8>>>>,
) -> Result<u64, LdapSourceError> {
    let mut count = 0;
    let mut side = session.ldap.clone();
    for base in &plan.bases {
        let info = session.info.clone();
        let mut search = session
            .search(
                base,
                Scope::Subtree,
                filter,
                plan.attrs.clone(),
                vec![],
                plan.page_size,
            )
            .await?;
        let mut in_base = 0u64;
        let mut base_known = BTreeSet::new();
        while let Some(mut raw) = search.next().await? {
            in_base += 1;
            resolve_ranges(&mut side, &info, &mut raw).await?;
            if let Scoped::In(entry) = plan.to_entry(raw, true)? {
                if known.is_some() {
                    base_known.insert(entry.anchor.as_bytes().to_vec());
                }
                count += 1;
                out.entry(entry).await?;
            }
        }
        let (res, info) = search.finish().await?;
        match res.rc {
            0 => {}
            4 => {
                return Err(LdapSourceError::SizeLimitExceeded {
                    base: base.clone(),
                    entries: in_base,
                })
            }
            _ => return Err(info.result_error(res, &format!("search under '{base}'"), base)),
        }
        if let Some(k) = known.as_deref_mut() {
            k.push(base_known);
        }
    }
    out.flush().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            parse_range("member;range=0-1499"),
            Some(("member", 0, Some(1499)))
        );
        assert_eq!(
            parse_range("member;Range=1500-*"),
            Some(("member", 1500, None))
        );
        assert_eq!(parse_range("member"), None);
        assert_eq!(parse_range("member;range=x-1"), None);
    }

    #[test]
    fn binary_attributes_stay_binary_even_when_they_look_like_text() {
        let raw = RawEntry {
            dn: "cn=x".into(),
            attrs: vec![
                ("objectGUID".into(), vec![b"abcdefghijklmnop".to_vec()]),
                ("cn".into(), vec!["Łukasz".as_bytes().to_vec()]),
                ("userCertificate;binary".into(), vec![vec![0x30, 0x82]]),
            ],
            controls: vec![],
        };
        let a = into_attributes(raw.attrs);
        assert!(matches!(
            a.get("objectguid").unwrap()[0],
            AttributeValue::Binary(_)
        ));
        assert_eq!(a.first_text("CN"), Some("Łukasz"));
        assert!(a.contains("userCertificate"));
    }
}
