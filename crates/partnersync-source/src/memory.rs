//! [`InMemorySource`]: entries held in memory, changed through methods, with exact delta
//! reads from a change counter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use partnersync_core::{Anchor, Attributes, Entry};

use crate::digest::{ByteReader, Fnv64};
use crate::error::SourceError;
use crate::{
    common_dn_suffix, Cookie, DeltaMechanism, DeltaRead, DeltaSummary, EntrySink, ReadSummary,
    ServerKind, SourceDescription, SourceDirectory,
};

const MAGIC: &[u8; 8] = b"PSMEMRY1";

/// Entries held in memory, as a [`SourceDirectory`], for tests and for embedding
/// partnersync where the accounts come from elsewhere.
///
/// Every change bumps a counter; a delta read returns exactly the objects that differ
/// between the cookie's read and now: entries added, modified, renamed, or deleted and
/// re-added (as entries), and objects that existed then and are gone now (as deletions).
/// An object added and deleted again in between is not reported at all, and a modification
/// that leaves an entry as it was is not a change.
///
/// [`forget_history`](Self::forget_history) drops the history, so that older cookies get
/// [`DeltaRead::FullReadRequired`], like an expired DirSync cookie.
///
/// # Cookie format
///
/// 24 bytes: the magic `PSMEMRY1`, the source's instance id (u64 LE; a cookie from another
/// instance is foreign) and the change counter at the time of the read (u64 LE).
#[derive(Debug)]
pub struct InMemorySource {
    id: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every object ever seen (deleted ones too, until history is forgotten), in first-seen
    /// order, so reads are in a stable order.
    objects: Vec<Object>,
    index: HashMap<Anchor, usize>,
    /// The change counter: the number of changes made so far.
    version: u64,
    /// Cookies older than this cannot be answered.
    horizon: u64,
}

#[derive(Debug)]
struct Object {
    anchor: Anchor,
    /// `None` while deleted. Shared, so that a read can take a snapshot of a million
    /// entries without copying them all at once: each is copied as it goes to the sink.
    entry: Option<Arc<Entry>>,
    /// The version of the last add, modification or rename.
    changed_at: u64,
    /// The versions at which the object was added and (if so) deleted, oldest first.
    lives: Vec<(u64, Option<u64>)>,
}

impl Object {
    fn existed_at(&self, version: u64) -> bool {
        self.lives
            .iter()
            .any(|(added, deleted)| *added <= version && deleted.is_none_or(|d| d > version))
    }
}

impl InMemorySource {
    /// A source holding `entries`. When two entries have the same anchor, the later one wins.
    pub fn new(entries: Vec<Entry>) -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        let mut h = Fnv64::new();
        h.write(&std::process::id().to_le_bytes());
        h.write(&INSTANCES.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        {
            h.write(&since_epoch.as_nanos().to_le_bytes());
        }
        let mut state = State::default();
        for entry in entries {
            state.put(entry, 0);
        }
        InMemorySource {
            id: h.finish(),
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave `State` half-updated in a way
        // that matters for a test double, so a poisoned lock is still used.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an entry, or replaces the entry with the same anchor (a modification, or a
    /// rename when the DN differs). Replacing an entry with an equal one changes nothing.
    pub fn upsert(&self, entry: Entry) {
        let mut state = self.state();
        let next = state.version + 1;
        if state.put(entry, next) {
            state.version = next;
        }
    }

    /// Changes the attributes of the entry with `anchor`, atomically; `false` if there is
    /// none. A change that leaves the attributes as they were is not counted. `change` runs
    /// under the source's lock, so it must not call back into the source.
    pub fn modify(&self, anchor: &Anchor, change: impl FnOnce(&mut Attributes)) -> bool {
        self.edit(anchor, |entry| change(&mut entry.attributes))
    }

    /// Gives the entry with `anchor` a new DN; `false` if there is none.
    pub fn rename(&self, anchor: &Anchor, new_dn: impl Into<String>) -> bool {
        let new_dn = new_dn.into();
        self.edit(anchor, |entry| entry.dn = new_dn)
    }

    fn edit(&self, anchor: &Anchor, change: impl FnOnce(&mut Entry)) -> bool {
        let mut state = self.state();
        let Some(mut entry) = state.current(anchor).cloned() else {
            return false;
        };
        change(&mut entry);
        // The anchor is the identity; edits cannot change it.
        entry.anchor = anchor.clone();
        let next = state.version + 1;
        if state.put(entry, next) {
            state.version = next;
        }
        true
    }

    /// Deletes the entry with `anchor`; `false` if there is none.
    pub fn delete(&self, anchor: &Anchor) -> bool {
        let mut state = self.state();
        let next = state.version + 1;
        let Some(&i) = state.index.get(anchor) else {
            return false;
        };
        let object = &mut state.objects[i];
        if object.entry.take().is_none() {
            return false;
        }
        if let Some(life) = object.lives.last_mut() {
            life.1 = Some(next);
        }
        object.changed_at = next;
        state.version = next;
        true
    }

    /// The entry with `anchor`, if present.
    pub fn get(&self, anchor: &Anchor) -> Option<Entry> {
        self.state().current(anchor).cloned()
    }

    /// The entries present now, in the order they were first added.
    pub fn entries(&self) -> Vec<Entry> {
        self.state()
            .objects
            .iter()
            .filter_map(|o| o.entry.as_deref().cloned())
            .collect()
    }

    /// How many entries are present.
    pub fn len(&self) -> usize {
        self.state()
            .objects
            .iter()
            .filter(|o| o.entry.is_some())
            .count()
    }

    /// Whether no entries are present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the change history: cookies issued before now get
    /// [`DeltaRead::FullReadRequired`]; cookies issued from now on work as before.
    pub fn forget_history(&self) {
        let mut state = self.state();
        let now = state.version;
        state.horizon = now;
        state.objects.retain(|o| o.entry.is_some());
        for object in &mut state.objects {
            object.lives = vec![(0, None)];
        }
        let index = state
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.anchor.clone(), i))
            .collect();
        state.index = index;
    }

