//! The token an extractor hands a handler, and the extraction itself.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::Either;

use super::framework::Framework;
use super::plugin::Plugin;
use super::rejection::Rejection;
use super::request::RequestInfo;
use super::resolver::UserFuture;
use crate::manager::CacheMiss;
use crate::{AccessToken, ProfileId, TokenError, UserId, ValidToken, WiseClient, WiseOAuth};

/// A valid Wise access token of the logged-in user's linked profile, with what a later
/// [`LinkedToken::after_unauthorized`] needs: the plugin and a few facts of the request.
///
/// An adapter's `WiseToken` wraps it (and dereferences to it), so these accessors are the
/// ones a handler calls.
pub struct LinkedToken<F: Framework> {
    token: ValidToken,
    plugin: Arc<Plugin<F>>,
}

impl<F: Framework> Clone for LinkedToken<F> {
    fn clone(&self) -> Self {
        LinkedToken {
            token: self.token.clone(),
            plugin: self.plugin.clone(),
        }
    }
}

impl<F: Framework> fmt::Debug for LinkedToken<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedToken")
            .field("token", &self.token)
            .finish()
    }
}

/// A token, or a failure of the link with what its rejection needs.
type Looked<F> = Result<LinkedToken<F>, (TokenError, RequestInfo, Arc<Plugin<F>>)>;

/// The future of an extraction ([`LinkedToken::extract`]): ready at once for a cached
/// token or a request without a user; boxed only for the store or the link's refresh after
/// a cache miss, or for the whole of it behind an async user resolver.
///
/// A named type, so that an adapter whose extractor trait names its future (actix-web's
/// `FromRequest::Future`) returns it as it is, with no box of its own.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use wise_oauth::web::Extraction;
///
/// // Decided at once (say, the rejection when the plugin is missing), then mapped.
/// let decided = Extraction::ready(Err::<u8, &str>("no plugin")).map(|r| r.map(u16::from));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert_eq!(pin!(decided).poll(&mut cx), Poll::Ready(Err("no plugin")));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Extraction<O>(Either<Ready<O>, Pin<Box<dyn Future<Output = O> + Send>>>);

impl<O> Extraction<O> {
    /// An extraction already decided, e.g. the adapter's own rejection when the plugin is
    /// missing from its app state.
    pub fn ready(output: O) -> Self {
        Extraction(Either::Left(ready(output)))
    }

    /// The extraction with `f` applied to its output: at once when it is ready, after it
    /// otherwise.
    pub fn map<P>(self, f: impl FnOnce(O) -> P + Send + 'static) -> Extraction<P>
    where
        O: 'static,
    {
        match self.0 {
            Either::Left(done) => Extraction::ready(f(done.into_inner())),
            Either::Right(rest) => Extraction::boxed(async move { f(rest.await) }),
        }
    }

    fn boxed(rest: impl Future<Output = O> + Send + 'static) -> Self {
        Extraction(Either::Right(Box::pin(rest)))
    }
}

impl<O> Future for Extraction<O> {
    type Output = O;

    #[inline]
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<O> fmt::Debug for Extraction<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            Either::Left(_) => "ready",
            Either::Right(_) => "pending",
        };
        f.debug_tuple("Extraction").field(&state).finish()
    }
}

impl<F: Framework> LinkedToken<F> {
    /// The extraction on `plugin` (which the adapter found in its app state): the user,
    /// then a valid token for them, as the adapter's own types (`T` wraps the token, `E`
    /// the rejection), so that an adapter returns this future as it is.
    ///
    /// The user and the link cache are read when this is called, with no allocation and
    /// nothing kept of the request: a fresh cached token gives a future that is ready at
    /// once. Only a cache miss boxes the rest (a store read or the link's refresh), with
    /// the request facts its rejection may need; an async user resolver boxes the whole
    /// extraction.
    pub fn extract<T, E>(req: &F::Request, plugin: Arc<Plugin<F>>) -> Extraction<Result<T, E>>
    where
        T: From<Self> + Send + 'static,
        E: From<Rejection> + Send + 'static,
    {
        Self::look_up(
            req,
            plugin,
            Self::finish::<T, E>,
            Self::not_logged_in::<T, E>,
        )
    }

