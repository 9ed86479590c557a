//! The emulator's clock: real time plus an offset that tests can advance.

use std::time::{Duration, SystemTime};

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const NANOS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// Real time shifted forward by `offset`.
pub(crate) fn now_with(offset: Duration) -> SystemTime {
    SystemTime::now()
        .checked_add(offset)
        .unwrap_or_else(SystemTime::now)
}

fn to_odt(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// RFC 3339 with milliseconds, UTC (`2025-04-11T03:43:28.148Z`).
pub(crate) fn fmt_millis(t: SystemTime) -> String {
    to_odt(t)
        .format(MILLIS)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// RFC 3339 with nanoseconds, UTC (`2023-12-06T18:28:14.206824830Z`).
pub(crate) fn fmt_nanos(t: SystemTime) -> String {
    to_odt(t)
        .format(NANOS)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000000Z".to_owned())
}

/// Whole seconds from `earlier` to `later` (0 if `later` is not after `earlier`).
pub(crate) fn secs_between(later: SystemTime, earlier: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
