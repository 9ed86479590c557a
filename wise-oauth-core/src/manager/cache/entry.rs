//! What the cache holds for a link: the token and the instants the hot path compares.

use std::time::{Duration, SystemTime};

use crate::ids::{ProfileId, UserId};
use crate::manager::types::ValidToken;
use crate::store::{LinkStatus, Version};
use crate::token::TokenSet;

/// How long a re-link verdict is served from memory before the store is asked again. It
/// sends the user through the link flow, so it is re-checked within a second: a sibling may
/// have replaced it (a new link made elsewhere, or a refresh that won a race after the store
/// lost a lease), and another instance's verdict must not strand a user who has a valid link.
const RELINK_REVALIDATE: Duration = Duration::from_secs(1);

/// One cached link. Immutable; replaced as a whole.
#[derive(Debug)]
pub(in crate::manager) struct CacheEntry {
    pub(in crate::manager) state: CacheState,
    /// The store version this entry was read at (or written as).
    pub(in crate::manager) version: Version,
    /// After this instant (injected clock) the entry is re-read from the store.
    pub(in crate::manager) revalidate_at: SystemTime,
}

#[derive(Debug)]
pub(in crate::manager) enum CacheState {
    Active {
        valid: ValidToken,
        /// `expires_at - skew`: hand the token out only before this.
        usable_until: SystemTime,
        /// `expires_at - refresh_window`: from here on, refresh in the background.
        refresh_at: SystemTime,
    },
    NeedsRelink {
        profile_id: ProfileId,
        expires_at: SystemTime,
    },
}

/// Precomputed thresholds so the hot path only compares instants.
#[derive(Debug, Clone, Copy)]
pub(in crate::manager) struct Thresholds {
    pub(in crate::manager) skew: Duration,
    pub(in crate::manager) refresh_window: Duration,
    pub(in crate::manager) revalidate_after: Duration,
}

impl Thresholds {
    /// The skew for this token: the configured one, or a tenth of its lifetime if shorter.
    pub(in crate::manager) fn skew_for(&self, tokens: &TokenSet) -> Duration {
        self.skew.min(lifetime(tokens) / 10)
    }

    /// The refresh window for this token: the configured one, or half its lifetime if
    /// shorter, so a short-lived token is refreshed about once per lifetime, not on every use.
    pub(in crate::manager) fn window_for(&self, tokens: &TokenSet) -> Duration {
        self.refresh_window.min(lifetime(tokens) / 2)
    }
}

fn lifetime(tokens: &TokenSet) -> Duration {
    tokens
        .expires_at
        .duration_since(tokens.obtained_at)
        .unwrap_or(Duration::ZERO)
}

impl CacheEntry {
    pub(in crate::manager) fn active(
        user: &UserId,
        tokens: &TokenSet,
        profile_id: ProfileId,
        version: Version,
        now: SystemTime,
        t: Thresholds,
    ) -> Self {
        let expires_at = tokens.expires_at;
        Self {
            state: CacheState::Active {
                valid: ValidToken::new(
                    user.clone(),
                    tokens.access_token.clone(),
                    profile_id,
                    expires_at,
                ),
                usable_until: expires_at
                    .checked_sub(t.skew_for(tokens))
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                refresh_at: expires_at
                    .checked_sub(t.window_for(tokens))
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            },
            version,
            revalidate_at: now + t.revalidate_after,
        }
    }

    pub(in crate::manager) fn needs_relink(
        profile_id: ProfileId,
        expires_at: SystemTime,
        version: Version,
        now: SystemTime,
        t: Thresholds,
    ) -> Self {
        Self {
            state: CacheState::NeedsRelink {
                profile_id,
                expires_at,
            },
            version,
            revalidate_at: now + t.revalidate_after.min(RELINK_REVALIDATE),
        }
    }

    /// The same entry, trusted for another revalidation period (used while the store is down).
    pub(in crate::manager) fn extended(&self, now: SystemTime, t: Thresholds) -> Self {
        let state = match &self.state {
            CacheState::Active {
                valid,
                usable_until,
                refresh_at,
            } => CacheState::Active {
                valid: valid.clone(),
                usable_until: *usable_until,
                refresh_at: *refresh_at,
            },
            CacheState::NeedsRelink {
                profile_id,
                expires_at,
            } => CacheState::NeedsRelink {
                profile_id: *profile_id,
                expires_at: *expires_at,
            },
        };
        Self {
            state,
            version: self.version,
            revalidate_at: now + t.revalidate_after,
        }
    }

    pub(in crate::manager) fn status(&self) -> LinkStatus {
        match self.state {
            CacheState::Active { .. } => LinkStatus::Active,
            CacheState::NeedsRelink { .. } => LinkStatus::NeedsRelink,
        }
    }

    pub(in crate::manager) fn profile_id(&self) -> ProfileId {
        match &self.state {
            CacheState::Active { valid, .. } => valid.profile_id(),
            CacheState::NeedsRelink { profile_id, .. } => *profile_id,
        }
    }

    pub(in crate::manager) fn expires_at(&self) -> SystemTime {
        match &self.state {
            CacheState::Active { valid, .. } => valid.expires_at(),
            CacheState::NeedsRelink { expires_at, .. } => *expires_at,
        }
    }
}
