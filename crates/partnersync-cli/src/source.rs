//! `partnersync source check|read`: connect to the source directory and report on it, or
//! stream its entries as JSON lines or LDIF (optionally as a delta from a cookie file).
//!
//! The source is the `[source]` table of the configuration file (`kind = "ldap"` with the
//! `partnersync_ldap::LdapConfig` settings, or `kind = "ldif"` with `path`), or ad-hoc flags
//! in the style of ldapsearch. Flags override the file.

use std::io::{BufWriter, Stdout, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use partnersync_core::{Anchor, AttributeValue, Entry};
use partnersync_ldap::{LdapConfig, LdapSource};
use partnersync_source::ldif::LdifWriter;
use partnersync_source::{
    AnchorPolicy, Cookie, DeltaRead, EntrySink, LdifSource, SinkError, SourceDirectory,
};
use serde::Deserialize;

#[derive(Subcommand)]
pub enum SourceCommand {
    /// Connect and bind, then report the server kind, naming contexts, paging support, the
    /// delta mechanism that will be used and the number of entries in scope.
    ///
    /// Exit codes: 0 fine; 1 the source cannot be read (unreachable, bad credentials,
    /// certificate, ...); 2 bad configuration or arguments.
    Check(SourceArgs),
    /// Stream the entries in scope to stdout: one JSON object per line
    /// ({"anchor": ImmutableId, "dn": ..., "attributes": {name: [value | {"base64": ...}]}}),
    /// or LDIF. With --cookie FILE: a delta read from the cookie in FILE (missing or empty:
    /// a full read), deleted objects as {"anchor": ..., "deleted": true}, and the new cookie
    /// written back to FILE.
    ///
    /// Exit codes: 0 fine; 1 the source cannot be read; 2 bad configuration or arguments.
    Read {
        #[command(flatten)]
        source: SourceArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Delta read from (and new cookie to) this file.
        #[arg(long)]
        cookie: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 2849 LDIF.
    Ldif,
}

#[derive(Args, Default)]
pub struct SourceArgs {
    /// The configuration file (TOML) with a [source] table.
    #[arg(long)]
    config: Option<PathBuf>,
    /// An LDIF file to read instead of a server.
    #[arg(long, conflicts_with = "url")]
    ldif: Option<PathBuf>,
    /// ldap://host[:port] (StartTLS) or ldaps://host[:port].
    #[arg(long)]
    url: Option<String>,
    /// The DN (or user@domain on AD) to bind as.
    #[arg(long)]
    bind_dn: Option<String>,
    /// The environment variable that holds the bind password (never the password itself).
    #[arg(long)]
    password_env: Option<String>,
    /// A base DN to search (repeat for several).
    #[arg(long)]
    base_dn: Vec<String>,
    /// The LDAP filter (RFC 4515).
    #[arg(long)]
    filter: Option<String>,
    /// A PEM file with the CA certificate(s) to trust.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not use StartTLS on ldap:// URLs.
    #[arg(long)]
    no_starttls: bool,
    /// Allow a simple bind over an unencrypted connection.
    #[arg(long)]
    allow_plaintext_bind: bool,
    /// The attributes the rules read (set by the sync commands, not a flag).
    #[arg(skip)]
    rule_attributes: Vec<String>,
}

/// The `[source]` table.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum SourceSection {
    Ldap(Box<LdapConfig>),
    Ldif(LdifSection),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LdifSection {
    /// The LDIF file, relative to the configuration file.
    path: PathBuf,
    /// Anchor attributes (default: objectGUID, entryUUID, nsUniqueId).
    #[serde(default)]
    anchor: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigFile {
    source: Option<SourceSection>,
}

pub(crate) enum Source {
    Ldap(LdapSource),
    Ldif(LdifSource),
}

impl Source {
    pub(crate) fn as_dyn(&self) -> &dyn SourceDirectory {
        match self {
            Source::Ldap(s) => s,
            Source::Ldif(s) => s,
        }
    }
}

pub fn run(cmd: SourceCommand) -> ExitCode {
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match cmd {
        SourceCommand::Check(args) => {
            let source = match build(&args) {
                Ok(s) => s,
                Err(code) => return code,
            };
            runtime.block_on(check(source))
        }
        SourceCommand::Read {
            source,
            format,
            cookie,
        } => {
            let source = match build(&source) {
                Ok(s) => s,
                Err(code) => return code,
            };
            runtime.block_on(read(source, format, cookie.as_deref()))
        }
    }
}

/// The source a configuration file's `[source]` table describes (for commands that read
/// the directory as one step of a larger job).
pub(crate) fn from_config(config: &Path) -> Result<Source, ExitCode> {
    from_config_for(config, Vec::new())
}

/// [`from_config`] for a sync: an LDAP `[source]` that does not list `attributes` reads
/// exactly the ones the rules use (plus what the source needs for anchors and deltas).
pub(crate) fn from_config_for(config: &Path, attributes: Vec<String>) -> Result<Source, ExitCode> {
    build(&SourceArgs {
        config: Some(config.to_path_buf()),
        rule_attributes: attributes,
        ..SourceArgs::default()
    })
}

fn config_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn build(args: &SourceArgs) -> Result<Source, ExitCode> {
    let mut section = None;
    let mut config_dir = PathBuf::from(".");
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_error(format!("cannot read {}: {e}", path.display())))?;
        let file: ConfigFile = toml::from_str(&text)
            .map_err(|e| config_error(format!("{}: [source]: {}", path.display(), e.message())))?;
        section = file.source;
        if section.is_none() && args.url.is_none() && args.ldif.is_none() {
            return Err(config_error(format!(
                "{} has no [source] table; add one (kind = \"ldap\" or \"ldif\") or pass --url / --ldif",
                path.display()
            )));
        }
        config_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
    }
    if let Some(ldif) = &args.ldif {
        return Ok(Source::Ldif(LdifSource::new(ldif)));
    }
    let mut ldap = match (section, &args.url) {
        (Some(SourceSection::Ldif(l)), None) => {
            let path = if l.path.is_absolute() {
                l.path
            } else {
                config_dir.join(l.path)
            };
            let mut s = LdifSource::new(path);
            if !l.anchor.is_empty() {
                s = s.with_anchor_policy(AnchorPolicy::new(l.anchor.iter().map(String::as_str)));
            }
            return Ok(Source::Ldif(s));
        }
        (Some(SourceSection::Ldap(c)), url) => {
            let mut c = *c;
            if let Some(u) = url {
                c.url = u.clone();
            }
            c
        }
        (_, Some(url)) => LdapConfig::new(url.clone()),
        (None, None) => {
            return Err(config_error(
                "say which source to read: --config FILE with a [source] table, --url, or --ldif",
            ))
        }
    };
    if let Some(d) = &args.bind_dn {
        ldap.bind_dn = Some(d.clone());
    }
    if let Some(p) = &args.password_env {
        ldap.password_env = Some(p.clone());
        ldap.password_file = None;
    }
    if !args.base_dn.is_empty() {
        ldap.base_dns = args.base_dn.clone();
    }
    if let Some(f) = &args.filter {
        ldap.filter = f.clone();
    }
    if ldap.attributes.is_empty() && !args.rule_attributes.is_empty() {
        ldap.attributes = args.rule_attributes.clone();
    }
    if let Some(ca) = &args.ca_file {
        ldap.ca_file = Some(ca.clone());
    } else if let Some(ca) = &ldap.ca_file {
        if ca.is_relative() {
            ldap.ca_file = Some(config_dir.join(ca));
        }
    }
    if args.no_starttls {
        ldap.starttls = false;
    }
    if args.allow_plaintext_bind {
        ldap.allow_plaintext_bind = true;
    }
    if let Some(pw) = &ldap.password_file {
        if pw.is_relative() {
            ldap.password_file = Some(config_dir.join(pw));
        }
    }
    LdapSource::new(ldap)
        .map(Source::Ldap)
        .map_err(config_error)
}

/// `partnersync source read ... | head` ends quietly when the reader goes away.
fn write_error(e: std::io::Error) -> ExitCode {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    read_error(format!("cannot write the output: {e}"))
}

/// A failed read; a consumer that went away (broken pipe) is not an error.
fn source_error(e: partnersync_source::SourceError) -> ExitCode {
    if let partnersync_source::SourceError::Sink(inner) = &e {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
        }
    }
    read_error(e)
}

