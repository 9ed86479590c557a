//! The token an extractor hands a handler, and the extraction itself.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::framework::Framework;
use super::plugin::Plugin;
use super::rejection::Rejection;
use super::request::RequestInfo;
use crate::{AccessToken, ProfileId, TokenError, UserId, ValidToken, WiseClient, WiseOAuth};

/// A valid Wise access token of the logged-in user's linked profile, with what a later
/// [`LinkedToken::after_unauthorized`] needs: the plugin and a few facts of the request.
///
/// An adapter's `WiseToken` wraps it (and dereferences to it), so these accessors are the
/// ones a handler calls.
pub struct LinkedToken<F: Framework> {
    token: ValidToken,
    user: UserId,
    plugin: Arc<Plugin<F>>,
}

impl<F: Framework> Clone for LinkedToken<F> {
    fn clone(&self) -> Self {
        LinkedToken {
            token: self.token.clone(),
            user: self.user.clone(),
            plugin: self.plugin.clone(),
        }
    }
}

impl<F: Framework> fmt::Debug for LinkedToken<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedToken")
            .field("user", &self.user)
            .field("token", &self.token)
            .finish()
    }
}

/// A token, or a failure of the link with what its rejection needs.
type Looked<F> = Result<LinkedToken<F>, (TokenError, RequestInfo, Arc<Plugin<F>>)>;

impl<F: Framework> LinkedToken<F> {
    /// The extraction on `plugin` (which the adapter found in its app state): the user,
    /// then a valid token for them.
    ///
    /// The success path keeps nothing of the request; the full [`RequestInfo`] is built for
    /// a rejection only.
    pub async fn extract(req: &F::Request, plugin: Arc<Plugin<F>>) -> Result<Self, Rejection> {
        Self::look_up(req, plugin)
            .await?
            .map_err(|(e, info, plugin)| Rejection::token(&e, &info, plugin.mount()))
    }

    /// Like [`LinkedToken::extract`], but `Ok(None)` when the user has not linked Wise or
    /// must re-link; every other failure (not logged in, Wise unavailable, plugin not set
    /// up) is still a rejection.
    pub async fn extract_optional(
        req: &F::Request,
        plugin: Arc<Plugin<F>>,
    ) -> Result<Option<Self>, Rejection> {
        match Self::look_up(req, plugin).await? {
            Ok(token) => Ok(Some(token)),
            Err((e, _, _)) if e.needs_link() => Ok(None),
            Err((e, info, plugin)) => Err(Rejection::token(&e, &info, plugin.mount())),
        }
    }

    async fn look_up(req: &F::Request, plugin: Arc<Plugin<F>>) -> Result<Looked<F>, Rejection> {
        let Some(user) = plugin.user(req) else {
            return Err(Rejection::not_logged_in(&RequestInfo::of::<F>(req)));
        };
        Ok(match plugin.wise().token(&user).await {
            Ok(token) => Ok(LinkedToken {
                token,
                user,
                plugin,
            }),
            Err(e) => Err((e, RequestInfo::of::<F>(req), plugin)),
        })
    }

    /// The access token, for `Authorization: Bearer ...` on Wise API calls.
    pub fn access_token(&self) -> &AccessToken {
        self.token.access_token()
    }

    /// The linked Wise profile.
    pub fn profile_id(&self) -> ProfileId {
        self.token.profile_id()
    }

    /// When the access token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.token.expires_at()
    }

    /// The app user the token belongs to.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The underlying core token.
    pub fn valid_token(&self) -> &ValidToken {
        &self.token
    }

    /// An authorized Wise API client for this user (see [`WiseClient`]): every call takes
    /// the current token and repeats a 401 once with a newer one, so a handler needs no
    /// [`after_unauthorized`](Self::after_unauthorized) of its own.
    pub fn client(&self) -> WiseClient {
        self.plugin.wise().client(&self.user)
    }

    /// The handle, for other calls (e.g. [`WiseOAuth::status`]).
    pub fn wise(&self) -> &WiseOAuth {
        self.plugin.wise()
    }

    /// Wise answered 401 to this token: gets the newer token another request stored, or
    /// refreshes once. Call it at most once per failed API call. The rejection answers as
    /// to an API call (JSON: 401 with `connect_url` when the link must be made again, 503
    /// with `Retry-After` in an outage): the token keeps nothing of its request, so that the
    /// extractor's success path copies no request data.
    pub async fn after_unauthorized(&self) -> Result<Self, Rejection> {
        match self
            .wise()
            .token_after_unauthorized(&self.user, self.token.access_token())
            .await
        {
            Ok(token) => Ok(LinkedToken {
                token,
                ..self.clone()
            }),
            Err(e) => Err(Rejection::token(
                &e,
                &RequestInfo::new("GET", "/"),
                self.plugin.mount(),
            )),
        }
    }
}
