//! An in-memory [`TargetDirectory`] with the rules that matter to the engine: unique
//! anchors and UPNs, soft delete and restore, and an operation log.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use partnersync_core::Anchor;

use crate::{
    ErrorCategory, Operation, OperationOutcome, TargetChanges, TargetDirectory, TargetError,
    TargetUser, UserSink,
};

/// An in-memory target for tests: users keyed by id, writes recorded in a log.
#[derive(Debug, Default)]
pub struct InMemoryTarget {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, TargetUser>,
    next_id: u64,
    log: Vec<Operation>,
    /// Change counter: every change to a user bumps it (the delta cookie).
    version: u64,
    /// Per user id, the version of its last change.
    changed_at: BTreeMap<String, u64>,
    /// Permanently deleted ids with the version of their removal.
    removed_at: Vec<(String, u64)>,
}

impl InMemoryTarget {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user directly (not logged), e.g. one created in the portal.
    pub fn seed(&self, user: TargetUser) {
        if let Ok(mut s) = self.state.lock() {
            s.touch(&user.id);
            s.users.insert(user.id.clone(), user);
        }
    }

    /// Changes one attribute of a user directly (not logged), as an administrator editing
    /// it in the portal would: drift the next cycle should see. An empty list clears it.
    /// Returns false when there is no such user.
    pub fn edit(&self, id: &str, attribute: &str, values: Vec<String>) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let Some(user) = s.users.get_mut(id) else {
            return false;
        };
        if attribute == "accountEnabled" {
            user.enabled = values.first().is_none_or(|v| v != "false");
        }
        if values.is_empty() {
            user.attributes.remove(attribute);
        } else {
            user.attributes.insert(attribute.to_string(), values);
        }
        s.touch(id);
        true
    }

    /// Every user, managed or not.
    pub fn users(&self) -> Vec<TargetUser> {
        self.state
            .lock()
            .map(|s| s.users.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every write applied so far, in order.
    pub fn log(&self) -> Vec<Operation> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    /// Forgets the write log.
    pub fn clear_log(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.log.clear();
        }
    }
}

fn upn(user: &TargetUser) -> Option<String> {
    user.attributes
        .get("userPrincipalName")
        .and_then(|v| v.first())
        .map(|s| s.to_lowercase())
}

fn poisoned() -> TargetError {
    TargetError::new(
        ErrorCategory::Other,
        "Internal",
        "in-memory target lock poisoned",
    )
}

impl State {
    fn touch(&mut self, id: &str) {
        self.version += 1;
        let v = self.version;
        self.changed_at.insert(id.to_string(), v);
    }

    fn conflict(&self, id: Option<&str>, user: &TargetUser) -> Option<TargetError> {
        let upn = upn(user);
        for other in self
            .users
            .values()
            .filter(|o| Some(o.id.as_str()) != id && !o.deleted)
        {
            if user.anchor.is_some() && other.anchor == user.anchor {
                return Some(TargetError::new(
                    ErrorCategory::Conflict,
                    "ObjectConflict",
                    "another object with the same value for property onPremisesImmutableId already exists",
                ));
            }
            if upn.is_some() && upn == crate::memory::upn(other) {
                return Some(TargetError::new(
                    ErrorCategory::Conflict,
                    "ObjectConflict",
                    "another object with the same value for property userPrincipalName already exists",
                ));
            }
        }
        None
    }

