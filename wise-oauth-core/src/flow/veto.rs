//! The app's veto over a newly linked profile (say, one whose holder is not the app user).

use async_trait::async_trait;

use crate::api::ProfileSummary;
use crate::ids::UserId;
use crate::secret::AccessToken;

/// Decides whether a verified Wise profile may be linked to an app user.
///
/// Wise asks partners to confirm that the linked account belongs to the same person (for
/// example by comparing the date of birth of a personal profile). The check runs after the
/// code exchange and the profile verification, before anything is stored; returning
/// `false` (or panicking) rejects the link with [`FlowError::ProfileRejected`] and nothing
/// is stored. Set it with [`WiseOAuthBuilder::profile_check`].
///
/// [`FlowError::ProfileRejected`]: crate::FlowError::ProfileRejected
/// [`WiseOAuthBuilder::profile_check`]: crate::WiseOAuthBuilder::profile_check
///
/// ```
/// use async_trait::async_trait;
/// use wise_oauth_core::{AccessToken, ProfileCheck, ProfileKind, ProfileSummary, UserId};
///
/// #[derive(Debug)]
/// struct PersonalOnly;
///
/// #[async_trait]
/// impl ProfileCheck for PersonalOnly {
///     async fn accept(&self, _user: &UserId, profile: &ProfileSummary, _token: &AccessToken) -> bool {
///         // `_token` may be used to read more details from Wise (e.g. GET /v1/me).
///         profile.kind == ProfileKind::Personal
///     }
/// }
/// ```
#[async_trait]
pub trait ProfileCheck: Send + Sync + 'static {
    /// Whether `profile` may be linked to `user`. `access_token` is the new link's token,
    /// for reading more details from Wise; do not keep it.
    async fn accept(
        &self,
        user: &UserId,
        profile: &ProfileSummary,
        access_token: &AccessToken,
    ) -> bool;
}