    /// Like [`LinkedToken::extract`], but `Ok(None)` when the user has not linked Wise or
    /// must re-link; every other failure (not logged in, Wise unavailable, plugin not set
    /// up) is still a rejection.
    pub fn extract_optional<T, E>(
        req: &F::Request,
        plugin: Arc<Plugin<F>>,
    ) -> Extraction<Result<Option<T>, E>>
    where
        T: From<Self> + Send + 'static,
        E: From<Rejection> + Send + 'static,
    {
        Self::look_up(
            req,
            plugin,
            Self::finish_optional::<T, E>,
            Self::not_logged_in::<Option<T>, E>,
        )
    }

    fn finish<T: From<Self>, E: From<Rejection>>(looked: Looked<F>) -> Result<T, E> {
        match looked {
            Ok(token) => Ok(T::from(token)),
            Err((e, info, plugin)) => Err(E::from(Rejection::token(
                &e,
                &info,
                plugin.mount(),
                plugin.hooks(),
            ))),
        }
    }

    fn finish_optional<T: From<Self>, E: From<Rejection>>(
        looked: Looked<F>,
    ) -> Result<Option<T>, E> {
        match looked {
            Ok(token) => Ok(Some(T::from(token))),
            Err((e, _, _)) if e.needs_link() => Ok(None),
            Err((e, info, plugin)) => Err(E::from(Rejection::token(
                &e,
                &info,
                plugin.mount(),
                plugin.hooks(),
            ))),
        }
    }

    fn not_logged_in<T, E: From<Rejection>>(
        info: &RequestInfo,
        plugin: &Plugin<F>,
    ) -> Result<T, E> {
        Err(E::from(Rejection::not_logged_in(info, plugin.hooks())))
    }

    /// The user, then what the link cache answers, given to `finish`; on a miss, the
    /// boxed rest, then `finish`. An async user resolver boxes all of it; no user is
    /// `no_user`'s answer.
    ///
    /// `finish` and `no_user` are functions known at compile time (not pointers), so that
    /// the ready path inlines them.
    fn look_up<O, W, N>(
        req: &F::Request,
        plugin: Arc<Plugin<F>>,
        finish: W,
        no_user: N,
    ) -> Extraction<O>
    where
        O: Send + 'static,
        W: FnOnce(Looked<F>) -> O + Send + 'static,
        N: FnOnce(&RequestInfo, &Plugin<F>) -> O + Send + 'static,
    {
        let user = match plugin.user_now(req) {
            Ok(Some(user)) => user,
            Ok(None) => return Self::without_user(req, plugin, no_user),
            Err(pending) => return Self::resolving(req, plugin, pending, finish, no_user),
        };
        // Lent by the framework where it can (the extension): the token carries its user.
        match plugin.wise().token_cached(&user) {
            Ok(Ok(token)) => Extraction::ready(finish(Ok(LinkedToken { token, plugin }))),
            other => Self::not_fresh(req, plugin, &user, other, finish),
        }
    }

    // The rest of `look_up`, out of line so that the code of a fresh cached token stays
    // short.

    /// No user is logged in.
    #[cold]
    #[inline(never)]
    fn without_user<O, N>(req: &F::Request, plugin: Arc<Plugin<F>>, no_user: N) -> Extraction<O>
    where
        N: FnOnce(&RequestInfo, &Plugin<F>) -> O,
    {
        Extraction::ready(no_user(&RequestInfo::of::<F>(req), &plugin))
    }

    /// The async resolver's user, then the token: all of it boxed.
    #[cold]
    #[inline(never)]
    fn resolving<O, W, N>(
        req: &F::Request,
        plugin: Arc<Plugin<F>>,
        pending: UserFuture,
        finish: W,
        no_user: N,
    ) -> Extraction<O>
    where
        O: Send + 'static,
        W: FnOnce(Looked<F>) -> O + Send + 'static,
        N: FnOnce(&RequestInfo, &Plugin<F>) -> O + Send + 'static,
    {
        let info = RequestInfo::of::<F>(req);
        Extraction::boxed(async move {
            let Some(user) = pending.await else {
                return no_user(&info, &plugin);
            };
            finish(match plugin.wise().token(&user).await {
                Ok(token) => Ok(LinkedToken { token, plugin }),
                Err(e) => Err((e, info, plugin)),
            })
        })
    }

