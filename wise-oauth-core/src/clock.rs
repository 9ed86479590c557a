//! The source of "now" for expiry decisions, replaceable in tests.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

/// Tells the current time. The default is [`SystemClock`]; tests inject one that follows
/// an emulator's clock.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use wise_oauth_core::Clock;
///
/// #[derive(Debug)]
/// struct AheadByAnHour;
/// impl Clock for AheadByAnHour {
///     fn now(&self) -> SystemTime {
///         SystemTime::now() + Duration::from_secs(3600)
///     }
/// }
/// assert!(AheadByAnHour.now() > SystemTime::now());
/// ```
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The clock the library reads: the system's, called directly (no virtual call on the
/// hot path), or the app's [`Clock`] from
/// [`WiseOAuthBuilder::clock`](crate::WiseOAuthBuilder::clock).
#[derive(Debug, Clone)]
pub(crate) enum TimeSource {
    /// The operating system's clock ([`SystemClock`]).
    System,
    /// The app's clock.
    App(Arc<dyn Clock>),
}

impl TimeSource {
    /// The current time.
    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        match self {
            TimeSource::System => SystemTime::now(),
            TimeSource::App(clock) => clock.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_clock_is_read_as_it_is() {
        #[derive(Debug)]
        struct Fixed;
        impl Clock for Fixed {
            fn now(&self) -> SystemTime {
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7)
            }
        }
        let app = TimeSource::App(Arc::new(Fixed));
        assert_eq!(app.now(), Fixed.now());
    }
}
