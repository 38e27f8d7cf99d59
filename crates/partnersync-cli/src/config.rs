//! The configuration file of the sync commands: the rules (`[[rule]]`, ...), `[source]`,
//! `[target]`, `[state]`, `[sync]` and `[guard]`, loaded into what the engine needs. Every
//! error names the file and the key, and says what to write instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use partnersync_engine::{
    CycleOptions, DeleteMode, DeletionGuard, DriftPolicy, ErrorPolicy, PlanOptions,
};
use partnersync_graph::{
    AnchorAttribute, CreationMode, DomainKind, GraphConfig, GraphError, VerifiedDomain,
};
use partnersync_rules::RuleSet;
use serde::Deserialize;
use sha1::Digest as _;

/// Where the writes go.
pub(crate) enum TargetSpec {
    /// The local Graph emulator, started in-process, its directory kept in a file.
    Emulator {
        /// The emulator's directory file.
        state_file: PathBuf,
        /// The verified domains users may be created in.
        domains: Vec<VerifiedDomain>,
        /// Direct creation or invitation.
        creation: CreationMode,
        /// The property users are bound to their anchors through.
        anchor_attribute: AnchorAttribute,
    },
    /// A real tenant through Microsoft Graph.
    Graph(Box<GraphConfig>),
}

