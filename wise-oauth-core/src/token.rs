//! The tokens of one link and their expiry arithmetic.

use std::time::{Duration, SystemTime};

use crate::secret::{AccessToken, RefreshToken};

/// The user tokens of one link, as issued (or refreshed) by Wise.
///
/// `Debug` is safe to log: the token values are redacted.
#[derive(Debug, Clone)]
pub(crate) struct TokenSet {
    /// The bearer token for Wise API calls.
    pub(crate) access_token: AccessToken,
    /// The long-lived refresh token.
    pub(crate) refresh_token: RefreshToken,
    /// When the access token stops working (already clamped to sane bounds).
    pub(crate) expires_at: SystemTime,
    /// When the refresh token stops working, if Wise said.
    pub(crate) refresh_token_expires_at: Option<SystemTime>,
    /// The granted scope (`transfers` at Wise), if Wise said.
    pub(crate) scope: Option<String>,
    /// When this set was obtained (the send time of the token request).
    pub(crate) obtained_at: SystemTime,
}

impl TokenSet {
    /// Assembles a token set.
    pub(crate) fn new(
        access_token: AccessToken,
        refresh_token: RefreshToken,
        expires_at: SystemTime,
        obtained_at: SystemTime,
    ) -> Self {
        Self {
            access_token,
            refresh_token,
            expires_at,
            refresh_token_expires_at: None,
            scope: None,
            obtained_at,
        }
    }

    /// Time left before the access token expires at `now` (zero when already expired).
    pub(crate) fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// Whether the access token is usable at `now`, keeping `skew` in hand.
    pub(crate) fn is_usable(&self, now: SystemTime, skew: Duration) -> bool {
        self.remaining(now) > skew
    }
}
