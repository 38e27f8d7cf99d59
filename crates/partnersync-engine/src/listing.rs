//! The target users a plan is computed against: either a slice of [`TargetUser`]s, or a
//! [`Listing`] that keeps a full cycle's listing compactly (one buffer for every id and
//! attribute value instead of a map and several allocations per user), so a million users
//! take a few hundred bytes each instead of about a kilobyte.

use std::collections::HashMap;

use partnersync_core::Anchor;
use partnersync_target::{Attributes, TargetUser};

use crate::plan::AttributeChange;
use crate::DesiredObject;

/// Read access to listed users by index, for the planner.
pub(crate) trait Users {
    /// How many users there are.
    fn count(&self) -> usize;
    /// The anchor user `i` is bound to.
    fn anchor(&self, i: usize) -> Option<&Anchor>;
    /// User `i`'s target id.
    fn id(&self, i: usize) -> &str;
    /// Whether user `i` can sign in.
    fn enabled(&self, i: usize) -> bool;
    /// Whether user `i` is soft-deleted.
    fn deleted(&self, i: usize) -> bool;
    /// The changes that make user `i` match `d` (apply-once attributes left out when
    /// `skip_apply_once`). No value and an empty list are the same thing.
    fn diff(&self, i: usize, d: &DesiredObject, skip_apply_once: bool) -> Vec<AttributeChange>;
}

/// The changes that make `current` match `d`.
pub(crate) fn diff(
    d: &DesiredObject,
    current: &Attributes,
    skip_apply_once: bool,
) -> Vec<AttributeChange> {
    let mut changes = Vec::new();
    for (name, new) in &d.attributes {
        if skip_apply_once && d.apply_once.contains(name) {
            continue;
        }
        let old = current.get(name);
        let same = old.map_or(new.is_empty(), |old| old == new);
        if !same {
            changes.push(AttributeChange {
                attribute: name.clone(),
                old: old.cloned().unwrap_or_default(),
                new: new.clone(),
            });
        }
    }
    changes
}

impl Users for [TargetUser] {
    fn count(&self) -> usize {
        self.len()
    }
    fn anchor(&self, i: usize) -> Option<&Anchor> {
        self[i].anchor.as_ref()
    }
    fn id(&self, i: usize) -> &str {
        &self[i].id
    }
    fn enabled(&self, i: usize) -> bool {
        self[i].enabled
    }
    fn deleted(&self, i: usize) -> bool {
        self[i].deleted
    }
    fn diff(&self, i: usize, d: &DesiredObject, skip_apply_once: bool) -> Vec<AttributeChange> {
        diff(d, &self[i].attributes, skip_apply_once)
    }
}

const ENABLED: u8 = 1;
const DELETED: u8 = 2;

/// Listed users kept compactly: per user, one allocation holding its id and attributes
/// (no buffer that grows by copying). The record is the id's length (u32) and bytes, then
/// per attribute its interned name (u32), its number of values (u32), and each value as a
/// length (u32) and its UTF-8 bytes.
#[derive(Default)]
pub(crate) struct Listing {
    records: Vec<Box<[u8]>>,
    anchors: Vec<Option<Anchor>>,
    flags: Vec<u8>,
    names: Vec<String>,
    name_ids: HashMap<String, u32, foldhash::fast::RandomState>,
    /// Scratch space for the record being built.
    scratch: Vec<u8>,
}

fn put(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// Appends `text` with its length. A text longer than 4 GiB (which no directory has) is cut
/// off at a character boundary.
fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut len = text.len().min(u32::MAX as usize);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    put(out, len as u32);
    out.extend_from_slice(&text.as_bytes()[..len]);
}

impl Listing {
    /// Adds a user.
    pub(crate) fn push(&mut self, user: TargetUser) {
        let TargetUser {
            id,
            anchor,
            attributes,
            enabled,
            deleted,
        } = user;
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        put_text(&mut out, &id);
        for (name, values) in &attributes {
            let name_id = match self.name_ids.get(name.as_str()) {
                Some(&n) => n,
                None => {
                    let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
                    self.names.push(name.clone());
                    self.name_ids.insert(name.clone(), n);
                    n
                }
            };
            put(&mut out, name_id);
            put(&mut out, u32::try_from(values.len()).unwrap_or(u32::MAX));
            for v in values {
                put_text(&mut out, v);
            }
        }
        self.records.push(out.as_slice().into());
        self.scratch = out;
        self.anchors.push(anchor);
        self.flags
            .push(if enabled { ENABLED } else { 0 } | if deleted { DELETED } else { 0 });
    }

    /// User `i`'s id and the rest of its record.
    fn split(&self, i: usize) -> (&str, &[u8]) {
        let mut bytes: &[u8] = &self.records[i];
        let id = take_text(&mut bytes).unwrap_or_default();
        (id, bytes)
    }

    /// User `i`'s attributes, one `(name id, values)` at a time.
    fn record(&self, i: usize) -> Record<'_> {
        Record {
            bytes: self.split(i).1,
        }
    }

    /// User `i` as a [`TargetUser`].
    #[cfg(test)]
    pub(crate) fn user(&self, i: usize) -> TargetUser {
        let attributes = self
            .record(i)
            .map(|(name, values)| {
                (
                    self.names[name as usize].clone(),
                    values.map(str::to_owned).collect(),
                )
            })
            .collect();
        TargetUser {
            id: self.id(i).to_owned(),
            anchor: self.anchors[i].clone(),
            attributes,
            enabled: self.enabled(i),
            deleted: self.deleted(i),
        }
    }
}

