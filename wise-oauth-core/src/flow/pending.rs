//! The server-side half of a flow in progress, sealed into the [`PendingStore`].
//!
//! [`PendingStore`]: crate::PendingStore

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::LinkKey;
use crate::seal::Sealer;
use crate::secret::PkceVerifier;
use crate::store::StoreError;

/// How long a flow may take, from start to callback (Wise's codes live 30 minutes too).
pub(crate) const FLOW_TTL: Duration = Duration::from_secs(30 * 60);

/// Layout version of the serialized record.
const PENDING_VERSION: u32 = 1;
/// Domain separation of the associated data.
const PENDING_AAD_LABEL: &[u8] = b"wise-oauth/pending/v1";

/// Web (browser-bound, redirect to `redirect_uri`) or mobile (`mobile_redirect_uri`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FlowKind {
    Web,
    Mobile,
}

/// One flow in progress. `Debug` shows neither the binding's hash nor the PKCE verifier.
pub(crate) struct PendingLink {
    pub(crate) environment: String,
    pub(crate) client_id: String,
    pub(crate) user: String,
    /// SHA-256 of the browser-binding id (web flows only).
    pub(crate) binding_hash: Option<[u8; 32]>,
    pub(crate) pkce: Option<PkceVerifier>,
    pub(crate) return_to: String,
    pub(crate) kind: FlowKind,
    pub(crate) created_at: SystemTime,
}

impl std::fmt::Debug for PendingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLink")
            .field("environment", &self.environment)
            .field("client_id", &self.client_id)
            .field("user", &self.user)
            .field("bound_to_browser", &self.binding_hash.is_some())
            .field("pkce", &self.pkce.is_some())
            .field("return_to", &self.return_to)
            .field("kind", &self.kind)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct PendingJson {
    v: u32,
    env: String,
    client: String,
    user: String,
    #[serde(default)]
    binding: Option<[u8; 32]>,
    #[serde(default)]
    pkce: Option<String>,
    return_to: String,
    kind: FlowKind,
    /// Unix milliseconds.
    created_at: u64,
}

impl Drop for PendingJson {
    fn drop(&mut self) {
        if let Some(p) = self.pkce.as_mut() {
            secrecy::zeroize::Zeroize::zeroize(p);
        }
    }
}

fn aad(state_hash: &[u8; 32]) -> Vec<u8> {
    let mut aad = PENDING_AAD_LABEL.to_vec();
    aad.extend_from_slice(state_hash);
    aad
}

impl PendingLink {
    /// Whether this flow belongs to `key` (environment, client and user).
    pub(crate) fn owner_is(&self, key: &LinkKey) -> bool {
        self.user == key.user().as_str()
    }

    /// Whether this flow was started for the environment and client of `key`.
    pub(crate) fn client_is(&self, key: &LinkKey) -> bool {
        self.environment == key.environment() && self.client_id == key.client_id()
    }

    /// Whether the flow is older than [`FLOW_TTL`] at `now`.
    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        now.duration_since(self.created_at)
            .is_ok_and(|age| age > FLOW_TTL)
    }

    /// Serializes and seals the record, bound to `state_hash`.
    pub(crate) fn seal(&self, sealer: &Sealer, state_hash: &[u8; 32]) -> Vec<u8> {
        let json = PendingJson {
            v: PENDING_VERSION,
            env: self.environment.clone(),
            client: self.client_id.clone(),
            user: self.user.clone(),
            binding: self.binding_hash,
            pkce: self.pkce.as_ref().map(|p| p.expose_secret().to_owned()),
            return_to: self.return_to.clone(),
            kind: self.kind,
            created_at: self
                .created_at
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        };
        // Serializing plain data to a Vec cannot fail.
        let mut plain = serde_json::to_vec(&json).unwrap_or_default();
        let sealed = sealer.seal_bytes(&aad(state_hash), &plain);
        secrecy::zeroize::Zeroize::zeroize(&mut plain);
        sealed
    }

    /// Opens a record sealed by [`PendingLink::seal`] under the same `state_hash`.
    pub(crate) fn open(
        sealer: &Sealer,
        state_hash: &[u8; 32],
        sealed: &[u8],
    ) -> Result<Self, StoreError> {
        let mut plain = sealer.open_bytes(&aad(state_hash), sealed)?;
        let parsed = serde_json::from_slice::<PendingJson>(&plain);
        secrecy::zeroize::Zeroize::zeroize(&mut plain);
        let json = parsed.map_err(|_| StoreError::Corrupt("pending flow is not valid JSON"))?;
        if json.v != PENDING_VERSION {
            return Err(StoreError::Corrupt("unknown pending flow version"));
        }
        Ok(Self {
            environment: json.env.clone(),
            client_id: json.client.clone(),
            user: json.user.clone(),
            binding_hash: json.binding,
            pkce: json.pkce.as_deref().map(PkceVerifier::new),
            return_to: json.return_to.clone(),
            kind: json.kind,
            created_at: UNIX_EPOCH + Duration::from_millis(json.created_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::EncryptionKeys;
    use crate::UserId;

    fn sample() -> PendingLink {
        PendingLink {
            environment: "sandbox".into(),
            client_id: "client".into(),
            user: "alice".into(),
            binding_hash: Some([7; 32]),
            pkce: Some(PkceVerifier::new("v".repeat(43))),
            return_to: "/settings".into(),
            kind: FlowKind::Web,
            created_at: UNIX_EPOCH + Duration::from_millis(1_750_000_000_123),
        }
    }

    #[test]
    fn round_trip_plain_and_encrypted() {
        for sealer in [
            Sealer::new(None),
            Sealer::new(Some(EncryptionKeys::new().key("k1", [1; 32]))),
        ] {
            let sealed = sample().seal(&sealer, &[1; 32]);
            let back = PendingLink::open(&sealer, &[1; 32], &sealed).unwrap();
            assert_eq!(back.user, "alice");
            assert_eq!(back.binding_hash, Some([7; 32]));
            assert_eq!(back.pkce.as_ref().unwrap().expose_secret(), "v".repeat(43));
            assert_eq!(back.return_to, "/settings");
            assert_eq!(back.kind, FlowKind::Web);
            assert_eq!(back.created_at, sample().created_at);
            let key = LinkKey::new("sandbox", "client", UserId::new("alice").unwrap());
            assert!(back.client_is(&key) && back.owner_is(&key));
        }
    }

    #[test]
    fn encrypted_record_is_bound_to_its_state() {
        let sealer = Sealer::new(Some(EncryptionKeys::new().key("k1", [1; 32])));
        let sealed = sample().seal(&sealer, &[1; 32]);
        assert!(PendingLink::open(&sealer, &[2; 32], &sealed).is_err());
    }

    #[test]
    fn debug_shows_neither_binding_nor_verifier() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains(&"v".repeat(43)), "{shown}");
        assert!(!shown.contains("[7, 7"), "{shown}");
        assert!(shown.contains("bound_to_browser: true"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn expiry_is_thirty_minutes() {
        let p = sample();
        assert!(!p.is_expired(p.created_at + FLOW_TTL));
        assert!(p.is_expired(p.created_at + FLOW_TTL + Duration::from_secs(1)));
        assert!(!p.is_expired(p.created_at - Duration::from_secs(5)));
    }
}
