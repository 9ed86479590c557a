//! The source of "now" for expiry decisions, replaceable in tests.

use std::fmt::Debug;
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