fn read_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

async fn check(source: Source) -> ExitCode {
    match source {
        Source::Ldap(s) => match s.check().await {
            Ok(c) => {
                let d = &c.description;
                println!("server:           {} at {}", d.kind, d.location);
                if let Some(v) = &c.vendor {
                    println!("vendor:           {v}");
                }
                if let Some(n) = &c.server_name {
                    println!("host name:        {n}");
                }
                println!("naming contexts:  {}", d.naming_contexts.join("; "));
                println!("bases:            {}", c.bases.join("; "));
                println!(
                    "paging:           {}",
                    if c.paging {
                        format!("supported (page size {})", s.config().page_size)
                    } else {
                        "not supported (one unpaged search per base)".to_string()
                    }
                );
                println!("delta:            {}", d.delta);
                println!("entries in scope: {}", c.entries_in_scope);
                ExitCode::SUCCESS
            }
            Err(e) => read_error(e),
        },
        Source::Ldif(s) => {
            let d = match s.describe().await {
                Ok(d) => d,
                Err(e) => return read_error(e),
            };
            let mut counter = Counter(0);
            if let Err(e) = s.full_read(&mut counter).await {
                return read_error(e);
            }
            println!("server:           {} at {}", d.kind, d.location);
            println!("naming contexts:  {}", d.naming_contexts.join("; "));
            println!("paging:           not applicable");
            println!("delta:            {}", d.delta);
            println!("entries in scope: {}", counter.0);
            ExitCode::SUCCESS
        }
    }
}