    fn apply(&mut self, op: &Operation) -> Result<OperationOutcome, TargetError> {
        let not_found = |id: &str| {
            TargetError::new(
                ErrorCategory::NotFound,
                "Request_ResourceNotFound",
                format!("user {id} does not exist"),
            )
        };
        match op {
            Operation::Create {
                anchor, attributes, ..
            } => {
                self.next_id += 1;
                let id = format!("00000000-0000-4000-8000-{:012x}", self.next_id);
                let user = TargetUser {
                    id: id.clone(),
                    anchor: Some(anchor.clone()),
                    attributes: attributes
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    enabled: attributes
                        .get("accountEnabled")
                        .and_then(|v| v.first())
                        .is_none_or(|v| v != "false"),
                    deleted: false,
                };
                if let Some(e) = self.conflict(None, &user) {
                    return Err(e);
                }
                self.users.insert(id.clone(), user);
                Ok(OperationOutcome::Created { id })
            }
            Operation::Update { id, changes } | Operation::Adopt { id, changes, .. } => {
                let mut user = self
                    .users
                    .get(id)
                    .filter(|u| !u.deleted)
                    .cloned()
                    .ok_or_else(|| not_found(id))?;
                if let Operation::Adopt { anchor, .. } = op {
                    user.anchor = Some(anchor.clone());
                }
                for (k, v) in changes {
                    if v.is_empty() {
                        user.attributes.remove(k);
                    } else {
                        user.attributes.insert(k.clone(), v.clone());
                    }
                    if k == "accountEnabled" {
                        user.enabled = v.first().is_none_or(|x| x != "false");
                    }
                    if k == "onPremisesImmutableId" {
                        user.anchor = v.first().and_then(|a| Anchor::from_immutable_id(a).ok());
                    }
                }
                if let Some(e) = self.conflict(Some(id), &user) {
                    return Err(e);
                }
                self.users.insert(id.clone(), user);
                Ok(OperationOutcome::Updated)
            }
            Operation::Disable { id } => {
                let user = self
                    .users
                    .get_mut(id)
                    .filter(|u| !u.deleted)
                    .ok_or_else(|| not_found(id))?;
                user.enabled = false;
                user.attributes
                    .insert("accountEnabled".into(), vec!["false".into()]);
                Ok(OperationOutcome::Disabled)
            }
            Operation::Delete { id } => {
                let user = self
                    .users
                    .get_mut(id)
                    .filter(|u| !u.deleted)
                    .ok_or_else(|| not_found(id))?;
                user.deleted = true;
                Ok(OperationOutcome::Deleted)
            }
            Operation::Restore { id } => {
                let user = self
                    .users
                    .get(id)
                    .filter(|u| u.deleted)
                    .cloned()
                    .ok_or_else(|| not_found(id))?;
                if let Some(e) = self.conflict(Some(id), &user) {
                    return Err(e);
                }
                if let Some(u) = self.users.get_mut(id) {
                    u.deleted = false;
                }
                Ok(OperationOutcome::Restored)
            }
            Operation::PermanentDelete { id } => {
                self.users.remove(id).ok_or_else(|| not_found(id))?;
                Ok(OperationOutcome::PermanentlyDeleted)
            }
        }
    }
}

