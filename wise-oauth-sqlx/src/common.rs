//! What both backends share: row codecs, error mapping, name validation, setup errors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use wise_oauth_core::{
    LeaseHolder, LinkPage, LinkRecord, LinkStatus, ProfileId, SealedTokens, StoreError, UserId,
    Version, Versioned, MAX_LINK_PAGE,
};

/// The default prefix of every table the stores create.
pub const DEFAULT_TABLE_PREFIX: &str = "wise_oauth_";

/// The longest accepted table prefix or schema name, in bytes. PostgreSQL truncates
/// identifiers at 63 bytes; the longest table suffix is 10 bytes (`migrations`) and the
/// longest index suffix 14 bytes (`pending_expiry`).
pub const MAX_NAME_LEN: usize = 40;

/// Why a store could not be set up (connecting, creating or migrating its tables).
///
/// Once a store is built, its operations report [`StoreError`] instead.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The table prefix or schema name is not accepted (see the builders).
    #[error("invalid {what}: use at most 40 lowercase ASCII letters, digits and underscores, not starting with a digit")]
    InvalidName {
        /// `"table prefix"` or `"schema name"`.
        what: &'static str,
    },
    /// The database is unreachable or refused the connection.
    #[error("could not connect to the token store database")]
    Connect(#[source] sqlx::Error),
    /// Creating or migrating the tables failed.
    #[error("could not create or migrate the token store tables")]
    Migrate(#[source] sqlx::Error),
    /// The tables were migrated by a newer version of this crate.
    #[error("the token store tables are at schema version {found}, newer than the {supported} this version of wise-oauth-sqlx knows")]
    SchemaTooNew {
        /// The version found in the migrations table.
        found: i64,
        /// The newest version this crate knows.
        supported: i64,
    },
}

/// Checks a table prefix (may be empty) or schema name (may not).
pub(crate) fn validate_name(
    name: &str,
    what: &'static str,
    allow_empty: bool,
) -> Result<(), SetupError> {
    let ok = (allow_empty || !name.is_empty())
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SetupError::InvalidName { what })
    }
}

/// Maps a driver error of a store operation: undecodable values are corrupt, everything
/// else (connection, pool, query failures) means the store is unavailable. Never "absent".
pub(crate) fn op_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt("undecodable column in link row"),
        other => StoreError::Unavailable(Box::new(other)),
    }
}

/// `SystemTime` as signed unix nanoseconds (covers the years 1678 to 2262).
pub(crate) fn time_to_nanos(t: SystemTime) -> Result<i64, StoreError> {
    const OUT_OF_RANGE: StoreError = StoreError::Corrupt("time outside the storable range");
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).map_err(|_| OUT_OF_RANGE),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .map_err(|_| OUT_OF_RANGE),
    }
}

/// Inverse of [`time_to_nanos`].
pub(crate) fn nanos_to_time(n: i64) -> Result<SystemTime, StoreError> {
    let t = if n >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_nanos(n.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_nanos(n.unsigned_abs()))
    };
    t.ok_or(StoreError::Corrupt("stored time out of range"))
}

/// A duration in whole units, saturating at `max`.
pub(crate) fn clamp_duration(d: Duration, per_unit_nanos: u128, max: i64) -> i64 {
    i64::try_from(d.as_nanos() / per_unit_nanos)
        .unwrap_or(i64::MAX)
        .min(max)
}

/// Leases and pending flows never live longer than this (keeps time arithmetic in range).
pub(crate) const MAX_TTL_SECS: i64 = 100 * 366 * 24 * 3600;

/// Profile ids are stored as BIGINT: ids above `i64::MAX` (none exist) are stored as their
/// two's complement, so the mapping stays lossless.
pub(crate) fn profile_to_db(p: ProfileId) -> i64 {
    p.get() as i64
}

pub(crate) fn version_to_db(v: Version) -> Result<i64, StoreError> {
    i64::try_from(v.get()).map_err(|_| StoreError::Conflict)
}

pub(crate) fn version_from_db(v: i64) -> Result<Version, StoreError> {
    if v < 1 {
        return Err(StoreError::Corrupt("stored version is not positive"));
    }
    Ok(Version::new(v.unsigned_abs()))
}

pub(crate) fn holder_to_db(h: LeaseHolder) -> [u8; 16] {
    h.get().to_be_bytes()
}

/// The columns of a link row, as read from the database.
pub(crate) struct LinkRow {
    pub(crate) profile_id: i64,
    pub(crate) status: String,
    pub(crate) access_expires_at: i64,
    pub(crate) linked_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) sealed_tokens: Vec<u8>,
    pub(crate) version: i64,
    /// NULL for links stored before the column existed (or without a known Wise user).
    pub(crate) wise_user_id: Option<i64>,
}