impl Users for Listing {
    fn count(&self) -> usize {
        self.flags.len()
    }
    fn anchor(&self, i: usize) -> Option<&Anchor> {
        self.anchors[i].as_ref()
    }
    fn id(&self, i: usize) -> &str {
        self.split(i).0
    }
    fn enabled(&self, i: usize) -> bool {
        self.flags[i] & ENABLED != 0
    }
    fn deleted(&self, i: usize) -> bool {
        self.flags[i] & DELETED != 0
    }
    fn diff(&self, i: usize, d: &DesiredObject, skip_apply_once: bool) -> Vec<AttributeChange> {
        // Both sides are in name order (the record was written from a `BTreeMap`), so one
        // merging pass finds each attribute without lookups.
        let mut record = self.record(i).peekable();
        let mut changes = Vec::new();
        for (name, new) in &d.attributes {
            let mut old = None;
            while let Some((id, values)) = record.peek() {
                match self.names[*id as usize].as_str().cmp(name.as_str()) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => old = Some(values.clone()),
                    std::cmp::Ordering::Greater => break,
                }
                record.next();
                if old.is_some() {
                    break;
                }
            }
            if skip_apply_once && d.apply_once.contains(name) {
                continue;
            }
            let same = match old.clone() {
                None => new.is_empty(),
                Some(old) => old.len() == new.len() && old.zip(new).all(|(o, n)| o == n),
            };
            if !same {
                changes.push(AttributeChange {
                    attribute: name.clone(),
                    old: old
                        .map(|v| v.map(str::to_owned).collect())
                        .unwrap_or_default(),
                    new: new.clone(),
                });
            }
        }
        changes
    }
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    *bytes = rest;
    Some(u32::from_le_bytes(*head))
}

/// Takes a length-prefixed text written by `put_text` (always whole UTF-8).
fn take_text<'a>(bytes: &mut &'a [u8]) -> Option<&'a str> {
    let len = take_u32(bytes)? as usize;
    let (text, rest) = bytes.split_at_checked(len)?;
    *bytes = rest;
    std::str::from_utf8(text).ok()
}

/// The attributes of one user in a [`Listing`].
struct Record<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Record<'a> {
    type Item = (u32, Values<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let name = take_u32(&mut self.bytes)?;
        let count = take_u32(&mut self.bytes)?;
        let start = self.bytes;
        // Skip the values to reach the next attribute.
        for _ in 0..count {
            let len = take_u32(&mut self.bytes)? as usize;
            self.bytes = self.bytes.get(len..)?;
        }
        let used = start.len() - self.bytes.len();
        Some((
            name,
            Values {
                bytes: &start[..used],
                left: count as usize,
            },
        ))
    }
}

/// The values of one attribute in a [`Record`].
#[derive(Clone)]
struct Values<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let value = take_text(&mut self.bytes)?;
        self.left -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Values<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user() -> impl Strategy<Value = TargetUser> {
        let attributes = proptest::collection::btree_map(
            "[a-dA-D]{1,3}",
            proptest::collection::vec("\\PC{0,6}", 0..3),
            0..5,
        );
        (
            "[0-9a-f]{0,8}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..4)),
            attributes,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(id, anchor, attributes, enabled, deleted)| TargetUser {
                id,
                anchor: anchor.map(|b| Anchor::from_bytes(b).expect("non-empty")),
                attributes,
                enabled,
                deleted,
            })
    }

    fn desired() -> impl Strategy<Value = DesiredObject> {
        (
            proptest::collection::btree_map(
                "[a-dA-D]{1,3}",
                proptest::collection::vec("\\PC{0,6}", 0..3),
                0..5,
            ),
            proptest::collection::btree_set("[a-dA-D]{1,3}", 0..2),
        )
            .prop_map(|(attributes, apply_once)| DesiredObject {
                anchor: Anchor::from_bytes(vec![1]).expect("non-empty"),
                dn: "cn=x".into(),
                in_scope: true,
                attributes,
                apply_once,
                errors: Vec::new(),
            })
    }

    proptest! {
        /// A listing gives back every user as pushed, and diffs exactly as the users do.
        #[test]
        fn a_listing_reads_and_diffs_like_the_users(
            users in proptest::collection::vec(user(), 0..6),
            wanted in proptest::collection::vec(desired(), 1..4),
            skip in any::<bool>(),
        ) {
            let mut listing = Listing::default();
            for u in &users {
                listing.push(u.clone());
            }
            prop_assert_eq!(listing.count(), users.len());
            for (i, u) in users.iter().enumerate() {
                prop_assert_eq!(&listing.user(i), u);
                prop_assert_eq!(listing.id(i), users.id(i));
                prop_assert_eq!(listing.anchor(i), users.anchor(i));
                prop_assert_eq!(listing.enabled(i), u.enabled);
                prop_assert_eq!(listing.deleted(i), u.deleted);
                for d in &wanted {
                    prop_assert_eq!(listing.diff(i, d, skip), users.diff(i, d, skip));
                }
            }
        }
    }
}