#[async_trait]
impl TargetDirectory for InMemoryTarget {
    async fn list_managed(&self) -> Result<Vec<TargetUser>, TargetError> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        Ok(s.users
            .values()
            .filter(|u| u.anchor.is_some())
            .cloned()
            .collect())
    }

    async fn list_managed_each(&self, each: &mut UserSink<'_>) -> Result<usize, TargetError> {
        // A page at a time, like Graph, and never calling `each` with the lock held.
        const PAGE: usize = 1000;
        let mut after: Option<String> = None;
        let mut count = 0;
        loop {
            let page: Vec<TargetUser> = {
                let s = self.state.lock().map_err(|_| poisoned())?;
                let rest = match &after {
                    Some(id) => s
                        .users
                        .range::<String, _>((Bound::Excluded(id), Bound::Unbounded)),
                    None => s.users.range::<String, _>(..),
                };
                rest.map(|(_, u)| u)
                    .filter(|u| u.anchor.is_some())
                    .take(PAGE)
                    .cloned()
                    .collect()
            };
            let Some(last) = page.last() else {
                return Ok(count);
            };
            after = Some(last.id.clone());
            for user in page {
                count += 1;
                each(user)?;
            }
        }
    }

    async fn find_by_anchor(&self, anchor: &Anchor) -> Result<Option<TargetUser>, TargetError> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        Ok(s.users
            .values()
            .find(|u| u.anchor.as_ref() == Some(anchor))
            .cloned())
    }

    async fn find_by(&self, attribute: &str, value: &str) -> Result<Vec<TargetUser>, TargetError> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        Ok(s.users
            .values()
            .filter(|u| {
                !u.deleted
                    && u.attributes
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
                        .and_then(|(_, v)| v.first())
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            .cloned()
            .collect())
    }

    async fn delta_cookie(&self) -> Result<String, TargetError> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        Ok(format!("mem:{}", s.version))
    }

    async fn changes_since(&self, cookie: &str) -> Result<TargetChanges, TargetError> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        let since: u64 = cookie
            .strip_prefix("mem:")
            .and_then(|v| v.parse().ok())
            .filter(|v| *v <= s.version)
            .ok_or_else(|| {
                TargetError::new(
                    ErrorCategory::Validation,
                    "syncStateNotFound",
                    format!("the change cookie {cookie:?} is not one this directory issued"),
                )
            })?;
        let mut changes = TargetChanges {
            cookie: format!("mem:{}", s.version),
            ..TargetChanges::default()
        };
        for (id, v) in &s.changed_at {
            if *v <= since {
                continue;
            }
            match s.users.get(id) {
                Some(u) if u.deleted => changes.deleted.push(id.clone()),
                Some(u) => changes.changed.push(u.clone()),
                None => {}
            }
        }
        changes.removed = s
            .removed_at
            .iter()
            .filter(|(_, v)| *v > since)
            .map(|(id, _)| id.clone())
            .collect();
        Ok(changes)
    }

    async fn apply(&self, operations: &[Operation]) -> Vec<Result<OperationOutcome, TargetError>> {
        let Ok(mut s) = self.state.lock() else {
            return operations.iter().map(|_| Err(poisoned())).collect();
        };
        operations
            .iter()
            .map(|op| {
                let r = s.apply(op);
                match (&r, op) {
                    (Ok(OperationOutcome::Created { id }), _) => s.touch(&id.clone()),
                    (
                        Ok(OperationOutcome::PermanentlyDeleted),
                        Operation::PermanentDelete { id },
                    ) => {
                        s.version += 1;
                        let v = s.version;
                        s.changed_at.remove(id);
                        s.removed_at.push((id.clone(), v));
                    }
                    (
                        Ok(_),
                        Operation::Update { id, .. }
                        | Operation::Adopt { id, .. }
                        | Operation::Disable { id }
                        | Operation::Delete { id }
                        | Operation::Restore { id },
                    ) => s.touch(id),
                    _ => {}
                }
                if r.is_ok() {
                    s.log.push(op.clone());
                }
                r
            })
            .collect()
    }
}

