use std::fmt;

/// An opaque delta-read position, issued by a source and handed back to the same source.
///
/// Callers store it between runs (in the state store, or a file for
/// `partnersync source read --cookie FILE`) and never look inside: each implementation
/// documents its own format.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cookie(Vec<u8>);

impl Cookie {
    /// A cookie with these bytes (as previously returned by [`Cookie::as_bytes`]).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Cookie(bytes.into())
    }

    /// The cookie's bytes, for storing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The cookie's bytes, for storing.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for Cookie {
    fn from(bytes: Vec<u8>) -> Self {
        Cookie(bytes)
    }
}

/// Cookies can be megabytes long (the LDIF source's digest), so `Debug` shows the length
/// and the first bytes only.
impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cookie({} bytes: ", self.0.len())?;
        for b in self.0.iter().take(12) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 12 {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_short() {
        assert_eq!(
            format!("{:?}", Cookie::new(vec![1, 2])),
            "Cookie(2 bytes: 0102)"
        );
        let long = Cookie::from(vec![0xab; 100]);
        assert_eq!(
            format!("{long:?}"),
            "Cookie(100 bytes: abababababababababababab…)"
        );
        assert_eq!(long.clone().into_bytes().len(), 100);
        assert_eq!(long.as_bytes()[0], 0xab);
    }
}