impl LinkRow {
    /// Validates the row; anything undecodable is [`StoreError::Corrupt`].
    pub(crate) fn decode(self) -> Result<Versioned<LinkRecord>, StoreError> {
        let profile_id = ProfileId::new(self.profile_id as u64)
            .ok_or(StoreError::Corrupt("stored profile id is zero"))?;
        let status =
            LinkStatus::parse(&self.status).ok_or(StoreError::Corrupt("unknown link status"))?;
        let record = LinkRecord::new(
            profile_id,
            status,
            nanos_to_time(self.access_expires_at)?,
            nanos_to_time(self.linked_at)?,
            nanos_to_time(self.updated_at)?,
            SealedTokens::new(self.sealed_tokens),
        )
        .with_wise_user_id(self.wise_user_id.map(|id| id as u64).filter(|id| *id != 0));
        Ok(Versioned {
            version: version_from_db(self.version)?,
            value: record,
        })
    }
}

/// The encoded columns of a record about to be written.
pub(crate) struct EncodedRecord<'a> {
    pub(crate) profile_id: i64,
    pub(crate) status: &'static str,
    pub(crate) access_expires_at: i64,
    pub(crate) linked_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) sealed_tokens: &'a [u8],
    pub(crate) wise_user_id: Option<i64>,
}

impl<'a> EncodedRecord<'a> {
    pub(crate) fn new(record: &'a LinkRecord) -> Result<Self, StoreError> {
        Ok(Self {
            profile_id: profile_to_db(record.profile_id),
            status: record.status.as_str(),
            access_expires_at: time_to_nanos(record.access_expires_at)?,
            linked_at: time_to_nanos(record.linked_at)?,
            updated_at: time_to_nanos(record.updated_at)?,
            sealed_tokens: record.sealed_tokens.as_bytes(),
            // Stored like the profile id: the u64's bits in a signed column.
            wise_user_id: record.wise_user_id.map(|id| id as i64),
        })
    }
}

/// The pending-flow cap as a bind parameter.
pub(crate) fn pending_cap() -> i64 {
    i64::try_from(wise_oauth_core::MAX_PENDING_PER_USER).unwrap_or(i64::MAX)
}

/// The default of `max_pending_flows` on the store builders: how many live pending flows
/// a store holds at most, all owners together.
pub const DEFAULT_MAX_PENDING_FLOWS: u64 = 100_000;

/// `max_pending_flows` as a bind parameter (at least 1).
pub(crate) fn flows_cap(max: u64) -> i64 {
    i64::try_from(max.max(1)).unwrap_or(i64::MAX)
}

/// How many expired pending rows one insert purges at most (keeps each insert short).
pub(crate) const PURGE_BATCH: i64 = 256;

/// The page size of a listing: `limit` in `1..=MAX_LINK_PAGE`, as a SQL `LIMIT`.
pub(crate) fn page_limit(limit: usize) -> (usize, i64) {
    let limit = limit.clamp(1, MAX_LINK_PAGE);
    (limit, limit as i64)
}

/// The keyset cursor of a listing as a bound: user ids are never empty, so `''` is below
/// every one of them and starts at the first user.
pub(crate) fn page_after(after: Option<&UserId>) -> &str {
    after.map_or("", UserId::as_str)
}

/// A page from the user ids of the rows a listing read (already in order).
pub(crate) fn link_page(rows: Vec<String>, limit: usize) -> Result<LinkPage, StoreError> {
    Ok(LinkPage::new(users(rows)?, limit))
}

/// The user ids of the rows a query read.
pub(crate) fn users(rows: Vec<String>) -> Result<Vec<UserId>, StoreError> {
    rows.into_iter()
        .map(|id| UserId::new(id).map_err(|_| StoreError::Corrupt("invalid user id in link row")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("wise_oauth_", "table prefix", true).is_ok());
        assert!(validate_name("", "table prefix", true).is_ok());
        assert!(validate_name("", "schema name", false).is_err());
        for bad in [
            "Wise",
            "1abc",
            "a-b",
            "a\"b",
            "a.b",
            "a b",
            "é",
            &"x".repeat(41),
        ] {
            assert!(validate_name(bad, "table prefix", true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_round_trip_and_reject_out_of_range() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 1),
        ] {
            assert_eq!(nanos_to_time(time_to_nanos(t).unwrap()).unwrap(), t);
        }
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 24 * 3600);
        assert!(matches!(time_to_nanos(far), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn rows_with_bad_values_are_corrupt() {
        let row = |status: &str, version: i64, profile_id: i64| LinkRow {
            profile_id,
            status: status.to_owned(),
            access_expires_at: 1,
            linked_at: 1,
            updated_at: 1,
            sealed_tokens: vec![1, 2, 3],
            version,
            wise_user_id: Some(7),
        };
        assert!(row("active", 1, 7).decode().is_ok());
        assert!(row("needs_relink", 3, -1).decode().is_ok());
        for bad in [
            row("ACTIVE", 1, 7),
            row("active", 0, 7),
            row("active", -4, 7),
            row("active", 1, 0),
        ] {
            assert!(matches!(bad.decode(), Err(StoreError::Corrupt(_))));
        }
    }
}
