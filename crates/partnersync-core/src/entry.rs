use crate::{Anchor, Attributes};

/// One object read from a source directory: its anchor, its DN and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stable identity of the object (see [`Anchor`]).
    pub anchor: Anchor,
    /// The distinguished name at the time of the read.
    pub dn: String,
    /// The object's attributes.
    pub attributes: Attributes,
}

impl Entry {
    /// An entry with no attributes yet.
    pub fn new(anchor: Anchor, dn: impl Into<String>) -> Self {
        Entry {
            anchor,
            dn: dn.into(),
            attributes: Attributes::default(),
        }
    }
}
