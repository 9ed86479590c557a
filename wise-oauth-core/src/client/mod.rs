//! An authorized Wise API client for one linked user: the user's current token on every
//! call, one retry with a newer token after a 401, and Wise's answers as typed outcomes.

mod call;
mod error;
mod layer;
mod response;
mod typed;

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Method};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::ClientError;
pub use layer::{WiseAuthLayer, WiseAuthService};
pub use response::WiseResponse;
pub use typed::{Balance, Money, Statement, StatementQuery, StatementTransaction};

use self::call::Prepared;
use crate::ids::{LinkKey, UserId};
use crate::manager::TokenManager;
use crate::wise::WiseOAuth;

/// The largest response body the client reads (1 MiB; a statement can be long).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// An authorized client of the Wise API for one linked user. Cheap to clone.
///
/// Get one with [`WiseOAuth::client`] (no request needed: jobs, queue consumers, CLIs) or,
/// in a handler, from the adapters' `WiseToken::client()`.
///
/// # Quick start
///
/// ```no_run
/// use wise_oauth_core::{ClientError, UserId, WiseConfig, WiseError, WiseOAuth};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let wise = WiseOAuth::builder(WiseConfig::from_env()?).build()?;
/// let user = UserId::new("user-42")?;
///
/// // Anywhere: a handler (`WiseToken::client()`), a background job, a CLI.
/// let client = wise.client(&user);
/// for profile in client.profiles().await? {
///     for balance in client.balances(profile.id, &["STANDARD"]).await? {
///         println!("{} {}", balance.amount.value(), balance.amount.currency());
///     }
/// }
///
/// // Any other call: serde bodies in and out.
/// let me: serde_json::Value = client.get("/v1/me").await?;
/// # let _ = me;
///
/// // Typed outcomes.
/// match client.get::<serde_json::Value>("/v2/profiles").await {
///     Ok(_) => {}
///     Err(e) if e.needs_relink() => { /* send the user through the link flow */ }
///     Err(ClientError::Wise(WiseError::RateLimited { retry_after })) => {
///         # let _ = retry_after;
///         /* slow down */
///     }
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(())
/// # }
/// ```
///
/// # What every call does
///
/// * takes the user's current token from the token manager (a cache hit on the hot path);
/// * calls the environment's API base URL (with the configured API version prefixed to the
///   path) over the library's shared HTTP client: its timeouts, no redirects followed, the
///   body read up to 1 MiB;
/// * sends a correlation id as `X-External-Correlation-Id` (a fresh one, or the one given
///   with [`WiseClient::with_correlation_id`]) and records Wise's `x-trace-id` in the
///   `wise_oauth.api_call` span;
/// * on a 401, asks the manager for a newer token (a sibling instance may have refreshed
///   the link: the store is re-read, or the link's single refresh joined) and repeats the
///   call **once**, whatever its method: a 401 means Wise did not process it. A second 401
///   is [`WiseError::Unauthorized`](crate::WiseError::Unauthorized); a link Wise revoked ends as
///   [`TokenError::RelinkRequired`](crate::TokenError::RelinkRequired) with the link
///   marked;
/// * a 429 is [`WiseError::RateLimited`](crate::WiseError::RateLimited) with its `Retry-After`, never retried here;
/// * a 5xx is [`WiseError::Unavailable`](crate::WiseError::Unavailable); GET and HEAD are retried within a small budget
///   with jittered backoff, other methods are never repeated (only a connection that could
///   not be opened is retried: nothing was sent);
/// * an SCA 403 (`x-2fa-approval`) is [`WiseError::Sca`](crate::WiseError::Sca) with the one-time token: once the
///   user cleared the challenge, repeat the call with [`WiseClient::with_sca_approval`].
#[derive(Clone)]
pub struct WiseClient {
    // What a call reads, held here rather than reached through the handle: each pointer
    // followed on a call is a likely cache miss after the round trip before it.
    manager: TokenManager,
    http: reqwest::Client,
    /// The API base URL, with `/{version}` when configured, parsed once per handle: a call
    /// sets only its path and query on a clone.
    base_url: Arc<url::Url>,
    max_attempts: u32,
    user: UserId,
    key: LinkKey,
    correlation_id: Option<HeaderValue>,
    approval: Option<HeaderValue>,
}

impl fmt::Debug for WiseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseClient")
            .field("user", &self.user)
            .field("base", &self.base_url.as_str())
            .field("correlation_id", &self.correlation_id)
            .field("sca_approval", &self.approval.is_some())
            .finish()
    }
}

