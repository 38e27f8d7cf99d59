use std::io;
use std::path::PathBuf;

use partnersync_core::Anchor;

/// Any error, boxed: what other implementations of the trait (LDAP) report through
/// [`SourceError::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an [`EntrySink`](crate::EntrySink) stopped a read.
pub type SinkError = BoxError;

/// Everything that can go wrong reading a source directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A file could not be opened or read.
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// LDIF output could not be written.
    #[error("cannot write LDIF: {source}")]
    Write {
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The LDIF text is malformed.
    #[error("{}:{line}: {problem}", file.display())]
    Ldif {
        /// The file (or the label given for text that did not come from a file).
        file: PathBuf,
        /// The line (1-based) where the offending (possibly folded) line starts.
        line: usize,
        /// What is wrong and what to do about it.
        problem: LdifProblem,
    },
    /// An LDIF entry has no usable anchor.
    #[error("{}:{line}: entry '{dn}' {problem}", file.display())]
    Anchor {
        /// The file.
        file: PathBuf,
        /// The line where the entry's `dn:` is.
        line: usize,
        /// The entry's DN.
        dn: String,
        /// What is wrong with its anchor.
        problem: AnchorProblem,
    },
    /// Two LDIF entries have the same anchor.
    #[error(
        "{}:{line}: entry '{dn}' has the same anchor ({anchor}) as the entry at line {first_line}; \
         anchors must be unique — check that the anchor attribute was not copied between entries",
        file.display()
    )]
    DuplicateAnchor {
        /// The file.
        file: PathBuf,
        /// The line of the second entry's `dn:`.
        line: usize,
        /// The second entry's DN.
        dn: String,
        /// The shared anchor.
        anchor: Anchor,
        /// The line of the first entry's `dn:`.
        first_line: usize,
    },
    /// An entry cannot be written as LDIF because of one of its attribute names.
    #[error("cannot write entry '{dn}' as LDIF: attribute '{attribute}' {reason}")]
    UnwritableAttribute {
        /// The entry's DN.
        dn: String,
        /// The attribute name.
        attribute: String,
        /// Why it cannot be written.
        reason: &'static str,
    },
    /// The [`EntrySink`](crate::EntrySink) stopped the read.
    #[error("the read was stopped by its consumer: {0}")]
    Sink(#[source] SinkError),
    /// An error from another implementation of [`SourceDirectory`](crate::SourceDirectory)
    /// (for example `partnersync-ldap`); downcast the source for details.
    #[error(transparent)]
    Backend(BoxError),
}

/// What is wrong with a line of LDIF. Each message ends with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdifProblem {
    /// The file starts with a UTF-16 byte order mark.
    #[error(
        "the file is UTF-16 encoded (as `ldifde -u` writes it); LDIF must be UTF-8 — convert it \
         with `iconv -f UTF-16 -t UTF-8`"
    )]
    Utf16,
    /// A line has no `:`.
    #[error(
        "expected 'attribute: value' but the line has no ':'; a line that continues the previous \
         one must start with exactly one space"
    )]
    MissingColon,
    /// The part before `:` is not an attribute description.
    #[error(
        "'{name}' is not a valid attribute name (a letter followed by letters, digits and '-', or \
         an OID, optionally followed by ';options'); check for stray spaces or characters before \
         the ':'"
    )]
    InvalidAttributeName {
        /// The offending text (lossily decoded).
        name: String,
    },
    /// A line starts with a space but there is nothing to continue.
    #[error(
        "the line starts with a space, which continues the previous line, but there is no \
         previous line in this record; remove the leading space"
    )]
    ContinuationWithoutLine,
    /// A record does not start with `dn:`.
    #[error(
        "a record must start with 'dn:' but this one starts with '{found}:'; start each record \
         with its dn and separate records with a blank line"
    )]
    ExpectedDn {
        /// The attribute the record starts with.
        found: String,
    },
    /// A second `dn:` inside one record.
    #[error("a second 'dn:' line inside one record; records must be separated by a blank line")]
    SecondDn,
    /// A change record other than `changetype: add`.
    #[error(
        "this is an LDIF change record ('changetype: {changetype}'); partnersync reads entries \
         (content records) only — export the entries with `ldapsearch -LLL` or `ldifde`, without \
         change records"
    )]
    ChangeRecord {
        /// The change type found.
        changetype: String,
    },
    /// `changetype:` somewhere other than directly after `dn:`.
    #[error(
        "'changetype:' may only appear directly after 'dn:'; move it there (only \
         'changetype: add' is accepted) or remove it"
    )]
    MisplacedChangetype,
    /// A `control:` line.
    #[error(
        "'control:' lines belong to LDIF change records, which partnersync does not read; remove \
         them"
    )]
    Control,
    /// A `:<` URL value.
    #[error(
        "'{attribute}' takes its value from a URL (':<'), which partnersync does not fetch; put \
         the value in the file instead, base64-encoded after '::'"
    )]
    UrlValue {
        /// The attribute (or `dn`).
        attribute: String,
    },
    /// A `::` value that is not base64.
    #[error(
        "the value of '{attribute}' after '::' is not valid base64 ({reason}); re-encode it, for \
         example with `base64 -w0`"
    )]
    InvalidBase64 {
        /// The attribute (or `dn`).
        attribute: String,
        /// What the decoder said.
        reason: String,
    },
    /// A plain (non-base64) value that is not UTF-8.
    #[error(
        "the value of '{attribute}' is not valid UTF-8; write binary or non-UTF-8 values \
         base64-encoded after '::'"
    )]
    NotUtf8 {
        /// The attribute (or `dn`).
        attribute: String,
    },
    /// A `version:` other than 1.
    #[error("LDIF version '{version}' is not supported; only 'version: 1' exists — fix or remove the line")]
    UnsupportedVersion {
        /// The version found.
        version: String,
    },
}

/// What is wrong with an entry's anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorProblem {
    /// None of the anchor attributes is present.
    #[error(
        "has no anchor: none of {} is present; every entry needs a stable, unique identifier — \
         add one of these attributes to the entry or configure another anchor attribute",
        tried.join(", ")
    )]
    Missing {
        /// The attributes looked for, in order.
        tried: Vec<String>,
    },
    /// The anchor attribute has more than one value.
    #[error(
        "has {count} values of its anchor attribute '{attribute}'; an anchor has exactly one value"
    )]
    MultipleValues {
        /// The anchor attribute.
        attribute: String,
        /// How many values it has.
        count: usize,
    },
    /// The anchor attribute's value cannot be turned into an anchor.
    #[error("has an unusable anchor attribute '{attribute}': {reason}")]
    Malformed {
        /// The anchor attribute.
        attribute: String,
        /// Why, and what was expected.
        reason: String,
    },
}