    fn cookie(&self, version: u64) -> Cookie {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.id.to_le_bytes());
        bytes.extend_from_slice(&version.to_le_bytes());
        Cookie::new(bytes)
    }

    /// The version in a cookie of this instance, or why it cannot be used.
    fn version_of(&self, cookie: &Cookie, state: &State) -> Result<u64, String> {
        let mut r = ByteReader(cookie.as_bytes());
        if r.take(MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err("the cookie was not issued by an in-memory source".into());
        }
        let (Some(id), Some(version), true) = (r.u64_le(), r.u64_le(), r.0.is_empty()) else {
            return Err("the cookie is damaged (truncated or altered)".into());
        };
        if id != self.id || version > state.version {
            return Err("the cookie was issued by another in-memory source".into());
        }
        if version < state.horizon {
            return Err(
                "the cookie has expired: the source no longer keeps history that old".into(),
            );
        }
        Ok(version)
    }
}

impl State {
    /// The entry with `anchor`, if present (not deleted).
    fn current(&self, anchor: &Anchor) -> Option<&Entry> {
        self.objects.get(*self.index.get(anchor)?)?.entry.as_deref()
    }

    /// Adds or replaces an entry at `version`; whether anything changed.
    fn put(&mut self, entry: Entry, version: u64) -> bool {
        match self.index.get(&entry.anchor) {
            Some(&i) => {
                let object = &mut self.objects[i];
                match &object.entry {
                    Some(current) if **current == entry => return false,
                    Some(_) => {}
                    None => object.lives.push((version, None)),
                }
                object.entry = Some(Arc::new(entry));
                object.changed_at = version;
            }
            None => {
                self.index.insert(entry.anchor.clone(), self.objects.len());
                self.objects.push(Object {
                    anchor: entry.anchor.clone(),
                    entry: Some(Arc::new(entry)),
                    changed_at: version,
                    lives: vec![(version, None)],
                });
            }
        }
        true
    }
}

#[async_trait]
impl SourceDirectory for InMemorySource {
    async fn describe(&self) -> Result<SourceDescription, SourceError> {
        let state = self.state();
        let dns = state
            .objects
            .iter()
            .filter_map(|o| o.entry.as_ref().map(|e| e.dn.as_str()));
        Ok(SourceDescription {
            kind: ServerKind::InMemory,
            location: "memory".into(),
            naming_contexts: common_dn_suffix(dns).into_iter().collect(),
            delta: DeltaMechanism::ChangeCounter,
        })
    }