/// A loaded configuration file.
pub(crate) struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// The rules.
    pub rules: RuleSet,
    /// The target.
    pub target: TargetSpec,
    /// The state file.
    pub state_path: PathBuf,
    /// Everything the engine's cycle needs.
    pub options: CycleOptions,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StateSection {
    /// The SQLite state file, relative to the configuration file.
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SyncSection {
    delete_mode: DeleteMode,
    delete_after_days: u32,
    soft_match: bool,
    full_every: String,
    drift: String,
    stop_after_errors: Option<usize>,
    stop_above_error_percent: Option<f64>,
    batch_size: usize,
    staging: bool,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            delete_mode: DeleteMode::DisableThenDelete,
            delete_after_days: 30,
            soft_match: false,
            full_every: "24h".into(),
            drift: "correct".into(),
            stop_after_errors: None,
            stop_above_error_percent: None,
            batch_size: 20,
            staging: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GuardSection {
    max_deletes: usize,
    max_delete_percent: f64,
}

impl Default for GuardSection {
    fn default() -> Self {
        let d = DeletionGuard::default();
        GuardSection {
            max_deletes: d.max_count,
            max_delete_percent: d.max_percent,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmulatorSection {
    #[allow(dead_code)]
    kind: String,
    /// The emulator's directory file, relative to the configuration file.
    state_file: Option<PathBuf>,
    #[serde(default)]
    creation: Option<CreationMode>,
    #[serde(default)]
    domains: Vec<DomainSection>,
    #[serde(default)]
    anchor_attribute: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainSection {
    name: String,
    kind: String,
}

#[derive(Deserialize)]
struct Sections {
    state: Option<toml::Value>,
    sync: Option<toml::Value>,
    guard: Option<toml::Value>,
    target: Option<toml::Value>,
}

/// Parses a duration such as `30m`, `24h`, `7d`, `90s` (or `never`).
pub(crate) fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 30m, 24h, 7d or 90s"))?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration; write e.g. 30m, 24h, 7d or 90s"
            ))
        }
    };
    if secs == 0 {
        return Err(format!("{text:?}: a duration must be more than zero"));
    }
    Ok(Some(Duration::from_secs(secs)))
}

fn section<T: for<'de> Deserialize<'de> + Default>(
    path: &Path,
    name: &str,
    value: Option<toml::Value>,
) -> Result<T, String> {
    match value {
        None => Ok(T::default()),
        Some(v) => v
            .try_into()
            .map_err(|e: toml::de::Error| format!("{}: [{name}]: {}", path.display(), e.message())),
    }
}

fn domain_kind(path: &Path, d: &DomainSection) -> Result<VerifiedDomain, String> {
    let kind = match d.kind.to_ascii_lowercase().as_str() {
        "managed" => DomainKind::Managed,
        "federated" => DomainKind::Federated,
        other => {
            return Err(format!(
                "{}: [[target.domains]] {}: kind {other:?} is not managed or federated",
                path.display(),
                d.name
            ))
        }
    };
    Ok(VerifiedDomain {
        name: d.name.to_ascii_lowercase(),
        kind,
    })
}

/// The default emulator domains: the sample's two.
pub(crate) fn sample_domains() -> Vec<VerifiedDomain> {
    vec![
        VerifiedDomain {
            name: "contoso.com".into(),
            kind: DomainKind::Managed,
        },
        VerifiedDomain {
            name: "partners.contoso.com".into(),
            kind: DomainKind::Federated,
        },
    ]
}

/// Loads and checks a configuration file.
pub(crate) fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (run `partnersync init` to write a commented one)",
            path.display()
        )
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let rules = RuleSet::from_toml_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let sections: Sections =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    let state: StateSection = section(path, "state", sections.state)?;
    let sync: SyncSection = section(path, "sync", sections.sync)?;
    let guard: GuardSection = section(path, "guard", sections.guard)?;
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
    let state_path = resolve(
        state
            .path
            .unwrap_or_else(|| PathBuf::from(".partnersync/state.db")),
    );
    let target_value = sections.target.unwrap_or_else(|| {
        let mut t = toml::map::Map::new();
        t.insert("kind".into(), toml::Value::String("emulator".into()));
        toml::Value::Table(t)
    });
    let kind = target_value
        .get("kind")
        .and_then(toml::Value::as_str)
        .unwrap_or("")
        .to_string();
    let target = match kind.as_str() {
        "emulator" => {
            let e: EmulatorSection = target_value.try_into().map_err(|e: toml::de::Error| {
                format!("{}: [target]: {}", path.display(), e.message())
            })?;
            let domains = if e.domains.is_empty() {
                sample_domains()
            } else {
                e.domains
                    .iter()
                    .map(|d| domain_kind(path, d))
                    .collect::<Result<_, _>>()?
            };
            TargetSpec::Emulator {
                state_file: resolve(
                    e.state_file
                        .unwrap_or_else(|| PathBuf::from(".partnersync/graph-emulator.json")),
                ),
                domains,
                creation: e.creation.unwrap_or(CreationMode::Direct),
                anchor_attribute: match &e.anchor_attribute {
                    None => AnchorAttribute::default(),
                    Some(name) => AnchorAttribute::new(name).map_err(|e| match e {
                        GraphError::Config(why) => {
                            format!("{}: [target] anchor_attribute: {why}", path.display())
                        }
                    })?,
                },
            }
        }
        "graph" => TargetSpec::Graph(Box::new(
            GraphConfig::from_toml_value(&target_value, &dir)
                .map_err(|e| format!("{}: [target]: {e}", path.display()))?,
        )),
        other => {
            return Err(format!(
                "{}: [target]: kind {other:?} is not known; write kind = \"graph\" for a tenant or kind = \"emulator\" for the local emulator",
                path.display()
            ))
        }
    };
    let (creation, domains) = match &target {
        TargetSpec::Emulator {
            creation, domains, ..
        } => (*creation, domains.clone()),
        TargetSpec::Graph(g) => (g.creation_mode, g.verified_domains.clone()),
    };
    let full_every = parse_duration(&sync.full_every)
        .map_err(|e| format!("{}: [sync] full_every: {e}", path.display()))?;
    let drift = match sync.drift.as_str() {
        "correct" => DriftPolicy::Correct,
        "report" => DriftPolicy::Report,
        other => {
            return Err(format!(
                "{}: [sync] drift: {other:?} is not \"correct\" or \"report\"",
                path.display()
            ))
        }
    };
    let error_policy = match (sync.stop_after_errors, sync.stop_above_error_percent) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{}: [sync]: set stop_after_errors or stop_above_error_percent, not both",
                path.display()
            ))
        }
        (Some(n), None) => ErrorPolicy::StopAfter(n),
        (None, Some(p)) if (0.0..=100.0).contains(&p) => ErrorPolicy::StopAbovePercent(p),
        (None, Some(p)) => {
            return Err(format!(
                "{}: [sync] stop_above_error_percent = {p}: write a percentage between 0 and 100",
                path.display()
            ))
        }
        (None, None) => ErrorPolicy::Continue,
    };
    if !(0.0..=100.0).contains(&guard.max_delete_percent) {
        return Err(format!(
            "{}: [guard] max_delete_percent = {}: write a percentage between 0 and 100",
            path.display(),
            guard.max_delete_percent
        ));
    }
    if sync.batch_size == 0 || sync.batch_size > 20 {
        return Err(format!(
            "{}: [sync] batch_size = {}: Graph's $batch takes 1 to 20 requests",
            path.display(),
            sync.batch_size
        ));
    }
    let mut hasher = sha1::Sha1::new();
    hasher.update(text.as_bytes());
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let options = CycleOptions {
        plan: PlanOptions {
            creation,
            delete_mode: sync.delete_mode,
            delete_after_days: sync.delete_after_days,
            verified_domains: domains.iter().map(|d| d.name.clone()).collect(),
            ..PlanOptions::default()
        },
        guard: DeletionGuard {
            max_count: guard.max_deletes,
            max_percent: guard.max_delete_percent,
        },
        allow_deletes: None,
        staging: sync.staging,
        batch_size: sync.batch_size,
        soft_match: sync.soft_match,
        full_every,
        force_full: false,
        error_policy,
        drift,
        config_digest: digest,
    };
    Ok(Loaded {
        path: path.to_path_buf(),
        rules,
        target,
        state_path,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ps-cli-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("partnersync.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30m").unwrap(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            parse_duration("7d").unwrap(),
            Some(Duration::from_secs(604_800))
        );
        assert_eq!(parse_duration("never").unwrap(), None);
        assert!(parse_duration("soon").unwrap_err().contains("30m"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn sections_load_with_defaults_and_errors_name_the_key() {
        let p = write(
            "ok",
            "[sync]\ndelete_mode = \"delete\"\nstop_after_errors = 5\n[guard]\nmax_deletes = 50\n",
        );
        let c = load(&p).unwrap();
        assert_eq!(c.options.plan.delete_mode, DeleteMode::Delete);
        assert_eq!(c.options.error_policy, ErrorPolicy::StopAfter(5));
        assert_eq!(c.options.guard.max_count, 50);
        assert_eq!(c.options.guard.max_percent, 10.0);
        assert!(c.state_path.ends_with(".partnersync/state.db"));
        assert!(matches!(c.target, TargetSpec::Emulator { .. }));
        for (text, expected) in [
            ("[sync]\ndelet_mode = \"delete\"\n", "delet_mode"),
            ("[sync]\nfull_every = \"soon\"\n", "full_every"),
            ("[sync]\ndrift = \"ignore\"\n", "drift"),
            (
                "[guard]\nmax_delete_percent = 150.0\n",
                "max_delete_percent",
            ),
            ("[target]\nkind = \"ldap\"\n", "kind \"ldap\" is not known"),
            ("[sync]\nbatch_size = 50\n", "batch_size"),
        ] {
            let p = write("bad", text);
            let err = load(&p).err().unwrap();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains("partnersync.toml"), "{err}");
        }
    }
}
