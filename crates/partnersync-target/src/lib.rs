//! The target side of partnersync: the [`TargetDirectory`] trait that everything written
//! to a tenant goes through, the operations and categorised errors it speaks, and
//! [`InMemoryTarget`], a faithful-enough directory for the engine's tests.
//!
//! The trait knows nothing about Microsoft Graph: the engine is generic over it and the
//! `partnersync-graph` crate implements it over Graph. Attribute values are lists of
//! strings in Graph's spelling (`"true"` for Booleans); an empty list clears the attribute.
//!
//! ```
//! use partnersync_core::Anchor;
//! use partnersync_target::{Attributes, CreationMode, InMemoryTarget, Operation, OperationOutcome, TargetDirectory};
//!
//! # tokio_test_block_on(async {
//! let target = InMemoryTarget::new();
//! let anchor = Anchor::from_bytes(vec![1; 16]).unwrap();
//! let mut attributes = Attributes::new();
//! attributes.insert("userType".into(), vec!["Guest".into()]);
//! let results = target
//!     .apply(&[Operation::Create { anchor: anchor.clone(), mode: CreationMode::Direct, attributes }])
//!     .await;
//! assert!(matches!(results[0], Ok(OperationOutcome::Created { .. })));
//! let user = target.find_by_anchor(&anchor).await.unwrap().unwrap();
//! assert_eq!(user.attributes["userType"], vec!["Guest".to_string()]);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     partnersync_target::block_on(f)
//! # }
//! ```
#![deny(missing_docs)]

mod memory;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use partnersync_core::Anchor;

pub use memory::{block_on, InMemoryTarget};

/// Attribute values by attribute name (Graph's names: `displayName`, `userType`, ...).
/// An empty list means "no value".
pub type Attributes = BTreeMap<String, Vec<String>>;

/// One user as the target holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUser {
    /// The target's own id (Graph: the object id).
    pub id: String,
    /// The source anchor it is bound to (Graph: `onPremisesImmutableId`, or the extension
    /// property configured as the anchor attribute), if any. Users
    /// without an anchor are not managed by partnersync and are never touched.
    pub anchor: Option<Anchor>,
    /// Attribute values.
    pub attributes: Attributes,
    /// Whether the account can sign in.
    pub enabled: bool,
    /// Whether the user is soft-deleted (restorable).
    pub deleted: bool,
}

/// How a user is created (see the README: direct creation in a verified domain with the
/// source anchor, or a B2B invitation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreationMode {
    /// Created directly, bound to the source anchor.
    Direct,
    /// Invited as a B2B guest.
    Invitation,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Create a user bound to `anchor`.
    Create {
        /// The source anchor.
        anchor: Anchor,
        /// Direct or invitation.
        mode: CreationMode,
        /// Initial attributes.
        attributes: Attributes,
    },
    /// Set attributes (an empty list clears one).
    Update {
        /// The target id.
        id: String,
        /// The attributes to change.
        changes: Attributes,
    },
    /// Bind an existing user that has no anchor to `anchor` (soft match) and set
    /// attributes. The target stores the anchor wherever it binds users (Graph: the
    /// configured anchor attribute), so the engine never names that attribute.
    Adopt {
        /// The target id.
        id: String,
        /// The source anchor to bind the user to.
        anchor: Anchor,
        /// The attributes to change besides the anchor.
        changes: Attributes,
    },
    /// Block sign-in.
    Disable {
        /// The target id.
        id: String,
    },
    /// Soft delete.
    Delete {
        /// The target id.
        id: String,
    },
    /// Restore a soft-deleted user.
    Restore {
        /// The target id.
        id: String,
    },
    /// Delete for good.
    PermanentDelete {
        /// The target id.
        id: String,
    },
}

/// What a successful operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationOutcome {
    /// Created, with the new id.
    Created {
        /// The new user's id.
        id: String,
    },
    /// Updated (or adopted: bound to an anchor and updated).
    Updated,
    /// Disabled.
    Disabled,
    /// Soft-deleted.
    Deleted,
    /// Restored.
    Restored,
    /// Permanently deleted.
    PermanentlyDeleted,
}

