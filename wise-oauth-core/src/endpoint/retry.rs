//! Retry policy: which failures are retried for which grant, full-jitter backoff and
//! `Retry-After` parsing.

use std::time::{Duration, SystemTime};

use http::HeaderValue;
use rand::Rng;
use time::macros::format_description;
use time::PrimitiveDateTime;

use super::WiseError;

/// Base of the exponential backoff.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Cap of one backoff wait.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A `Retry-After` up to this long is waited for; a longer one fails fast.
pub(crate) const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Total time budget of one logical call, retries included (below the 30 s lease TTL).
pub(crate) const RETRY_BUDGET: Duration = Duration::from_secs(25);
/// `Retry-After` values are reported capped at one day.
pub(crate) const MAX_REPORTED_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How safe it is to send a request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeatable {
    /// Idempotent enough (refresh, client credentials, GETs): retry transient failures.
    Yes,
    /// Single-use input (a code): retry only when the request was certainly not sent, or
    /// when the server asked for it with a short `Retry-After` on 429/503.
    OnlyIfNotSent,
}

/// Full-jitter exponential backoff for the given attempt (1-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(BACKOFF_CAP);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
}

/// The wait before the next attempt, or `None` to give up with `err`.
pub(crate) fn next_wait(
    repeatable: Repeatable,
    err: &WiseError,
    attempt: u32,
    max_attempts: u32,
    elapsed: Duration,
) -> Option<Duration> {
    if attempt >= max_attempts {
        return None;
    }
    let wait = match err {
        WiseError::RateLimited {
            retry_after: Some(ra),
        }
        | WiseError::Unavailable {
            status: Some(503),
            retry_after: Some(ra),
            ..
        } => (*ra <= MAX_HONOURED_RETRY_AFTER).then_some(*ra)?,
        WiseError::Unavailable {
            retry_after: Some(ra),
            ..
        } if *ra > MAX_HONOURED_RETRY_AFTER => return None,
        WiseError::Connect { .. } => backoff(attempt),
        _ if repeatable == Repeatable::OnlyIfNotSent => return None,
        WiseError::Unavailable { retry_after, .. } => {
            retry_after.unwrap_or_else(|| backoff(attempt))
        }
        WiseError::RateLimited { retry_after: None }
        | WiseError::Timeout { .. }
        | WiseError::MalformedResponse { .. } => backoff(attempt),
        _ => return None,
    };
    (elapsed.saturating_add(wait) < RETRY_BUDGET).then_some(wait)
}

/// Parses `Retry-After`: delta-seconds or an HTTP date (IMF-fixdate) relative to `now`.
/// Invalid values (negative, fractional, garbage) give `None`; huge ones are capped.
pub(crate) fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_REPORTED_RETRY_AFTER));
    }
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = PrimitiveDateTime::parse(text, format).ok()?.assume_utc();
    let at = SystemTime::from(date);
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_REPORTED_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra(s: &str) -> Option<Duration> {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        parse_retry_after(&HeaderValue::from_str(s).unwrap(), now)
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        // openid-client retry-after.test.ts: seconds or a date.
        assert_eq!(ra("1"), Some(Duration::from_secs(1)));
        assert_eq!(ra(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(ra("0"), Some(Duration::ZERO));
        assert_eq!(
            ra("Sun, 06 Nov 1994 08:49:47 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(ra("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(
            ra("99999999999999999999999999"),
            Some(MAX_REPORTED_RETRY_AFTER)
        );
        for bad in [
            "-1",
            "1.5",
            "soon",
            "",
            "1e3",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "0x10",
        ] {
            assert_eq!(ra(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        for attempt in 1..40 {
            let b = backoff(attempt);
            assert!(b <= BACKOFF_CAP);
            assert!(b <= BACKOFF_BASE.saturating_mul(1 << (attempt - 1).min(16)));
        }
    }

    #[test]
    fn code_grants_retry_only_unsent_or_asked() {
        let unsafe_ = Repeatable::OnlyIfNotSent;
        let z = Duration::ZERO;
        assert!(next_wait(unsafe_, &WiseError::Connect { source: None }, 1, 3, z).is_some());
        assert!(next_wait(unsafe_, &WiseError::Timeout { source: None }, 1, 3, z).is_none());
        let lost = WiseError::Unavailable {
            status: None,
            retry_after: None,
            source: None,
        };
        assert!(next_wait(unsafe_, &lost, 1, 3, z).is_none());
        let malformed = WiseError::MalformedResponse { reason: "x" };
        assert!(next_wait(unsafe_, &malformed, 1, 3, z).is_none());
        let s503 = WiseError::Unavailable {
            status: Some(503),
            retry_after: Some(Duration::from_secs(2)),
            source: None,
        };
        assert_eq!(
            next_wait(unsafe_, &s503, 1, 3, z),
            Some(Duration::from_secs(2))
        );
        let s503_bare = WiseError::Unavailable {
            status: Some(503),
            retry_after: None,
            source: None,
        };
        assert!(next_wait(unsafe_, &s503_bare, 1, 3, z).is_none());
        let r429 = WiseError::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            next_wait(unsafe_, &r429, 1, 3, z),
            Some(Duration::from_secs(1))
        );
        assert!(next_wait(unsafe_, &r429, 3, 3, z).is_none());
    }

    #[test]
    fn safe_grants_retry_transient_failures_only() {
        let safe = Repeatable::Yes;
        let z = Duration::ZERO;
        for e in [
            WiseError::Timeout { source: None },
            WiseError::Connect { source: None },
            WiseError::Unavailable {
                status: None,
                retry_after: None,
                source: None,
            },
            WiseError::Unavailable {
                status: Some(502),
                retry_after: None,
                source: None,
            },
            WiseError::RateLimited { retry_after: None },
            WiseError::MalformedResponse { reason: "x" },
        ] {
            assert!(next_wait(safe, &e, 1, 3, z).is_some(), "{e:?}");
            assert!(next_wait(safe, &e, 3, 3, z).is_none(), "{e:?}");
        }
        for e in [
            WiseError::InvalidGrant { status: 400 },
            WiseError::Forbidden,
            WiseError::Client {
                code: super::super::OAuthErrorCode::InvalidClient,
            },
            WiseError::Rejected {
                status: 400,
                code: None,
            },
            WiseError::Redirected { status: 307 },
            WiseError::RateLimited {
                retry_after: Some(Duration::from_secs(3600)),
            },
            WiseError::Unavailable {
                status: Some(503),
                retry_after: Some(Duration::from_secs(11)),
                source: None,
            },
        ] {
            assert!(next_wait(safe, &e, 1, 3, z).is_none(), "{e:?}");
        }
        // The total budget stops retries.
        assert!(next_wait(
            safe,
            &WiseError::Timeout { source: None },
            1,
            3,
            RETRY_BUDGET
        )
        .is_none());
    }
}
