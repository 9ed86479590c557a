//! Identifiers: the app's user, the Wise profile, and the key of one link.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

/// The longest app user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;

/// The application's own identifier of a logged-in user (never taken from a query string
/// or header by the plugin).
///
/// Any non-empty string of at most [`MAX_USER_ID_LEN`] bytes without control characters.
///
/// ```
/// use wise_oauth_core::UserId;
/// let user = UserId::new("user-42").unwrap();
/// assert_eq!(user.as_str(), "user-42");
/// assert!(UserId::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

/// Why a string is not a valid [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidUserId {
    /// The id is empty.
    #[error("user id is empty")]
    Empty,
    /// The id is longer than [`MAX_USER_ID_LEN`] bytes.
    #[error("user id is longer than {MAX_USER_ID_LEN} bytes")]
    TooLong,
    /// The id contains a control character.
    #[error("user id contains a control character")]
    ControlCharacter,
}

impl UserId {
    /// Validates and wraps an app user id.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidUserId> {
        let id = id.as_ref();
        if id.is_empty() {
            return Err(InvalidUserId::Empty);
        }
        if id.len() > MAX_USER_ID_LEN {
            return Err(InvalidUserId::TooLong);
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidUserId::ControlCharacter);
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Wise profile id (personal or business).
///
/// Parsing is strict (`^[1-9][0-9]{0,18}$`): no sign, no leading zero, ASCII digits only,
/// because the callback's `profileId` is untrusted input.
///
/// ```
/// use wise_oauth_core::ProfileId;
/// assert_eq!("30000000".parse::<ProfileId>().unwrap().get(), 30000000);
/// assert!("+30000000".parse::<ProfileId>().is_err());
/// assert!("0030000000".parse::<ProfileId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(u64);

/// The text is not a canonical profile id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("profile id must be 1 to 19 ASCII digits without sign or leading zero")]
pub struct InvalidProfileId;

impl ProfileId {
    /// Wraps a numeric profile id; zero is not a profile id.
    pub fn new(id: u64) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }

    /// The numeric id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for ProfileId {
    type Err = InvalidProfileId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let canonical = !bytes.is_empty()
            && bytes.len() <= 19
            && bytes[0] != b'0'
            && bytes.iter().all(u8::is_ascii_digit);
        if !canonical {
            return Err(InvalidProfileId);
        }
        s.parse::<u64>().map(Self).map_err(|_| InvalidProfileId)
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Identifies one link: the Wise environment, the OAuth client and the app user.
///
/// Stores must treat the three parts as one injective key (never join them with a
/// separator that could also appear inside a part).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkKey {
    environment: Arc<str>,
    client_id: Arc<str>,
    user: UserId,
}

impl LinkKey {
    /// Builds a key. `environment` is the name of the Wise environment
    /// (`"production"`, `"sandbox"` or a custom name) and `client_id` the OAuth client.
    pub fn new(environment: impl AsRef<str>, client_id: impl AsRef<str>, user: UserId) -> Self {
        Self {
            environment: Arc::from(environment.as_ref()),
            client_id: Arc::from(client_id.as_ref()),
            user,
        }
    }

    /// The Wise environment name.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The app user.
    pub fn user(&self) -> &UserId {
        &self.user
    }
}

/// The environment and client part of every [`LinkKey`] of one configuration, built once so
/// that making a key on the hot path only bumps two reference counts.
#[derive(Debug, Clone)]
pub(crate) struct LinkNamespace {
    environment: Arc<str>,
    client_id: Arc<str>,
}

impl LinkNamespace {
    pub(crate) fn new(environment: &str, client_id: &str) -> Self {
        Self {
            environment: Arc::from(environment),
            client_id: Arc::from(client_id),
        }
    }

    /// The environment name.
    pub(crate) fn environment(&self) -> &str {
        &self.environment
    }

    /// The OAuth client id.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key of `user`'s link in this namespace.
    pub(crate) fn key(&self, user: &UserId) -> LinkKey {
        LinkKey {
            environment: self.environment.clone(),
            client_id: self.client_id.clone(),
            user: user.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_id_rejects_non_canonical_forms() {
        for bad in [
            "",
            "0",
            "+1",
            "-1",
            "01",
            " 1",
            "1 ",
            "１",
            "３０００",
            "12345678901234567890",
            "1e3",
        ] {
            assert!(bad.parse::<ProfileId>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "9223372036854775807".parse::<ProfileId>().unwrap().get(),
            i64::MAX as u64
        );
    }

    #[test]
    fn user_id_rejects_control_characters_and_overlong_ids() {
        assert_eq!(UserId::new("a\0b"), Err(InvalidUserId::ControlCharacter));
        assert_eq!(
            UserId::new("x".repeat(MAX_USER_ID_LEN + 1)),
            Err(InvalidUserId::TooLong)
        );
        assert!(UserId::new("x".repeat(MAX_USER_ID_LEN)).is_ok());
    }
}
