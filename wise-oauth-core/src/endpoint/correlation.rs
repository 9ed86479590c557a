//! The correlation id sent with every call to Wise (`X-External-Correlation-Id`).

use std::fmt;

use http::HeaderValue;

/// A fresh correlation id: a UUID v4 (36 characters, the most Wise keeps), kept inline.
/// Its randomness comes from the thread's CSPRNG rather than from the OS, so that a call
/// costs no system call for its id.
pub(crate) struct CorrelationId([u8; uuid::fmt::Hyphenated::LENGTH]);

impl CorrelationId {
    pub(crate) fn new() -> Self {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Builder::from_random_bytes(rand::random::<u128>().to_le_bytes())
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut text);
        Self(text)
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a hyphenated UUID is ASCII")
    }

    /// The id as a header value of its own (copied: nothing shared between attempts).
    pub(crate) fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).expect("a hyphenated UUID is a header value")
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_version_4_uuids() {
        let ids: Vec<CorrelationId> = (0..1000).map(|_| CorrelationId::new()).collect();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(parsed.hyphenated().to_string(), id.as_str());
            assert_eq!(id.header_value().to_str().unwrap(), id.as_str());
            assert!(seen.insert(id.as_str().to_owned()), "a repeated id");
        }
    }
}