/// Runs a future to completion on the current thread. The in-memory target never waits,
/// so tests and doc examples need no async runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    use std::pin::pin;
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    fn raw() -> RawWaker {
        fn clone(_: *const ()) -> RawWaker {
            raw()
        }
        fn noop(_: *const ()) {}
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    // SAFETY: the vtable's functions do nothing and never touch the data pointer.
    let waker = unsafe { Waker::from_raw(raw()) };
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attributes, CreationMode};

    fn attrs(upn: &str) -> Attributes {
        let mut a = Attributes::new();
        a.insert("userPrincipalName".into(), vec![upn.into()]);
        a
    }

    #[test]
    fn create_update_delete_restore() {
        let t = InMemoryTarget::new();
        let anchor = Anchor::from_bytes(vec![1; 16]).unwrap();
        let r = block_on(t.apply(&[Operation::Create {
            anchor: anchor.clone(),
            mode: CreationMode::Direct,
            attributes: attrs("a@contoso.com"),
        }]));
        let Ok(OperationOutcome::Created { id }) = &r[0] else {
            panic!("{r:?}")
        };
        let mut changes = Attributes::new();
        changes.insert("displayName".into(), vec!["Ana".into()]);
        let r = block_on(t.apply(&[
            Operation::Update {
                id: id.clone(),
                changes,
            },
            Operation::Disable { id: id.clone() },
            Operation::Delete { id: id.clone() },
            Operation::Update {
                id: id.clone(),
                changes: Attributes::new(),
            },
            Operation::Restore { id: id.clone() },
        ]));
        assert_eq!(r[0], Ok(OperationOutcome::Updated));
        assert_eq!(r[1], Ok(OperationOutcome::Disabled));
        assert_eq!(r[2], Ok(OperationOutcome::Deleted));
        assert_eq!(r[3].as_ref().unwrap_err().category, ErrorCategory::NotFound);
        assert_eq!(r[4], Ok(OperationOutcome::Restored));
        let u = block_on(t.find_by_anchor(&anchor)).unwrap().unwrap();
        assert!(!u.enabled && !u.deleted);
        assert_eq!(u.attributes["displayName"], vec!["Ana".to_string()]);
        assert_eq!(t.log().len(), 5, "failed operations are not logged");
    }

    #[test]
    fn streamed_listing_pages_through_every_managed_user() {
        let t = InMemoryTarget::new();
        for n in 0..2_345u32 {
            t.seed(TargetUser {
                id: format!("id-{n:05}"),
                // Every tenth user is not managed and never listed.
                anchor: (n % 10 != 0)
                    .then(|| Anchor::from_bytes(n.to_le_bytes().to_vec()).unwrap()),
                attributes: attrs(&format!("u{n}@contoso.com")),
                enabled: true,
                deleted: n % 7 == 0,
            });
        }
        let listed = block_on(t.list_managed()).unwrap();
        assert_eq!(listed.len(), 2_345 - 235);
        let mut streamed = Vec::new();
        let count = block_on(t.list_managed_each(&mut |u| {
            streamed.push(u);
            Ok(())
        }))
        .unwrap();
        assert_eq!(count, listed.len());
        assert_eq!(streamed, listed);
        let mut seen = 0;
        let e = block_on(t.list_managed_each(&mut |_| {
            seen += 1;
            if seen == 3 {
                return Err(TargetError::new(ErrorCategory::Validation, "stop", "stop"));
            }
            Ok(())
        }))
        .unwrap_err();
        assert_eq!((e.code.as_str(), seen), ("stop", 3));
    }

    #[test]
    fn duplicate_anchor_or_upn_is_a_conflict() {
        let t = InMemoryTarget::new();
        let a = Anchor::from_bytes(vec![1; 16]).unwrap();
        let b = Anchor::from_bytes(vec![2; 16]).unwrap();
        let r = block_on(t.apply(&[
            Operation::Create {
                anchor: a.clone(),
                mode: CreationMode::Direct,
                attributes: attrs("x@contoso.com"),
            },
            Operation::Create {
                anchor: a,
                mode: CreationMode::Direct,
                attributes: attrs("y@contoso.com"),
            },
            Operation::Create {
                anchor: b,
                mode: CreationMode::Direct,
                attributes: attrs("X@contoso.com"),
            },
        ]));
        assert!(r[0].is_ok());
        assert!(r[1]
            .as_ref()
            .unwrap_err()
            .message
            .contains("onPremisesImmutableId"));
        assert!(r[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("userPrincipalName"));
        assert_eq!(block_on(t.list_managed()).unwrap().len(), 1);
    }

    #[test]
    fn changes_since_reports_writes_drift_and_deletions() {
        let t = InMemoryTarget::new();
        let a = Anchor::from_bytes(vec![1; 16]).unwrap();
        let b = Anchor::from_bytes(vec![2; 16]).unwrap();
        let r = block_on(t.apply(&[
            Operation::Create {
                anchor: a,
                mode: CreationMode::Direct,
                attributes: attrs("a@contoso.com"),
            },
            Operation::Create {
                anchor: b,
                mode: CreationMode::Direct,
                attributes: attrs("b@contoso.com"),
            },
        ]));
        let id = |i: usize| match &r[i] {
            Ok(OperationOutcome::Created { id }) => id.clone(),
            other => panic!("{other:?}"),
        };
        let (ida, idb) = (id(0), id(1));
        let cookie = block_on(t.delta_cookie()).unwrap();
        assert!(block_on(t.changes_since(&cookie))
            .unwrap()
            .changed
            .is_empty());
        assert!(t.edit(&ida, "displayName", vec!["Portal edit".into()]));
        block_on(t.apply(&[Operation::Delete { id: idb.clone() }]));
        let c = block_on(t.changes_since(&cookie)).unwrap();
        assert_eq!(c.changed.len(), 1);
        assert_eq!(
            c.changed[0].attributes["displayName"],
            vec!["Portal edit".to_string()]
        );
        assert_eq!(c.deleted, vec![idb.clone()]);
        block_on(t.apply(&[Operation::PermanentDelete { id: idb.clone() }]));
        let c2 = block_on(t.changes_since(&c.cookie)).unwrap();
        assert!(c2.changed.is_empty() && c2.deleted.is_empty());
        assert_eq!(c2.removed, vec![idb]);
        let err = block_on(t.changes_since("mem:999")).unwrap_err();
        assert_eq!(err.code, "syncStateNotFound");
        let found = block_on(t.find_by("userprincipalname", "A@CONTOSO.COM")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, ida);
    }
}
