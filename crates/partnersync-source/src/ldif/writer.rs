use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use partnersync_core::{AttributeValue, Attributes, Entry};

use super::parser::is_attribute_description;
use crate::error::SourceError;

/// The longest line written; longer lines are folded (RFC 2849 §2), as OpenLDAP's tools do.
const LINE_WIDTH: usize = 76;

/// Writes entries as RFC 2849 LDIF content records.
///
/// Values that are not SAFE-STRINGs — binary values, anything non-ASCII, values that start
/// with a space, `:` or `<`, or end with a space — are base64-encoded after `::`; lines
/// longer than 76 bytes are folded. What it writes, [`LdifParser`](super::LdifParser) reads
/// back to equal entries — with one exception that LDIF cannot express: a
/// [`AttributeValue::Binary`] whose bytes happen to be valid UTF-8 reads back as text (see
/// [`AttributeValue::from_bytes`]).
pub struct LdifWriter<W: Write> {
    out: W,
    records: u64,
    line: Vec<u8>,
}

impl<W: Write> LdifWriter<W> {
    /// A writer into `out`. The first record is preceded by `version: 1`.
    pub fn new(out: W) -> Self {
        LdifWriter {
            out,
            records: 0,
            line: Vec::new(),
        }
    }

    /// Writes an entry's DN and attributes. The anchor is not written separately: it is read
    /// back from the anchor attribute (such as `objectGUID`), which should be among the
    /// attributes.
    pub fn write_entry(&mut self, entry: &Entry) -> Result<(), SourceError> {
        self.write_record(&entry.dn, &entry.attributes)
    }

    /// Writes one record.
    ///
    /// Fails, before writing anything, when an attribute name is not a valid attribute
    /// description or is one that LDIF reserves (`dn`, `changetype`, `control`).
    pub fn write_record(&mut self, dn: &str, attributes: &Attributes) -> Result<(), SourceError> {
        for (name, _) in attributes.iter() {
            let reason = if ["dn", "changetype", "control"]
                .iter()
                .any(|r| name.matches(r))
            {
                Some("is reserved by LDIF")
            } else if !is_attribute_description(name.as_str()) {
                Some("is not a valid LDIF attribute description")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SourceError::UnwritableAttribute {
                    dn: dn.to_string(),
                    attribute: name.to_string(),
                    reason,
                });
            }
        }
        let mut text = Vec::new();
        if self.records == 0 {
            text.extend_from_slice(b"version: 1\n");
        }
        text.push(b'\n');
        self.push_line(&mut text, "dn", dn.as_bytes(), false);
        for (name, values) in attributes.iter() {
            for value in values {
                let binary = matches!(value, AttributeValue::Binary(_));
                self.push_line(&mut text, name.as_str(), value.as_bytes(), binary);
            }
        }
        self.out
            .write_all(&text)
            .map_err(|source| SourceError::Write { source })?;
        self.records += 1;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), SourceError> {
        self.out
            .flush()
            .map_err(|source| SourceError::Write { source })
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Appends `name: value` or `name:: base64`, folded, to `text`.
    fn push_line(&mut self, text: &mut Vec<u8>, name: &str, value: &[u8], binary: bool) {
        self.line.clear();
        self.line.extend_from_slice(name.as_bytes());
        if binary || !is_safe_string(value) {
            self.line.extend_from_slice(b":: ");
            self.line
                .extend_from_slice(STANDARD.encode(value).as_bytes());
        } else if value.is_empty() {
            self.line.push(b':');
        } else {
            self.line.extend_from_slice(b": ");
            self.line.extend_from_slice(value);
        }
        // Everything on the line is ASCII, so folding at any byte is safe.
        let mut rest = self.line.as_slice();
        let mut width = LINE_WIDTH;
        loop {
            let take = rest.len().min(width);
            let (head, tail) = rest.split_at(take);
            text.extend_from_slice(head);
            text.push(b'\n');
            if tail.is_empty() {
                break;
            }
            text.push(b' ');
            rest = tail;
            width = LINE_WIDTH - 1;
        }
    }
}

/// Writes entries to a string of LDIF.
pub fn entries_to_string<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<String, SourceError> {
    let mut writer = LdifWriter::new(Vec::new());
    for entry in entries {
        writer.write_entry(entry)?;
    }
    // Only ASCII is ever written: names are validated and other values are base64.
    String::from_utf8(writer.into_inner()).map_err(|e| SourceError::Write {
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// RFC 2849's SAFE-STRING (ASCII without NUL, LF and CR, not starting with a space, `:` or
/// `<`), minus values ending with a space, which the RFC says SHOULD be base64-encoded.
pub(crate) fn is_safe_string(value: &[u8]) -> bool {
    let safe_char = |b: &u8| matches!(b, 0x01..=0x09 | 0x0b..=0x0c | 0x0e..=0x7f);
    match (value.first(), value.last()) {
        (None, _) => true,
        (Some(b' ' | b':' | b'<'), _) | (_, Some(b' ')) => false,
        _ => value.iter().all(safe_char),
    }
}
