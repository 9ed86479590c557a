//! The values the manager hands out.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::ids::{ProfileId, UserId};
use crate::secret::AccessToken;

/// A Wise access token that was valid (and durably stored) when it was handed out, with
/// the app user and the profile it acts for. Cheap to clone; `Debug` redacts the token.
#[derive(Clone)]
pub struct ValidToken(Arc<ValidInner>);

struct ValidInner {
    user: UserId,
    access_token: AccessToken,
    profile_id: ProfileId,
    expires_at: SystemTime,
}

impl ValidToken {
    pub(crate) fn new(
        user: UserId,
        access_token: AccessToken,
        profile_id: ProfileId,
        expires_at: SystemTime,
    ) -> Self {
        Self(Arc::new(ValidInner {
            user,
            access_token,
            profile_id,
            expires_at,
        }))
    }

    /// The bearer token for `Authorization: Bearer ...` on Wise API calls.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.access_token
    }

    /// The app user whose link the token belongs to.
    pub fn user(&self) -> &UserId {
        &self.0.user
    }

    /// The linked Wise profile.
    pub fn profile_id(&self) -> ProfileId {
        self.0.profile_id
    }

    /// When the access token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    pub(crate) fn same_token(&self, other: &AccessToken) -> bool {
        self.0.access_token.expose_secret() == other.expose_secret()
    }
}

impl fmt::Debug for ValidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidToken")
            .field("user", &self.0.user)
            .field("access_token", &self.0.access_token)
            .field("profile_id", &self.0.profile_id)
            .field("expires_at", &self.0.expires_at)
            .finish()
    }
}

/// What an app may show about a link (no token values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkView {
    /// The linked Wise profile.
    pub profile_id: ProfileId,
    /// When the current access token expires (it is refreshed automatically).
    pub expires_at: SystemTime,
    /// Whether Wise rejected the link and the user must link again.
    pub relink_required: bool,
}
