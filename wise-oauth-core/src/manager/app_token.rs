//! The client-credentials (application) token: memory only, single flight.

use std::sync::RwLock;
use std::time::SystemTime;

use super::{TokenError, TokenManager};
use crate::secret::AccessToken;

/// The cached application token and the lock that makes its fetch single flight.
#[derive(Debug, Default)]
pub(super) struct AppTokenCache {
    current: RwLock<Option<(AccessToken, SystemTime)>>,
    fetch: tokio::sync::Mutex<()>,
}

impl AppTokenCache {
    fn usable(&self, now: SystemTime, skew: std::time::Duration) -> Option<AccessToken> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*current {
            Some((token, expires_at)) if expires_at.duration_since(now).is_ok_and(|d| d > skew) => {
                Some(token.clone())
            }
            _ => None,
        }
    }
}

impl TokenManager {
    /// A client-credentials token (for signup and user lookup), cached in memory and
    /// fetched again when within the skew of its expiry; concurrent callers share one fetch.
    pub(crate) async fn app_token(&self) -> Result<AccessToken, TokenError> {
        let skew = self.inner.settings.skew;
        let app = &self.inner.app;
        if let Some(token) = app.usable(self.inner.clock.now(), skew) {
            return Ok(token);
        }
        let _fetching = app.fetch.lock().await;
        let now = self.inner.clock.now();
        if let Some(token) = app.usable(now, skew) {
            return Ok(token);
        }
        if self.inner.breaker.is_open(now) {
            return Err(TokenError::Misconfigured);
        }
        match self.inner.endpoint.client_credentials().await {
            Ok(fresh) => {
                let token = fresh.access_token.clone();
                *app.current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((fresh.access_token, fresh.expires_at));
                Ok(token)
            }
            Err(e) if e.is_configuration() => {
                tracing::error!(error = %e, "Wise rejected the OAuth client");
                self.inner
                    .breaker
                    .open(self.inner.clock.now(), self.inner.settings.breaker_open_for);
                Err(TokenError::Misconfigured)
            }
            Err(e) => {
                tracing::warn!(error = %e, "client-credentials token request failed");
                Err(TokenError::Unavailable {
                    retry_after: e.retry_after(),
                })
            }
        }
    }
}
