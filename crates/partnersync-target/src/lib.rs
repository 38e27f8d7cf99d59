//! The target side of partnersync: the [`TargetDirectory`] trait that everything written
//! to a tenant goes through, and the value types it speaks.
//!
//! The trait knows nothing about Microsoft Graph: the engine is generic over it, the
//! `partnersync-graph` crate implements it over Graph, and tests use an in-memory target.
//! This crate is the first version of that contract (the Graph implementation and the
//! in-memory target arrive with the "Write to Entra ID" issue); it fixes the shapes the
//! engine will plan against.
//!
//! ```
//! use partnersync_target::{TargetError, ErrorCategory};
//!
//! let e = TargetError::new(ErrorCategory::Conflict, "ObjectConflict", "userPrincipalName is already used");
//! assert!(!e.is_retryable());
//! assert!(TargetError::new(ErrorCategory::Throttled, "TooManyRequests", "slow down").is_retryable());
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use partnersync_core::{Anchor, UserType};

/// One user as the target holds it: its id there, its anchor and the attributes the
/// engine compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUser {
    /// The target's own id (Graph: the object id).
    pub id: String,
    /// The source anchor it is bound to (Graph: `onPremisesImmutableId`), if any.
    pub anchor: Option<Anchor>,
    /// Member or Guest.
    pub user_type: Option<UserType>,
    /// Compared attributes by name; `None` is an empty attribute.
    pub attributes: BTreeMap<String, Option<String>>,
}

/// How a user is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationMode {
    /// Created directly in a verified domain, bound to the source anchor.
    Direct,
    /// Invited as a B2B guest.
    Invitation,
}

/// Why an operation failed, in categories the engine can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// A directory the engine writes to.
#[async_trait]
pub trait TargetDirectory: Send + Sync {
    /// Every user this tool manages.
    async fn list_managed(&self) -> Result<Vec<TargetUser>, TargetError>;

    /// The user bound to `anchor`, if any.
    async fn find_by_anchor(&self, anchor: &Anchor) -> Result<Option<TargetUser>, TargetError>;

    /// Creates a user and returns it with its new id.
    async fn create(
        &self,
        anchor: &Anchor,
        mode: CreationMode,
        attributes: &BTreeMap<String, Option<String>>,
    ) -> Result<TargetUser, TargetError>;

    /// Sets (or, with `None`, clears) the given attributes.
    async fn update(
        &self,
        id: &str,
        attributes: &BTreeMap<String, Option<String>>,
    ) -> Result<(), TargetError>;

    /// Soft-deletes a user.
    async fn delete(&self, id: &str) -> Result<(), TargetError>;
}