impl WiseClient {
    pub(crate) fn new(wise: &WiseOAuth, user: UserId) -> Self {
        Self {
            manager: wise.manager().clone(),
            http: wise.manager().endpoint().http().clone(),
            base_url: wise.api_base().clone(),
            max_attempts: wise.config().max_attempts(),
            key: wise.link_key(&user),
            user,
            correlation_id: None,
            approval: None,
        }
    }

    /// The API base URL of `config`, with `/{version}` when configured.
    pub(crate) fn base_url(config: &crate::WiseConfig) -> url::Url {
        let mut base = config.api_url().as_str().trim_end_matches('/').to_owned();
        if let Some(version) = config.api_version() {
            base.push('/');
            base.push_str(version);
        }
        // A URL with `/` and a version segment appended to it stays a URL.
        url::Url::parse(&base).unwrap_or_else(|_| config.api_url().clone())
    }

    /// The app user whose link the calls use.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Sends `id` as `X-External-Correlation-Id` on every call of the returned client (for
    /// example the id of the incoming request, so one id follows the work into Wise's
    /// logs). An id that is empty, longer than 64 bytes or not visible ASCII is ignored (a
    /// fresh one is generated per call, as by default).
    pub fn with_correlation_id(&self, id: &str) -> Self {
        let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic());
        Self {
            correlation_id: valid.then(|| HeaderValue::from_str(id).ok()).flatten(),
            ..self.clone()
        }
    }

    /// A client that sends `x-2fa-approval: <one_time_token>`: repeat the call Wise answered
    /// with [`WiseError::Sca`](crate::WiseError::Sca) through it once the user cleared the
    /// challenge. A one-time token is single use: use the returned client for that one call.
    ///
    /// ```no_run
    /// # use wise_oauth_core::{ProfileId, StatementQuery, WiseClient};
    /// # async fn run(client: WiseClient, profile: ProfileId, query: StatementQuery)
    /// #     -> Result<(), wise_oauth_core::ClientError> {
    /// match client.statement(profile, 200001, &query).await {
    ///     Ok(statement) => println!("{} lines", statement.transactions.len()),
    ///     Err(e) => match e.sca_one_time_token() {
    ///         // Show the challenge to the user; once cleared:
    ///         Some(ott) => {
    ///             let statement = client.with_sca_approval(ott)?.statement(profile, 200001, &query).await?;
    ///             # let _ = statement;
    ///         }
    ///         None => return Err(e),
    ///     },
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_sca_approval(&self, one_time_token: &str) -> Result<Self, ClientError> {
        let valid = !one_time_token.is_empty()
            && one_time_token.len() <= 128
            && one_time_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let value = valid
            .then(|| HeaderValue::from_str(one_time_token).ok())
            .flatten()
            .ok_or(ClientError::InvalidRequest {
                reason: "the one-time token is not a token",
            })?;
        Ok(Self {
            approval: Some(value),
            ..self.clone()
        })
    }

    /// `GET {path}` (e.g. `/v1/me`, with its query), the JSON answer decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.execute(Prepared::new(Method::GET, path, None, "get"))
            .await?
            .json()
    }

    /// `POST {path}` with `body` as JSON, the JSON answer decoded as `T`. Never repeated
    /// after it may have reached Wise (except after a 401, which Wise did not process).
    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = json(body)?;
        self.execute(Prepared::new(Method::POST, path, Some(body), "post"))
            .await?
            .json()
    }

    /// `PUT {path}` with `body` as JSON, the JSON answer decoded as `T`.
    pub async fn put<B, T>(&self, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = json(body)?;
        self.execute(Prepared::new(Method::PUT, path, Some(body), "put"))
            .await?
            .json()
    }

    /// `DELETE {path}`; the answer as is (Wise answers some deletes with 204, others with
    /// the deleted object).
    pub async fn delete(&self, path: &str) -> Result<WiseResponse, ClientError> {
        self.execute(Prepared::new(Method::DELETE, path, None, "delete"))
            .await
    }

    /// Any method, an optional JSON body, the answer as is.
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<WiseResponse, ClientError> {
        let body = body.map(json).transpose()?;
        self.execute(Prepared::new(method, path, body, "send"))
            .await
    }
}

fn json<B: Serialize + ?Sized>(body: &B) -> Result<bytes::Bytes, ClientError> {
    serde_json::to_vec(body)
        .map(bytes::Bytes::from)
        .map_err(|_| ClientError::InvalidRequest {
            reason: "the body does not serialize to JSON",
        })
}
