use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use partnersync_source::{
    DeltaMechanism, DeltaRead, DeltaSummary, EntrySink, ReadSummary, SourceDescription,
    SourceDirectory, SourceError,
};
use tokio::sync::mpsc;

use crate::config::LdapConfig;
use crate::cookie::{b64, unb64, DeltaState, LdapCookie};
use crate::error::LdapSourceError;
use crate::read::{paged_read, Emitter, Event, Plan};
use crate::session::{Session, PAGED_OID};
use crate::syncrepl::SyncOutcome;
use crate::{dirsync, syncrepl, usn};

/// A [`SourceDirectory`] over LDAP: Active Directory (and Samba AD), OpenLDAP, 389-ds.
///
/// Each read opens its own connection, binds, reads the rootDSE, and runs in its own tokio
/// task; entries cross a bounded channel to the caller's sink. A panic inside `ldap3` (it
/// has some on replies it does not expect) therefore ends that task, and the read returns
/// [`LdapSourceError::ConnectionLost`] instead of bringing the program down. Needs a tokio
/// runtime.
#[derive(Debug, Clone)]
pub struct LdapSource {
    config: Arc<LdapConfig>,
}

/// What `partnersync source check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCheck {
    /// Server kind, location, naming contexts, delta mechanism.
    pub description: SourceDescription,
    /// The base DNs searched.
    pub bases: Vec<String>,
    /// Whether the server offers the paged-results control.
    pub paging: bool,
    /// The vendor the rootDSE names, if any.
    pub vendor: Option<String>,
    /// The server's DNS host name (AD's `dnsHostName`), if the rootDSE gives it.
    pub server_name: Option<String>,
    /// How many entries are in scope (filter, bases, OU lists).
    pub entries_in_scope: u64,
}

impl LdapSource {
    /// A source for a validated configuration (validation runs again here).
    pub fn new(config: LdapConfig) -> Result<Self, LdapSourceError> {
        config.validate()?;
        Ok(LdapSource {
            config: Arc::new(config),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Connects, binds, and reports what a sync would use, with the number of entries in
    /// scope (a DN-only paged count).
    pub async fn check(&self) -> Result<SourceCheck, LdapSourceError> {
        let cfg = Arc::clone(&self.config);
        let handle = tokio::spawn(async move {
            let mut session = Session::open(&cfg).await?;
            let plan = Plan::new(&cfg, &session)?;
            let description = describe_plan(&cfg, &plan);
            let mut counter = plan.clone();
            counter.attrs = counter.anchor_attrs.clone();
            let (tx, mut rx) = mpsc::channel(4);
            let drain = tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(batch) = rx.recv().await {
                    n += u64::try_from(Vec::len(&batch)).unwrap_or(0);
                }
                n
            });
            let mut out = Emitter::new(tx);
            let filter = cfg.filter.trim().to_string();
            paged_read(&mut session, &counter, &filter, &mut out, None).await?;
            drop(out);
            let entries = drain.await.unwrap_or(0);
            Ok(SourceCheck {
                description,
                bases: plan.bases.clone(),
                paging: session.root.supports(PAGED_OID),
                vendor: session.root.vendor_name.clone(),
                server_name: session.root.dns_host_name.clone(),
                entries_in_scope: entries,
            })
        });
        match handle.await {
            Ok(r) => r,
            Err(e) => Err(task_failed(&self.config.url, e)),
        }
    }

    /// Runs `work` in its own task, feeding what it emits to `sink`.
    async fn run<T, F, Fut>(&self, sink: &mut dyn EntrySink, work: F) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<LdapConfig>, Emitter) -> Fut,
        Fut: Future<Output = Result<T, LdapSourceError>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Vec<Event>>(8);
        let handle = tokio::spawn(work(Arc::clone(&self.config), Emitter::new(tx)));
        let mut sink_error = None;
        'outer: while let Some(batch) = rx.recv().await {
            for ev in batch {
                let r = match ev {
                    Event::Entry(e) => sink.entry(e),
                    Event::Deleted(a) => sink.deleted(a),
                };
                if let Err(e) = r {
                    sink_error = Some(e);
                    break 'outer;
                }
            }
        }
        if let Some(e) = sink_error {
            drop(rx);
            handle.abort();
            return Err(SourceError::Sink(e));
        }
        match handle.await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(task_failed(&self.config.url, e).into()),
        }
    }
}

