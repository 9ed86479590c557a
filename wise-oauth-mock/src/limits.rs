//! The optional per-client rate limit: sliding windows on the emulator clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A per-client request budget, as Wise documents it (100 requests/s, 1,000 requests/min).
///
/// Requests are counted per OAuth client: the HTTP Basic client at the token endpoint
/// (registered client ids only, whether or not the secret is right), the client a bearer
/// token was issued to at the API (expired and revoked tokens included). The authorize
/// pages and the control API are never limited.
///
/// The windows **slide** on the emulator clock (so [`advance_clock`] frees slots): a
/// request is admitted when fewer than `per_second` admitted requests of its client fall
/// in the last second and fewer than `per_minute` in the last 60 seconds. Rejected
/// requests use up no budget. `0` leaves that window unlimited.
///
/// JSON (`POST /__mock/config`): `{"rate_limit": {"per_second": 100, "per_minute": 1000}}`.
///
/// [`advance_clock`]: crate::MockWiseHandle::advance_clock
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// Admitted requests per client in any one-second window (`0`: unlimited).
    pub per_second: u32,
    /// Admitted requests per client in any 60-second window (`0`: unlimited).
    pub per_minute: u32,
}

impl RateLimit {
    /// Wise's documented default: 100 requests per second and 1,000 per minute.
    pub const WISE_DEFAULT: RateLimit = RateLimit {
        per_second: 100,
        per_minute: 1000,
    };
}

impl Default for RateLimit {
    /// [`RateLimit::WISE_DEFAULT`].
    fn default() -> Self {
        Self::WISE_DEFAULT
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// The admitted requests of the last minute, per client (oldest first).
#[derive(Debug, Default)]
pub(crate) struct RateLog {
    clients: HashMap<String, VecDeque<SystemTime>>,
}

impl RateLog {
    /// Forgets every admitted request.
    pub(crate) fn clear(&mut self) {
        self.clients.clear();
    }

    /// Admits and records a request of `client` at `now`, or returns the whole seconds
    /// until a slot frees (rounded up, at least 1).
    pub(crate) fn admit(
        &mut self,
        limit: RateLimit,
        client: &str,
        now: SystemTime,
    ) -> Result<(), u64> {
        let log = self.clients.entry(client.to_owned()).or_default();
        while log.front().is_some_and(|t| !in_window(*t, MINUTE, now)) {
            log.pop_front();
        }
        let mut wait = Duration::ZERO;
        for (max, window) in [(limit.per_second, SECOND), (limit.per_minute, MINUTE)] {
            let max = max as usize;
            if max == 0 || log.len() < max {
                continue;
            }
            // The `max`-th newest admitted request must leave the window first.
            let t = log[log.len() - max];
            if in_window(t, window, now) {
                let frees = t.checked_add(window).unwrap_or(t);
                wait = wait.max(frees.duration_since(now).unwrap_or(Duration::ZERO));
            }
        }
        if !wait.is_zero() {
            return Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1));
        }
        log.push_back(now);
        let keep = limit.per_second.max(limit.per_minute) as usize;
        while log.len() > keep.max(1) {
            log.pop_front();
        }
        Ok(())
    }
}

/// Whether a request at `t` still counts in the `window` ending at `now`.
fn in_window(t: SystemTime, window: Duration, now: SystemTime) -> bool {
    t.checked_add(window).is_none_or(|end| end > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_windows() {
        let limit = RateLimit {
            per_second: 2,
            per_minute: 3,
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut log = RateLog::default();
        assert_eq!(log.admit(limit, "a", t0), Ok(()));
        assert_eq!(log.admit(limit, "a", t0), Ok(()));
        assert_eq!(log.admit(limit, "a", t0), Err(1));
        assert_eq!(log.admit(limit, "b", t0), Ok(()), "per client");
        let t1 = t0 + Duration::from_millis(999);
        assert_eq!(log.admit(limit, "a", t1), Err(1));
        let t2 = t0 + SECOND;
        assert_eq!(log.admit(limit, "a", t2), Ok(()));
        // Three in the minute: the first frees at t0 + 60 s, 58 s after t0 + 2 s.
        assert_eq!(log.admit(limit, "a", t2 + SECOND), Err(58));
        assert_eq!(
            log.admit(limit, "a", t0 + Duration::from_millis(59_500)),
            Err(1)
        );
        assert_eq!(log.admit(limit, "a", t0 + MINUTE), Ok(()));
        let unlimited = RateLimit {
            per_second: 0,
            per_minute: 0,
        };
        for _ in 0..10 {
            assert_eq!(log.admit(unlimited, "c", t0), Ok(()));
        }
    }
}