    /// The cache's answer was no fresh token: the link's failure at once, or the boxed rest
    /// (a store read or the link's refresh).
    #[cold]
    #[inline(never)]
    fn not_fresh<O, W>(
        req: &F::Request,
        plugin: Arc<Plugin<F>>,
        user: &UserId,
        cached: Result<Result<ValidToken, TokenError>, CacheMiss>,
        finish: W,
    ) -> Extraction<O>
    where
        O: Send + 'static,
        W: FnOnce(Looked<F>) -> O + Send + 'static,
    {
        let info = RequestInfo::of::<F>(req);
        match cached {
            Ok(Ok(token)) => Extraction::ready(finish(Ok(LinkedToken { token, plugin }))),
            Ok(Err(e)) => Extraction::ready(finish(Err((e, info, plugin)))),
            Err(miss) => {
                let user = user.clone();
                Extraction::boxed(async move {
                    finish(match plugin.wise().token_missed(&user, miss).await {
                        Ok(token) => Ok(LinkedToken { token, plugin }),
                        Err(e) => Err((e, info, plugin)),
                    })
                })
            }
        }
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
        self.token.user()
    }

    /// The underlying core token.
    pub fn valid_token(&self) -> &ValidToken {
        &self.token
    }

    /// An authorized Wise API client for this user (see [`WiseClient`]): every call takes
    /// the current token and repeats a 401 once with a newer one, so a handler needs no
    /// [`after_unauthorized`](Self::after_unauthorized) of its own.
    pub fn client(&self) -> WiseClient {
        self.plugin.wise().client(self.user())
    }

    /// [`client`](Self::client) that sends the correlation id of the incoming request
    /// `req` to Wise (see [`request_correlation_id`]); without one, like `client()`.
    ///
    /// Extraction copies nothing of the request (a fresh token costs no header look-up):
    /// the headers are read here, only by handlers that ask. Adapters offer it on their own
    /// types (axum: `WiseToken::client_for(&HeaderMap)`, actix-web:
    /// `WiseToken::client_for(&HttpRequest)`).
    pub fn client_for_request(&self, req: &F::Request) -> WiseClient {
        self.client_for_headers(F::headers(req))
    }

    /// [`client`](Self::client) with the correlation id found in `headers` (name and raw
    /// value per line; see [`request_correlation_id`]).
    pub fn client_for_headers<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> WiseClient {
        let client = self.client();
        match request_correlation_id(headers) {
            Some(id) => client.with_correlation_id(id),
            None => client,
        }
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
            .token_after_unauthorized(self.user(), self.token.access_token())
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
                self.plugin.hooks(),
            )),
        }
    }
}

/// The correlation id of an incoming request: its `X-External-Correlation-Id`, else its
/// `X-Request-Id` (names in any case; the first usable line of each). A value is usable when
/// it is 1 to 64 visible ASCII characters, what [`WiseClient::with_correlation_id`] sends;
/// others are skipped, so a caller cannot put arbitrary bytes into the header sent to Wise.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::request_correlation_id;
///
/// let headers = [("x-request-id", &b"req-7"[..]), ("accept", b"*/*")];
/// assert_eq!(request_correlation_id(headers), Some("req-7"));
/// let both = [("X-Request-Id", &b"req-7"[..]), ("X-External-Correlation-Id", b"job-1")];
/// assert_eq!(request_correlation_id(both), Some("job-1"));
/// assert_eq!(request_correlation_id([("x-request-id", &b"two words"[..])]), None);
/// ```
pub fn request_correlation_id<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Option<&'h str> {
    let usable = |v: &'h [u8]| {
        (!v.is_empty() && v.len() <= 64 && v.iter().all(u8::is_ascii_graphic))
            .then(|| std::str::from_utf8(v).ok())
            .flatten()
    };
    let mut request_id = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("x-external-correlation-id") {
            if let Some(id) = usable(value) {
                return Some(id);
            }
        } else if request_id.is_none() && name.eq_ignore_ascii_case("x-request-id") {
            request_id = usable(value);
        }
    }
    request_id
}