fn task_failed(url: &str, e: tokio::task::JoinError) -> LdapSourceError {
    let reason = if e.is_panic() {
        let p = e.into_panic();
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        format!("the LDAP client crashed on a reply it could not handle ({msg})")
    } else {
        "the read was cancelled".into()
    };
    LdapSourceError::ConnectionLost {
        url: url.to_string(),
        reason,
    }
}

fn describe_plan(cfg: &LdapConfig, plan: &Plan) -> SourceDescription {
    SourceDescription {
        kind: plan.kind.clone(),
        location: cfg.url.trim().to_string(),
        naming_contexts: plan.naming_contexts.clone(),
        delta: plan.delta,
    }
}

fn new_cookie(plan: &Plan, state: DeltaState, known: BTreeSet<Vec<u8>>) -> LdapCookie {
    LdapCookie {
        server: plan.server_identity.clone(),
        scope: plan.scope.clone(),
        state,
        known,
    }
}

async fn full_read_task(
    cfg: Arc<LdapConfig>,
    mut out: Emitter,
) -> Result<ReadSummary, LdapSourceError> {
    let mut session = Session::open(&cfg).await?;
    let plan = Plan::new(&cfg, &session)?;
    let mut known = Vec::new();
    let union = |known: Vec<BTreeSet<Vec<u8>>>| known.into_iter().flatten().collect();
    let filter = plan.filter.clone();
    let cookie = match plan.delta {
        DeltaMechanism::SyncRepl => {
            // The cookies first (changes during the read come again), then a paged read:
            // one refreshOnly search of everything would make ldap3 buffer the whole result.
            let mut bases = syncrepl::initial_cookies(&mut session, &plan).await?;
            paged_read(&mut session, &plan, &filter, &mut out, Some(&mut known)).await?;
            for (b, k) in bases.iter_mut().zip(known) {
                b.known = k;
            }
            let state = DeltaState::SyncRepl { bases };
            Some(new_cookie(&plan, state, BTreeSet::new()))
        }
        DeltaMechanism::DirSync => {
            let c = dirsync::initial_cookie(&mut session, &plan).await?;
            paged_read(&mut session, &plan, &filter, &mut out, Some(&mut known)).await?;
            let state = DeltaState::DirSync { cookie: b64(&c) };
            Some(new_cookie(&plan, state, union(known)))
        }
        DeltaMechanism::UsnChanged => {
            let invocation_id = usn::invocation_id(&mut session).await?;
            let usn = session.root.highest_committed_usn.unwrap_or(0);
            paged_read(&mut session, &plan, &filter, &mut out, Some(&mut known)).await?;
            let state = DeltaState::UsnChanged { usn, invocation_id };
            Some(new_cookie(&plan, state, union(known)))
        }
        _ => {
            paged_read(&mut session, &plan, &plan.filter, &mut out, None).await?;
            None
        }
    };
    out.flush().await?;
    let _ = session.ldap.unbind().await;
    Ok(ReadSummary {
        entries: out.changed,
        cookie: cookie.map(|c| c.encode()),
    })
}

