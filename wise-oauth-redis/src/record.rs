//! How a link record and a pending flow are laid out in Redis values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wise_oauth_core::{
    LinkRecord, LinkStatus, ProfileId, SealedTokens, StoreError, Version, Versioned,
};

/// The fields of a link hash read by a load, in `HMGET` order. `v` (the version) stays
/// after an unlink, the others are removed with it. `wise_user_id` is optional: links
/// saved before it existed (or without a known Wise user) have none.
pub(crate) const LOAD_FIELDS: [&str; 8] = [
    "v",
    "profile_id",
    "status",
    "access_expires_at",
    "linked_at",
    "updated_at",
    "sealed_tokens",
    "wise_user_id",
];

/// The record fields an unlink removes (everything but `v`).
pub(crate) const RECORD_FIELDS: [&str; 7] = [
    "profile_id",
    "status",
    "access_expires_at",
    "linked_at",
    "updated_at",
    "sealed_tokens",
    "wise_user_id",
];

/// `SystemTime` as signed unix nanoseconds (covers the years 1678 to 2262).
fn time_to_nanos(t: SystemTime) -> Result<i64, StoreError> {
    const OUT_OF_RANGE: StoreError = StoreError::Corrupt("time outside the storable range");
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).map_err(|_| OUT_OF_RANGE),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .map_err(|_| OUT_OF_RANGE),
    }
}

/// Inverse of [`time_to_nanos`].
fn nanos_to_time(n: i64) -> Result<SystemTime, StoreError> {
    let t = if n >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_nanos(n.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_nanos(n.unsigned_abs()))
    };
    t.ok_or(StoreError::Corrupt("stored time out of range"))
}

/// The record fields (in [`RECORD_FIELDS`] order) as the values a save writes: decimal
/// numbers, the status name, and the sealed bytes as they are.
pub(crate) fn encode(record: &LinkRecord) -> Result<[Vec<u8>; 6], StoreError> {
    Ok([
        record.profile_id.get().to_string().into_bytes(),
        record.status.as_str().as_bytes().to_vec(),
        time_to_nanos(record.access_expires_at)?
            .to_string()
            .into_bytes(),
        time_to_nanos(record.linked_at)?.to_string().into_bytes(),
        time_to_nanos(record.updated_at)?.to_string().into_bytes(),
        record.sealed_tokens.as_bytes().to_vec(),
    ])
}

fn number<T: std::str::FromStr>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(StoreError::Corrupt(what))
}

/// The `wise_user_id` field a save writes: decimal, or empty for none (the save script
/// then removes the field).
pub(crate) fn encode_wise_user(record: &LinkRecord) -> String {
    record
        .wise_user_id
        .map(|id| id.to_string())
        .unwrap_or_default()
}

/// A version as returned by the save script or read from a hash.
pub(crate) fn version(v: i64) -> Result<Version, StoreError> {
    if v < 1 {
        return Err(StoreError::Corrupt("stored version is not positive"));
    }
    Ok(Version::new(v.unsigned_abs()))
}

/// Decodes the values of [`LOAD_FIELDS`]: `Ok(None)` when no record is there (no key, or
/// the tombstone of an unlinked link), [`StoreError::Corrupt`] for anything incomplete or
/// undecodable.
pub(crate) fn decode(
    values: Vec<Option<Vec<u8>>>,
) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
    let incomplete = StoreError::Corrupt("incomplete link record");
    let Ok([v, profile, status, expires, linked, updated, sealed, wise_user]) =
        <[Option<Vec<u8>>; 8]>::try_from(values)
    else {
        return Err(incomplete);
    };
    let record_fields = [&profile, &status, &expires, &linked, &updated, &sealed];
    if record_fields.iter().all(|f| f.is_none()) {
        return Ok(None);
    }
    let (
        Some(v),
        Some(profile),
        Some(status),
        Some(expires),
        Some(linked),
        Some(updated),
        Some(sealed),
    ) = (v, profile, status, expires, linked, updated, sealed)
    else {
        return Err(incomplete);
    };
    let profile_id = ProfileId::new(number(&profile, "undecodable profile id")?)
        .ok_or(StoreError::Corrupt("stored profile id is zero"))?;
    let status = std::str::from_utf8(&status)
        .ok()
        .and_then(LinkStatus::parse)
        .ok_or(StoreError::Corrupt("unknown link status"))?;
    let time = |bytes: &[u8]| nanos_to_time(number(bytes, "undecodable time")?);
    let record = LinkRecord::new(
        profile_id,
        status,
        time(&expires)?,
        time(&linked)?,
        time(&updated)?,
        SealedTokens::new(sealed),
    )
    .with_wise_user_id(match wise_user {
        Some(bytes) => Some(number(&bytes, "undecodable Wise user id")?),
        None => None,
    });
    Ok(Some(Versioned {
        version: version(number(&v, "undecodable version")?)?,
        value: record,
    }))
}