/// Why an operation failed, in categories the engine can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorCategory {
    /// A uniqueness conflict (UPN, proxy address, immutable id).
    Conflict,
    /// The target rejected a value.
    Validation,
    /// The object does not exist.
    NotFound,
    /// Throttled: retry later.
    Throttled,
    /// The app lacks a permission.
    Permission,
    /// A transient failure (5xx, timeout, dropped connection): retry.
    Transient,
    /// Anything else.
    Other,
}

/// A categorised error with the target's own code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    /// The category.
    pub category: ErrorCategory,
    /// The target's code (Graph: `error.code`).
    pub code: String,
    /// The target's message.
    pub message: String,
}

impl TargetError {
    /// A new error.
    pub fn new(
        category: ErrorCategory,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        TargetError {
            category,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.category,
            ErrorCategory::Throttled | ErrorCategory::Transient
        )
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {} ({})", self.category, self.message, self.code)
    }
}

impl std::error::Error for TargetError {}

/// What [`TargetDirectory::list_managed_each`] hands each listed user to.
pub type UserSink<'a> = dyn FnMut(TargetUser) -> Result<(), TargetError> + Send + 'a;

/// A directory the engine writes to.
#[async_trait]
pub trait TargetDirectory: Send + Sync {
    /// Every user bound to an anchor (the users this tool manages), soft-deleted ones
    /// included.
    async fn list_managed(&self) -> Result<Vec<TargetUser>, TargetError>;

    /// [`list_managed`](Self::list_managed), handing each user to `each` as it arrives and
    /// returning how many there were. The engine's full cycle lists this way and keeps a
    /// compact copy, so a million users are never held as [`TargetUser`]s at once.
    /// Implement it when users arrive in pages (Graph); the default collects them first.
    /// An error from `each` stops the listing and is returned.
    async fn list_managed_each(&self, each: &mut UserSink<'_>) -> Result<usize, TargetError> {
        let users = self.list_managed().await?;
        let count = users.len();
        for user in users {
            each(user)?;
        }
        Ok(count)
    }

    /// The user bound to `anchor`, if any (soft-deleted ones included).
    async fn find_by_anchor(&self, anchor: &Anchor) -> Result<Option<TargetUser>, TargetError>;

    /// Every user (managed or not, soft-deleted ones excluded) whose `attribute`
    /// (`userPrincipalName` or `mail`) equals `value`, ignoring case. The engine's soft
    /// match uses it; more than one result is an ambiguity it reports instead of guessing.
    async fn find_by(&self, attribute: &str, value: &str) -> Result<Vec<TargetUser>, TargetError>;

    /// A change-tracking cookie for "now", without reading any user (Graph:
    /// `users/delta?$deltaToken=latest`). Take it *before* a full listing, so that changes
    /// made during the listing are seen by the next [`TargetDirectory::changes_since`].
    async fn delta_cookie(&self) -> Result<String, TargetError>;

    /// What changed in the target since `cookie` (Graph: following a saved deltaLink).
    /// An error (an expired or foreign cookie included) means "list everything again".
    async fn changes_since(&self, cookie: &str) -> Result<TargetChanges, TargetError>;

    /// Applies operations, returning one result per operation, in order. Operations are
    /// independent: one failing does not stop the others.
    async fn apply(&self, operations: &[Operation]) -> Vec<Result<OperationOutcome, TargetError>>;
}

/// Target changes since a cookie ([`TargetDirectory::changes_since`]). A user may appear
/// more than once across calls; the engine treats every entry as "look again".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetChanges {
    /// Users created or changed (live, not deleted), with their current attributes.
    /// Attributes a change did not report are unchanged.
    pub changed: Vec<TargetUser>,
    /// Ids of users soft-deleted since the cookie (restorable).
    pub deleted: Vec<String>,
    /// Ids of users permanently deleted since the cookie.
    pub removed: Vec<String>,
    /// The cookie for the next call.
    pub cookie: String,
}