async fn delta_read_task(
    cfg: Arc<LdapConfig>,
    cookie: partnersync_source::Cookie,
    mut out: Emitter,
) -> Result<DeltaRead, LdapSourceError> {
    let previous = match LdapCookie::decode(&cookie) {
        Ok(c) => c,
        Err(reason) => return Ok(DeltaRead::FullReadRequired { reason }),
    };
    let mut session = Session::open(&cfg).await?;
    let plan = Plan::new(&cfg, &session)?;
    let full = |reason: String| Ok(DeltaRead::FullReadRequired { reason });
    let mechanism = match plan.delta {
        DeltaMechanism::SyncRepl => "syncrepl",
        DeltaMechanism::DirSync => "dirsync",
        DeltaMechanism::UsnChanged => "usnchanged",
        _ => {
            return full(format!(
                "the source has no delta mechanism now (delta = \"{}\")",
                cfg.delta.as_str()
            ))
        }
    };
    if previous.state.mechanism() != mechanism {
        return full(format!(
            "the cookie is for {} but the source now uses {mechanism}",
            previous.state.mechanism()
        ));
    }
    if previous.server != plan.server_identity {
        return full(format!(
            "the cookie was issued by another server or domain controller ({}; now {})",
            previous.server, plan.server_identity
        ));
    }
    if previous.scope != plan.scope {
        return full(
            "the configured scope (bases, filter, OU lists, attributes or anchor) changed since \
             the cookie was issued"
                .into(),
        );
    }
    let mut known = previous.known;
    let state = match previous.state {
        DeltaState::SyncRepl { bases } => {
            if bases.len() != plan.bases.len() {
                return full("the cookie has another number of base DNs".into());
            }
            match syncrepl::run(&mut session, &plan, Some(bases), &mut out).await? {
                SyncOutcome::Done(bases) => DeltaState::SyncRepl { bases },
                SyncOutcome::RefreshRequired(reason) => return full(reason),
            }
        }
        DeltaState::DirSync { cookie } => {
            let Some(bytes) = unb64(&cookie) else {
                return full("the DirSync cookie is damaged".into());
            };
            let next = dirsync::delta(&mut session, &plan, bytes, &mut known, &mut out).await?;
            DeltaState::DirSync { cookie: b64(&next) }
        }
        DeltaState::UsnChanged {
            usn: previous_usn,
            invocation_id,
        } => {
            let now = usn::invocation_id(&mut session).await?;
            if now != invocation_id {
                return full(
                    "the domain controller's invocationId changed (it was restored from a \
                     backup or reinstalled); USNs from before cannot be trusted"
                        .into(),
                );
            }
            let current = session.root.highest_committed_usn.unwrap_or(0);
            if current < previous_usn {
                return full(format!(
                    "the domain controller's highestCommittedUSN went back from {previous_usn} to \
                     {current} (restore?)"
                ));
            }
            usn::delta(&mut session, &plan, previous_usn, &mut known, &mut out).await?;
            DeltaState::UsnChanged {
                usn: current,
                invocation_id,
            }
        }
    };
    out.flush().await?;
    let _ = session.ldap.unbind().await;
    Ok(DeltaRead::Changes(DeltaSummary {
        changed: out.changed,
        deleted: out.deleted,
        cookie: new_cookie(&plan, state, known).encode(),
    }))
}

#[async_trait]
impl SourceDirectory for LdapSource {
    async fn describe(&self) -> Result<SourceDescription, SourceError> {
        let cfg = Arc::clone(&self.config);
        let handle = tokio::spawn(async move {
            let mut session = Session::open(&cfg).await?;
            let plan = Plan::new(&cfg, &session)?;
            let _ = session.ldap.unbind().await;
            Ok::<_, LdapSourceError>(describe_plan(&cfg, &plan))
        });
        match handle.await {
            Ok(r) => r.map_err(SourceError::from),
            Err(e) => Err(task_failed(&self.config.url, e).into()),
        }
    }

    async fn full_read(&self, sink: &mut dyn EntrySink) -> Result<ReadSummary, SourceError> {
        self.run(sink, full_read_task).await
    }

    async fn delta_read(
        &self,
        cookie: &partnersync_source::Cookie,
        sink: &mut dyn EntrySink,
    ) -> Result<DeltaRead, SourceError> {
        let cookie = cookie.clone();
        self.run(sink, move |cfg, out| delta_read_task(cfg, cookie, out))
            .await
    }
}
