//! Small helpers: a seeded random generator, GUIDs, timestamps, URL decoding.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};

/// SplitMix64: tiny, fast and reproducible from a seed, which is all fault injection and id
/// generation need (nothing here is security-relevant).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn from_time() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed);
        Self(nanos ^ (std::process::id() as u64).rotate_left(32))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random version-4 GUID in its lower-case hyphenated form.
    pub(crate) fn guid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

/// Whether `s` looks like a GUID (8-4-4-4-12 hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Graph's timestamp format for user properties (`2021-04-20T17:22:30Z`).
pub(crate) fn iso_z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `innerError.date` format (`2021-04-20T17:22:30`, no zone).
pub(crate) fn inner_error_date() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub(crate) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s`; `plus_is_space` for form-encoded query strings. Invalid escapes are
/// kept literally (as IIS does); invalid UTF-8 yields `None`.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a query value the way Graph writes its own links (keeps `$`, `,`, `'`).
pub(crate) fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b','
            | b'\''
            | b'('
            | b')'
            | b'/'
            | b':'
            | b'@' => out.push(b as char),
            b' ' => out.push_str("%20"),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// A keyed 128-bit digest (two FNV-1a lanes). Tokens are signed with it so that the emulator
/// can check them statelessly; it is not cryptographic and does not need to be.
pub(crate) fn keyed_digest(key: u64, data: &[u8]) -> String {
    let mut lanes = [
        0xcbf2_9ce4_8422_2325u64 ^ key,
        0x8422_2325_cbf2_9ce4u64 ^ key.rotate_left(17),
    ];
    for (n, lane) in lanes.iter_mut().enumerate() {
        for &b in data {
            *lane ^= b as u64 + n as u64;
            *lane = lane.wrapping_mul(0x0000_0100_0000_01B3);
        }
        *lane ^= key;
        *lane = lane.wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&lanes[0].to_be_bytes());
    bytes.extend_from_slice(&lanes[1].to_be_bytes());
    b64url_encode(&bytes)
}

/// Simple glob matching where `*` matches any run of characters (case-insensitive).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        let mut r = SplitMix64::new(7);
        let g = r.guid();
        assert!(is_guid(&g), "{g}");
        assert_eq!(&g[14..15], "4");
    }

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("a%23EXT%23b", false).as_deref(),
            Some("a#EXT#b")
        );
        assert_eq!(percent_decode("a+b%2", true).as_deref(), Some("a b%2"));
        assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF", false), None);
    }

    #[test]
    fn globbing() {
        assert!(glob_match("/v1.0/users*", "/v1.0/users/abc"));
        assert!(glob_match("*", "/x"));
        assert!(!glob_match("/v1.0/users", "/v1.0/users/abc"));
        assert!(glob_match(
            "/v1.0/*/restore",
            "/v1.0/directory/deletedItems/x/restore"
        ));
    }
}