    async fn full_read(&self, sink: &mut dyn EntrySink) -> Result<ReadSummary, SourceError> {
        // Snapshot first: the sink must not run while the lock is held.
        let (entries, version) = {
            let state = self.state();
            let entries: Vec<Arc<Entry>> = state
                .objects
                .iter()
                .filter_map(|o| o.entry.clone())
                .collect();
            (entries, state.version)
        };
        let count = entries.len() as u64;
        for entry in entries {
            sink.entry(Arc::unwrap_or_clone(entry))
                .map_err(SourceError::Sink)?;
        }
        Ok(ReadSummary {
            entries: count,
            cookie: Some(self.cookie(version)),
        })
    }

    async fn delta_read(
        &self,
        cookie: &Cookie,
        sink: &mut dyn EntrySink,
    ) -> Result<DeltaRead, SourceError> {
        let (changed, deleted, version) = {
            let state = self.state();
            let since = match self.version_of(cookie, &state) {
                Ok(since) => since,
                Err(reason) => return Ok(DeltaRead::FullReadRequired { reason }),
            };
            let mut changed = Vec::new();
            let mut deleted = Vec::new();
            for object in &state.objects {
                let existed = object.existed_at(since);
                match &object.entry {
                    Some(entry) if !existed || object.changed_at > since => {
                        changed.push(entry.clone())
                    }
                    None if existed => deleted.push(object.anchor.clone()),
                    _ => {}
                }
            }
            (changed, deleted, state.version)
        };
        let summary = DeltaSummary {
            changed: changed.len() as u64,
            deleted: deleted.len() as u64,
            cookie: self.cookie(version),
        };
        for entry in changed {
            sink.entry(Arc::unwrap_or_clone(entry))
                .map_err(SourceError::Sink)?;
        }
        for anchor in deleted {
            sink.deleted(anchor).map_err(SourceError::Sink)?;
        }
        Ok(DeltaRead::Changes(summary))
    }
}

#[cfg(test)]
mod tests {
    use partnersync_core::AttributeValue;

    use super::*;
    use crate::test_support::block_on;
    use crate::EntryCollector;

    fn anchor(n: u8) -> Anchor {
        Anchor::from_bytes(vec![n; 16]).unwrap()
    }

    fn user(n: u8, dn: &str) -> Entry {
        let mut e = Entry::new(anchor(n), dn);
        e.attributes.insert("cn", format!("user{n}"));
        e
    }

    fn full(source: &InMemorySource) -> (EntryCollector, Cookie) {
        let mut sink = EntryCollector::new();
        let summary = block_on(source.full_read(&mut sink)).unwrap();
        assert_eq!(summary.entries as usize, sink.entries.len());
        (sink, summary.cookie.unwrap())
    }

    fn delta(source: &InMemorySource, cookie: &Cookie) -> Result<(EntryCollector, Cookie), String> {
        let mut sink = EntryCollector::new();
        match block_on(source.delta_read(cookie, &mut sink)).unwrap() {
            DeltaRead::Changes(s) => {
                assert_eq!(s.changed as usize, sink.entries.len());
                assert_eq!(s.deleted as usize, sink.deleted.len());
                Ok((sink, s.cookie))
            }
            DeltaRead::FullReadRequired { reason } => {
                assert_eq!(sink, EntryCollector::new());
                Err(reason)
            }
        }
    }

    fn ids(entries: &[Entry]) -> Vec<u8> {
        entries.iter().map(|e| e.anchor.as_bytes()[0]).collect()
    }

    fn source() -> InMemorySource {
        InMemorySource::new(vec![
            user(1, "cn=1,dc=x"),
            user(2, "cn=2,dc=x"),
            user(3, "cn=3,dc=x"),
        ])
    }

    #[test]
    fn full_reads_return_entries_in_insertion_order() {
        let s = InMemorySource::new(vec![
            user(3, "cn=3"),
            user(1, "cn=1"),
            user(3, "cn=3 again"),
        ]);
        let (sink, _) = full(&s);
        assert_eq!(ids(&sink.entries), [3, 1]);
        assert_eq!(
            sink.entries[0].dn, "cn=3 again",
            "a later duplicate replaces the earlier one"
        );
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        assert!(InMemorySource::new(vec![]).is_empty());
    }

