//! Pure text helpers shared by both expression dialects.
//!
//! Every function here is deterministic (randomness is injected by the caller), never panics on
//! any input, and reports bad input as `Err(String)` with a message that names the offending
//! input and what was expected. Positions and lengths are counted in Unicode scalar values
//! (Rust `char`s), not bytes and not UTF-16 code units as .NET does; the two only differ for
//! characters outside the Basic Multilingual Plane.
//!
//! Where Microsoft's documentation is silent or contradictory, the choice made is stated in the
//! doc comment of the function concerned (look for "Choice:").

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use regex::{Regex, RegexBuilder};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Longest excerpt of an input quoted in an error message.
const MAX_SHOWN: usize = 60;

/// Quote `s` for an error message, truncating very long inputs.
fn show(s: &str) -> String {
    if s.chars().count() <= MAX_SHOWN {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_SHOWN).collect();
        format!("{head:?}…")
    }
}

/// Convert a 1-based count/index given as `i64` to `usize`, saturating on overflow.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(if n < 0 { 0 } else { usize::MAX })
}

// ---------------------------------------------------------------------------------------------
// Case mapping helpers (simple, one-to-one mappings like .NET's invariant culture)
// ---------------------------------------------------------------------------------------------

/// Simple (one-to-one) lower-case mapping, as .NET `char.ToLowerInvariant`.
///
/// Characters whose full lower-case mapping is several characters keep their simple mapping
/// (`İ` → `i`) or stay unchanged.
fn simple_lower(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        _ if c == '\u{130}' => 'i',
        _ => c,
    }
}

/// Simple (one-to-one) upper-case mapping, as .NET `char.ToUpperInvariant` (`ß` stays `ß`).
fn simple_upper(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Title-case mapping of the first letter of a word (.NET `TextInfo.ToTitleCase` special-cases
/// the Latin digraphs DŽ/LJ/NJ/DZ, whose title case differs from their upper case).
fn title_char(c: char) -> char {
    match c {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        _ => simple_upper(c),
    }
}

/// Regexes classifying a single non-ASCII character by Unicode general category.
struct CategoryClassifier {
    letter: Option<Regex>,
    separator: Option<Regex>,
}

fn classifier() -> &'static CategoryClassifier {
    static CLASSIFIER: OnceLock<CategoryClassifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| CategoryClassifier {
        letter: Regex::new(r"\A\p{L}\z").ok(),
        // .NET ToTitleCase word separators: Zs Zl Zp Cc Cf Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So.
        separator: Regex::new(r"\A[\p{Z}\p{Cc}\p{Cf}\p{P}\p{S}]\z").ok(),
    })
}

/// True for general categories Lu, Ll, Lt, Lm, Lo.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    let mut buf = [0u8; 4];
    match &classifier().letter {
        Some(re) => re.is_match(c.encode_utf8(&mut buf)),
        None => c.is_alphabetic(),
    }
}

/// True for the categories .NET `ToTitleCase` treats as word separators.
fn is_title_separator(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_alphanumeric();
    }
    let mut buf = [0u8; 4];
    match &classifier().separator {
        Some(re) => re.is_match(c.encode_utf8(&mut buf)),
        None => !c.is_alphanumeric(),
    }
}

// ---------------------------------------------------------------------------------------------
// NormalizeDiacritics
// ---------------------------------------------------------------------------------------------

/// Provisioning `NormalizeDiacritics(source)`: replace the characters listed in Microsoft's
/// table ("Reference for writing expressions for attribute mappings in Microsoft Entra ID") by
/// their plain equivalents (`ä`→`a`, `æ`→`ae`, `ø`→`oe`, `ß`→`ss`, `ł`→`l`, `Ł`→`L`, …), upper-
/// and lower-case rows alike. Table entries made of a letter plus combining marks (`ā́`, `a̱`)
/// are matched as a whole, longest first. Characters not in the table are kept unchanged (for
/// example `œ` alone, `ŵ`, `đ`).
///
/// Choice: canonically equivalent spellings of a table entry (decomposed NFD input such as
/// `e` + U+0308, or partially composed forms) are folded like the precomposed entry, so the
/// result does not depend on the input's normalization form. The documented table itself is
/// applied exactly.
pub fn normalize_diacritics(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match lookup_diacritic(c, rest) {
            Some((key, rep)) => {
                out.push_str(rep);
                rest = rest.get(key.len()..).unwrap_or("");
            }
            None => {
                out.push(c);
                rest = rest.get(c.len_utf8()..).unwrap_or("");
            }
        }
    }
    out
}

fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or('\0')
}

/// Find the longest table key that `rest` starts with (`first` is `rest`'s first char).
fn lookup_diacritic(first: char, rest: &str) -> Option<(&'static str, &'static str)> {
    let start = DIACRITICS.partition_point(|(k, _)| first_char(k) < first);
    DIACRITICS[start..]
        .iter()
        .take_while(|(k, _)| first_char(k) == first)
        .find(|(k, _)| rest.starts_with(k))
        .copied()
}

// ---------------------------------------------------------------------------------------------
// PCase
// ---------------------------------------------------------------------------------------------

/// Provisioning `PCase(source)` without `wordSeparators`: .NET `TextInfo.ToTitleCase` applied
/// to the lower-cased input.
///
/// Word rules are those of `ToTitleCase`: a word starts at a letter (general category L*);
/// letters, digits, combining marks and apostrophes (`'`) continue it; a word separator (any
/// space, control, format, punctuation or symbol character) ends it. The first letter of each
/// word is title-cased and the rest lower-cased, so `"PABLO GONSALVES (SECOND)"` →
/// `"Pablo Gonsalves (Second)"`, `"o'neil"` → `"O'neil"`, `"1st"` → `"1St"`.
///
/// Choice: plain `ToTitleCase` keeps all-upper-case words unchanged (acronyms), but Microsoft's
/// documented outputs do not ("PABLO" → "Pablo"), so the input is lower-cased first (invariant,
/// one-to-one case mappings).
pub fn pcase_dotnet(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars().map(simple_lower) {
        if !in_word {
            if is_letter(c) {
                out.push(title_char(c));
                in_word = true;
            } else {
                out.push(c);
            }
        } else {
            if c != '\'' && !is_letter(c) && is_title_separator(c) {
                in_word = false;
            }
            out.push(c);
        }
    }
    out
}

/// Provisioning `PCase(source, wordSeparators)`: only the characters of `separators` separate
/// words; the first character of each word is upper-cased and every other character
/// lower-cased. `pcase_with_separators("PINTO-DE'SILVA", " '-")` → `"Pinto-De'Silva"`.
///
/// Choice: an empty `separators` string makes the whole input one word (`"JOHN DOE"` →
/// `"John doe"`); callers that treat an omitted/empty argument as "not specified" should call
/// [`pcase_dotnet`] instead.
pub fn pcase_with_separators(s: &str, separators: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if separators.contains(c) {
            out.push(c);
            at_word_start = true;
        } else if at_word_start {
            out.push(title_char(c));
            at_word_start = false;
        } else {
            out.push(simple_lower(c));
        }
    }
    out
}

/// Connect `PCase(string)`: "converts the first character of each space delimited word in a
/// string to upper case, and all other characters are converted to lower case"; all-caps words
/// are not preserved (`"TEsT"` → `"Test"`).
///
/// Choice: any white-space character delimits words (space, tab, new line); punctuation does
/// not, so `"o'neil-smith"` → `"O'neil-smith"` (the provisioning default, [`pcase_dotnet`],
/// gives `"O'neil-Smith"`). The first character is upper-cased even when it is not a letter
/// (a no-op for digits and punctuation).
pub fn pcase_connect(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            out.push(c);
            at_word_start = true;
        } else if at_word_start {
            out.push(title_char(c));
            at_word_start = false;
        } else {
            out.push(simple_lower(c));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ReplaceChars / Replace monikers
// ---------------------------------------------------------------------------------------------

/// Parse a Connect `ReplaceChars` pattern `src:target,src:target,…` into a lookup table.
///
/// Documented rules: each source is exactly one character (case-sensitive); a target may be
/// empty (delete the character) or several characters; white space anywhere in the pattern is
/// ignored; `,` and `:` are reserved and cannot be replaced.
///
/// Choices (leniency, since the documentation's own examples need it):
/// * empty items (`,,`, a leading or trailing `,`) and items with an empty source *and* empty
///   target (the lone `:` in `":,Å:A,…"`) are skipped;
/// * an item without `:` that is a single character, immediately followed by another item
///   without `:`, is read as a `source,target` pair: the documented format line
///   `{sourceN},{targetN}` and the documented example's `ö,o` use that form;
/// * when a source appears twice, the later pair wins.
///
/// Errors: a source of more than one character, an empty source with a non-empty target, a
/// target containing `:`, or a lone item without `:`.
pub fn parse_replace_chars_pattern(pattern: &str) -> Result<Vec<(char, String)>, String> {
    let cleaned: String = pattern.chars().filter(|c| !c.is_whitespace()).collect();
    let items: Vec<&str> = cleaned.split(',').collect();
    let mut table: Vec<(char, String)> = Vec::new();
    let mut upsert = |src: char, target: &str| {
        if let Some(entry) = table.iter_mut().find(|(c, _)| *c == src) {
            entry.1 = target.to_owned();
        } else {
            table.push((src, target.to_owned()));
        }
    };
    let mut i = 0;
    while i < items.len() {
        let item = items[i];
        i += 1;
        if item.is_empty() {
            continue;
        }
        match item.split_once(':') {
            Some((src, target)) => {
                if target.contains(':') {
                    return Err(format!(
                        "ReplaceChars pattern {}: pair {} has more than one ':' (':' and ',' \
                         are reserved and cannot be replaced)",
                        show(pattern),
                        show(item)
                    ));
                }
                let mut chars = src.chars();
                match (chars.next(), chars.next()) {
                    (None, _) if target.is_empty() => continue,
                    (None, _) => {
                        return Err(format!(
                            "ReplaceChars pattern {}: pair {} has an empty source; expected \
                             exactly one character before ':'",
                            show(pattern),
                            show(item)
                        ))
                    }
                    (Some(c), None) => upsert(c, target),
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "ReplaceChars pattern {}: source {} of pair {} must be exactly one \
                             character",
                            show(pattern),
                            show(src),
                            show(item)
                        ))
                    }
                }
            }
            None => {
                let mut chars = item.chars();
                let single = match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => None,
                };
                let next = items
                    .get(i)
                    .copied()
                    .filter(|n| !n.is_empty() && !n.contains(':'));
                match (single, next) {
                    (Some(c), Some(target)) => {
                        upsert(c, target);
                        i += 1;
                    }
                    _ => {
                        return Err(format!(
                            "ReplaceChars pattern {}: item {} is not a 'source:target' pair",
                            show(pattern),
                            show(item)
                        ))
                    }
                }
            }
        }
    }
    Ok(table)
}