struct Counter(u64);

impl EntrySink for Counter {
    fn entry(&mut self, _: Entry) -> Result<(), SinkError> {
        self.0 += 1;
        Ok(())
    }
    fn deleted(&mut self, _: Anchor) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Writes what a read produces to stdout.
enum Printer {
    Jsonl(BufWriter<Stdout>),
    /// LDIF has no record for "deleted, DN unknown": deletions are listed as comments after
    /// the entries, which keeps the output valid LDIF.
    Ldif(LdifWriter<BufWriter<Stdout>>, Vec<Anchor>),
}

impl Printer {
    fn new(format: Format) -> Self {
        let out = BufWriter::new(std::io::stdout());
        match format {
            Format::Jsonl => Printer::Jsonl(out),
            Format::Ldif => Printer::Ldif(LdifWriter::new(out), Vec::new()),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut out = match self {
            Printer::Jsonl(out) => out,
            Printer::Ldif(w, deleted) => {
                let mut out = w.into_inner();
                for a in deleted {
                    writeln!(out, "# deleted: anchor {}", a.to_immutable_id())?;
                }
                out
            }
        };
        out.flush()
    }
}

impl EntrySink for Printer {
    fn entry(&mut self, entry: Entry) -> Result<(), SinkError> {
        match self {
            Printer::Jsonl(out) => writeln!(out, "{}", entry_json(&entry))?,
            Printer::Ldif(w, _) => w.write_entry(&entry)?,
        }
        Ok(())
    }

