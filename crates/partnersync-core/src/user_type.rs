use std::fmt;
use std::str::FromStr;

/// The two values Entra ID accepts for a user's `userType`, spelled exactly as Graph wants.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum UserType {
    /// A member of the organisation (Entra's default for synced users).
    Member,
    /// A partner: a B2B guest with limited directory access.
    Guest,
}

/// A value that is not exactly `Member` or `Guest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("userType must be exactly \"Member\" or \"Guest\", got \"{0}\"")]
pub struct UserTypeError(pub String);

impl UserType {
    /// The exact spelling Graph expects.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Member => "Member",
            UserType::Guest => "Guest",
        }
    }
}

impl FromStr for UserType {
    type Err = UserTypeError;

    /// Only the exact spellings are accepted: Entra documents no other casing, and a rule
    /// that produces `guest` is more likely a bug than an intent.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Member" => Ok(UserType::Member),
            "Guest" => Ok(UserType::Guest),
            other => Err(UserTypeError(other.to_string())),
        }
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_spellings_parse() {
        assert_eq!("Member".parse::<UserType>(), Ok(UserType::Member));
        assert_eq!("Guest".parse::<UserType>(), Ok(UserType::Guest));
        assert_eq!(
            "guest".parse::<UserType>(),
            Err(UserTypeError("guest".into()))
        );
        assert!(" Guest".parse::<UserType>().is_err());
        assert_eq!(UserType::Guest.to_string(), "Guest");
    }
}