/// Connect `ReplaceChars(string, pattern)` with a table from [`parse_replace_chars_pattern`]:
/// every character that is a source in `table` is replaced by its target; other characters are
/// kept. Replacement is a single pass (targets are not re-scanned).
pub fn replace_chars(s: &str, table: &[(char, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match table.iter().find(|(src, _)| *src == c) {
            Some((_, target)) => out.push_str(target),
            None => out.push(c),
        }
    }
    out
}

/// Connect `Replace` monikers: the two-character sequences backslash+`n`, backslash+`r` and
/// backslash+`t` become line feed, carriage return and tab.
///
/// Choice: no other backslash sequence is special (a backslash not followed by `n`, `r` or `t`
/// is kept as is, and `\\` is not an escape here; string-literal escapes are the lexer's job).
pub fn replace_monikers(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let control = match chars.peek() {
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                Some('t') => Some('\t'),
                _ => None,
            };
            if let Some(control) = control {
                chars.next();
                out.push(control);
                continue;
            }
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Word
// ---------------------------------------------------------------------------------------------

/// `Word(string, n, delimiters)` (both dialects): the `n`-th word (1-based), where any character
/// of `delimiters` separates words. `n < 1` or fewer than `n` words → `""`.
/// `word("The quick brown fox", 3, " ")` → `"brown"`.
///
/// Choice (undocumented): consecutive delimiters count as one and leading/trailing delimiters
/// are ignored, i.e. words are the non-empty runs of non-delimiter characters
/// (`word("a,,b", 2, ",")` → `"b"`); the docs call words "strings of characters". A string
/// without any delimiter is one word. An empty `delimiters` makes the whole string one word.
pub fn word(s: &str, n: i64, delimiters: &str) -> String {
    if n < 1 {
        return String::new();
    }
    let index = to_usize(n - 1);
    s.split(|c: char| delimiters.contains(c))
        .filter(|w| !w.is_empty())
        .nth(index)
        .unwrap_or("")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// GUID / SID
// ---------------------------------------------------------------------------------------------

/// Connect `StringFromGuid(bin)`: 16 bytes in .NET `Guid` byte order (the first three fields
/// little-endian, as stored in AD `objectGUID`) → lower-case "D" format
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as .NET `Guid.ToString()`.
pub fn string_from_guid(bytes: &[u8]) -> Result<String, String> {
    let b: &[u8; 16] = bytes.try_into().map_err(|_| {
        format!(
            "StringFromGuid: expected a 16-byte binary GUID, got {} bytes",
            bytes.len()
        )
    })?;
    let d1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let d2 = u16::from_le_bytes([b[4], b[5]]);
    let d3 = u16::from_le_bytes([b[6], b[7]]);
    let mut out = String::with_capacity(36);
    // Writing to a String cannot fail.
    let _ = write!(out, "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-", b[8], b[9]);
    for byte in &b[10..] {
        let _ = write!(out, "{byte:02x}");
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Connect `CGuid(str)`: parse a GUID string into its 16-byte binary form in .NET `Guid` byte
/// order (first three fields little-endian), the inverse of [`string_from_guid`].
///
/// Accepted forms (hex digits in either case, surrounding white space ignored as .NET
/// `Guid.Parse` does): `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, the same in braces `{…}`, and 32
/// hex digits without hyphens.
pub fn guid_to_bytes(s: &str) -> Result<Vec<u8>, String> {
    let err = || {
        format!(
            "CGuid: {} is not a GUID; expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, \
             {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}} or 32 hex digits",
            show(s)
        )
    };
    let t = s.trim();
    let inner = match t.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(err)?,
        None => t,
    };
    let raw = inner.as_bytes();
    let digits: Vec<u8> = match raw.len() {
        36 => {
            for (i, &c) in raw.iter().enumerate() {
                let hyphen_pos = matches!(i, 8 | 13 | 18 | 23);
                if hyphen_pos != (c == b'-') {
                    return Err(err());
                }
            }
            raw.iter().copied().filter(|&c| c != b'-').collect()
        }
        32 if !t.starts_with('{') => raw.to_vec(),
        _ => return Err(err()),
    };
    let mut bytes = Vec::with_capacity(16);
    for pair in digits.chunks(2) {
        match pair {
            [h, l] => match (hex_val(*h), hex_val(*l)) {
                (Some(h), Some(l)) => bytes.push(h << 4 | l),
                _ => return Err(err()),
            },
            _ => return Err(err()),
        }
    }
    if bytes.len() != 16 {
        return Err(err());
    }
    bytes[0..4].reverse();
    bytes[4..6].reverse();
    bytes[6..8].reverse();
    Ok(bytes)
}

/// Connect `IsGuid(str)`: true iff [`guid_to_bytes`] would succeed.
pub fn is_guid(s: &str) -> bool {
    guid_to_bytes(s).is_ok()
}

/// `StringFromSid(bin)`: binary security identifier → `S-1-5-21-…` string, as .NET
/// `SecurityIdentifier.ToString()`: revision byte (must be 1), sub-authority count (0–15),
/// 48-bit big-endian identifier authority (printed in decimal), then that many little-endian
/// 32-bit sub-authorities.
///
/// Choice: the byte length must be exactly `8 + 4 × count`; trailing bytes are an error.
pub fn string_from_sid(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() < 8 {
        return Err(format!(
            "StringFromSid: expected a binary SID of at least 8 bytes, got {} bytes",
            bytes.len()
        ));
    }
    let revision = bytes[0];
    if revision != 1 {
        return Err(format!(
            "StringFromSid: unsupported SID revision {revision}; expected 1"
        ));
    }
    let count = usize::from(bytes[1]);
    if count > 15 {
        return Err(format!(
            "StringFromSid: SID claims {count} sub-authorities; at most 15 are allowed"
        ));
    }
    let expected = 8 + 4 * count;
    if bytes.len() != expected {
        return Err(format!(
            "StringFromSid: a SID with {count} sub-authorities is {expected} bytes long, got {} \
             bytes",
            bytes.len()
        ));
    }
    let authority = bytes[2..8]
        .iter()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    let mut out = format!("S-{revision}-{authority}");
    for chunk in bytes[8..].chunks_exact(4) {
        let sub = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let _ = write!(out, "-{sub}");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Base64 / UTF-8 hex
// ---------------------------------------------------------------------------------------------

/// Text encoding of the bytes decoded by `ConvertFromBase64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Base64TextEncoding {
    /// UTF-16 little-endian (.NET `Encoding.Unicode`); the documented default.
    #[default]
    Unicode,
    /// UTF-8.
    Utf8,
    /// 7-bit ASCII; bytes above 0x7F decode to `?` (as .NET `Encoding.ASCII`).
    Ascii,
}

/// Base64 engine: standard alphabet, padding optional, non-zero trailing bits tolerated.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// `ConvertToBase64(str)` (both dialects): Base64 (standard alphabet, padded) of the string's
/// UTF-16LE bytes. `"Hello world!"` → `"SABlAGwAbABvACAAdwBvAHIAbABkACEA"`.
pub fn to_base64_utf16le(s: &str) -> String {
    let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Connect `ConvertFromBase64(source[, encoding])`: decode Base64, then decode the bytes as
/// text in `encoding` (`Unicode` = UTF-16LE is the documented default).
///
/// Choices: white space (space, tab, CR, LF) inside the Base64 text is ignored and `=` padding
/// is optional; undecodable text bytes become U+FFFD (UTF-16LE: unpaired surrogates and an odd
/// trailing byte; UTF-8: invalid sequences) or `?` (ASCII: bytes above 0x7F), like .NET's
/// decoders. Invalid Base64 is an error.
pub fn from_base64(s: &str, encoding: Base64TextEncoding) -> Result<String, String> {
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    let bytes = LENIENT_BASE64
        .decode(compact.as_bytes())
        .map_err(|e| format!("ConvertFromBase64: {} is not valid Base64 ({e})", show(s)))?;
    Ok(match encoding {
        Base64TextEncoding::Utf8 => String::from_utf8_lossy(&bytes).into_owned(),
        Base64TextEncoding::Ascii => bytes
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
            .collect(),
        Base64TextEncoding::Unicode => {
            let units = bytes
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]));
            let mut out: String = char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            if bytes.len() % 2 == 1 {
                out.push(char::REPLACEMENT_CHARACTER);
            }
            out
        }
    })
}

/// `ConvertToUTF8Hex(str)` (both dialects): upper-case hexadecimal of the UTF-8 bytes.
/// `"Hello world!"` → `"48656C6C6F20776F726C6421"`.
pub fn to_utf8_hex(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

/// Connect `ConvertFromUTF8Hex(str)`: hexadecimal UTF-8 bytes (either case) → text.
/// `"48656C6C6F20776F726C6421"` → `"Hello world!"`.
///
/// Errors: an odd number of digits or a non-hex character. Choice: byte sequences that are not
/// valid UTF-8 decode to U+FFFD (as .NET `Encoding.UTF8.GetString`) rather than failing.
pub fn from_utf8_hex(s: &str) -> Result<String, String> {
    let raw = s.as_bytes();
    if raw.len() % 2 == 1 {
        return Err(format!(
            "ConvertFromUTF8Hex: {} has an odd number of characters; expected pairs of hex digits",
            show(s)
        ));
    }
    let mut bytes = Vec::with_capacity(raw.len() / 2);
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        match (hex_val(pair[0]), hex_val(pair[1])) {
            (Some(h), Some(l)) => bytes.push(h << 4 | l),
            _ => {
                return Err(format!(
                    "ConvertFromUTF8Hex: {} is not hexadecimal (bad digit pair at position {})",
                    show(s),
                    i * 2 + 1
                ))
            }
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Distinguished names (RFC 4514, tolerant of RFC 1779/2253 spellings)
// ---------------------------------------------------------------------------------------------

/// Split a distinguished name into its RDNs, left to right, each as `(attribute type, value)`
/// with the value unescaped.
///
/// Accepted syntax: RFC 4514 (`\,` `\+` `\"` `\\` `\<` `\>` `\;` `\=` `\#` `\ ` escapes and
/// `\XX` hex escapes, where consecutive hex escapes form UTF-8), plus the older RFC 1779/2253
/// forms Microsoft's examples use: white space around `,`, `+` and `=`
/// (`ou=US, dc=contoso`), `;` as an RDN separator and quoted values (`cn="Doe, John"`).
/// Unescaped leading and trailing spaces of a value are insignificant and dropped; a trailing
/// separator (`cn=Joe,ou=x,`) is tolerated; `""` gives no components.
///
/// Choices: for a multi-valued RDN (`cn=a+sn=b`) only its first attribute/value pair is
/// returned, so indexes always count RDNs; attribute types are returned as written (no case
/// folding); a value starting with `#` (BER hex form) is returned as literal text.
///
/// Errors: a component without `=`, an empty attribute type, a dangling `\`, an unterminated
/// quoted value, text after a closing quote, or hex escapes that are not valid UTF-8.
pub fn dn_components(dn: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = dn.chars().collect();
    let n = chars.len();
    let err = |what: String| format!("DN {}: {what}", show(dn));
    let mut out: Vec<(String, String)> = Vec::new();
    let mut first_ava_of_rdn = true;
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    if i == n {
        return Ok(out);
    }
    loop {
        // Attribute type.
        i = skip_ws(i);
        let type_start = i;
        while i < n && !matches!(chars[i], '=' | ',' | ';' | '+') {
            i += 1;
        }
        let attr_type: String = chars[type_start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_owned();
        if i == n || chars[i] != '=' {
            return Err(err(format!(
                "component {} at position {} has no '='; expected type=value",
                show(&chars[type_start..i].iter().collect::<String>()),
                type_start + 1
            )));
        }
        if attr_type.is_empty() {
            return Err(err(format!(
                "empty attribute type before '=' at position {}",
                i + 1
            )));
        }
        i = skip_ws(i + 1);
        // Value.
        let mut value: Vec<u8> = Vec::new();
        if i < n && chars[i] == '"' {
            let open = i;
            i += 1;
            loop {
                if i >= n {
                    return Err(err(format!(
                        "quoted value opened at position {} is not closed",
                        open + 1
                    )));
                }
                match chars[i] {
                    '"' => {
                        i += 1;
                        break;
                    }
                    '\\' => i = dn_unescape(&chars, i, &mut value).map_err(err)?,
                    c => {
                        push_char(&mut value, c);
                        i += 1;
                    }
                }
            }
            i = skip_ws(i);
            if i < n && !matches!(chars[i], ',' | ';' | '+') {
                return Err(err(format!(
                    "unexpected {:?} at position {} after a quoted value",
                    chars[i],
                    i + 1
                )));
            }
        } else {
            // Length of `value` up to the last significant (non-space or escaped) character.
            let mut significant = 0;
            while i < n && !matches!(chars[i], ',' | ';' | '+') {
                if chars[i] == '\\' {
                    i = dn_unescape(&chars, i, &mut value).map_err(err)?;
                    significant = value.len();
                } else {
                    push_char(&mut value, chars[i]);
                    if !chars[i].is_whitespace() {
                        significant = value.len();
                    }
                    i += 1;
                }
            }
            value.truncate(significant);
        }
        let value = String::from_utf8(value).map_err(|_| {
            err(format!(
                "escaped bytes of attribute {attr_type} are not UTF-8"
            ))
        })?;
        if first_ava_of_rdn {
            out.push((attr_type, value));
        }
        if i >= n {
            break;
        }
        if chars[i] == '+' {
            first_ava_of_rdn = false;
            i += 1;
        } else {
            first_ava_of_rdn = true;
            i = skip_ws(i + 1);
            if i == n {
                break; // trailing separator
            }
        }
    }
    Ok(out)
}

fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

/// Decode the escape starting at `chars[i] == '\\'`; return the index after it.
fn dn_unescape(chars: &[char], i: usize, out: &mut Vec<u8>) -> Result<usize, String> {
    let hex = |c: Option<&char>| c.and_then(|c| c.to_digit(16));
    match (
        chars.get(i + 1),
        hex(chars.get(i + 1)),
        hex(chars.get(i + 2)),
    ) {
        (_, Some(h), Some(l)) => {
            out.push(u8::try_from(h << 4 | l).unwrap_or(b'?'));
            Ok(i + 3)
        }
        (Some(&c), _, _) => {
            push_char(out, c);
            Ok(i + 2)
        }
        (None, _, _) => Err(format!("dangling '\\' at position {}", i + 1)),
    }
}

/// Connect/Cloud Sync `DNComponent(dn, n)`: the unescaped value of the `n`-th RDN from the left
/// (1-based). `dn_component("cn=Joe,ou=Sales,dc=contoso,dc=com", 1)` → `"Joe"`.
///
/// Choice: `n` out of range (`n < 1` or more than the number of RDNs) gives `""`; a malformed
/// DN is an error. See [`dn_components`] for the accepted syntax.
pub fn dn_component(dn: &str, n: i64) -> Result<String, String> {
    let comps = dn_raw_components(dn)?;
    if n < 1 {
        return Ok(String::new());
    }
    Ok(comps
        .into_iter()
        .nth(to_usize(n - 1))
        .map(|(_, v)| v)
        .unwrap_or_default())
}

/// Connect `DNComponentRev(dn, n[, "DC"])`: the unescaped value of the `n`-th RDN from the
/// right (1-based); with `skip_dc`, components whose attribute type is `dc` (any case) are
/// ignored first. For `cn=Joe,ou=Atlanta,ou=GA,ou=US, dc=contoso,dc=com` both
/// `dn_component_rev(dn, 3, false)` and `dn_component_rev(dn, 1, true)` are `"US"`.
///
/// Choice: `n` out of range gives `""`, as [`dn_component`].
pub fn dn_component_rev(dn: &str, n: i64, skip_dc: bool) -> Result<String, String> {
    let comps = dn_raw_components(dn)?;
    if n < 1 {
        return Ok(String::new());
    }
    Ok(comps
        .into_iter()
        .rev()
        .filter(|(t, _)| !(skip_dc && t.eq_ignore_ascii_case("dc")))
        .nth(to_usize(n - 1))
        .map(|(_, v)| v)
        .unwrap_or_default())
}

/// Splits a DN into (attribute type, value) per RDN, keeping each value exactly as written
/// (escapes such as `\,` and `\0A` stay escaped; only surrounding spaces are trimmed), as
/// Connect's DNComponent does: Microsoft's own cloudFiltered rule searches a component for
/// the literal text `\0ACNF:`. A multi-valued RDN (`cn=a+sn=b`) gives its first value.
pub fn dn_raw_components(dn: &str) -> Result<Vec<(String, String)>, String> {
    let mut rdns: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err(format!("DN {} ends with a lone backslash", show(dn))),
                }
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' | ';' if !quoted => rdns.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("DN {} has an unclosed quote", show(dn)));
    }
    rdns.push(cur);
    if rdns.last().is_some_and(|r| r.trim().is_empty()) && rdns.len() > 1 {
        rdns.pop();
    }
    let mut out = Vec::with_capacity(rdns.len());
    for rdn in rdns {
        let rdn = rdn.trim();
        if rdn.is_empty() {
            return Err(format!("DN {} has an empty component", show(dn)));
        }
        let first = first_unescaped(rdn, '+').map_or(rdn, |i| &rdn[..i]);
        let Some(eq) = first_unescaped(first, '=') else {
            return Err(format!(
                "DN component {} has no '=' (expected type=value)",
                show(rdn)
            ));
        };
        let kind = first[..eq].trim();
        if kind.is_empty() {
            return Err(format!(
                "DN component {} has no attribute type before '='",
                show(rdn)
            ));
        }
        out.push((kind.to_string(), first[eq + 1..].trim().to_string()));
    }
    Ok(out)
}

fn first_unescaped(s: &str, wanted: char) -> Option<usize> {
    let mut escaped = false;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Connect `EscapeDNComponent(str)`: takes one RDN such as `"cn=" & [displayName]` and escapes
/// its value (the text after the first `=`) for use in a DN; the attribute type and `=` are
/// kept as given. Escaped: `, + " \ < > ; =` (backslash + the character), a leading `#`,
/// leading and trailing spaces (`\ `), and NUL, LF, CR as `\00`, `\0A`, `\0D`.
/// `escape_dn_component("cn=Doe, John")` → `"cn=Doe\, John"`.
///
/// Choices: `=` is escaped although RFC 4514 does not require it (Active Directory's DN rules
/// list it as reserved); input without `=` is escaped as a bare value; other characters,
/// including non-ASCII ones, are left unescaped.
pub fn escape_dn_component(s: &str) -> String {
    let (prefix, value) = match s.find('=') {
        Some(pos) => s.split_at(pos + 1),
        None => ("", s),
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(prefix);
    let count = value.chars().count();
    for (idx, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if idx == 0 => out.push_str("\\#"),
            ' ' if idx == 0 || idx + 1 == count => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            '\n' => out.push_str("\\0A"),
            '\r' => out.push_str("\\0D"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// InStr / InStrRev
// ---------------------------------------------------------------------------------------------

fn fold_chars(s: &str) -> Vec<char> {
    s.chars().map(simple_lower).collect()
}

/// Byte offset where the character with 0-based index `index` starts (`s.len()` for the
/// index just past the end), or `None` beyond that.
fn byte_offset(s: &str, index: usize) -> Option<usize> {
    if index == 0 {
        return Some(0);
    }
    s.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(s.len()))
        .nth(index)
}

/// 1-based character position of the byte offset `byte` of `s`.
fn char_position(s: &str, byte: usize) -> i64 {
    let count = s.get(..byte).map_or(0, |prefix| {
        if prefix.is_ascii() {
            prefix.len()
        } else {
            prefix.chars().count()
        }
    });
    i64::try_from(count + 1).unwrap_or(i64::MAX)
}

/// `InStr(check, match[, start[, compare]])` (both dialects), with Visual Basic semantics:
/// the 1-based character position of the first occurrence of `needle` at or after `start`, or
/// 0. `instr("The quick brown fox", "quick", 1, false)` → `5`;
/// `instr("repEated", "e", 3, false)` → `7`.
///
/// Edge cases (as VB's `Strings.InStr`): an empty haystack → 0; an empty needle → `start`
/// (0 when `start` is past the end + 1); `start` beyond the end → 0; `start < 1` is an error.
/// `text_compare` (vbTextCompare) compares case-insensitively with one-to-one lower-case
/// folding (not culture-aware); otherwise (vbBinaryCompare, the default) comparison is exact.
pub fn instr(haystack: &str, needle: &str, start: i64, text_compare: bool) -> Result<i64, String> {
    if start < 1 {
        return Err(format!(
            "InStr: start must be 1 or greater, got {start} (searching {})",
            show(haystack)
        ));
    }
    let from = to_usize(start - 1);
    if haystack.is_empty() {
        return Ok(0);
    }
    let Some(from_byte) = byte_offset(haystack, from) else {
        return Ok(0);
    };
    if needle.is_empty() {
        return Ok(start);
    }
    if !text_compare {
        let found = haystack
            .get(from_byte..)
            .and_then(|rest| memchr::memmem::find(rest.as_bytes(), needle.as_bytes()));
        return Ok(found.map_or(0, |b| char_position(haystack, from_byte + b)));
    }
    let hay = fold_chars(haystack);
    let pat = fold_chars(needle);
    if pat.len() > hay.len() {
        return Ok(0);
    }
    let found = (from..=hay.len() - pat.len()).find(|&p| hay[p..p + pat.len()] == pat[..]);
    Ok(found.map_or(0, |p| i64::try_from(p + 1).unwrap_or(i64::MAX)))
}

/// Connect `InStrRev(check, match[, start[, compare]])`, with Visual Basic semantics: the
/// 1-based character position of the last occurrence of `needle` that ends at or before
/// position `start` (default: the end of `haystack`), or 0.
/// `instr_rev("abbcdbbbef", "bb", None, false)` → `7`.
///
/// Edge cases (as VB's `Strings.InStrRev`): `start` of `None` or `Some(-1)` means the end;
/// `Some(0)` or below -1 is an error; an empty haystack or `start` beyond the end → 0; an empty
/// needle → `start`. `text_compare` as in [`instr`].
pub fn instr_rev(
    haystack: &str,
    needle: &str,
    start: Option<i64>,
    text_compare: bool,
) -> Result<i64, String> {
    let hay_len = haystack.chars().count();
    let start = match start {
        None | Some(-1) => i64::try_from(hay_len).unwrap_or(i64::MAX),
        Some(s) if s >= 1 => s,
        Some(s) => {
            return Err(format!(
                "InStrRev: start must be 1 or greater (or -1 for the end), got {s} (searching {})",
                show(haystack)
            ))
        }
    };
    let end = to_usize(start);
    if hay_len == 0 || end > hay_len {
        return Ok(0);
    }
    if needle.is_empty() {
        return Ok(start);
    }
    if !text_compare {
        let end_byte = byte_offset(haystack, end).unwrap_or(haystack.len());
        let found = haystack
            .get(..end_byte)
            .and_then(|prefix| prefix.rfind(needle));
        return Ok(found.map_or(0, |b| char_position(haystack, b)));
    }
    let hay = fold_chars(haystack);
    let pat = fold_chars(needle);
    if pat.len() > end {
        return Ok(0);
    }
    let found = (0..=end - pat.len())
        .rev()
        .find(|&p| hay[p..p + pat.len()] == pat[..]);
    Ok(found.map_or(0, |p| i64::try_from(p + 1).unwrap_or(i64::MAX)))
}

// ---------------------------------------------------------------------------------------------
// RandomString
// ---------------------------------------------------------------------------------------------

const DIGITS: &str = "0123456789";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
/// The non-alphanumeric characters of Windows' "Password must meet complexity requirements".
const SPECIAL: &str = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/";

/// Maximum length accepted by [`random_string`].
pub const RANDOM_STRING_MAX_LEN: i64 = 256;

/// Uniform-enough index in `0..n` (n > 0) from a 64-bit random value (multiply-shift).
fn pick_index(rng: &mut impl FnMut() -> u64, n: usize) -> usize {
    let wide = u128::from(rng()) * (n as u128);
    usize::try_from(wide >> 64)
        .unwrap_or(0)
        .min(n.saturating_sub(1))
}

/// Provisioning `RandomString(Length, MinimumNumbers, MinimumSpecialCharacters,
/// MinimumCapital, MinimumLowerCase[, CharactersToAvoid])`.
///
/// Draws the required minimum of digits (`0-9`), special characters (the non-alphanumeric set
/// of Windows' password complexity rules: ``~!@#$%^&*_-+=`|\(){}[]:;"'<>,.?/``), capitals
/// (`A-Z`) and lower-case letters (`a-z`), fills the rest from all four classes, then shuffles
/// (Fisher–Yates). Characters in `avoid` are never used. `rng` supplies uniformly random
/// 64-bit values.
///
/// Choices: only ASCII characters are generated; the "rest" is drawn from every class (a
/// minimum of 0 does not exclude a class; use `avoid` for that); a length of 0 with all
/// minimums 0 gives `""`.
///
/// Errors: a negative argument, `len` above 256, minimums summing to more than `len`, or a
/// class (or the whole alphabet) emptied by `avoid` while characters of it are required.
pub fn random_string(
    len: i64,
    min_numbers: i64,
    min_special: i64,
    min_capital: i64,
    min_lower: i64,
    avoid: &str,
    rng: &mut impl FnMut() -> u64,
) -> Result<String, String> {
    let args = [
        ("Length", len),
        ("MinimumNumbers", min_numbers),
        ("MinimumSpecialCharacters", min_special),
        ("MinimumCapital", min_capital),
        ("MinimumLowerCase", min_lower),
    ];
    for (name, value) in args {
        if value < 0 {
            return Err(format!(
                "RandomString: {name} must not be negative, got {value}"
            ));
        }
    }
    if len > RANDOM_STRING_MAX_LEN {
        return Err(format!(
            "RandomString: Length must be at most {RANDOM_STRING_MAX_LEN}, got {len}"
        ));
    }
    let required = min_numbers
        .saturating_add(min_special)
        .saturating_add(min_capital)
        .saturating_add(min_lower);
    if required > len {
        return Err(format!(
            "RandomString: the minimums ({min_numbers} numbers + {min_special} special + \
             {min_capital} capital + {min_lower} lower-case = {required}) exceed Length {len}"
        ));
    }
    let class = |set: &str| -> Vec<char> { set.chars().filter(|c| !avoid.contains(*c)).collect() };
    let classes = [
        ("numbers", class(DIGITS), min_numbers),
        ("special characters", class(SPECIAL), min_special),
        ("capital letters", class(UPPER), min_capital),
        ("lower-case letters", class(LOWER), min_lower),
    ];
    let mut out: Vec<char> = Vec::with_capacity(to_usize(len));
    for (name, chars, min) in &classes {
        if *min > 0 && chars.is_empty() {
            return Err(format!(
                "RandomString: {min} {name} required but CharactersToAvoid {} excludes them all",
                show(avoid)
            ));
        }
        for _ in 0..*min {
            out.push(chars[pick_index(rng, chars.len())]);
        }
    }
    let all: Vec<char> = classes
        .iter()
        .flat_map(|(_, c, _)| c.iter().copied())
        .collect();
    let rest = to_usize(len - required);
    if rest > 0 && all.is_empty() {
        return Err(format!(
            "RandomString: CharactersToAvoid {} excludes every character",
            show(avoid)
        ));
    }
    for _ in 0..rest {
        out.push(all[pick_index(rng, all.len())]);
    }
    for i in (1..out.len()).rev() {
        let j = pick_index(rng, i + 1);
        out.swap(i, j);
    }
    Ok(out.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// .NET regular expressions on the `regex` crate
// ---------------------------------------------------------------------------------------------

/// Compile a .NET-style regular expression (as written in provisioning `Replace` patterns and
/// `REGEX MATCH` scoping clauses, after string-literal unescaping) with the `regex` crate.
///
/// Translated: `(?'name'…)` → `(?<name>…)`; `(?#comment)` dropped; inside character classes,
/// `[`, `&`, `~` and literal `-` are escaped (they are set operators in Rust) and .NET class
/// subtraction `[a-z-[aeiou]]` becomes `[a-z--[aeiou]]`; escapes of punctuation (`\<`, `\>`,
/// `\/`, `\:` …) are literal characters (`\<` and `\>` are word boundaries in Rust); `\e`, `\cX`,
/// octal `\0nn`, `\b` inside a class (backspace) become hex escapes; a `{` that does not start
/// a `{n}`, `{n,}` or `{n,m}` quantifier is a literal.
///
/// Rejected with an error naming the construct and its 1-based character position: lookahead
/// `(?=` `(?!`, lookbehind `(?<=` `(?<!`, atomic groups `(?>`, conditionals `(?(`, balancing
/// groups `(?<a-b>`, backreferences `\1` `\k<name>`, `\G`, `\Z`, the `n` (explicit capture)
/// option, and unknown escapes such as `\q`. Anything else the `regex` crate refuses (e.g.
/// .NET block names `\p{IsGreek}`) is reported with the crate's message.
///
/// Known difference: .NET's `$` (without `RegexOptions.Multiline`) also matches before a final
/// line feed; Rust's `$` only at the very end.
pub fn dotnet_regex(pattern: &str) -> Result<Regex, String> {
    let translated = translate_dotnet_pattern(pattern)?;
    RegexBuilder::new(&translated)
        .size_limit(1 << 23)
        .build()
        .map_err(|e| format!("regular expression {} is not supported: {e}", show(pattern)))
}

/// Characters the `regex` crate accepts (and needs) escaped with a backslash.
fn is_rust_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

/// Append a literal character in a form the `regex` crate reads the same everywhere (inside or
/// outside a class, with or without the `x` flag).
fn push_literal(out: &mut String, c: char) {
    if is_rust_meta(c) {
        out.push('\\');
        out.push(c);
    } else if c.is_whitespace() || c.is_control() {
        let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
    } else {
        out.push(c);
    }
}

fn unsupported(pattern: &str, what: &str, pos: usize) -> String {
    format!(
        "regular expression {}: {what} at position {} is not supported (the regex engine has \
         no lookaround, backreferences or atomic groups)",
        show(pattern),
        pos + 1
    )
}

/// Translate a .NET pattern to `regex` crate syntax (see [`dotnet_regex`]).
fn translate_dotnet_pattern(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let n = chars.len();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut extended = false; // `x` option seen: `#` comments and free white space
    let mut i = 0;
    while i < n {
        let c = chars[i];
        match c {
            '\\' => {
                i = translate_escape(pattern, &chars, i, false, &mut out)?.0;
            }
            '[' => {
                i = translate_class(pattern, &chars, i, &mut out)?;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                i = translate_group_open(pattern, &chars, i, &mut out, &mut extended)?;
            }
            '{' => match quantifier_end(&chars, i) {
                Some(end) => {
                    out.extend(&chars[i..=end]);
                    i = end + 1;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                }
            },
            '}' | ']' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '#' if extended => {
                while i < n && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// If `chars[i] == '{'` starts a `{n}`, `{n,}` or `{n,m}` quantifier, the index of its `}`.
fn quantifier_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let digits_from = |mut j: usize| {
        while chars.get(j).is_some_and(char::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let after_min = digits_from(j);
    if after_min == j {
        return None;
    }
    j = after_min;
    if chars.get(j) == Some(&',') {
        j = digits_from(j + 1);
    }
    (chars.get(j) == Some(&'}')).then_some(j)
}

/// Translate a `(?…` group opener at `chars[i]`; return the index after what was consumed.
fn translate_group_open(
    pattern: &str,
    chars: &[char],
    i: usize,
    out: &mut String,
    extended: &mut bool,
) -> Result<usize, String> {
    let at = |k: usize| chars.get(i + k).copied();
    match (at(2), at(3)) {
        (Some(':'), _) => {
            out.push_str("(?:");
            Ok(i + 3)
        }
        (Some('='), _) => Err(unsupported(pattern, "lookahead (?=…)", i)),
        (Some('!'), _) => Err(unsupported(pattern, "negative lookahead (?!…)", i)),
        (Some('<'), Some('=')) => Err(unsupported(pattern, "lookbehind (?<=…)", i)),
        (Some('<'), Some('!')) => Err(unsupported(pattern, "negative lookbehind (?<!…)", i)),
        (Some('>'), _) => Err(unsupported(pattern, "atomic group (?>…)", i)),
        (Some('('), _) => Err(unsupported(pattern, "conditional (?(…)…)", i)),
        (Some('#'), _) => {
            // Inline comment: skip to the closing parenthesis.
            let close = chars[i..].iter().position(|&c| c == ')').ok_or_else(|| {
                format!(
                    "regular expression {}: unterminated (?#…) comment",
                    show(pattern)
                )
            })?;
            Ok(i + close + 1)
        }
        (Some(open @ ('<' | '\'')), _) | (Some('P'), Some(open @ '<')) => {
            let name_start = if at(2) == Some('P') { i + 4 } else { i + 3 };
            let close = if open == '<' { '>' } else { '\'' };
            let len = chars[name_start..]
                .iter()
                .position(|&c| c == close)
                .ok_or_else(|| {
                    format!(
                    "regular expression {}: group name at position {} is not closed with {close:?}",
                    show(pattern),
                    i + 1
                )
                })?;
            let name: String = chars[name_start..name_start + len].iter().collect();
            if name.contains('-') {
                return Err(unsupported(
                    pattern,
                    &format!("balancing group (?<{name}>…)"),
                    i,
                ));
            }
            let _ = write!(out, "(?<{name}>");
            Ok(name_start + len + 1)
        }
        _ => {
            // Inline options: (?imsx-imsx) or (?imsx-imsx:…)
            let mut j = i + 2;
            let mut on = true;
            let mut flags = String::new();
            while let Some(&c) = chars.get(j) {
                match c {
                    'i' | 'm' | 's' | 'x' => {
                        if c == 'x' {
                            *extended = on;
                        }
                        flags.push(c);
                    }
                    '-' => {
                        on = false;
                        flags.push(c);
                    }
                    'n' => return Err(unsupported(pattern, "the explicit-capture option (?n)", i)),
                    ')' | ':' => {
                        let _ = write!(out, "(?{flags}{c}");
                        return Ok(j + 1);
                    }
                    _ => break,
                }
                j += 1;
            }
            Err(format!(
                "regular expression {}: unrecognized group construct at position {}",
                show(pattern),
                i + 1
            ))
        }
    }
}

/// Translate the escape at `chars[i] == '\\'`. Returns the index after it and whether it was a
/// single character (usable as a range endpoint inside a class).
fn translate_escape(
    pattern: &str,
    chars: &[char],
    i: usize,
    in_class: bool,
    out: &mut String,
) -> Result<(usize, bool), String> {
    let Some(&e) = chars.get(i + 1) else {
        return Err(format!(
            "regular expression {} ends with a lone '\\'",
            show(pattern)
        ));
    };
    let hex_run = |from: usize, len: usize| -> Option<u32> {
        let digits: String = chars.get(from..from + len)?.iter().collect();
        if digits.chars().all(|c| c.is_ascii_hexdigit()) {
            u32::from_str_radix(&digits, 16).ok()
        } else {
            None
        }
    };
    let push_code = |out: &mut String, code: u32| {
        let _ = write!(out, "\\x{{{code:X}}}");
    };
    match e {
        'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
            out.push('\\');
            out.push(e);
            Ok((i + 2, false))
        }
        'p' | 'P' => {
            let close = chars.get(i + 2..).and_then(|rest| {
                if rest.first() == Some(&'{') {
                    rest.iter().position(|&c| c == '}')
                } else {
                    None
                }
            });
            match close {
                Some(len) => {
                    out.push('\\');
                    out.extend(&chars[i + 1..i + 3 + len]);
                    Ok((i + 3 + len, false))
                }
                None => Err(format!(
                    "regular expression {}: \\{e} at position {} needs a {{Category}}",
                    show(pattern),
                    i + 1
                )),
            }
        }
        'b' if in_class => {
            out.push_str("\\x{8}");
            Ok((i + 2, true))
        }
        'b' | 'B' | 'A' | 'z' if !in_class => {
            out.push('\\');
            out.push(e);
            Ok((i + 2, false))
        }
        'G' => Err(unsupported(pattern, "\\G (contiguous match)", i)),
        'Z' => Err(format!(
            "regular expression {}: \\Z at position {} (end or before a final new line) is not \
             supported; use \\z or $",
            show(pattern),
            i + 1
        )),
        'n' | 'r' | 't' | 'f' | 'v' | 'a' => {
            out.push('\\');
            out.push(e);
            Ok((i + 2, true))
        }
        'e' => {
            out.push_str("\\x{1B}");
            Ok((i + 2, true))
        }
        'x' | 'u' => {
            let len = if e == 'x' { 2 } else { 4 };
            match hex_run(i + 2, len) {
                Some(code) => {
                    push_code(out, code);
                    Ok((i + 2 + len, true))
                }
                None => Err(format!(
                    "regular expression {}: \\{e} at position {} needs {len} hex digits",
                    show(pattern),
                    i + 1
                )),
            }
        }
        'c' => match chars.get(i + 2) {
            Some(l) if l.is_ascii_alphabetic() => {
                push_code(out, u32::from(l.to_ascii_uppercase()) & 0x1F);
                Ok((i + 3, true))
            }
            _ => Err(format!(
                "regular expression {}: \\c at position {} needs a letter",
                show(pattern),
                i + 1
            )),
        },
        '0'..='7' if e == '0' || in_class => {
            let mut j = i + 1;
            let mut code = 0u32;
            while j < i + 4 && chars.get(j).is_some_and(|c| ('0'..='7').contains(c)) {
                code = code * 8 + chars[j].to_digit(8).unwrap_or(0);
                j += 1;
            }
            push_code(out, code);
            Ok((j, true))
        }
        '1'..='9' => Err(unsupported(pattern, &format!("backreference \\{e}"), i)),
        'k' if !in_class => Err(unsupported(pattern, "named backreference \\k<…>", i)),
        c if c.is_alphanumeric() || c == '_' => {
            if in_class && c == 'k' {
                out.push('k');
                return Ok((i + 2, true));
            }
            Err(format!(
                "regular expression {}: unrecognized escape \\{c} at position {}",
                show(pattern),
                i + 1
            ))
        }
        c => {
            push_literal(out, c);
            Ok((i + 2, true))
        }
    }
}

/// Translate the character class starting at `chars[i] == '['`; return the index after it.
fn translate_class(
    pattern: &str,
    chars: &[char],
    i: usize,
    out: &mut String,
) -> Result<usize, String> {
    let open = i;
    let mut i = i + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    // The previous item was a single character that a following `-` may turn into a range.
    let mut range_start = false;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(format!(
                "regular expression {}: character class opened at position {} is not closed",
                show(pattern),
                open + 1
            ));
        };
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        match c {
            '-' if chars.get(i + 1) == Some(&'[') && i > open + 1 => {
                // .NET class subtraction: must be the last item of the class.
                out.push_str("--");
                let end = translate_class(pattern, chars, i + 1, out)?;
                if chars.get(end) != Some(&']') {
                    return Err(format!(
                        "regular expression {}: a class subtraction must be the last item of \
                         the class opened at position {}",
                        show(pattern),
                        open + 1
                    ));
                }
                out.push(']');
                return Ok(end + 1);
            }
            '-' if range_start && chars.get(i + 1).is_some_and(|&c| c != ']') => {
                out.push('-');
                i += 1;
                // Range end.
                match chars.get(i) {
                    Some('\\') => {
                        let (next, single) = translate_escape(pattern, chars, i, true, out)?;
                        if !single {
                            return Err(format!(
                                "regular expression {}: a class cannot end a range at position {}",
                                show(pattern),
                                i + 1
                            ));
                        }
                        i = next;
                    }
                    Some(&c) => {
                        push_literal(out, c);
                        i += 1;
                    }
                    None => {}
                }
                range_start = false;
            }
            '\\' => {
                let (next, single) = translate_escape(pattern, chars, i, true, out)?;
                range_start = single;
                i = next;
            }
            _ => {
                push_literal(out, c);
                range_start = true;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
/// Convert a .NET replacement string to the `regex` crate's syntax, assuming every group it
/// references exists (see [`dotnet_replacement_for`] when the regex is at hand).
///
/// `$1`/`${1}` → `${1}` (so a following letter or digit is not read as part of the name),
/// `${name}` → `${name}`, `$0` and `$&` → `${0}`, `$$` → a literal `$`. A `$` that does not
/// start one of these is a literal `$` (.NET semantics; the `regex` crate would read `$name`).
/// Choice: `` $` ``, `$'`, `$+` and `$_` (prefix, suffix, last group, whole input) have no
/// equivalent and are kept as literal text.
pub fn dotnet_replacement(template: &str) -> String {
    translate_replacement(template, None)
}

/// Like [`dotnet_replacement`], but with .NET's handling of references to groups that do not
/// exist in `regex`: such a reference stays literal text (`$3`, `${nope}`), and a multi-digit
/// reference uses the longest prefix that names an existing group (`$12` → group 1 then `2`
/// when there is no group 12).
pub fn dotnet_replacement_for(regex: &Regex, template: &str) -> String {
    translate_replacement(template, Some(regex))
}

fn translate_replacement(template: &str, regex: Option<&Regex>) -> String {
    let group_count = regex.map(Regex::captures_len);
    let number_exists = |n: usize| group_count.is_none_or(|count| n < count);
    let name_exists = |name: &str| match regex {
        None => true,
        Some(re) => match name.parse::<usize>() {
            Ok(n) => number_exists(n),
            Err(_) => re.capture_names().flatten().any(|g| g == name),
        },
    };
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::with_capacity(template.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push_str("$$");
                i += 2;
            }
            Some('&') => {
                out.push_str("${0}");
                i += 2;
            }
            Some('{') => {
                let close = chars[i + 2..].iter().position(|&c| c == '}');
                let name: Option<String> =
                    close.map(|len| chars[i + 2..i + 2 + len].iter().collect());
                match name {
                    Some(name)
                        if !name.is_empty()
                            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                            && name_exists(&name) =>
                    {
                        let _ = write!(out, "${{{name}}}");
                        i += 3 + name.chars().count();
                    }
                    _ => {
                        out.push_str("$$");
                        i += 1;
                    }
                }
            }
            Some(d) if d.is_ascii_digit() => {
                let run = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                // Longest digit prefix naming an existing group (all of it without a regex).
                let chosen = (1..=run).rev().find(|&len| {
                    let digits: String = chars[i + 1..i + 1 + len].iter().collect();
                    digits.parse::<usize>().is_ok_and(number_exists)
                });
                match chosen {
                    Some(len) => {
                        let digits: String = chars[i + 1..i + 1 + len].iter().collect();
                        let number = digits.parse::<usize>().unwrap_or(0);
                        let _ = write!(out, "${{{number}}}");
                        i += 1 + len;
                    }
                    None => {
                        out.push_str("$$");
                        i += 1;
                    }
                }
            }
            _ => {
                out.push_str("$$");
                i += 1;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// NormalizeDiacritics table (generated from Microsoft's documented table; sorted by first char,
// longest key first; includes canonically equivalent decomposed spellings)
// ---------------------------------------------------------------------------------------------

/// `(sequence, replacement)` pairs for [`normalize_diacritics`].
const DIACRITICS: &[(&str, &str)] = &[
    ("A\u{304}\u{300}", "A"),
    ("A\u{304}\u{301}", "A"),
    ("A\u{304}\u{302}", "A"),
    ("A\u{304}\u{303}", "A"),
    ("A\u{304}\u{308}", "A"),
    ("A\u{307}\u{304}", "A"),
    ("A\u{308}\u{304}", "A"),
    ("A\u{30A}\u{304}", "A"),
    ("A\u{300}", "A"),
    ("A\u{301}", "A"),
    ("A\u{302}", "A"),
    ("A\u{303}", "A"),
    ("A\u{304}", "A"),
    ("A\u{306}", "A"),
    ("A\u{308}", "A"),
    ("A\u{30A}", "A"),
    ("A\u{328}", "A"),
    ("A\u{331}", "A"),
    ("C\u{301}", "C"),
    ("C\u{304}", "C"),
    ("C\u{30C}", "C"),
    ("C\u{327}", "C"),
    ("C\u{331}", "C"),
    ("D\u{304}", "D"),
    ("D\u{30C}", "D"),
    ("D\u{331}", "D"),
    ("E\u{302}\u{304}", "E"),
    ("E\u{304}\u{300}", "E"),
    ("E\u{304}\u{301}", "E"),
    ("E\u{304}\u{302}", "E"),
    ("E\u{304}\u{303}", "E"),
    ("E\u{308}\u{304}", "E"),
    ("E\u{30A}\u{304}", "E"),
    ("E\u{300}", "E"),
    ("E\u{301}", "E"),
    ("E\u{302}", "E"),
    ("E\u{304}", "E"),
    ("E\u{307}", "E"),
    ("E\u{308}", "E"),
    ("E\u{30C}", "E"),
    ("E\u{328}", "E"),
    ("E\u{331}", "E"),
    ("G\u{304}", "G"),
    ("G\u{306}", "G"),
    ("G\u{331}", "G"),
    ("I\u{304}\u{300}", "I"),
    ("I\u{304}\u{301}", "I"),
    ("I\u{304}\u{302}", "I"),
    ("I\u{304}\u{303}", "I"),
    ("I\u{300}", "I"),
    ("I\u{301}", "I"),
    ("I\u{302}", "I"),
    ("I\u{304}", "I"),
    ("I\u{307}", "I"),
    ("I\u{308}", "I"),
    ("I\u{331}", "I"),
    ("L\u{323}\u{304}", "L"),
    ("L\u{304}", "L"),
    ("L\u{30C}", "L"),
    ("L\u{331}", "L"),
    ("N\u{301}", "N"),
    ("N\u{303}", "N"),
    ("N\u{304}", "N"),
    ("N\u{30C}", "N"),
    ("N\u{331}", "N"),
    ("O\u{303}\u{304}", "O"),
    ("O\u{304}\u{300}", "O"),
    ("O\u{304}\u{301}", "O"),
    ("O\u{304}\u{302}", "O"),
    ("O\u{304}\u{303}", "O"),
    ("O\u{304}\u{308}", "O"),
    ("O\u{307}\u{304}", "O"),
    ("O\u{308}\u{304}", "O"),
    ("O\u{328}\u{304}", "O"),
    ("O\u{300}", "O"),
    ("O\u{301}", "O"),
    ("O\u{302}", "O"),
    ("O\u{303}", "O"),
    ("O\u{304}", "O"),
    ("O\u{308}", "O"),
    ("O\u{30B}", "O"),
    ("O\u{331}", "O"),
    ("R\u{323}\u{304}", "R"),
    ("R\u{304}", "R"),
    ("R\u{30C}", "R"),
    ("R\u{331}", "R"),
    ("S\u{301}", "S"),
    ("S\u{304}", "S"),
    ("S\u{30C}", "S"),
    ("S\u{326}", "S"),
    ("S\u{327}", "S"),
    ("S\u{331}", "S"),
    ("T\u{304}", "T"),
    ("T\u{30C}", "T"),
    ("T\u{326}", "T"),
    ("T\u{331}", "T"),
    ("U\u{304}\u{300}", "U"),
    ("U\u{304}\u{301}", "U"),
    ("U\u{304}\u{302}", "U"),
    ("U\u{304}\u{303}", "U"),
    ("U\u{304}\u{308}", "U"),
    ("U\u{307}\u{304}", "U"),
    ("U\u{308}\u{304}", "U"),
    ("U\u{324}\u{304}", "U"),
    ("U\u{300}", "U"),
    ("U\u{301}", "U"),
    ("U\u{302}", "U"),
    ("U\u{304}", "U"),
    ("U\u{308}", "U"),
    ("U\u{30A}", "U"),
    ("U\u{30B}", "U"),
    ("U\u{331}", "U"),
    ("Y\u{304}\u{300}", "Y"),
    ("Y\u{304}\u{301}", "Y"),
    ("Y\u{304}\u{303}", "Y"),
    ("Y\u{301}", "Y"),
    ("Y\u{304}", "Y"),
    ("Y\u{308}", "Y"),
    ("Y\u{331}", "Y"),
    ("Z\u{301}", "Z"),
    ("Z\u{304}", "Z"),
    ("Z\u{307}", "Z"),
    ("Z\u{30C}", "Z"),
    ("Z\u{331}", "Z"),
    ("a\u{304}\u{300}", "a"),
    ("a\u{304}\u{301}", "a"),
    ("a\u{304}\u{302}", "a"),
    ("a\u{304}\u{303}", "a"),
    ("a\u{304}\u{308}", "a"),
    ("a\u{307}\u{304}", "a"),
    ("a\u{308}\u{304}", "a"),
    ("a\u{30A}\u{304}", "a"),
    ("a\u{300}", "a"),
    ("a\u{301}", "a"),
    ("a\u{302}", "a"),
    ("a\u{303}", "a"),
    ("a\u{304}", "a"),
    ("a\u{306}", "a"),
    ("a\u{308}", "a"),
    ("a\u{30A}", "a"),
    ("a\u{328}", "a"),
    ("a\u{331}", "a"),
    ("c\u{301}", "c"),
    ("c\u{304}", "c"),
    ("c\u{30C}", "c"),
    ("c\u{327}", "c"),
    ("c\u{331}", "c"),
    ("d\u{304}", "d"),
    ("d\u{30C}", "d"),
    ("d\u{331}", "d"),
    ("e\u{302}\u{304}", "e"),
    ("e\u{304}\u{300}", "e"),
    ("e\u{304}\u{301}", "e"),
    ("e\u{304}\u{302}", "e"),
    ("e\u{304}\u{303}", "e"),
    ("e\u{308}\u{304}", "e"),
    ("e\u{30A}\u{304}", "e"),
    ("e\u{300}", "e"),
    ("e\u{301}", "e"),
    ("e\u{302}", "e"),
    ("e\u{304}", "e"),
    ("e\u{307}", "e"),
    ("e\u{308}", "e"),
    ("e\u{30C}", "e"),
    ("e\u{328}", "e"),
    ("e\u{331}", "e"),
    ("g\u{304}", "g"),
    ("g\u{306}", "g"),
    ("g\u{331}", "g"),
    ("i\u{304}\u{300}", "i"),
    ("i\u{304}\u{301}", "i"),
    ("i\u{304}\u{302}", "i"),
    ("i\u{304}\u{303}", "i"),
    ("i\u{300}", "i"),
    ("i\u{301}", "i"),
    ("i\u{302}", "i"),
    ("i\u{304}", "i"),
    ("i\u{308}", "i"),
    ("i\u{331}", "i"),
    ("l\u{323}\u{304}", "l"),
    ("l\u{304}", "l"),
    ("l\u{30C}", "l"),
    ("l\u{331}", "l"),
    ("n\u{301}", "n"),
    ("n\u{303}", "n"),
    ("n\u{304}", "n"),
    ("n\u{30C}", "n"),
    ("n\u{331}", "n"),
    ("o\u{303}\u{304}", "o"),
    ("o\u{304}\u{300}", "o"),
    ("o\u{304}\u{301}", "o"),
    ("o\u{304}\u{302}", "o"),
    ("o\u{304}\u{303}", "o"),
    ("o\u{304}\u{308}", "o"),
    ("o\u{307}\u{304}", "o"),
    ("o\u{308}\u{304}", "o"),
    ("o\u{328}\u{304}", "o"),
    ("o\u{300}", "o"),
    ("o\u{301}", "o"),
    ("o\u{302}", "o"),
    ("o\u{303}", "o"),
    ("o\u{304}", "o"),
    ("o\u{308}", "o"),
    ("o\u{30B}", "o"),
    ("o\u{331}", "o"),
    ("r\u{323}\u{304}", "r"),
    ("r\u{304}", "r"),
    ("r\u{30C}", "r"),
    ("r\u{331}", "r"),
    ("s\u{301}", "s"),
    ("s\u{304}", "s"),
    ("s\u{30C}", "s"),
    ("s\u{326}", "s"),
    ("s\u{327}", "s"),
    ("s\u{331}", "s"),
    ("t\u{304}", "t"),
    ("t\u{30C}", "t"),
    ("t\u{326}", "t"),
    ("t\u{331}", "t"),
    ("u\u{304}\u{300}", "u"),
    ("u\u{304}\u{301}", "u"),
    ("u\u{304}\u{302}", "u"),
    ("u\u{304}\u{303}", "u"),
    ("u\u{304}\u{308}", "u"),
    ("u\u{307}\u{304}", "u"),
    ("u\u{308}\u{304}", "u"),
    ("u\u{324}\u{304}", "u"),
    ("u\u{300}", "u"),
    ("u\u{301}", "u"),
    ("u\u{302}", "u"),
    ("u\u{304}", "u"),
    ("u\u{308}", "u"),
    ("u\u{30A}", "u"),
    ("u\u{30B}", "u"),
    ("u\u{331}", "u"),
    ("y\u{304}\u{300}", "y"),
    ("y\u{304}\u{301}", "y"),
    ("y\u{304}\u{303}", "y"),
    ("y\u{301}", "y"),
    ("y\u{304}", "y"),
    ("y\u{308}", "y"),
    ("y\u{331}", "y"),
    ("z\u{301}", "z"),
    ("z\u{304}", "z"),
    ("z\u{307}", "z"),
    ("z\u{30C}", "z"),
    ("z\u{331}", "z"),
    ("\u{C0}", "A"),
    ("\u{C1}", "A"),
    ("\u{C2}", "A"),
    ("\u{C3}", "A"),
    ("\u{C4}\u{304}", "A"),
    ("\u{C4}", "A"),
    ("\u{C5}\u{304}", "A"),
    ("\u{C5}", "A"),
    ("\u{C6}\u{304}", "AE"),
    ("\u{C6}", "AE"),
    ("\u{C7}", "C"),
    ("\u{C8}", "E"),
    ("\u{C9}", "E"),
    ("\u{CA}\u{304}", "E"),
    ("\u{CA}", "E"),
    ("\u{CB}\u{304}", "E"),
    ("\u{CB}", "E"),
    ("\u{CC}", "I"),
    ("\u{CD}", "I"),
    ("\u{CE}", "I"),
    ("\u{CF}", "I"),
    ("\u{D1}", "N"),
    ("\u{D2}", "O"),
    ("\u{D3}", "O"),
    ("\u{D4}", "O"),
    ("\u{D5}\u{304}", "O"),
    ("\u{D5}", "O"),
    ("\u{D6}\u{304}", "O"),
    ("\u{D6}", "O"),
    ("\u{D8}\u{304}", "OE"),
    ("\u{D8}", "OE"),
    ("\u{D9}", "U"),
    ("\u{DA}", "U"),
    ("\u{DB}", "U"),
    ("\u{DC}\u{304}", "U"),
    ("\u{DC}", "U"),
    ("\u{DD}", "Y"),
    ("\u{DF}", "ss"),
    ("\u{E0}", "a"),
    ("\u{E1}", "a"),
    ("\u{E2}", "a"),
    ("\u{E3}", "a"),
    ("\u{E4}\u{304}", "a"),
    ("\u{E4}", "a"),
    ("\u{E5}\u{304}", "a"),
    ("\u{E5}", "a"),
    ("\u{E6}\u{304}", "ae"),
    ("\u{E6}", "ae"),
    ("\u{E7}", "c"),
    ("\u{E8}", "e"),
    ("\u{E9}", "e"),
    ("\u{EA}\u{304}", "e"),
    ("\u{EA}", "e"),
    ("\u{EB}\u{304}", "e"),
    ("\u{EB}", "e"),
    ("\u{EC}", "i"),
    ("\u{ED}", "i"),
    ("\u{EE}", "i"),
    ("\u{EF}", "i"),
    ("\u{F1}", "n"),
    ("\u{F2}", "o"),
    ("\u{F3}", "o"),
    ("\u{F4}", "o"),
    ("\u{F5}\u{304}", "o"),
    ("\u{F5}", "o"),
    ("\u{F6}\u{304}", "o"),
    ("\u{F6}", "o"),
    ("\u{F8}\u{304}", "oe"),
    ("\u{F8}", "oe"),
    ("\u{F9}", "u"),
    ("\u{FA}", "u"),
    ("\u{FB}", "u"),
    ("\u{FC}\u{304}", "u"),
    ("\u{FC}", "u"),
    ("\u{FD}", "y"),
    ("\u{FF}", "y"),
    ("\u{100}\u{300}", "A"),
    ("\u{100}\u{301}", "A"),
    ("\u{100}\u{302}", "A"),
    ("\u{100}\u{303}", "A"),
    ("\u{100}\u{308}", "A"),
    ("\u{100}", "A"),
    ("\u{101}\u{300}", "a"),
    ("\u{101}\u{301}", "a"),
    ("\u{101}\u{302}", "a"),
    ("\u{101}\u{303}", "a"),
    ("\u{101}\u{308}", "a"),
    ("\u{101}", "a"),
    ("\u{102}", "A"),
    ("\u{103}", "a"),
    ("\u{104}", "A"),
    ("\u{105}", "a"),
    ("\u{106}", "C"),
    ("\u{107}", "c"),
    ("\u{10C}", "C"),
    ("\u{10D}", "c"),
    ("\u{10E}", "D"),
    ("\u{10F}", "d"),
    ("\u{112}\u{300}", "E"),
    ("\u{112}\u{301}", "E"),
    ("\u{112}\u{302}", "E"),
    ("\u{112}\u{303}", "E"),
    ("\u{112}", "E"),
    ("\u{113}\u{300}", "e"),
    ("\u{113}\u{301}", "e"),
    ("\u{113}\u{302}", "e"),
    ("\u{113}\u{303}", "e"),
    ("\u{113}", "e"),
    ("\u{116}", "E"),
    ("\u{117}", "e"),
    ("\u{118}", "E"),
    ("\u{119}", "e"),
    ("\u{11A}", "E"),
    ("\u{11B}", "e"),
    ("\u{11E}", "G"),
    ("\u{11F}", "g"),
    ("\u{12A}\u{300}", "I"),
    ("\u{12A}\u{301}", "I"),
    ("\u{12A}\u{302}", "I"),
    ("\u{12A}\u{303}", "I"),
    ("\u{12A}", "I"),
    ("\u{12B}\u{300}", "i"),
    ("\u{12B}\u{301}", "i"),
    ("\u{12B}\u{302}", "i"),
    ("\u{12B}\u{303}", "i"),
    ("\u{12B}", "i"),
    ("\u{130}", "I"),
    ("\u{131}", "i"),
    ("\u{13D}", "L"),
    ("\u{13E}", "l"),
    ("\u{141}", "L"),
    ("\u{142}", "l"),
    ("\u{143}", "N"),
    ("\u{144}", "n"),
    ("\u{147}", "N"),
    ("\u{148}", "n"),
    ("\u{14C}\u{300}", "O"),
    ("\u{14C}\u{301}", "O"),
    ("\u{14C}\u{302}", "O"),
    ("\u{14C}\u{303}", "O"),
    ("\u{14C}\u{308}", "O"),
    ("\u{14C}", "O"),
    ("\u{14D}\u{300}", "o"),
    ("\u{14D}\u{301}", "o"),
    ("\u{14D}\u{302}", "o"),
    ("\u{14D}\u{303}", "o"),
    ("\u{14D}\u{308}", "o"),
    ("\u{14D}", "o"),
    ("\u{150}", "O"),
    ("\u{151}", "o"),
    ("\u{152}\u{304}", "OE"),
    ("\u{153}\u{304}", "oe"),
    ("\u{158}", "R"),
    ("\u{159}", "r"),
    ("\u{15A}", "S"),
    ("\u{15B}", "s"),
    ("\u{15E}", "S"),
    ("\u{15F}", "s"),
    ("\u{160}", "S"),
    ("\u{161}", "s"),
    ("\u{164}", "T"),
    ("\u{165}", "t"),
    ("\u{16A}\u{300}", "U"),
    ("\u{16A}\u{301}", "U"),
    ("\u{16A}\u{302}", "U"),
    ("\u{16A}\u{303}", "U"),
    ("\u{16A}\u{308}", "U"),
    ("\u{16A}", "U"),
    ("\u{16B}\u{300}", "u"),
    ("\u{16B}\u{301}", "u"),
    ("\u{16B}\u{302}", "u"),
    ("\u{16B}\u{303}", "u"),
    ("\u{16B}\u{308}", "u"),
    ("\u{16B}", "u"),
    ("\u{16E}", "U"),
    ("\u{16F}", "u"),
    ("\u{170}", "U"),
    ("\u{171}", "u"),
    ("\u{178}", "Y"),
    ("\u{179}", "Z"),
    ("\u{17A}", "z"),
    ("\u{17B}", "Z"),
    ("\u{17C}", "z"),
    ("\u{17D}", "Z"),
    ("\u{17E}", "z"),
    ("\u{1D5}", "U"),
    ("\u{1D6}", "u"),
    ("\u{1DE}", "A"),
    ("\u{1DF}", "a"),
    ("\u{1E0}", "A"),
    ("\u{1E1}", "a"),
    ("\u{1E2}", "AE"),
    ("\u{1E3}", "ae"),
    ("\u{1EA}\u{304}", "O"),
    ("\u{1EB}\u{304}", "o"),
    ("\u{1EC}", "O"),
    ("\u{1ED}", "o"),
    ("\u{218}", "S"),
    ("\u{219}", "s"),
    ("\u{21A}", "T"),
    ("\u{21B}", "t"),
    ("\u{226}\u{304}", "A"),
    ("\u{227}\u{304}", "a"),
    ("\u{22A}", "O"),
    ("\u{22B}", "o"),
    ("\u{22C}", "O"),
    ("\u{22D}", "o"),
    ("\u{22E}\u{304}", "O"),
    ("\u{22F}\u{304}", "o"),
    ("\u{230}", "O"),
    ("\u{231}", "o"),
    ("\u{232}\u{300}", "Y"),
    ("\u{232}\u{301}", "Y"),
    ("\u{232}\u{303}", "Y"),
    ("\u{232}", "Y"),
    ("\u{233}\u{300}", "y"),
    ("\u{233}\u{301}", "y"),
    ("\u{233}\u{303}", "y"),
    ("\u{233}", "y"),
    ("\u{1E0E}", "D"),
    ("\u{1E0F}", "d"),
    ("\u{1E14}", "E"),
    ("\u{1E15}", "e"),
    ("\u{1E16}", "E"),
    ("\u{1E17}", "e"),
    ("\u{1E20}", "G"),
    ("\u{1E21}", "g"),
    ("\u{1E36}\u{304}", "L"),
    ("\u{1E37}\u{304}", "l"),
    ("\u{1E38}", "L"),
    ("\u{1E39}", "l"),
    ("\u{1E3A}", "L"),
    ("\u{1E3B}", "l"),
    ("\u{1E48}", "N"),
    ("\u{1E49}", "n"),
    ("\u{1E50}", "O"),
    ("\u{1E51}", "o"),
    ("\u{1E52}", "O"),
    ("\u{1E53}", "o"),
    ("\u{1E5A}\u{304}", "R"),
    ("\u{1E5B}\u{304}", "r"),
    ("\u{1E5C}", "R"),
    ("\u{1E5D}", "r"),
    ("\u{1E5E}", "R"),
    ("\u{1E5F}", "r"),
    ("\u{1E6E}", "T"),
    ("\u{1E6F}", "t"),
    ("\u{1E72}\u{304}", "U"),
    ("\u{1E73}\u{304}", "u"),
    ("\u{1E7A}", "U"),
    ("\u{1E7B}", "u"),
    ("\u{1E94}", "Z"),
    ("\u{1E95}", "z"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn lower_all(s: &str) -> String {
        s.chars().map(simple_lower).collect()
    }

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed.max(1);
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    // ----- NormalizeDiacritics ------------------------------------------------------------

    const DOC_TABLE: &[(&str, &str)] = &[
        ("\u{E4}", "a"),
        ("\u{E0}", "a"),
        ("\u{E2}", "a"),
        ("\u{E3}", "a"),
        ("\u{E5}", "a"),
        ("\u{E1}", "a"),
        ("\u{105}", "a"),
        ("\u{103}", "a"),
        ("\u{101}", "a"),
        ("\u{101}\u{301}", "a"),
        ("\u{101}\u{300}", "a"),
        ("\u{101}\u{302}", "a"),
        ("\u{101}\u{303}", "a"),
        ("\u{1DF}", "a"),
        ("\u{101}\u{308}", "a"),
        ("\u{1E1}", "a"),
        ("a\u{331}", "a"),
        ("\u{E5}\u{304}", "a"),
        ("\u{C4}", "A"),
        ("\u{C0}", "A"),
        ("\u{C2}", "A"),
        ("\u{C3}", "A"),
        ("\u{C5}", "A"),
        ("\u{C1}", "A"),
        ("\u{104}", "A"),
        ("\u{102}", "A"),
        ("\u{100}", "A"),
        ("\u{100}\u{301}", "A"),
        ("\u{100}\u{300}", "A"),
        ("\u{100}\u{302}", "A"),
        ("\u{100}\u{303}", "A"),
        ("\u{1DE}", "A"),
        ("\u{100}\u{308}", "A"),
        ("\u{1E0}", "A"),
        ("A\u{331}", "A"),
        ("\u{C5}\u{304}", "A"),
        ("\u{E6}", "ae"),
        ("\u{1E3}", "ae"),
        ("\u{C6}", "AE"),
        ("\u{1E2}", "AE"),
        ("\u{E7}", "c"),
        ("\u{10D}", "c"),
        ("\u{107}", "c"),
        ("c\u{304}", "c"),
        ("c\u{331}", "c"),
        ("\u{C7}", "C"),
        ("\u{10C}", "C"),
        ("\u{106}", "C"),
        ("C\u{304}", "C"),
        ("C\u{331}", "C"),
        ("\u{10F}", "d"),
        ("d\u{304}", "d"),
        ("\u{1E0F}", "d"),
        ("\u{10E}", "D"),
        ("D\u{304}", "D"),
        ("\u{1E0E}", "D"),
        ("\u{EB}", "e"),
        ("\u{E8}", "e"),
        ("\u{E9}", "e"),
        ("\u{EA}", "e"),
        ("\u{119}", "e"),
        ("\u{11B}", "e"),
        ("\u{117}", "e"),
        ("\u{113}", "e"),
        ("\u{1E17}", "e"),
        ("\u{1E15}", "e"),
        ("\u{113}\u{302}", "e"),
        ("\u{113}\u{303}", "e"),
        ("\u{EA}\u{304}", "e"),
        ("e\u{331}", "e"),
        ("\u{EB}\u{304}", "e"),
        ("e\u{30A}\u{304}", "e"),
        ("\u{CB}", "E"),
        ("\u{C8}", "E"),
        ("\u{C9}", "E"),
        ("\u{CA}", "E"),
        ("\u{118}", "E"),
        ("\u{11A}", "E"),
        ("\u{116}", "E"),
        ("\u{112}", "E"),
        ("\u{1E16}", "E"),
        ("\u{1E14}", "E"),
        ("\u{112}\u{302}", "E"),
        ("\u{112}\u{303}", "E"),
        ("\u{CA}\u{304}", "E"),
        ("E\u{331}", "E"),
        ("\u{CB}\u{304}", "E"),
        ("E\u{30A}\u{304}", "E"),
        ("\u{11F}", "g"),
        ("\u{1E21}", "g"),
        ("g\u{331}", "g"),
        ("\u{11E}", "G"),
        ("\u{1E20}", "G"),
        ("G\u{331}", "G"),
        ("\u{EF}", "i"),
        ("\u{EE}", "i"),
        ("\u{EC}", "i"),
        ("\u{ED}", "i"),
        ("\u{131}", "i"),
        ("\u{12B}", "i"),
        ("\u{12B}\u{301}", "i"),
        ("\u{12B}\u{300}", "i"),
        ("\u{12B}\u{302}", "i"),
        ("\u{12B}\u{303}", "i"),
        ("i\u{331}", "i"),
        ("\u{CF}", "I"),
        ("\u{CE}", "I"),
        ("\u{CC}", "I"),
        ("\u{CD}", "I"),
        ("\u{130}", "I"),
        ("\u{12A}", "I"),
        ("\u{12A}\u{301}", "I"),
        ("\u{12A}\u{300}", "I"),
        ("\u{12A}\u{302}", "I"),
        ("\u{12A}\u{303}", "I"),
        ("I\u{331}", "I"),
        ("\u{13E}", "l"),
        ("\u{142}", "l"),
        ("l\u{304}", "l"),
        ("\u{1E39}", "l"),
        ("\u{1E3B}", "l"),
        ("\u{141}", "L"),
        ("\u{13D}", "L"),
        ("L\u{304}", "L"),
        ("\u{1E38}", "L"),
        ("\u{1E3A}", "L"),
        ("\u{F1}", "n"),
        ("\u{144}", "n"),
        ("\u{148}", "n"),
        ("n\u{304}", "n"),
        ("\u{1E49}", "n"),
        ("\u{D1}", "N"),
        ("\u{143}", "N"),
        ("\u{147}", "N"),
        ("N\u{304}", "N"),
        ("\u{1E48}", "N"),
        ("\u{F6}", "o"),
        ("\u{F2}", "o"),
        ("\u{151}", "o"),
        ("\u{F5}", "o"),
        ("\u{F4}", "o"),
        ("\u{F3}", "o"),
        ("\u{14D}", "o"),
        ("\u{1E53}", "o"),
        ("\u{1E51}", "o"),
        ("\u{14D}\u{302}", "o"),
        ("\u{14D}\u{303}", "o"),
        ("\u{22B}", "o"),
        ("\u{14D}\u{308}", "o"),
        ("\u{1ED}", "o"),
        ("\u{22D}", "o"),
        ("\u{231}", "o"),
        ("o\u{331}", "o"),
        ("\u{D6}", "O"),
        ("\u{D2}", "O"),
        ("\u{150}", "O"),
        ("\u{D5}", "O"),
        ("\u{D4}", "O"),
        ("\u{D3}", "O"),
        ("\u{14C}", "O"),
        ("\u{1E52}", "O"),
        ("\u{1E50}", "O"),
        ("\u{14C}\u{302}", "O"),
        ("\u{14C}\u{303}", "O"),
        ("\u{22A}", "O"),
        ("\u{14C}\u{308}", "O"),
        ("\u{1EC}", "O"),
        ("\u{22C}", "O"),
        ("\u{230}", "O"),
        ("O\u{331}", "O"),
        ("\u{F8}", "oe"),
        ("\u{F8}\u{304}", "oe"),
        ("\u{153}\u{304}", "oe"),
        ("\u{D8}", "OE"),
        ("\u{D8}\u{304}", "OE"),
        ("\u{152}\u{304}", "OE"),
        ("\u{159}", "r"),
        ("r\u{304}", "r"),
        ("\u{1E5F}", "r"),
        ("\u{1E5D}", "r"),
        ("\u{158}", "R"),
        ("R\u{304}", "R"),
        ("\u{1E5E}", "R"),
        ("\u{1E5C}", "R"),
        ("\u{DF}", "ss"),
        ("\u{161}", "s"),
        ("\u{15B}", "s"),
        ("\u{219}", "s"),
        ("\u{15F}", "s"),
        ("s\u{304}", "s"),
        ("s\u{331}", "s"),
        ("\u{160}", "S"),
        ("\u{15A}", "S"),
        ("\u{218}", "S"),
        ("\u{15E}", "S"),
        ("S\u{304}", "S"),
        ("S\u{331}", "S"),
        ("\u{165}", "t"),
        ("\u{21B}", "t"),
        ("t\u{304}", "t"),
        ("\u{1E6F}", "t"),
        ("\u{164}", "T"),
        ("\u{21A}", "T"),
        ("T\u{304}", "T"),
        ("\u{1E6E}", "T"),
        ("\u{FC}", "u"),
        ("\u{F9}", "u"),
        ("\u{FB}", "u"),
        ("\u{FA}", "u"),
        ("\u{16F}", "u"),
        ("\u{171}", "u"),
        ("\u{16B}", "u"),
        ("\u{16B}\u{301}", "u"),
        ("\u{16B}\u{300}", "u"),
        ("\u{16B}\u{302}", "u"),
        ("\u{16B}\u{303}", "u"),
        ("u\u{307}\u{304}", "u"),
        ("\u{1D6}", "u"),
        ("\u{1E7B}", "u"),
        ("\u{1E73}\u{304}", "u"),
        ("u\u{331}", "u"),
        ("\u{DC}", "U"),
        ("\u{D9}", "U"),
        ("\u{DB}", "U"),
        ("\u{DA}", "U"),
        ("\u{16E}", "U"),
        ("\u{170}", "U"),
        ("\u{16A}", "U"),
        ("\u{16A}\u{301}", "U"),
        ("\u{16A}\u{300}", "U"),
        ("\u{16A}\u{302}", "U"),
        ("\u{16A}\u{303}", "U"),
        ("U\u{307}\u{304}", "U"),
        ("\u{1D5}", "U"),
        ("\u{1E7A}", "U"),
        ("\u{1E72}\u{304}", "U"),
        ("U\u{331}", "U"),
        ("\u{FF}", "y"),
        ("\u{FD}", "y"),
        ("\u{233}", "y"),
        ("\u{233}\u{301}", "y"),
        ("\u{233}\u{300}", "y"),
        ("\u{233}\u{303}", "y"),
        ("y\u{331}", "y"),
        ("\u{178}", "Y"),
        ("\u{DD}", "Y"),
        ("\u{232}", "Y"),
        ("\u{232}\u{301}", "Y"),
        ("\u{232}\u{300}", "Y"),
        ("\u{232}\u{303}", "Y"),
        ("Y\u{331}", "Y"),
        ("\u{17A}", "z"),
        ("\u{17E}", "z"),
        ("\u{17C}", "z"),
        ("z\u{304}", "z"),
        ("\u{1E95}", "z"),
        ("\u{179}", "Z"),
        ("\u{17D}", "Z"),
        ("\u{17B}", "Z"),
        ("Z\u{304}", "Z"),
        ("\u{1E94}", "Z"),
    ];

    #[test]
    fn normalize_doc_example() {
        assert_eq!(normalize_diacritics("Zoë"), "Zoe");
    }

    #[test]
    fn normalize_every_documented_table_entry() {
        for (key, expected) in DOC_TABLE {
            assert_eq!(normalize_diacritics(key), *expected, "entry {key:?}");
            // Also inside a word.
            assert_eq!(
                normalize_diacritics(&format!("x{key}y")),
                format!("x{expected}y"),
                "entry {key:?}"
            );
        }
        assert_eq!(DOC_TABLE.len(), 261);
    }

    #[test]
    fn normalize_table_rows() {
        assert_eq!(normalize_diacritics("äÄàÀ"), "aAaA");
        assert_eq!(normalize_diacritics("æÆǣǢ"), "aeAEaeAE");
        assert_eq!(normalize_diacritics("øØ"), "oeOE");
        assert_eq!(normalize_diacritics("ß"), "ss");
        assert_eq!(normalize_diacritics("łŁľĽ"), "lLlL");
        assert_eq!(normalize_diacritics("ıİ"), "iI");
        assert_eq!(normalize_diacritics("Łódź"), "Lodz");
        assert_eq!(normalize_diacritics("Dvořák Škoda"), "Dvorak Skoda");
        assert_eq!(normalize_diacritics("Ærøskøbing"), "AEroeskoebing");
        assert_eq!(normalize_diacritics("Straße"), "Strasse");
        assert_eq!(normalize_diacritics("Çağrı Şahin"), "Cagri Sahin");
        // Only the comma-below T is listed; the cedilla T is not (the cedilla S is).
        assert_eq!(normalize_diacritics("Ţ ț Ș ș Ş ş"), "Ţ t S s S s");
    }

    #[test]
    fn normalize_workday_examples() {
        assert_eq!(
            normalize_diacritics("José.García-López"),
            "Jose.Garcia-Lopez"
        );
        assert_eq!(normalize_diacritics("José García"), "Jose Garcia");
        assert_eq!(normalize_diacritics("María"), "Maria");
    }

    #[test]
    fn normalize_multi_codepoint_entries_match_longest() {
        // ā + combining acute is one entry: the acute must go too.
        assert_eq!(normalize_diacritics("\u{101}\u{301}"), "a");
        assert_eq!(normalize_diacritics("a\u{331}b"), "ab");
        assert_eq!(normalize_diacritics("e\u{30A}\u{304}"), "e");
        assert_eq!(normalize_diacritics("\u{153}\u{304}"), "oe");
        // Plain œ is not in the table.
        assert_eq!(normalize_diacritics("\u{153}"), "\u{153}");
    }

    #[test]
    fn normalize_decomposed_input() {
        assert_eq!(normalize_diacritics("Zoe\u{308}"), "Zoe");
        // Ǟ decomposed, then partially composed.
        assert_eq!(normalize_diacritics("A\u{308}\u{304}"), "A");
        assert_eq!(normalize_diacritics("\u{C4}\u{304}"), "A");
        // ǘ is not in the table: the ü part folds, the extra acute stays.
        assert_eq!(normalize_diacritics("u\u{308}\u{301}"), "u\u{301}");
    }

    #[test]
    fn normalize_keeps_other_characters() {
        for s in [
            "",
            "plain ASCII 123",
            "đĐŵŷ",
            "日本語",
            "Ελληνικά",
            "😀",
            "ð þ",
            "a\u{301}\u{301}",
        ] {
            let out = normalize_diacritics(s);
            if s == "a\u{301}\u{301}" {
                assert_eq!(out, "a\u{301}"); // á + stray acute
            } else {
                assert_eq!(out, s);
            }
        }
        assert_eq!(normalize_diacritics("ŵé"), "ŵe");
    }

    #[test]
    fn diacritics_table_is_sorted_and_well_formed() {
        for pair in DIACRITICS.windows(2) {
            let (a, b) = (pair[0].0, pair[1].0);
            let (fa, fb) = (first_char(a), first_char(b));
            assert!(
                fa < fb || (fa == fb && a.len() >= b.len()),
                "{a:?} before {b:?}"
            );
        }
        assert!(DIACRITICS
            .iter()
            .all(|(k, v)| !k.is_empty() && !v.is_empty()));
    }

    // ----- PCase ----------------------------------------------------------------------------

    #[test]
    fn pcase_doc_examples() {
        assert_eq!(pcase_connect("TEsT"), "Test");
        assert_eq!(pcase_connect(&lower_all("TEST")), "Test");
        assert_eq!(pcase_dotnet("TEsT"), "Test");
        assert_eq!(
            pcase_dotnet("PABLO GONSALVES (SECOND)"),
            "Pablo Gonsalves (Second)"
        );
        assert_eq!(
            pcase_with_separators("PINTO-DE'SILVA", " '-"),
            "Pinto-De'Silva"
        );
        assert_eq!(pcase_dotnet("GREGORY JAMES"), "Gregory James");
        // Workday page: PCase then Replace "'S" → "'s"; ToTitleCase keeps "'s" anyway.
        assert_eq!(pcase_dotnet("st john's hospital"), "St John's Hospital");
    }

    #[test]
    fn pcase_dotnet_word_rules() {
        assert_eq!(pcase_dotnet("o'neil-smith"), "O'neil-Smith");
        assert_eq!(pcase_dotnet("1st place"), "1St Place");
        assert_eq!(pcase_dotnet("abc123def ghi"), "Abc123def Ghi");
        assert_eq!(pcase_dotnet("mary_ann\tjones\nDOE"), "Mary_Ann\tJones\nDoe");
        assert_eq!(pcase_dotnet("van der BERG/usa"), "Van Der Berg/Usa");
        assert_eq!(pcase_dotnet("jean–luc «picard»"), "Jean–Luc «Picard»");
        assert_eq!(pcase_dotnet("'tis"), "'Tis");
        // Only the ASCII apostrophe continues a word; U+2019 is punctuation.
        assert_eq!(pcase_dotnet("o\u{2019}neil"), "O\u{2019}Neil");
        assert_eq!(pcase_dotnet("ÉLODIE ÆSIR"), "Élodie Æsir");
        assert_eq!(pcase_dotnet("ΣΩΚΡΆΤΗΣ"), "Σωκράτησ"); // simple mapping: no final sigma
        assert_eq!(pcase_dotnet("ǆemal"), "ǅemal");
        assert_eq!(pcase_dotnet("straße"), "Straße");
        assert_eq!(pcase_dotnet("ßa"), "ßa");
        assert_eq!(pcase_dotnet("İSTANBUL"), "Istanbul");
        assert_eq!(pcase_dotnet("日本 abc"), "日本 Abc");
        assert_eq!(pcase_dotnet(""), "");
        assert_eq!(pcase_dotnet("   "), "   ");
    }

    #[test]
    fn pcase_connect_is_space_delimited() {
        assert_eq!(pcase_connect("o'neil-smith"), "O'neil-smith");
        assert_eq!(pcase_connect("JOHN  DOE\tJR"), "John  Doe\tJr");
        assert_eq!(pcase_connect("1st PLACE"), "1st Place");
        assert_eq!(pcase_connect(" leading"), " Leading");
        assert_eq!(pcase_connect(""), "");
    }

    #[test]
    fn pcase_with_separators_edge_cases() {
        assert_eq!(pcase_with_separators("JOHN DOE", ""), "John doe");
        assert_eq!(pcase_with_separators("a,b c", ","), "A,B c");
        assert_eq!(pcase_with_separators("--x--", "-"), "--X--");
        assert_eq!(pcase_with_separators("", " "), "");
        assert_eq!(pcase_with_separators("éLAN·VITAL", "·"), "Élan·Vital");
    }

    // ----- ReplaceChars -------------------------------------------------------------------

    #[test]
    fn replace_chars_doc_example_with_quote_entry() {
        // The documented parameter value starts with ’: (remove the right single quote).
        let table = parse_replace_chars_pattern("’:,Å:A,Ä:A,Ö:O,å:a,ä:a,ö:o").unwrap();
        assert_eq!(replace_chars("Räksmörgås", &table), "Raksmorgas");
        assert_eq!(replace_chars("O’Neil", &table), "ONeil");
    }

    #[test]
    fn replace_chars_doc_example_variants() {
        // Leading empty pair ':' is skipped.
        let table = parse_replace_chars_pattern(":,Å:A,Ä:A,Ö:O,å:a,ä:a,ö:o").unwrap();
        assert_eq!(table.len(), 6);
        assert_eq!(replace_chars("Räksmörgås", &table), "Raksmorgas");
        // The doc's literal typo 'ö,o' (and its format line '{sourceN},{targetN}').
        let table = parse_replace_chars_pattern("’:,Å:A,Ä:A,Ö:O,å:a,ä:a,ö,o").unwrap();
        assert_eq!(replace_chars("Räksmörgås", &table), "Raksmorgas");
        assert_eq!(replace_chars("O’Neil", &table), "ONeil");
    }

    #[test]
    fn replace_chars_rules() {
        let table = parse_replace_chars_pattern(" ö : oe ,\tβ:ss, x: ,,").unwrap();
        assert_eq!(
            table,
            vec![
                ('ö', "oe".to_owned()),
                ('β', "ss".to_owned()),
                ('x', String::new())
            ]
        );
        assert_eq!(replace_chars("öβxÖ", &table), "oessÖ"); // case-sensitive
        assert_eq!(replace_chars("", &table), "");
        // Later pair wins; single pass.
        let table = parse_replace_chars_pattern("a:b,b:c,a:z").unwrap();
        assert_eq!(replace_chars("ab", &table), "zc");
        assert!(parse_replace_chars_pattern("").unwrap().is_empty());
        assert!(parse_replace_chars_pattern("  ").unwrap().is_empty());
        let table = parse_replace_chars_pattern("😀:smile").unwrap();
        assert_eq!(replace_chars("a😀", &table), "asmile");
    }

    #[test]
    fn replace_chars_errors_name_the_pair() {
        let e = parse_replace_chars_pattern("ab:c").unwrap_err();
        assert!(
            e.contains("\"ab\"") && e.contains("exactly one character"),
            "{e}"
        );
        let e = parse_replace_chars_pattern(":x").unwrap_err();
        assert!(e.contains("empty source"), "{e}");
        let e = parse_replace_chars_pattern("a:b:c").unwrap_err();
        assert!(e.contains("\"a:b:c\""), "{e}");
        let e = parse_replace_chars_pattern("a:b,c").unwrap_err();
        assert!(e.contains("\"c\""), "{e}");
        assert!(parse_replace_chars_pattern("abc,d").is_err());
        assert!(parse_replace_chars_pattern("a,b:c").is_err());
    }

    #[test]
    fn replace_monikers_translates_n_r_t() {
        assert_eq!(replace_monikers("\\r\\n"), "\r\n");
        assert_eq!(replace_monikers("a\\tb"), "a\tb");
        assert_eq!(replace_monikers("\\x\\"), "\\x\\");
        assert_eq!(replace_monikers("\\\\n"), "\\\n");
        assert_eq!(replace_monikers("plain"), "plain");
        assert_eq!(replace_monikers(""), "");
        assert_eq!(replace_monikers("é\\n😀"), "é\n😀");
    }

    // ----- Word -----------------------------------------------------------------------------

    #[test]
    fn word_doc_examples() {
        assert_eq!(word("The quick brown fox", 3, " "), "brown");
        assert_eq!(word("This,string!has&many separators", 3, ",!&#"), "has");
    }

    #[test]
    fn word_edge_cases() {
        assert_eq!(word("The quick brown fox", 0, " "), "");
        assert_eq!(word("The quick brown fox", -1, " "), "");
        assert_eq!(word("The quick brown fox", 5, " "), "");
        assert_eq!(word("The quick brown fox", i64::MAX, " "), "");
        assert_eq!(word("a,,b", 2, ","), "b");
        assert_eq!(word(",,a,,b,,", 1, ","), "a");
        assert_eq!(word("abc", 1, " "), "abc");
        assert_eq!(word("abc def", 1, ""), "abc def");
        assert_eq!(word("", 1, " "), "");
        assert_eq!(word("   ", 1, " "), "");
        assert_eq!(word("john.doe@contoso.com", 1, "@"), "john.doe");
        assert_eq!(word("über·straße·x", 2, "·"), "straße");
    }

    // ----- GUID / SID -------------------------------------------------------------------------

    const GUID_BYTES: [u8; 16] = [
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE,
        0xFF,
    ];

    #[test]
    fn guid_round_trip_dotnet_byte_order() {
        assert_eq!(
            string_from_guid(&GUID_BYTES).unwrap(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        for s in [
            "00112233-4455-6677-8899-aabbccddeeff",
            "00112233-4455-6677-8899-AABBCCDDEEFF",
            "{00112233-4455-6677-8899-aabbccddeeff}",
            "00112233445566778899aabbccddeeff",
            "  00112233-4455-6677-8899-aabbccddeeff\t",
        ] {
            assert_eq!(guid_to_bytes(s).unwrap(), GUID_BYTES.to_vec(), "{s}");
            assert!(is_guid(s));
        }
    }

    #[test]
    fn guid_doc_patterns() {
        assert!(is_guid("00001111-aaaa-2222-bbbb-3333cccc4444"));
        assert!(is_guid("{00001111-aaaa-2222-bbbb-3333cccc4444}"));
        let g = "00aa00aa-bb11-cc22-dd33-44ee44ee44ee";
        assert_eq!(string_from_guid(&guid_to_bytes(g).unwrap()).unwrap(), g);
    }

    #[test]
    fn guid_rejects_malformed() {
        for s in [
            "",
            "{}",
            "00112233-4455-6677-8899-aabbccddeef",
            "00112233-4455-6677-8899-aabbccddeefg",
            "0011223-34455-6677-8899-aabbccddeeff",
            "{00112233445566778899aabbccddeeff}",
            "{00112233-4455-6677-8899-aabbccddeeff",
            "(00112233-4455-6677-8899-aabbccddeeff)",
            "00112233-4455-6677-8899-aabbccddeeffé",
            "0011223344556677889９aabbccddeeff",
        ] {
            assert!(!is_guid(s), "{s:?}");
        }
        let e = guid_to_bytes("nope").unwrap_err();
        assert!(e.contains("\"nope\""), "{e}");
        let e = string_from_guid(&[1, 2, 3]).unwrap_err();
        assert!(e.contains("3 bytes"), "{e}");
        assert!(string_from_guid(&[0; 17]).is_err());
    }

    #[test]
    fn sid_strings() {
        let everyone = [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(string_from_sid(&everyone).unwrap(), "S-1-1-0");
        let admins = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0];
        assert_eq!(string_from_sid(&admins).unwrap(), "S-1-5-32-544");
        let mut user = vec![1, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 3_623_811_015, 3_361_044_348, 30_300_820, 1013] {
            user.extend_from_slice(&sub.to_le_bytes());
        }
        assert_eq!(
            string_from_sid(&user).unwrap(),
            "S-1-5-21-3623811015-3361044348-30300820-1013"
        );
        assert_eq!(string_from_sid(&[1, 0, 0, 0, 0, 0, 0, 5]).unwrap(), "S-1-5");
        let big_authority = [1, 0, 0x01, 0, 0, 0, 0, 0];
        assert_eq!(
            string_from_sid(&big_authority).unwrap(),
            "S-1-1099511627776"
        );
    }

    #[test]
    fn sid_validation() {
        assert!(string_from_sid(&[]).unwrap_err().contains("0 bytes"));
        assert!(string_from_sid(&[1, 1, 0, 0, 0, 0, 0, 1])
            .unwrap_err()
            .contains("12 bytes"));
        assert!(string_from_sid(&[1, 0, 0, 0, 0, 0, 0, 1, 0]).is_err());
        assert!(string_from_sid(&[2, 0, 0, 0, 0, 0, 0, 1])
            .unwrap_err()
            .contains("revision"));
        let mut too_many = vec![1, 16, 0, 0, 0, 0, 0, 5];
        too_many.extend(std::iter::repeat_n(0, 64));
        assert!(string_from_sid(&too_many)
            .unwrap_err()
            .contains("at most 15"));
    }

    // ----- Base64 / UTF-8 hex ---------------------------------------------------------------

    #[test]
    fn base64_doc_examples() {
        assert_eq!(
            to_base64_utf16le("Hello world!"),
            "SABlAGwAbABvACAAdwBvAHIAbABkACEA"
        );
        assert_eq!(
            from_base64(
                "SABlAGwAbABvACAAdwBvAHIAbABkACEA",
                Base64TextEncoding::default()
            )
            .unwrap(),
            "Hello world!"
        );
        assert_eq!(
            from_base64("SGVsbG8gd29ybGQh", Base64TextEncoding::Utf8).unwrap(),
            "Hello world!"
        );
    }

    #[test]
    fn base64_round_trips_and_leniency() {
        for s in ["", "é", "日本語", "😀 emoji", "a\0b"] {
            assert_eq!(
                from_base64(&to_base64_utf16le(s), Base64TextEncoding::Unicode).unwrap(),
                s
            );
        }
        assert_eq!(to_base64_utf16le(""), "");
        assert_eq!(
            from_base64("SGVs bG8g\r\nd29y bGQh", Base64TextEncoding::Ascii).unwrap(),
            "Hello world!"
        );
        assert_eq!(from_base64("SGk", Base64TextEncoding::Utf8).unwrap(), "Hi");
        assert_eq!(from_base64("w6k=", Base64TextEncoding::Utf8).unwrap(), "é");
        assert_eq!(
            from_base64("w6k=", Base64TextEncoding::Ascii).unwrap(),
            "??"
        );
        assert_eq!(
            from_base64("/w==", Base64TextEncoding::Utf8).unwrap(),
            "\u{FFFD}"
        );
        // Odd byte count and a lone surrogate in UTF-16LE.
        assert_eq!(
            from_base64("QQBC", Base64TextEncoding::Unicode).unwrap(),
            "A\u{FFFD}"
        );
        assert_eq!(
            from_base64("ANg=", Base64TextEncoding::Unicode).unwrap(),
            "\u{FFFD}"
        );
        let e = from_base64("not base64!", Base64TextEncoding::Utf8).unwrap_err();
        assert!(e.contains("\"not base64!\""), "{e}");
        assert!(from_base64("A", Base64TextEncoding::Utf8).is_err());
    }

    #[test]
    fn utf8_hex_doc_examples() {
        assert_eq!(to_utf8_hex("Hello world!"), "48656C6C6F20776F726C6421");
        assert_eq!(
            from_utf8_hex("48656C6C6F20776F726C6421").unwrap(),
            "Hello world!"
        );
    }

    #[test]
    fn utf8_hex_edge_cases() {
        assert_eq!(to_utf8_hex(""), "");
        assert_eq!(to_utf8_hex("é😀"), "C3A9F09F9880");
        assert_eq!(from_utf8_hex("c3a9").unwrap(), "é");
        assert_eq!(from_utf8_hex("").unwrap(), "");
        assert_eq!(from_utf8_hex("FF41").unwrap(), "\u{FFFD}A");
        assert!(from_utf8_hex("ABC").unwrap_err().contains("odd"));
        assert!(from_utf8_hex("zz").unwrap_err().contains("\"zz\""));
        assert!(from_utf8_hex("é1").is_err());
        for s in ["", "x", "Ω≈ç√", "\u{10FFFF}"] {
            assert_eq!(from_utf8_hex(&to_utf8_hex(s)).unwrap(), s);
        }
    }

    // ----- DN -------------------------------------------------------------------------------

    const DOC_DN: &str = "cn=Joe,ou=Atlanta,ou=GA,ou=US, dc=contoso,dc=com";

    #[test]
    fn dn_doc_examples() {
        assert_eq!(
            dn_component("cn=Joe,ou=Sales,dc=contoso,dc=com", 1).unwrap(),
            "Joe"
        );
        // The doc literally shows "cn=Joe,ou=…," with a trailing comma.
        assert_eq!(dn_component("cn=Joe,ou=…,", 1).unwrap(), "Joe");
        assert_eq!(dn_component_rev(DOC_DN, 3, false).unwrap(), "US");
        assert_eq!(dn_component_rev(DOC_DN, 1, true).unwrap(), "US");
        // The shipped cloudFiltered rule looks for "\0ACNF:" in the first component.
        let conflict = "CN=Joe\\0ACNF:0f1e2d3c-aaaa-bbbb-cccc-000011112222,OU=x,DC=contoso,DC=com";
        let first = dn_component(conflict, 1).unwrap();
        assert!(first.starts_with("Joe\\0ACNF:"), "{first:?}");
        // dn_components decodes escapes for callers that want the value itself.
        assert!(dn_components(conflict).unwrap()[0]
            .1
            .starts_with("Joe\nCNF:"));
    }

    #[test]
    fn dn_other_documented_values() {
        let dn =
            "CN=LC Services,CN=Microsoft,CN=lcspool01,CN=Pools,CN=RTC Service,DC=contoso,DC=com";
        assert_eq!(dn_component(dn, 1).unwrap(), "LC Services");
        assert_eq!(dn_component_rev(dn, 1, true).unwrap(), "RTC Service");
        assert_eq!(dn_component("cn=Joe,dc=contoso,dc=com", 1).unwrap(), "Joe");
        assert_eq!(
            dn_component_rev("OU=Users,DC=contoso,DC=com", 3, false).unwrap(),
            "Users"
        );
    }

    #[test]
    fn dn_components_parse() {
        assert_eq!(
            dn_components(DOC_DN).unwrap(),
            vec![
                ("cn".to_owned(), "Joe".to_owned()),
                ("ou".to_owned(), "Atlanta".to_owned()),
                ("ou".to_owned(), "GA".to_owned()),
                ("ou".to_owned(), "US".to_owned()),
                ("dc".to_owned(), "contoso".to_owned()),
                ("dc".to_owned(), "com".to_owned()),
            ]
        );
        assert!(dn_components("").unwrap().is_empty());
        assert!(dn_components("   ").unwrap().is_empty());
        let v = |dn: &str| dn_components(dn).unwrap().remove(0).1;
        assert_eq!(v("CN=Doe\\, John,OU=x"), "Doe, John");
        assert_eq!(v("CN=Doe\\2C John,OU=x"), "Doe, John");
        assert_eq!(v("CN=a\\\\b\\\"c\\+d\\;e\\<f\\>g\\=h"), "a\\b\"c+d;e<f>g=h");
        assert_eq!(v("CN=\\#hash\\ ,OU=x"), "#hash ");
        assert_eq!(v("cn=Ren\\C3\\A9e"), "Renée");
        assert_eq!(v("cn=Renée"), "Renée");
        assert_eq!(v("cn=\"Doe, John\",ou=x"), "Doe, John");
        assert_eq!(v("cn=\"a\\\"b\" ;ou=x"), "a\"b");
        assert_eq!(v("cn = Joe , ou = x"), "Joe");
        assert_eq!(v("cn=,ou=x"), "");
        assert_eq!(v("cn=#04024869"), "#04024869");
        assert_eq!(v("cn=a=b"), "a=b");
        assert_eq!(dn_component("cn=Joe;ou=x;dc=y", 2).unwrap(), "x");
        // Multi-valued RDN: first pair only, indexes count RDNs.
        assert_eq!(dn_components("cn=a+sn=b,ou=x").unwrap().len(), 2);
        assert_eq!(v("cn=a+sn=b,ou=x"), "a");
        assert_eq!(dn_component("cn=a+sn=b,ou=x", 2).unwrap(), "x");
        assert_eq!(dn_component("cn=a \\+ b,ou=x", 1).unwrap(), "a \\+ b");
    }

    #[test]
    fn dn_component_ranges() {
        assert_eq!(dn_component(DOC_DN, 0).unwrap(), "");
        assert_eq!(dn_component(DOC_DN, -3).unwrap(), "");
        assert_eq!(dn_component(DOC_DN, 6).unwrap(), "com");
        assert_eq!(dn_component(DOC_DN, 7).unwrap(), "");
        assert_eq!(dn_component(DOC_DN, i64::MAX).unwrap(), "");
        assert_eq!(dn_component_rev(DOC_DN, 1, false).unwrap(), "com");
        assert_eq!(dn_component_rev(DOC_DN, 6, false).unwrap(), "Joe");
        assert_eq!(dn_component_rev(DOC_DN, 7, false).unwrap(), "");
        assert_eq!(dn_component_rev(DOC_DN, 4, true).unwrap(), "Joe");
        assert_eq!(dn_component_rev(DOC_DN, 5, true).unwrap(), "");
        assert_eq!(dn_component_rev(DOC_DN, 0, true).unwrap(), "");
        assert_eq!(dn_component_rev("CN=x,DC=a,Dc=b", 1, true).unwrap(), "x");
        assert_eq!(dn_component_rev("dc=a,dc=b", 1, true).unwrap(), "");
    }

    #[test]
    fn dn_errors() {
        for dn in [
            "Joe",
            "cn=Joe,ou",
            "=x",
            "cn=a\\",
            "cn=\"open",
            "cn=\"a\"b",
            "cn=a,,ou=b",
            "cn=\\FF",
        ] {
            let e = dn_components(dn).unwrap_err();
            assert!(e.contains(&format!("{dn:?}")), "{dn}: {e}");
        }
        // DNComponent keeps values as written, so it only rejects what it cannot split.
        for dn in [
            "Joe",
            "cn=Joe,ou",
            "=x",
            "cn=a\\",
            "cn=\"open",
            "cn=a,,ou=b",
        ] {
            assert!(dn_component(dn, 1).is_err(), "{dn}");
            assert!(dn_component_rev(dn, 1, true).is_err(), "{dn}");
        }
        assert_eq!(
            dn_component("cn=Doe\\, John,ou=x", 1).unwrap(),
            "Doe\\, John"
        );
    }

    #[test]
    fn escape_dn_component_examples() {
        assert_eq!(escape_dn_component("cn=Doe, John"), "cn=Doe\\, John");
        assert_eq!(escape_dn_component("cn=Smith"), "cn=Smith");
        assert_eq!(
            escape_dn_component("cn=a+b\"c\\d<e>f;g=h"),
            "cn=a\\+b\\\"c\\\\d\\<e\\>f\\;g\\=h"
        );
        assert_eq!(escape_dn_component("cn=#1 #2"), "cn=\\#1 #2");
        assert_eq!(escape_dn_component("cn= padded "), "cn=\\ padded\\ ");
        assert_eq!(escape_dn_component("cn= "), "cn=\\ ");
        assert_eq!(escape_dn_component("cn=a\nb\rc\0"), "cn=a\\0Ab\\0Dc\\00");
        assert_eq!(escape_dn_component("cn=Renée/Ω"), "cn=Renée/Ω");
        assert_eq!(escape_dn_component("cn="), "cn=");
        assert_eq!(escape_dn_component("no equals, here"), "no equals\\, here");
        assert_eq!(escape_dn_component(""), "");
        // Escaped output parses back to the original value.
        for value in ["Doe, John", " x ", "#a+b=c;d<e>f\"g\\h", "Renée", "a\nb"] {
            let escaped = escape_dn_component(&format!("cn={value}"));
            assert_eq!(
                dn_components(&format!("{escaped},ou=x"))
                    .unwrap()
                    .remove(0)
                    .1,
                value,
                "{escaped}"
            );
        }
    }

    // ----- InStr / InStrRev -----------------------------------------------------------------

    #[test]
    fn instr_doc_examples() {
        assert_eq!(instr("The quick brown fox", "quick", 1, false).unwrap(), 5);
        assert_eq!(instr("repEated", "e", 3, false).unwrap(), 7);
        assert_eq!(instr_rev("abbcdbbbef", "bb", None, false).unwrap(), 7);
        // The UserType rule and the shipped cloudFiltered rule.
        assert_eq!(
            instr(
                "john@partners.fabrikam123.org",
                "@partners.fabrikam123.org",
                1,
                false
            )
            .unwrap(),
            5
        );
        assert_eq!(instr("user@contoso.com", "@partners", 1, false).unwrap(), 0);
        assert_eq!(instr("SMTP:a@b.c", "SIP:", 1, false).unwrap(), 0);
        assert_eq!(instr("SIP:a@b.c", "SIP:", 1, false).unwrap(), 1);
    }

    #[test]
    fn instr_vb_edge_cases() {
        assert_eq!(instr("repEated", "e", 3, true).unwrap(), 4);
        assert_eq!(instr("abc", "", 1, false).unwrap(), 1);
        assert_eq!(instr("abc", "", 3, false).unwrap(), 3);
        assert_eq!(instr("abc", "", 4, false).unwrap(), 4);
        assert_eq!(instr("abc", "", 5, false).unwrap(), 0);
        assert_eq!(instr("", "", 1, false).unwrap(), 0);
        assert_eq!(instr("", "a", 1, false).unwrap(), 0);
        assert_eq!(instr("abc", "c", 3, false).unwrap(), 3);
        assert_eq!(instr("abc", "c", 4, false).unwrap(), 0);
        assert_eq!(instr("abc", "abcd", 1, false).unwrap(), 0);
        assert_eq!(instr("abc", "a", i64::MAX, false).unwrap(), 0);
        assert!(instr("abc", "a", 0, false).unwrap_err().contains("start"));
        assert!(instr("abc", "a", -1, false).is_err());
        // Character positions, not bytes.
        assert_eq!(instr("éé😀x", "x", 1, false).unwrap(), 4);
        assert_eq!(instr("ÄBC äbc", "äb", 1, true).unwrap(), 1);
        assert_eq!(instr("ÄBC äbc", "äb", 2, true).unwrap(), 5);
        assert_eq!(instr("ÄBC äbc", "äb", 1, false).unwrap(), 5);
    }

    #[test]
    fn instr_rev_vb_edge_cases() {
        assert_eq!(instr_rev("abbcdbbbef", "bb", Some(-1), false).unwrap(), 7);
        assert_eq!(instr_rev("abbcdbbbef", "bb", Some(7), false).unwrap(), 6);
        assert_eq!(instr_rev("abbcdbbbef", "bb", Some(6), false).unwrap(), 2);
        assert_eq!(instr_rev("abbcdbbbef", "bb", Some(2), false).unwrap(), 0);
        assert_eq!(instr_rev("abbcdbbbef", "bb", Some(3), false).unwrap(), 2);
        assert_eq!(instr_rev("abbcdbbbef", "BB", None, false).unwrap(), 0);
        assert_eq!(instr_rev("abbcdbbbef", "BB", None, true).unwrap(), 7);
        assert_eq!(instr_rev("abc", "", None, false).unwrap(), 3);
        assert_eq!(instr_rev("abc", "", Some(2), false).unwrap(), 2);
        assert_eq!(instr_rev("abc", "a", Some(4), false).unwrap(), 0);
        assert_eq!(instr_rev("", "", None, false).unwrap(), 0);
        assert_eq!(instr_rev("a", "abc", None, false).unwrap(), 0);
        assert_eq!(instr_rev("😀a😀a", "a", None, false).unwrap(), 4);
        assert!(instr_rev("abc", "a", Some(0), false).is_err());
        assert!(instr_rev("abc", "a", Some(-2), false).is_err());
        assert_eq!(instr_rev("abc", "a", Some(i64::MAX), false).unwrap(), 0);
    }

    // ----- RandomString ---------------------------------------------------------------------

    fn count(s: &str, set: &str) -> usize {
        s.chars().filter(|c| set.contains(*c)).count()
    }

    #[test]
    fn random_string_doc_examples() {
        let mut rng = xorshift(42);
        let s = random_string(6, 3, 0, 0, 3, "", &mut rng).unwrap();
        assert_eq!(s.chars().count(), 6);
        assert_eq!(count(&s, DIGITS), 3);
        assert_eq!(count(&s, LOWER), 3);
        for seed in 1..50 {
            let mut rng = xorshift(seed);
            let s = random_string(10, 2, 2, 2, 1, "?,", &mut rng).unwrap();
            assert_eq!(s.chars().count(), 10);
            assert!(count(&s, DIGITS) >= 2 && count(&s, SPECIAL) >= 2);
            assert!(count(&s, UPPER) >= 2 && count(&s, LOWER) >= 1);
            assert!(!s.contains('?') && !s.contains(','), "{s}");
        }
    }

    #[test]
    fn random_string_limits_and_errors() {
        let mut rng = xorshift(7);
        assert_eq!(
            random_string(256, 0, 0, 0, 0, "", &mut rng)
                .unwrap()
                .chars()
                .count(),
            256
        );
        assert_eq!(random_string(0, 0, 0, 0, 0, "", &mut rng).unwrap(), "");
        assert!(random_string(257, 0, 0, 0, 0, "", &mut rng)
            .unwrap_err()
            .contains("256"));
        assert!(random_string(3, 1, 1, 1, 1, "", &mut rng)
            .unwrap_err()
            .contains("exceed"));
        assert!(random_string(-1, 0, 0, 0, 0, "", &mut rng)
            .unwrap_err()
            .contains("Length"));
        assert!(random_string(5, 0, -1, 0, 0, "", &mut rng).is_err());
        assert!(random_string(5, 1, 0, 0, 0, DIGITS, &mut rng)
            .unwrap_err()
            .contains("numbers"));
        let everything = format!("{DIGITS}{UPPER}{LOWER}{SPECIAL}");
        assert!(random_string(5, 0, 0, 0, 0, &everything, &mut rng).is_err());
        assert!(random_string(i64::MAX, i64::MAX, i64::MAX, 0, 0, "", &mut rng).is_err());
        let e = random_string(8, i64::MAX, i64::MAX, i64::MAX, i64::MAX, "", &mut rng).unwrap_err();
        assert!(e.contains("exceed"), "{e}");
        let s = random_string(50, 0, 0, 0, 50, "abcdefghijklmnopqrstuvwxy", &mut rng).unwrap();
        assert_eq!(s, "z".repeat(50));
    }

    #[test]
    fn random_string_survives_degenerate_rng() {
        for value in [0, u64::MAX, 1 << 63] {
            let mut rng = move || value;
            let s = random_string(20, 5, 5, 5, 5, "", &mut rng).unwrap();
            assert_eq!(s.chars().count(), 20);
        }
    }

    // ----- .NET regex -----------------------------------------------------------------------

    fn rx(p: &str) -> Regex {
        match dotnet_regex(p) {
            Ok(re) => re,
            Err(e) => panic!("{p}: {e}"),
        }
    }

    #[test]
    fn regex_doc_replace_examples() {
        let re = rx(r"\+(?<isdCode>\d* )(?<phoneNumber>\d{10})");
        let rep = dotnet_replacement("${phoneNumber}");
        assert_eq!(re.replace_all("+91 9998887777", rep.as_str()), "9998887777");
        // Documented behaviour keeps the '+' (the printed output drops it; see spec §5).
        let re = rx(r"[()\s-]+");
        assert_eq!(re.replace_all("+1 (999) 888-7777", ""), "+19998887777");
        assert_eq!(re.replace_all("+1 (555) 123-4567", ""), "+15551234567");
        let re = rx(r"(?<streetNumber>^\d*)");
        let caps = re.captures("545 Tremont Street").unwrap();
        assert_eq!(&caps["streetNumber"], "545");
        let re = rx(r"(?<Suffix>@(.)*)");
        assert_eq!(re.replace_all("jsmith@contoso.com", ""), "jsmith");
        let re = rx("[a-zA-Z_]*");
        assert_eq!(re.replace_all("john_doe72", ""), "72");
    }

    #[test]
    fn regex_workday_examples() {
        let re = rx("(?<firstName>[a-zA-Z]+ )(?<lastName>[a-zA-Z]+)");
        assert_eq!(
            re.replace_all("John Smith", dotnet_replacement("${lastName}").as_str()),
            "Smith"
        );
        let re = rx("(?<leadingZeros>^0+)(?<actualValue>[a-zA-Z0-9]+)");
        assert_eq!(
            re.replace_all("00012345", dotnet_replacement("${actualValue}").as_str()),
            "12345"
        );
        let re = rx("(?<CountryISOCode>.*)_(?<suffix1>.*)_(?<suffix2>.*)[0-9]");
        let rep = dotnet_replacement("${suffix1} ${suffix2}");
        assert_eq!(re.replace_all("NLD_Van_der3", rep.as_str()), "Van der");
        let re = rx(r"\+(?<isdCode>\d* )(?<phoneNumber>.* )[x](?<extension>.*)");
        assert_eq!(
            re.replace_all(
                "+1 (206) 291-8163 x8125",
                dotnet_replacement("${extension}").as_str()
            ),
            "8125"
        );
        let re = rx(r"\+(?<isdCode>49|44|43|1|352|91)(?<phoneNumber>.*)");
        assert_eq!(
            re.replace_all("+493012345678", dotnet_replacement("${isdCode}").as_str()),
            "49"
        );
        let re = rx(r"([\/\\\[\]\:\;\|\=\,\+\*\?\<\>])");
        assert_eq!(
            re.replace_all(r"a/b\c[d]e:f;g|h=i,j+k*l?m<n>o", ""),
            "abcdefghijklmno"
        );
        let re = rx(r"(\.)*$");
        assert_eq!(re.replace_all("j.smith..", ""), "j.smith");
        let re = rx("(.*?)(?<id>[a-zA-Z]{4})(.*)");
        assert_eq!(
            re.replace_all("12abcd34ef", dotnet_replacement("D${id}").as_str()),
            "Dabcd"
        );
        let re = rx("[0-9]");
        assert_eq!(re.replace_all("a1b2", "A"), "aAbA");
        let re = rx(r#"[\"',]+"#);
        assert_eq!(re.replace_all("O'Connor,\"x\"", ""), "OConnorx");
        let re = rx(r".*\@domain.com");
        assert!(re.is_match("john@domain.com"));
        let re = rx("(1[0-9][0-9][0-9][0-9][0-9][0-9])");
        assert!(re.is_match("1234567"));
    }

    #[test]
    fn regex_more_documented_pipelines() {
        // Workday: strip the country code, then punctuation.
        let strip_isd = rx(r"\+(?<isdCode>\d* )(?<phoneNumber>.*)");
        let punct = rx(r"[()\s-]+");
        let number = strip_isd.replace_all(
            "+1 737-626-8331",
            dotnet_replacement("${phoneNumber}").as_str(),
        );
        assert_eq!(punct.replace_all(&number, ""), "7376268331");
        // The isdCode group captures the trailing space, so a Switch on "44" cannot match
        // (spec §6: the page's "GBR" output is not reproducible).
        let isd = strip_isd.replace_all(
            "+44 20 7946 0958",
            dotnet_replacement("${isdCode}").as_str(),
        );
        assert_eq!(isd, "44 ");
        // Join("", 1000, Replace(ConvertToUTF8Hex([objectId]), , "[a-zA-Z_]*", , "", , )):
        // documented behaviour (the printed output does not match its own input, spec §6).
        let hex = to_utf8_hex("00aa00aa-bb11-cc22-dd33-44ee44ee44ee");
        let digits = rx("[a-zA-Z_]*").replace_all(&hex, "").into_owned();
        assert_eq!(
            format!("1000{digits}"),
            "100030306161303061612626231312636332322646433332343465653434656534346565"
        );
    }

    #[test]
    fn regex_translations() {
        assert_eq!(&rx("(?P<n>[0-9]+)").captures("ab12").unwrap()["n"], "12");
        let re = rx("(?'word'[a-z]+)");
        assert_eq!(&re.captures("42 abc").unwrap()["word"], "abc");
        assert!(rx("[a-z-[aeiou]]+").is_match("bcd"));
        assert!(!rx("^[a-z-[aeiou]]+$").is_match("bad"));
        assert!(rx("^[[]$").is_match("["));
        assert!(rx("^[a&&b]+$").is_match("a&b"));
        assert!(rx("^[a~~b]+$").is_match("~"));
        assert!(rx("^[!--]+$").is_match("#-"));
        assert!(rx("^[]a]+$").is_match("]a"));
        assert!(rx("^[-a]+$").is_match("-a"));
        assert!(rx(r"^[\w-]+$").is_match("a-b_c"));
        assert!(rx(r"^[a-c-e]+$").is_match("a-e"));
        assert!(rx(r"^\<b\>$").is_match("<b>"));
        assert!(rx(r"^a{$").is_match("a{"));
        assert!(rx(r"^{x}$").is_match("{x}"));
        assert!(rx(r"^a{2,}$").is_match("aaa"));
        assert!(rx(r"^a{,2}$").is_match("a{,2}"));
        assert!(rx(r"^a]$").is_match("a]"));
        assert!(rx(r"^\e\cA\x41\u00e9\0\012$").is_match("\u{1B}\u{1}Aé\0\n"));
        assert!(rx(r"^[\b]$").is_match("\u{8}"));
        assert!(rx(r"^a(?#comment)b$").is_match("ab"));
        assert!(rx(r"(?i)^abc$").is_match("ABC"));
        assert!(rx(r"(?i:a)b").is_match("Ab"));
        assert!(rx(r"(?x) a b # comment (?= [ \n c").is_match("abc"));
        assert!(rx(r"(?x)^[ ]$").is_match(" "));
        assert!(rx(r"\p{Lu}\P{L}").is_match("A1"));
        assert!(rx(r"^\d+\.\d+$").is_match("1.5"));
        assert!(rx(r"^\ $").is_match(" "));
        assert!(rx(r"^\#\&\~$").is_match("#&~"));
        assert!(rx(r"\bword\b").is_match("a word here"));
        assert!(rx(r"^\Aa\z").is_match("a"));
        assert!(rx(r"^[^\d\s]+$").is_match("abc"));
    }

    #[test]
    fn regex_rejections_name_construct_and_position() {
        for (p, what) in [
            ("a(?=b)", "lookahead"),
            ("a(?!b)", "negative lookahead"),
            ("(?<=a)b", "lookbehind"),
            ("(?<!a)b", "negative lookbehind"),
            ("(?>a)", "atomic"),
            ("(?(a)b|c)", "conditional"),
            (r"(a)\1", "backreference"),
            (r"(?<x>a)\k<x>", "named backreference"),
            ("(?<a-b>x)", "balancing"),
            (r"\Gx", r"\G"),
            (r"x\Z", r"\Z"),
            ("(?n)x", "explicit-capture"),
            (r"\q", "unrecognized escape"),
            ("a\\", "lone"),
            ("[abc", "not closed"),
            ("(?<name", "not closed"),
            ("(?#x", "comment"),
            (r"\x4", "hex digits"),
            (r"\c1", "letter"),
            (r"\p", "Category"),
            ("(?z)", "unrecognized group"),
        ] {
            let e = dotnet_regex(p).unwrap_err();
            assert!(e.contains(what), "{p}: {e}");
            assert!(e.contains(&format!("{p:?}")), "{p}: {e}");
        }
        let e = dotnet_regex("abc(?=x)").unwrap_err();
        assert!(e.contains("position 4"), "{e}");
        // Reported by the regex crate.
        assert!(dotnet_regex(r"\p{NoSuchCategory}").is_err());
        assert!(dotnet_regex("(a").is_err());
        assert!(dotnet_regex("*a").is_err());
    }

    #[test]
    fn replacement_translation() {
        assert_eq!(dotnet_replacement("${phoneNumber}"), "${phoneNumber}");
        assert_eq!(dotnet_replacement("$1a"), "${1}a");
        assert_eq!(dotnet_replacement("$12"), "${12}");
        assert_eq!(dotnet_replacement("$$1"), "$$1");
        assert_eq!(dotnet_replacement("$0|$&"), "${0}|${0}");
        assert_eq!(dotnet_replacement("cost: $x"), "cost: $$x");
        assert_eq!(dotnet_replacement("$"), "$$");
        assert_eq!(dotnet_replacement("${"), "$${");
        assert_eq!(dotnet_replacement("${}"), "$${}");
        assert_eq!(dotnet_replacement("${a b}"), "$${a b}");
        assert_eq!(dotnet_replacement("$`$'$+$_"), "$$`$$'$$+$$_");
        assert_eq!(dotnet_replacement("plain é"), "plain é");
        let re = rx("(?<first>a)(b)");
        assert_eq!(dotnet_replacement_for(&re, "$2$1$3"), "${2}${1}$$3");
        assert_eq!(dotnet_replacement_for(&re, "$21"), "${2}1");
        assert_eq!(
            dotnet_replacement_for(&re, "${first}${nope}${2}${9}"),
            "${first}$${nope}${2}$${9}"
        );
        assert_eq!(
            re.replace_all("ab", dotnet_replacement_for(&re, "[$2$1$3]").as_str()),
            "[ba$3]"
        );
        assert_eq!(
            re.replace_all("ab", dotnet_replacement("$1x").as_str()),
            "ax"
        );
    }

    // ----- Robustness -----------------------------------------------------------------------

    #[test]
    fn no_panics_on_odd_input() {
        let odd = [
            "",
            " ",
            "\0",
            "\\",
            "\\\\",
            "=",
            ",",
            "+",
            ";",
            "\"",
            "'",
            ":",
            "::,,",
            "$",
            "${",
            "(?",
            "(?<",
            "[",
            "[^",
            "[]",
            "[^]",
            "{",
            "{1,",
            "\\x",
            "\\u12",
            "\\c",
            "\\p{",
            "a\u{301}",
            "\u{301}",
            "\u{FEFF}",
            "\u{200B}",
            "\u{10FFFF}",
            "😀",
            "👨‍👩‍👧",
            "İ",
            "ß",
            "ǅ",
            "Σ",
            "\r\n",
            "\t",
            "cn=",
            "cn=\\",
            "cn=\"",
            "=,=,=",
            "cn=a+",
            "+,;",
            "#",
            "# ",
            "\\#",
            "\u{7F}",
            "\u{85}",
            "\u{2028}",
            "ﬁ",
            "Ω",
            "𝔘𝔫𝔦",
            "%20",
            "{00112233-4455-6677-8899-aabbccddeeff}",
            "S-1-5",
            "====",
            "AA==",
        ];
        let mut rng = xorshift(99);
        for a in odd {
            let _ = normalize_diacritics(a);
            let _ = pcase_dotnet(a);
            let _ = pcase_connect(a);
            let _ = replace_monikers(a);
            let _ = to_base64_utf16le(a);
            let _ = to_utf8_hex(a);
            let _ = from_utf8_hex(a);
            let _ = is_guid(a);
            let _ = guid_to_bytes(a);
            let _ = string_from_guid(a.as_bytes());
            let _ = string_from_sid(a.as_bytes());
            let _ = dn_components(a);
            let _ = escape_dn_component(a);
            let _ = dotnet_regex(a);
            let _ = dotnet_replacement(a);
            let _ = parse_replace_chars_pattern(a);
            for enc in [
                Base64TextEncoding::Unicode,
                Base64TextEncoding::Utf8,
                Base64TextEncoding::Ascii,
            ] {
                let _ = from_base64(a, enc);
            }
            for n in [i64::MIN, -1, 0, 1, 2, 3, i64::MAX] {
                let _ = dn_component(a, n);
                let _ = dn_component_rev(a, n, true);
                let _ = random_string(n, 0, 0, 0, 0, a, &mut rng);
                let _ = random_string(8, n, 0, 0, 0, a, &mut rng);
            }
            for b in odd {
                let _ = pcase_with_separators(a, b);
                let table = parse_replace_chars_pattern(b).unwrap_or_default();
                let _ = replace_chars(a, &table);
                for n in [i64::MIN, -1, 0, 1, 2, 3, 100, i64::MAX] {
                    let _ = word(a, n, b);
                    for text in [false, true] {
                        let _ = instr(a, b, n, text);
                        let _ = instr_rev(a, b, Some(n), text);
                        let _ = instr_rev(a, b, None, text);
                    }
                }
                if let Ok(re) = dotnet_regex(a) {
                    let rep = dotnet_replacement_for(&re, b);
                    let _ = re.replace_all(b, rep.as_str());
                }
                let _ = escape_dn_component(&format!("{a}={b}"));
                let _ = dn_components(&format!("{a}={b},{b}={a}"));
            }
        }
    }

    #[test]
    fn no_panics_on_arbitrary_bytes() {
        let mut rng = xorshift(1234);
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|_| (rng() & 0xFF) as u8).collect();
            let _ = string_from_sid(&bytes);
            let _ = string_from_guid(&bytes);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = dn_components(&text);
            let _ = dotnet_regex(&text);
            let _ = from_base64(&text, Base64TextEncoding::Unicode);
            let _ = normalize_diacritics(&text);
            let _ = pcase_dotnet(&text);
        }
    }
}
