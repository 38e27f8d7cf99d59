use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use partnersync_core::{Anchor, AttributeValue, Attributes, Entry};

use crate::anchor_policy::AnchorPolicy;
use crate::error::{LdifProblem, SourceError};

/// One LDIF content record: a DN and its attributes, before an anchor is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifRecord {
    /// The DN (decoded from base64 when written `dn::`).
    pub dn: String,
    /// The attributes, in file order; `;binary` options are dropped from the names.
    pub attributes: Attributes,
    /// The line (1-based) of the record's `dn:`.
    pub line: usize,
}

/// A streaming RFC 2849 parser: an iterator over the content records of an LDIF document,
/// reading one line at a time, so a file of any size is parsed in constant memory (beyond the
/// record being built).
///
/// After the first error the iterator ends.
pub struct LdifParser<R> {
    lines: LogicalLines<R>,
    done: bool,
}

impl<R: BufRead> LdifParser<R> {
    /// Parses LDIF from `reader`; `file` names it in errors (a path, or a label such as
    /// `<stdin>`).
    pub fn new(reader: R, file: impl Into<PathBuf>) -> Self {
        LdifParser {
            lines: LogicalLines {
                reader,
                file: file.into(),
                line_no: 0,
                current: None,
                pending_blank: false,
                eof: false,
                buf: Vec::new(),
            },
            done: false,
        }
    }

    /// The file name used in errors.
    pub fn file(&self) -> &Path {
        &self.lines.file
    }

    fn error(&self, line: usize, problem: LdifProblem) -> SourceError {
        SourceError::Ldif {
            file: self.lines.file.clone(),
            line,
            problem,
        }
    }

    fn next_record(&mut self) -> Result<Option<LdifRecord>, SourceError> {
        let mut record: Option<LdifRecord> = None;
        // Whether the previous line was the record's `dn:`: only there may `changetype:` be.
        let mut after_dn = false;
        loop {
            let (line, text) = match self.lines.next_logical()? {
                None => return Ok(record),
                Some(Logical::Blank) if record.is_some() => return Ok(record),
                Some(Logical::Blank) => continue,
                Some(Logical::Content { line, text }) => (line, text),
            };
            let (name, raw) = split_line(&text).map_err(|p| self.error(line, p))?;
            let name = normalize_name(name).map_err(|p| self.error(line, p))?;
            let Some(rec) = record.as_mut() else {
                if name.eq_ignore_ascii_case("version") {
                    let version = decode_text(&name, raw).map_err(|p| self.error(line, p))?;
                    if version.trim() != "1" {
                        return Err(self.error(line, LdifProblem::UnsupportedVersion { version }));
                    }
                    continue;
                }
                if !name.eq_ignore_ascii_case("dn") {
                    return Err(self.error(line, LdifProblem::ExpectedDn { found: name }));
                }
                let dn = decode_text("dn", raw).map_err(|p| self.error(line, p))?;
                record = Some(LdifRecord {
                    dn,
                    attributes: Attributes::new(),
                    line,
                });
                after_dn = true;
                continue;
            };
            if name.eq_ignore_ascii_case("dn") {
                return Err(self.error(line, LdifProblem::SecondDn));
            }
            if name.eq_ignore_ascii_case("control") {
                return Err(self.error(line, LdifProblem::Control));
            }
            if name.eq_ignore_ascii_case("changetype") {
                let changetype = decode_text(&name, raw).map_err(|p| self.error(line, p))?;
                let changetype = changetype.trim().to_string();
                if !after_dn {
                    return Err(self.error(line, LdifProblem::MisplacedChangetype));
                }
                if !changetype.eq_ignore_ascii_case("add") {
                    return Err(self.error(line, LdifProblem::ChangeRecord { changetype }));
                }
                after_dn = false;
                continue;
            }
            after_dn = false;
            let value = decode_value(&name, raw).map_err(|p| self.error(line, p))?;
            rec.attributes.insert(name, value);
        }
    }
}

impl<R: BufRead> Iterator for LdifParser<R> {
    type Item = Result<LdifRecord, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Entries from an LDIF document: records with their anchor chosen by an [`AnchorPolicy`],
/// checked for duplicate anchors. Yields the `dn:` line with each entry. After the first
/// error the iterator ends.
pub struct LdifEntries<'p, R> {
    records: LdifParser<R>,
    policy: &'p AnchorPolicy,
    seen: HashMap<Anchor, usize>,
}