/// A pending flow's value: the owner's tag (length first), then the sealed flow. The tag
/// lets `take` remove the flow from its owner's index, and a trim delete only its own flows.
pub(crate) fn flow_header(tag: &str) -> Vec<u8> {
    let len = u32::try_from(tag.len()).unwrap_or(u32::MAX);
    let mut header = Vec::with_capacity(4 + tag.len());
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(tag.as_bytes());
    header
}

/// Splits a pending flow's value into the owner's tag and the sealed flow.
pub(crate) fn split_flow(value: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32::from_be_bytes(value.get(..4)?.try_into().ok()?);
    let end = 4usize.checked_add(usize::try_from(len).ok()?)?;
    let tag = std::str::from_utf8(value.get(4..end)?).ok()?;
    Some((tag, &value[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LinkRecord {
        LinkRecord::new(
            ProfileId::new(u64::MAX).unwrap(),
            LinkStatus::NeedsRelink,
            UNIX_EPOCH + Duration::new(1_750_043_199, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 1),
            UNIX_EPOCH,
            SealedTokens::new(vec![0, 255, 1]),
        )
    }

    fn stored(record: &LinkRecord, v: &str) -> Vec<Option<Vec<u8>>> {
        let mut values = vec![Some(v.as_bytes().to_vec())];
        values.extend(encode(record).unwrap().into_iter().map(Some));
        let wise_user = encode_wise_user(record);
        values.push((!wise_user.is_empty()).then(|| wise_user.into_bytes()));
        values
    }

    #[test]
    fn records_round_trip() {
        let got = decode(stored(&sample(), "42")).unwrap().unwrap();
        assert_eq!(got.version, Version::new(42));
        assert_eq!(got.value, sample());
        assert_eq!(got.value.wise_user_id, None);
        let with_user = sample().with_wise_user_id(Some(u64::MAX));
        let got = decode(stored(&with_user, "43")).unwrap().unwrap();
        assert_eq!(got.value, with_user);
    }

    #[test]
    fn absent_and_tombstones_are_none() {
        assert_eq!(decode(vec![None; 8]).unwrap(), None);
        let mut tombstone = vec![None; 8];
        tombstone[0] = Some(b"3".to_vec());
        assert_eq!(decode(tombstone).unwrap(), None);
    }

    #[test]
    fn bad_values_are_corrupt() {
        let mut cases = Vec::new();
        for (index, bad) in [
            (0, None),
            (0, Some(&b"0"[..])),
            (0, Some(b"-1")),
            (0, Some(b"x")),
            (1, Some(b"0")),
            (1, Some(b"-7")),
            (2, Some(b"ACTIVE")),
            (3, Some(b"1.5")),
            (4, Some(b"99999999999999999999")),
            (5, None),
            (6, None),
            (7, Some(b"-1")),
            (7, Some(b"x")),
        ] {
            let mut values = stored(&sample(), "1");
            values[index] = bad.map(<[u8]>::to_vec);
            cases.push(values);
        }
        cases.push(vec![None; 3]);
        for values in cases {
            assert!(
                matches!(decode(values.clone()), Err(StoreError::Corrupt(_))),
                "{values:?}"
            );
        }
    }

    #[test]
    fn flows_split() {
        let mut value = flow_header("env:c:u");
        value.extend_from_slice(b"payload");
        assert_eq!(split_flow(&value), Some(("env:c:u", &b"payload"[..])));
        assert_eq!(split_flow(&flow_header("")), Some(("", &b""[..])));
        assert_eq!(split_flow(b"\0\0\0\x09short"), None);
        assert_eq!(split_flow(b"\0\0"), None);
    }
}
