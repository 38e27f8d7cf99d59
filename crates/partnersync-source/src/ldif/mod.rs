//! RFC 2849 LDIF: a streaming parser for content records and a writer.
//!
//! What the parser accepts:
//! - an optional `version: 1` (also at the start of later records, so concatenated exports
//!   parse); any other version is an error;
//! - records separated by blank lines, each starting with `dn:` (or `dn::` base64);
//! - folded lines (a line starting with one space continues the previous one), `#` comments
//!   (including their folded continuations), LF or CRLF line ends, a UTF-8 byte order mark;
//! - `name: value` (UTF-8 text), `name:: base64` (text if it decodes to UTF-8, binary
//!   otherwise), repeated names for multiple values; attribute options are kept as part of
//!   the name (`description;lang-de`), except `;binary`, a transfer option, which is dropped;
//! - `changetype: add` directly after `dn:` (the record is then read as an entry).
//!
//! What it rejects, with the file, the line and what to do: `:<` URL values (nothing is
//! fetched), other change records and `control:` lines, malformed lines and attribute names,
//! invalid base64, non-UTF-8 plain values, UTF-16 files, a missing blank line between records.

mod parser;
mod writer;

#[cfg(test)]
mod tests;

pub use parser::{parse_entries, parse_records, LdifEntries, LdifParser, LdifRecord};
pub use writer::{entries_to_string, LdifWriter};