impl<'p, R: BufRead> LdifEntries<'p, R> {
    /// Entries from `reader` (named `file` in errors), anchored by `policy`.
    pub fn new(reader: R, file: impl Into<PathBuf>, policy: &'p AnchorPolicy) -> Self {
        LdifEntries {
            records: LdifParser::new(reader, file),
            policy,
            seen: HashMap::new(),
        }
    }

    fn entry_of(&mut self, record: LdifRecord) -> Result<(Entry, usize), SourceError> {
        let file = || self.records.file().to_path_buf();
        let anchor = self
            .policy
            .anchor_of(&record.attributes)
            .map_err(|problem| SourceError::Anchor {
                file: file(),
                line: record.line,
                dn: record.dn.clone(),
                problem,
            })?;
        if let Some(first_line) = self.seen.insert(anchor.clone(), record.line) {
            return Err(SourceError::DuplicateAnchor {
                file: file(),
                line: record.line,
                dn: record.dn,
                anchor,
                first_line,
            });
        }
        let line = record.line;
        Ok((
            Entry {
                anchor,
                dn: record.dn,
                attributes: record.attributes,
            },
            line,
        ))
    }
}

impl<R: BufRead> Iterator for LdifEntries<'_, R> {
    type Item = Result<(Entry, usize), SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(e) => return Some(Err(e)),
        };
        let result = self.entry_of(record);
        if result.is_err() {
            self.records.done = true;
        }
        Some(result)
    }
}

/// Parses a whole LDIF document into entries (anchored by `policy`). `file` names the
/// document in errors.
pub fn parse_entries(
    ldif: &[u8],
    file: impl Into<PathBuf>,
    policy: &AnchorPolicy,
) -> Result<Vec<Entry>, SourceError> {
    LdifEntries::new(ldif, file, policy)
        .map(|r| r.map(|(entry, _)| entry))
        .collect()
}

/// Parses a whole LDIF document into records (no anchors needed). `file` names the
/// document in errors.
pub fn parse_records(
    ldif: &[u8],
    file: impl Into<PathBuf>,
) -> Result<Vec<LdifRecord>, SourceError> {
    LdifParser::new(ldif, file).collect()
}

/// A logical line: physical lines with their continuations joined, or a record separator.
enum Logical {
    Content { line: usize, text: Vec<u8> },
    Blank,
}

struct Current {
    line: usize,
    text: Vec<u8>,
    comment: bool,
}

/// Joins folded lines (RFC 2849 §2: a line starting with one space continues the previous
/// one), drops comments (and their continuations) and strips CR before LF.
struct LogicalLines<R> {
    reader: R,
    file: PathBuf,
    line_no: usize,
    current: Option<Current>,
    pending_blank: bool,
    eof: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> LogicalLines<R> {
    fn take_current(&mut self) -> Option<Logical> {
        match self.current.take() {
            Some(Current {
                line,
                text,
                comment: false,
            }) => Some(Logical::Content { line, text }),
            _ => None,
        }
    }

    fn next_logical(&mut self) -> Result<Option<Logical>, SourceError> {
        loop {
            if self.pending_blank {
                self.pending_blank = false;
                return Ok(Some(Logical::Blank));
            }
            if self.eof {
                return Ok(self.take_current());
            }
            self.buf.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| SourceError::Read {
                    path: self.file.clone(),
                    source,
                })?;
            if read == 0 {
                self.eof = true;
                continue;
            }
            self.line_no += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if self.line_no == 1 {
                if self.buf.starts_with(&[0xff, 0xfe]) || self.buf.starts_with(&[0xfe, 0xff]) {
                    return Err(SourceError::Ldif {
                        file: self.file.clone(),
                        line: 1,
                        problem: LdifProblem::Utf16,
                    });
                }
                if self.buf.starts_with(&[0xef, 0xbb, 0xbf]) {
                    self.buf.drain(..3);
                }
            }
            match self.buf.first() {
                None => {
                    self.pending_blank = true;
                    if let Some(done) = self.take_current() {
                        return Ok(Some(done));
                    }
                }
                Some(b' ') => match self.current.as_mut() {
                    Some(current) => {
                        if !current.comment {
                            current.text.extend_from_slice(&self.buf[1..]);
                        }
                    }
                    // A whitespace-only line between records is taken as blank.
                    None if self.buf.iter().all(|b| b.is_ascii_whitespace()) => {
                        self.pending_blank = true
                    }
                    None => {
                        return Err(SourceError::Ldif {
                            file: self.file.clone(),
                            line: self.line_no,
                            problem: LdifProblem::ContinuationWithoutLine,
                        })
                    }
                },
                Some(first) => {
                    let comment = *first == b'#';
                    let text = if comment {
                        Vec::new()
                    } else {
                        self.buf.clone()
                    };
                    let previous = self.current.replace(Current {
                        line: self.line_no,
                        text,
                        comment,
                    });
                    if let Some(Current {
                        line,
                        text,
                        comment: false,
                    }) = previous
                    {
                        return Ok(Some(Logical::Content { line, text }));
                    }
                }
            }
        }
    }
}