    #[test]
    fn delta_reads_return_modifications_renames_adds_and_deletes() {
        let s = source();
        let (_, cookie) = full(&s);
        assert!(s.modify(&anchor(1), |a| a
            .set("mail", vec![AttributeValue::from("one@x")])));
        assert!(s.rename(&anchor(2), "cn=two,dc=x"));
        assert!(s.delete(&anchor(3)));
        s.upsert(user(4, "cn=4,dc=x"));
        let (sink, next) = delta(&s, &cookie).unwrap();
        assert_eq!(ids(&sink.entries), [1, 2, 4]);
        assert_eq!(sink.entries[0].attributes.first_text("mail"), Some("one@x"));
        assert_eq!(sink.entries[1].dn, "cn=two,dc=x");
        assert_eq!(sink.deleted, vec![anchor(3)]);
        let (sink, _) = delta(&s, &next).unwrap();
        assert_eq!(sink, EntryCollector::new());
    }

    #[test]
    fn no_op_changes_are_not_changes() {
        let s = source();
        let (_, cookie) = full(&s);
        assert!(s.modify(&anchor(1), |_| {}));
        s.upsert(user(2, "cn=2,dc=x"));
        assert!(s.rename(&anchor(3), "cn=3,dc=x"));
        assert_eq!(delta(&s, &cookie).unwrap().0, EntryCollector::new());
    }

    #[test]
    fn transient_objects_and_re_adds_are_reported_by_their_net_effect() {
        let s = source();
        let (_, cookie) = full(&s);
        // Added and deleted in between: never seen, never reported.
        s.upsert(user(9, "cn=9"));
        assert!(s.delete(&anchor(9)));
        // Deleted and re-added: an entry, not a deletion.
        assert!(s.delete(&anchor(1)));
        s.upsert(user(1, "cn=1,dc=x"));
        // Deleted, re-added, deleted again: a deletion.
        assert!(s.delete(&anchor(2)));
        s.upsert(user(2, "cn=2,dc=x"));
        assert!(s.delete(&anchor(2)));
        let (sink, _) = delta(&s, &cookie).unwrap();
        assert_eq!(ids(&sink.entries), [1]);
        assert_eq!(sink.deleted, vec![anchor(2)]);
    }

    #[test]
    fn missing_objects_are_reported_by_false() {
        let s = source();
        assert!(!s.modify(&anchor(7), |_| {}));
        assert!(!s.rename(&anchor(7), "cn=7"));
        assert!(!s.delete(&anchor(7)));
        assert!(s.delete(&anchor(1)));
        assert!(!s.delete(&anchor(1)));
        assert_eq!(s.get(&anchor(1)), None);
        assert_eq!(s.get(&anchor(2)).map(|e| e.dn), Some("cn=2,dc=x".into()));
        assert_eq!(ids(&s.entries()), [2, 3]);
    }

    #[test]
    fn foreign_damaged_and_expired_cookies_require_a_full_read() {
        let s = source();
        let (_, cookie) = full(&s);
        let other = source();
        assert!(delta(&other, &cookie)
            .unwrap_err()
            .contains("another in-memory source"));
        assert!(delta(&s, &Cookie::new(b"PSLDIFD1".to_vec()))
            .unwrap_err()
            .contains("not issued by an in-memory source"));
        assert!(delta(&s, &Cookie::new(cookie.as_bytes()[..20].to_vec()))
            .unwrap_err()
            .contains("damaged"));
        let mut future = cookie.clone().into_bytes();
        future[16] = 99;
        assert!(delta(&s, &Cookie::new(future))
            .unwrap_err()
            .contains("another in-memory source"));

        s.upsert(user(4, "cn=4"));
        s.forget_history();
        assert!(delta(&s, &cookie).unwrap_err().contains("expired"));
        let (_, fresh) = full(&s);
        assert!(s.delete(&anchor(4)));
        let (sink, _) = delta(&s, &fresh).unwrap();
        assert_eq!(sink.deleted, vec![anchor(4)]);
    }

    #[test]
    fn describe_reports_the_in_memory_kind() {
        let d = block_on(source().describe()).unwrap();
        assert_eq!(d.kind, ServerKind::InMemory);
        assert_eq!(d.delta, DeltaMechanism::ChangeCounter);
        assert_eq!(d.naming_contexts, vec!["dc=x".to_string()]);
    }

    #[test]
    fn sources_work_behind_the_trait_object() {
        let sources: Vec<Box<dyn SourceDirectory>> = vec![Box::new(source())];
        let mut sink = EntryCollector::new();
        let summary = block_on(sources[0].full_read(&mut sink)).unwrap();
        assert_eq!(summary.entries, 3);
    }
}