    fn deleted(&mut self, anchor: Anchor) -> Result<(), SinkError> {
        match self {
            Printer::Jsonl(out) => writeln!(
                out,
                "{{\"anchor\":{},\"deleted\":true}}",
                json_str(&anchor.to_immutable_id())
            )?,
            Printer::Ldif(_, deleted) => deleted.push(anchor),
        }
        Ok(())
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `{"anchor": ImmutableId, "dn": ..., "attributes": {name: [text | {"base64": ...}]}}`, keys
/// in that order and attributes in the source's order. The anchor is written as its
/// ImmutableId (base64, or the text of an entryUUID or nsUniqueId), as `preview` takes it.
pub(crate) fn entry_json(entry: &Entry) -> String {
    let mut s = format!(
        "{{\"anchor\":{},\"dn\":{},\"attributes\":{{",
        json_str(&entry.anchor.to_immutable_id()),
        json_str(&entry.dn)
    );
    for (i, (name, values)) in entry.attributes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&json_str(name.as_str()));
        s.push_str(":[");
        for (j, v) in values.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            match v {
                AttributeValue::Text(t) => s.push_str(&json_str(t)),
                AttributeValue::Binary(b) => {
                    s.push_str("{\"base64\":");
                    s.push_str(&json_str(&B64.encode(b)));
                    s.push('}');
                }
            }
        }
        s.push(']');
    }
    s.push_str("}}");
    s
}

async fn read(source: Source, format: Format, cookie_file: Option<&Path>) -> ExitCode {
    let mut printer = Printer::new(format);
    let src = source.as_dyn();
    let previous = match cookie_file {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) if !bytes.is_empty() => Some(Cookie::new(bytes)),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return read_error(format!(
                    "cannot read the cookie file {}: {e}",
                    path.display()
                ))
            }
        },
        None => None,
    };
    let mut next_cookie = None;
    let mut need_full = true;
    if let Some(cookie) = previous {
        match src.delta_read(&cookie, &mut printer).await {
            Ok(DeltaRead::Changes(d)) => {
                eprintln!("delta: {} changed, {} deleted", d.changed, d.deleted);
                next_cookie = Some(d.cookie);
                need_full = false;
            }
            Ok(DeltaRead::FullReadRequired { reason }) => {
                eprintln!("note: full read instead of a delta: {reason}");
            }
            Err(e) => return source_error(e),
        }
    }
    if need_full {
        match src.full_read(&mut printer).await {
            Ok(s) => {
                if cookie_file.is_some() {
                    eprintln!("full read: {} entries", s.entries);
                }
                next_cookie = s.cookie;
            }
            Err(e) => return source_error(e),
        }
    }
    if let Err(e) = printer.finish() {
        return write_error(e);
    }
    if let Some(path) = cookie_file {
        let bytes = next_cookie.map(Cookie::into_bytes).unwrap_or_default();
        let tmp = path.with_extension("partnersync-tmp");
        if let Err(e) = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path)) {
            return read_error(format!(
                "cannot write the cookie file {}: {e}",
                path.display()
            ));
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_documented_shape() {
        let mut e = Entry::new(
            Anchor::from_bytes(vec![1, 2, 3]).unwrap(),
            "cn=Zoë \"Z\",dc=x",
        );
        e.attributes.insert("cn", "Zoë");
        e.attributes
            .insert("objectGUID", AttributeValue::Binary(vec![0xff, 0]));
        e.attributes.insert("cn", "Z");
        let line = entry_json(&e);
        assert_eq!(
            line,
            r#"{"anchor":"AQID","dn":"cn=Zoë \"Z\",dc=x","attributes":{"cn":["Zoë","Z"],"objectGUID":[{"base64":"/wA="}]}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["attributes"]["cn"][1], "Z");
        // An entryUUID anchor is its text, as `preview` and Graph take it.
        let uuid = "3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041";
        let u = Entry::new(Anchor::from_uuid_str(uuid).unwrap(), "uid=u,dc=x");
        assert!(
            entry_json(&u).starts_with(&format!(r#"{{"anchor":"{uuid}","dn""#)),
            "{}",
            entry_json(&u)
        );
    }

    #[test]
    fn the_source_table_is_tagged_by_kind() {
        let f: ConfigFile =
            toml::from_str("dialect = \"x\"\n[source]\nkind = \"ldif\"\npath = \"data/p.ldif\"\n")
                .unwrap();
        assert!(matches!(f.source, Some(SourceSection::Ldif(_))));
        let f: ConfigFile = toml::from_str(
            "[source]\nkind = \"ldap\"\nurl = \"ldaps://dc1\"\nbase_dns = [\"DC=x\"]\n",
        )
        .unwrap();
        assert!(matches!(f.source, Some(SourceSection::Ldap(_))));
        let err =
            toml::from_str::<ConfigFile>("[source]\nkind = \"ldap\"\nurl = \"x\"\ntypo = 1\n")
                .err()
                .unwrap();
        assert!(err.to_string().contains("typo"), "{err}");
        assert!(toml::from_str::<ConfigFile>("[source]\nkind = \"x500\"\n").is_err());
        let f: ConfigFile = toml::from_str("[[rule]]\nname = \"r\"\n").unwrap();
        assert!(f.source.is_none());
    }
}