/// How a value is written after the attribute name.
enum RawValue<'a> {
    /// `: value`
    Plain(&'a [u8]),
    /// `:: base64`
    Base64(&'a [u8]),
    /// `:< url`
    Url,
}

/// Splits `name: value`, `name:: base64` or `name:< url`.
fn split_line(text: &[u8]) -> Result<(&[u8], RawValue<'_>), LdifProblem> {
    let colon = text
        .iter()
        .position(|b| *b == b':')
        .ok_or(LdifProblem::MissingColon)?;
    let (name, rest) = (&text[..colon], &text[colon + 1..]);
    let value = match rest.first() {
        Some(b':') => RawValue::Base64(skip_fill(&rest[1..])),
        Some(b'<') => RawValue::Url,
        _ => RawValue::Plain(skip_fill(rest)),
    };
    Ok((name, value))
}

/// Drops the FILL (spaces) between the colon and the value.
fn skip_fill(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| *b != b' ').unwrap_or(s.len());
    &s[start..]
}

/// Checks an attribute description (RFC 4512 §2.5: a name or OID, then `;options`) and drops
/// the `;binary` transfer option (RFC 4522), which says how a value travels, not what it is.
pub(crate) fn normalize_name(name: &[u8]) -> Result<String, LdifProblem> {
    let invalid = || LdifProblem::InvalidAttributeName {
        name: String::from_utf8_lossy(name).into_owned(),
    };
    let text = std::str::from_utf8(name).map_err(|_| invalid())?;
    let mut parts = text.split(';');
    let base = parts.next().unwrap_or_default();
    if !is_attribute_type(base) {
        return Err(invalid());
    }
    let mut normalized = base.to_string();
    for option in parts {
        if option.is_empty()
            || !option
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid());
        }
        if !option.eq_ignore_ascii_case("binary") {
            normalized.push(';');
            normalized.push_str(option);
        }
    }
    Ok(normalized)
}

/// An attribute description as the writer accepts it: valid, and without `;binary`.
pub(crate) fn is_attribute_description(name: &str) -> bool {
    matches!(normalize_name(name.as_bytes()), Ok(n) if n == name)
}

/// A descriptor (`ALPHA *(ALPHA / DIGIT / "-")`) or a numeric OID.
fn is_attribute_type(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() => bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        Some(b) if b.is_ascii_digit() => s
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

fn decode_bytes(attribute: &str, raw: RawValue<'_>) -> Result<Vec<u8>, LdifProblem> {
    match raw {
        RawValue::Plain(bytes) => Ok(bytes.to_vec()),
        RawValue::Base64(encoded) => {
            let end = encoded
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(0, |p| p + 1);
            STANDARD
                .decode(&encoded[..end])
                .map_err(|e| LdifProblem::InvalidBase64 {
                    attribute: attribute.to_string(),
                    reason: e.to_string(),
                })
        }
        RawValue::Url => Err(LdifProblem::UrlValue {
            attribute: attribute.to_string(),
        }),
    }
}

/// A value that must be text (the DN, `version`, `changetype`).
fn decode_text(attribute: &str, raw: RawValue<'_>) -> Result<String, LdifProblem> {
    String::from_utf8(decode_bytes(attribute, raw)?).map_err(|_| LdifProblem::NotUtf8 {
        attribute: attribute.to_string(),
    })
}

/// An attribute value: plain values must be UTF-8 text; base64 values are text when they
/// decode to UTF-8 and binary otherwise.
fn decode_value(attribute: &str, raw: RawValue<'_>) -> Result<AttributeValue, LdifProblem> {
    match raw {
        RawValue::Plain(_) => decode_text(attribute, raw).map(AttributeValue::Text),
        _ => decode_bytes(attribute, raw).map(AttributeValue::from_bytes),
    }
}
