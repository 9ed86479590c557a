//! Sealing token records for stores: plain versioned JSON, or XChaCha20-Poly1305 with key ids.
//!
//! Wire format of a sealed value (what a store keeps byte for byte):
//!
//! ```text
//! plain:      0x00 ‖ JSON
//! encrypted:  0x01 ‖ key id length (u8) ‖ key id ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)
//! ```
//!
//! The AEAD's associated data is the header (format byte, key id length, key id) followed by
//! the caller's associated data; for token records that is the length-prefixed environment,
//! client id, user and profile id, so a record copied into another user's row does not open.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::zeroize::Zeroize;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{LinkKey, ProfileId};
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{SealedTokens, StoreError};
use crate::token::TokenSet;

/// The environment variable [`EncryptionKeys::from_env`] reads.
const KEYS_VARIABLE: &str = "WISE_TOKEN_KEYS";
/// The longest key id, in bytes.
const MAX_KEY_ID_LEN: usize = 64;
/// Format byte of a plain (unencrypted) record.
const FORMAT_PLAIN: u8 = 0;
/// Format byte of an XChaCha20-Poly1305 record.
const FORMAT_XCHACHA: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Version of the plain JSON layout of a token set.
const TOKENS_JSON_VERSION: u32 = 1;
/// Domain separation of token-record associated data.
const TOKENS_AAD_LABEL: &[u8] = b"wise-oauth/tokens/v1";

/// Encryption keys for token records at rest (XChaCha20-Poly1305), each with an id.
///
/// The first key is the *primary* key: every new record is sealed with it. The others only
/// open records written before a rotation. To rotate, put the new key first and keep the old
/// one after it until every record has been rewritten: each write of a link (a refresh, a
/// re-link) seals it under the primary key, and
/// [`WiseOAuth::reseal`](crate::WiseOAuth::reseal) rewrites them all at once and reports
/// what is left under other keys.
///
/// `Debug` shows the key ids only, never key material. Keys are 32 random bytes, e.g. from
/// `openssl rand -base64 32`.
///
/// ```
/// use wise_oauth_core::EncryptionKeys;
///
/// // In code (the first key added is the primary key):
/// let keys = EncryptionKeys::new().key("k2", [2; 32]).key("k1", [1; 32]);
/// assert_eq!(keys.primary_id(), Some("k2"));
///
/// // From configuration, e.g. WISE_TOKEN_KEYS (first listed = primary):
/// let keys = EncryptionKeys::parse(
///     "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
/// )
/// .unwrap();
/// assert_eq!(keys.ids().collect::<Vec<_>>(), ["k2", "k1"]);
/// assert!(!format!("{keys:?}").contains("AgIC"));
/// ```
#[derive(Clone, Default)]
pub struct EncryptionKeys {
    keys: Arc<Vec<KeyEntry>>,
}

struct KeyEntry {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Why a key list cannot be used. Never contains key material; entries are named by their
/// 1-based position in the list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidKeys {
    /// The environment variable is not set.
    #[error("environment variable {variable} is not set (expected \"id:BASE64_32_BYTES\" entries separated by commas)")]
    NotSet {
        /// The variable that was read.
        variable: &'static str,
    },
    /// The environment variable is not valid unicode.
    #[error("environment variable {variable} is not valid unicode")]
    NotUnicode {
        /// The variable that was read.
        variable: &'static str,
    },
    /// No key was given.
    #[error(
        "no encryption key given (expected \"id:BASE64_32_BYTES\" entries separated by commas)"
    )]
    Empty,
    /// An entry is empty (e.g. a doubled or trailing comma).
    #[error("encryption key #{position} is empty (expected \"id:BASE64_32_BYTES\")")]
    EmptyEntry {
        /// 1-based position of the entry.
        position: usize,
    },
    /// An entry has no `id:` prefix.
    #[error("encryption key #{position} has no key id (expected \"id:BASE64_32_BYTES\")")]
    MissingId {
        /// 1-based position of the entry.
        position: usize,
    },
    /// A key id is empty, too long or has characters other than `A-Z a-z 0-9 - _ .`.
    #[error(
        "encryption key #{position}: the key id must be 1 to 64 characters of A-Z a-z 0-9 - _ ."
    )]
    InvalidId {
        /// 1-based position of the entry.
        position: usize,
    },
    /// Two keys have the same id.
    #[error("encryption key #{position}: the key id is already used by an earlier key")]
    DuplicateId {
        /// 1-based position of the entry.
        position: usize,
    },
    /// The key is not valid base64.
    #[error("encryption key #{position} is not valid base64")]
    InvalidBase64 {
        /// 1-based position of the entry.
        position: usize,
    },
    /// The key does not decode to 32 bytes.
    #[error("encryption key #{position} is {len} bytes long; it must be exactly 32 bytes")]
    WrongLength {
        /// 1-based position of the entry.
        position: usize,
        /// The decoded length.
        len: usize,
    },
}

/// Standard or URL-safe base64, padding optional.
fn decode_key(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(text))
        .ok()
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl EncryptionKeys {
    /// An empty key list; add keys with [`EncryptionKeys::key`]. A list must hold at least
    /// one key before it is used.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key with its id (1 to 64 characters of `A-Z a-z 0-9 - _ .`). The first key
    /// added is the primary key, used for new records; later keys only open old records.
    /// The id is taken like the config builder's strings (`&str`, `String`, ...).
    ///
    /// ```
    /// use wise_oauth_core::EncryptionKeys;
    /// let key_id = format!("k{}", 2026);
    /// let keys = EncryptionKeys::new().key(key_id, [7; 32]).key("k-old", [9; 32]);
    /// assert_eq!(keys.primary_id(), Some("k2026"));
    /// ```
    ///
    /// # Panics
    ///
    /// If the id is invalid or already used; use [`EncryptionKeys::try_key`] for ids that
    /// are not literals in your code.
    #[must_use]
    pub fn key(self, id: impl Into<String>, bytes: [u8; 32]) -> Self {
        match self.try_key(id, bytes) {
            Ok(keys) => keys,
            Err(err) => panic!("EncryptionKeys::key: {err}"),
        }
    }

    /// Adds a key like [`EncryptionKeys::key`], returning an error for an invalid or
    /// duplicate id.
    pub fn try_key(self, id: impl Into<String>, mut bytes: [u8; 32]) -> Result<Self, InvalidKeys> {
        let id: String = id.into();
        let position = self.keys.len() + 1;
        if !valid_key_id(&id) {
            bytes.zeroize();
            return Err(InvalidKeys::InvalidId { position });
        }
        if self.keys.iter().any(|k| k.id == id) {
            bytes.zeroize();
            return Err(InvalidKeys::DuplicateId { position });
        }
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&bytes));
        bytes.zeroize();
        let mut keys: Vec<KeyEntry> = Vec::with_capacity(position);
        for entry in self.keys.iter() {
            keys.push(KeyEntry {
                id: entry.id.clone(),
                cipher: entry.cipher.clone(),
            });
        }
        keys.push(KeyEntry { id, cipher });
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// Parses `"id:BASE64,id:BASE64"` (first listed = primary). Each key is 32 bytes in
    /// standard or URL-safe base64, padding optional; whitespace around entries is ignored.
    ///
    /// ```
    /// use wise_oauth_core::{EncryptionKeys, InvalidKeys};
    /// assert_eq!(EncryptionKeys::parse("").unwrap_err(), InvalidKeys::Empty);
    /// assert_eq!(
    ///     EncryptionKeys::parse("k1:c2hvcnQ=").unwrap_err(),
    ///     InvalidKeys::WrongLength { position: 1, len: 5 }
    /// );
    /// ```
    pub fn parse(text: &str) -> Result<Self, InvalidKeys> {
        if text.trim().is_empty() {
            return Err(InvalidKeys::Empty);
        }
        let mut keys = Self::new();
        for (index, entry) in text.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(InvalidKeys::EmptyEntry { position });
            }
            let Some((id, material)) = entry.split_once(':') else {
                return Err(InvalidKeys::MissingId { position });
            };
            let id = id.trim();
            if !valid_key_id(id) {
                return Err(InvalidKeys::InvalidId { position });
            }
            let Some(mut decoded) = decode_key(material.trim()) else {
                return Err(InvalidKeys::InvalidBase64 { position });
            };
            let Ok(bytes) = <[u8; 32]>::try_from(decoded.as_slice()) else {
                let len = decoded.len();
                decoded.zeroize();
                return Err(InvalidKeys::WrongLength { position, len });
            };
            decoded.zeroize();
            keys = keys.try_key(id, bytes)?;
        }
        Ok(keys)
    }

    /// Reads the keys from `WISE_TOKEN_KEYS` (format of [`EncryptionKeys::parse`]).
    pub fn from_env() -> Result<Self, InvalidKeys> {
        match std::env::var(KEYS_VARIABLE) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Err(InvalidKeys::NotSet {
                variable: KEYS_VARIABLE,
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(InvalidKeys::NotUnicode {
                variable: KEYS_VARIABLE,
            }),
        }
    }

    /// Like [`EncryptionKeys::from_env`], reading variables through `lookup` (for tests that
    /// must not touch the process environment).
    ///
    /// ```
    /// use wise_oauth_core::{EncryptionKeys, InvalidKeys};
    /// let err = EncryptionKeys::from_env_with(|_| None).unwrap_err();
    /// assert_eq!(err, InvalidKeys::NotSet { variable: "WISE_TOKEN_KEYS" });
    /// ```
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidKeys> {
        match lookup(KEYS_VARIABLE) {
            Some(value) => Self::parse(&value),
            None => Err(InvalidKeys::NotSet {
                variable: KEYS_VARIABLE,
            }),
        }
    }

    /// The id of the primary key (used for new records), `None` for an empty list.
    pub fn primary_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    /// The key ids, primary first.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// How many keys the list holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the list holds no key (such a list cannot seal anything).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, id: &[u8]) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.id.as_bytes() == id)
    }
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("material", &"[redacted]")
            .finish()
    }
}

/// The plain JSON layout of a token set (version 1). Times are unix nanoseconds.
#[derive(Serialize, Deserialize)]
struct TokensJson {
    v: u32,
    access_token: String,
    refresh_token: String,
    expires_at: u64,
    #[serde(default)]
    refresh_token_expires_at: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    obtained_at: u64,
}

impl Drop for TokensJson {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

/// Unix nanoseconds, saturating (before 1970 → 0, after 2554 → `u64::MAX`).
fn to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_nanos(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    // Parts are at most a few hundred bytes; a u32 length prefix cannot overflow.
    out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(part);
}

/// The associated data binding a token record to its link and profile.
fn token_aad(key: &LinkKey, profile_id: ProfileId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + key.user().as_str().len());
    push_part(&mut aad, TOKENS_AAD_LABEL);
    push_part(&mut aad, key.environment().as_bytes());
    push_part(&mut aad, key.client_id().as_bytes());
    push_part(&mut aad, key.user().as_str().as_bytes());
    push_part(&mut aad, &profile_id.get().to_be_bytes());
    aad
}

/// How a stored value was sealed, as its header says (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SealedWith {
    /// Format byte 0: stored in clear.
    Plain,
    /// Encrypted under the key with this id.
    Key(String),
    /// Empty, truncated, an unknown format, or a key id no valid key can have.
    Unknown,
}

impl fmt::Display for SealedWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain => f.write_str("(plain)"),
            Self::Key(id) => f.write_str(id),
            Self::Unknown => f.write_str("(unrecognised)"),
        }
    }
}

/// Seals and opens what the library hands to stores: token sets (bound to their link and
/// profile) and opaque bytes (bound to caller-chosen associated data).
///
/// Without keys, values are stored plain (format byte 0); with keys, encrypted with the
/// primary key, and a plain value is refused as corrupt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sealer {
    keys: Option<EncryptionKeys>,
    /// With keys: still open plain values (a store written before keys were configured).
    open_plain: bool,
}

impl Sealer {
    /// A sealer that encrypts with `keys`, or stores plain values with `None`.
    ///
    /// # Panics
    ///
    /// If `keys` is `Some` but empty; check [`EncryptionKeys::is_empty`] first (or use
    /// [`Sealer::try_new`]) to report it as a configuration error.
    #[cfg(test)] // the library builds its sealer with `try_new`
    pub(crate) fn new(keys: Option<EncryptionKeys>) -> Self {
        match Self::try_new(keys) {
            Ok(sealer) => sealer,
            Err(err) => panic!("Sealer::new: {err}"),
        }
    }

    /// Like [`Sealer::new`], with an error for an empty key list.
    pub(crate) fn try_new(keys: Option<EncryptionKeys>) -> Result<Self, InvalidKeys> {
        match keys {
            Some(keys) if keys.is_empty() => Err(InvalidKeys::Empty),
            keys => Ok(Self {
                keys,
                open_plain: false,
            }),
        }
    }

    /// With keys, also opens plain values (they are still written encrypted).
    pub(crate) fn opening_plain(mut self, on: bool) -> Self {
        self.open_plain = on;
        self
    }

    /// The ids of the configured keys, primary first (empty without keys).
    pub(crate) fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().flat_map(EncryptionKeys::ids).collect()
    }

    /// How `sealed` was sealed, read from its header only (nothing is decrypted).
    pub(crate) fn sealed_with(sealed: &[u8]) -> SealedWith {
        match sealed.split_first() {
            Some((&FORMAT_PLAIN, _)) => SealedWith::Plain,
            Some((&FORMAT_XCHACHA, rest)) => {
                let id = rest
                    .split_first()
                    .and_then(|(&len, rest)| rest.get(..usize::from(len)))
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .filter(|id| valid_key_id(id));
                match id {
                    Some(id) => SealedWith::Key(id.to_owned()),
                    None => SealedWith::Unknown,
                }
            }
            _ => SealedWith::Unknown,
        }
    }

    /// Whether a value sealed like `sealed` is what [`Sealer::seal`] writes now: plain
    /// without keys, under the primary key with keys. Says nothing about whether it opens.
    pub(crate) fn is_current(&self, sealed: &[u8]) -> bool {
        match (Self::sealed_with(sealed), &self.keys) {
            (SealedWith::Plain, None) => true,
            (SealedWith::Key(id), Some(keys)) => keys.primary_id() == Some(id.as_str()),
            _ => false,
        }
    }

    /// Seals a token set for the link `key` and `profile_id`.
    pub(crate) fn seal(
        &self,
        key: &LinkKey,
        profile_id: ProfileId,
        tokens: &TokenSet,
    ) -> Result<SealedTokens, StoreError> {
        let json = TokensJson {
            v: TOKENS_JSON_VERSION,
            access_token: tokens.access_token.expose_secret().to_owned(),
            refresh_token: tokens.refresh_token.expose_secret().to_owned(),
            expires_at: to_nanos(tokens.expires_at),
            refresh_token_expires_at: tokens.refresh_token_expires_at.map(to_nanos),
            scope: tokens.scope.clone(),
            obtained_at: to_nanos(tokens.obtained_at),
        };
        let mut plain = serde_json::to_vec(&json)
            .map_err(|_| StoreError::Corrupt("token set cannot be serialized"))?;
        let sealed = self.seal_bytes(&token_aad(key, profile_id), &plain);
        plain.zeroize();
        Ok(SealedTokens::new(sealed))
    }

    /// Opens a token set sealed by [`Sealer::seal`] for the same link and profile.
    /// Any failure (tampered, truncated, foreign, unknown key or format) is
    /// [`StoreError::Corrupt`].
    pub(crate) fn open(
        &self,
        key: &LinkKey,
        profile_id: ProfileId,
        sealed: &SealedTokens,
    ) -> Result<TokenSet, StoreError> {
        let mut plain = self.open_bytes(&token_aad(key, profile_id), &sealed.0)?;
        let parsed = serde_json::from_slice::<TokensJson>(&plain);
        plain.zeroize();
        let json = parsed.map_err(|_| StoreError::Corrupt("token record is not valid JSON"))?;
        if json.v != TOKENS_JSON_VERSION {
            return Err(StoreError::Corrupt("unsupported token record version"));
        }
        Ok(TokenSet {
            access_token: AccessToken::new(json.access_token.as_str()),
            refresh_token: RefreshToken::new(json.refresh_token.as_str()),
            expires_at: from_nanos(json.expires_at),
            refresh_token_expires_at: json.refresh_token_expires_at.map(from_nanos),
            scope: json.scope.clone(),
            obtained_at: from_nanos(json.obtained_at),
        })
    }

    /// Seals opaque bytes bound to `aad` (which is not stored; pass the same to open).
    pub(crate) fn seal_bytes(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let Some(keys) = &self.keys else {
            let mut out = Vec::with_capacity(1 + plain.len());
            out.push(FORMAT_PLAIN);
            out.extend_from_slice(plain);
            return out;
        };
        // `Sealer::try_new` refuses empty key lists.
        let primary = &keys.keys[0];
        let id = primary.id.as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(FORMAT_XCHACHA);
        // Key ids are at most 64 bytes.
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        let mut full_aad = Vec::with_capacity(out.len() + aad.len());
        full_aad.extend_from_slice(&out);
        full_aad.extend_from_slice(aad);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = primary
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &full_aad,
                },
            )
            // Only fails for messages beyond 256 GiB.
            .unwrap_or_default();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens bytes sealed by [`Sealer::seal_bytes`] with the same `aad`.
    pub(crate) fn open_bytes(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some((&format, rest)) = sealed.split_first() else {
            return Err(StoreError::Corrupt("sealed value is empty"));
        };
        match (format, &self.keys) {
            (FORMAT_PLAIN, None) => Ok(rest.to_vec()),
            (FORMAT_PLAIN, Some(_)) if self.open_plain => Ok(rest.to_vec()),
            (FORMAT_PLAIN, Some(_)) => Err(StoreError::Corrupt(
                "plain record found but encryption keys are configured",
            )),
            (FORMAT_XCHACHA, None) => Err(StoreError::Corrupt(
                "encrypted record found but no encryption keys are configured",
            )),
            (FORMAT_XCHACHA, Some(keys)) => {
                let Some((&id_len, rest)) = rest.split_first() else {
                    return Err(StoreError::Corrupt("sealed value is truncated"));
                };
                let id_len = usize::from(id_len);
                if rest.len() < id_len + NONCE_LEN + TAG_LEN {
                    return Err(StoreError::Corrupt("sealed value is truncated"));
                }
                let (id, rest) = rest.split_at(id_len);
                let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                let Some(entry) = keys.find(id) else {
                    return Err(StoreError::Corrupt("sealed with an unknown key id"));
                };
                let header = &sealed[..2 + id_len];
                let mut full_aad = Vec::with_capacity(header.len() + aad.len());
                full_aad.extend_from_slice(header);
                full_aad.extend_from_slice(aad);
                entry
                    .cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: &full_aad,
                        },
                    )
                    .map_err(|_| StoreError::Corrupt("sealed value failed authentication"))
            }
            _ => Err(StoreError::Corrupt("unknown sealed value format")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn link(user: &str) -> LinkKey {
        LinkKey::new("sandbox", "client-1", UserId::new(user).unwrap())
    }

    fn pid(n: u64) -> ProfileId {
        ProfileId::new(n).unwrap()
    }

    fn tokens() -> TokenSet {
        let mut t = TokenSet::new(
            AccessToken::new("AT-CANARY"),
            RefreshToken::new("RT-CANARY"),
            UNIX_EPOCH + Duration::from_nanos(1_750_000_000_123_456_789),
            UNIX_EPOCH + Duration::from_secs(1_749_956_800),
        );
        t.refresh_token_expires_at = Some(UNIX_EPOCH + Duration::from_secs(2_380_000_000));
        t.scope = Some("transfers".into());
        t
    }

    fn assert_same(a: &TokenSet, b: &TokenSet) {
        assert_eq!(
            a.access_token.expose_secret(),
            b.access_token.expose_secret()
        );
        assert_eq!(
            a.refresh_token.expose_secret(),
            b.refresh_token.expose_secret()
        );
        assert_eq!(a.expires_at, b.expires_at);
        assert_eq!(a.refresh_token_expires_at, b.refresh_token_expires_at);
        assert_eq!(a.scope, b.scope);
        assert_eq!(a.obtained_at, b.obtained_at);
    }

    fn keys1() -> EncryptionKeys {
        EncryptionKeys::new().key("k1", [1; 32])
    }

    fn encrypted() -> Sealer {
        Sealer::new(Some(keys1()))
    }

    fn corrupt(r: Result<TokenSet, StoreError>) -> &'static str {
        match r {
            Err(StoreError::Corrupt(reason)) => reason,
            Err(other) => panic!("expected Corrupt, got {other:?}"),
            Ok(_) => panic!("expected Corrupt, got a token set"),
        }
    }

    #[test]
    fn plain_round_trip_is_versioned_json() {
        let sealer = Sealer::new(None);
        let sealed = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_eq!(sealed.0[0], FORMAT_PLAIN);
        let json: serde_json::Value = serde_json::from_slice(&sealed.0[1..]).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["expires_at"], 1_750_000_000_123_456_789u64);
        assert_same(
            &sealer.open(&link("u"), pid(1), &sealed).unwrap(),
            &tokens(),
        );
    }

    #[test]
    fn encrypted_round_trip_hides_the_tokens() {
        let sealer = encrypted();
        let sealed = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_eq!(sealed.0[0], FORMAT_XCHACHA);
        let text = String::from_utf8_lossy(&sealed.0);
        assert!(!text.contains("CANARY") && !text.contains("transfers"));
        assert_same(
            &sealer.open(&link("u"), pid(1), &sealed).unwrap(),
            &tokens(),
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let sealer = encrypted();
        let a = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
        let b = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn every_flipped_byte_is_corrupt() {
        let sealer = encrypted();
        let sealed = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
        for i in 0..sealed.0.len() {
            let mut bad = sealed.clone();
            bad.0[i] ^= 0x01;
            corrupt(sealer.open(&link("u"), pid(1), &bad));
        }
    }

    #[test]
    fn every_truncation_is_corrupt() {
        let sealer = encrypted();
        let sealed = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
        for len in 0..sealed.0.len() {
            let bad = SealedTokens::new(sealed.0[..len].to_vec());
            corrupt(sealer.open(&link("u"), pid(1), &bad));
        }
        assert_eq!(
            corrupt(sealer.open(&link("u"), pid(1), &SealedTokens::new(Vec::new()))),
            "sealed value is empty"
        );
    }

    #[test]
    fn unknown_key_id_is_corrupt() {
        let other = Sealer::new(Some(EncryptionKeys::new().key("k9", [9; 32])));
        let sealed = other.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_eq!(
            corrupt(encrypted().open(&link("u"), pid(1), &sealed)),
            "sealed with an unknown key id"
        );
    }

    #[test]
    fn same_id_with_other_material_is_corrupt() {
        let other = Sealer::new(Some(EncryptionKeys::new().key("k1", [9; 32])));
        let sealed = other.seal(&link("u"), pid(1), &tokens()).unwrap();
        corrupt(encrypted().open(&link("u"), pid(1), &sealed));
    }

    #[test]
    fn another_links_ciphertext_is_corrupt() {
        let sealer = encrypted();
        let sealed = sealer.seal(&link("alice"), pid(1), &tokens()).unwrap();
        let u = UserId::new("alice").unwrap();
        for (key, profile) in [
            (link("bob"), pid(1)),
            (link("alice"), pid(2)),
            (LinkKey::new("production", "client-1", u.clone()), pid(1)),
            (LinkKey::new("sandbox", "client-2", u), pid(1)),
        ] {
            assert_eq!(
                corrupt(sealer.open(&key, profile, &sealed)),
                "sealed value failed authentication"
            );
        }
    }

    #[test]
    fn aad_parts_are_length_prefixed() {
        let a = LinkKey::new("a:b", "c", UserId::new("u").unwrap());
        let b = LinkKey::new("a", "b:c", UserId::new("u").unwrap());
        let c = LinkKey::new("ab", "c", UserId::new("u").unwrap());
        let d = LinkKey::new("a", "bc", UserId::new("u").unwrap());
        assert_ne!(token_aad(&a, pid(1)), token_aad(&b, pid(1)));
        assert_ne!(token_aad(&c, pid(1)), token_aad(&d, pid(1)));
        let sealer = encrypted();
        let sealed = sealer.seal(&c, pid(1), &tokens()).unwrap();
        corrupt(sealer.open(&d, pid(1), &sealed));
    }

    #[test]
    fn unknown_format_byte_is_corrupt() {
        for sealer in [encrypted(), Sealer::new(None)] {
            let mut sealed = sealer.seal(&link("u"), pid(1), &tokens()).unwrap();
            sealed.0[0] = 7;
            assert_eq!(
                corrupt(sealer.open(&link("u"), pid(1), &sealed)),
                "unknown sealed value format"
            );
        }
    }

    #[test]
    fn plain_record_with_keys_configured_is_corrupt() {
        let sealed = Sealer::new(None)
            .seal(&link("u"), pid(1), &tokens())
            .unwrap();
        assert_eq!(
            corrupt(encrypted().open(&link("u"), pid(1), &sealed)),
            "plain record found but encryption keys are configured"
        );
    }

    #[test]
    fn plain_records_open_with_keys_only_when_asked() {
        let sealed = Sealer::new(None)
            .seal(&link("u"), pid(1), &tokens())
            .unwrap();
        let migrating = encrypted().opening_plain(true);
        assert_same(
            &migrating.open(&link("u"), pid(1), &sealed).unwrap(),
            &tokens(),
        );
        // Still written encrypted, and a plain value is not current.
        let resealed = migrating.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_eq!(resealed.0[0], FORMAT_XCHACHA);
        assert!(!migrating.is_current(&sealed.0) && migrating.is_current(&resealed.0));
        // Encrypted values are checked as ever.
        corrupt(migrating.open(&link("other"), pid(1), &resealed));
    }

    #[test]
    fn encrypted_record_without_keys_is_corrupt() {
        let sealed = encrypted().seal(&link("u"), pid(1), &tokens()).unwrap();
        corrupt(Sealer::new(None).open(&link("u"), pid(1), &sealed));
    }

    #[test]
    fn malformed_plain_json_is_corrupt() {
        let sealer = Sealer::new(None);
        for body in [
            &b"not json"[..],
            b"{}",
            br#"{"v":2,"access_token":"a","refresh_token":"r","expires_at":1,"obtained_at":1}"#,
        ] {
            let mut bytes = vec![FORMAT_PLAIN];
            bytes.extend_from_slice(body);
            corrupt(sealer.open(&link("u"), pid(1), &SealedTokens::new(bytes)));
        }
    }

    #[test]
    fn rotation_keeps_old_records_readable() {
        let old = Sealer::new(Some(EncryptionKeys::new().key("k1", [1; 32])));
        let k1_record = old.seal(&link("u"), pid(1), &tokens()).unwrap();

        let rotated = Sealer::new(Some(
            EncryptionKeys::new().key("k2", [2; 32]).key("k1", [1; 32]),
        ));
        assert_same(
            &rotated.open(&link("u"), pid(1), &k1_record).unwrap(),
            &tokens(),
        );

        let k2_record = rotated.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_eq!(&k2_record.0[..4], &[FORMAT_XCHACHA, 2, b'k', b'2']);
        // The old deployment cannot read the new record: it was sealed with k2.
        corrupt(old.open(&link("u"), pid(1), &k2_record));
        // Once k1 is retired, its records no longer open.
        let retired = Sealer::new(Some(EncryptionKeys::new().key("k2", [2; 32])));
        corrupt(retired.open(&link("u"), pid(1), &k1_record));
        assert_same(
            &retired.open(&link("u"), pid(1), &k2_record).unwrap(),
            &tokens(),
        );
    }

    #[test]
    fn the_header_tells_which_key_sealed_a_value() {
        let k1 = Sealer::new(Some(keys1()));
        let rotated = Sealer::new(Some(
            EncryptionKeys::new().key("k2", [2; 32]).key("k1", [1; 32]),
        ));
        let plain = Sealer::new(None);
        let by_k1 = k1.seal(&link("u"), pid(1), &tokens()).unwrap();
        let by_k2 = rotated.seal(&link("u"), pid(1), &tokens()).unwrap();
        let clear = plain.seal(&link("u"), pid(1), &tokens()).unwrap();
        assert_eq!(Sealer::sealed_with(&by_k1.0), SealedWith::Key("k1".into()));
        assert_eq!(Sealer::sealed_with(&by_k2.0), SealedWith::Key("k2".into()));
        assert_eq!(Sealer::sealed_with(&clear.0), SealedWith::Plain);
        for bad in [&[][..], &[1], &[1, 5, b'k'], &[7, 0], &[1, 2, b' ', b' ']] {
            assert_eq!(Sealer::sealed_with(bad), SealedWith::Unknown, "{bad:?}");
        }
        // Current: what each sealer writes now.
        assert!(k1.is_current(&by_k1.0) && !k1.is_current(&by_k2.0));
        assert!(rotated.is_current(&by_k2.0) && !rotated.is_current(&by_k1.0));
        assert!(plain.is_current(&clear.0) && !plain.is_current(&by_k1.0));
        assert!(!k1.is_current(&clear.0));
        assert_eq!(rotated.key_ids(), ["k2", "k1"]);
        assert!(plain.key_ids().is_empty());
    }

    #[test]
    fn bytes_round_trip_and_bind_aad() {
        for sealer in [encrypted(), Sealer::new(None)] {
            let all: Vec<u8> = (0..=255u8).collect();
            let sealed = sealer.seal_bytes(b"state-hash", &all);
            assert_eq!(sealer.open_bytes(b"state-hash", &sealed).unwrap(), all);
            let empty = sealer.seal_bytes(b"", b"");
            assert_eq!(sealer.open_bytes(b"", &empty).unwrap(), b"");
        }
        let sealer = encrypted();
        let sealed = sealer.seal_bytes(b"state-a", b"pending");
        assert!(matches!(
            sealer.open_bytes(b"state-b", &sealed),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn extreme_times_saturate() {
        let mut t = tokens();
        t.expires_at = UNIX_EPOCH - Duration::from_secs(10);
        t.refresh_token_expires_at = Some(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2));
        let sealer = encrypted();
        let sealed = sealer.seal(&link("u"), pid(1), &t).unwrap();
        let back = sealer.open(&link("u"), pid(1), &sealed).unwrap();
        assert_eq!(back.expires_at, UNIX_EPOCH);
        assert_eq!(back.refresh_token_expires_at, Some(from_nanos(u64::MAX)));
    }

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI";

    #[test]
    fn parse_accepts_lists_and_orders_primary_first() {
        let keys = EncryptionKeys::parse(&format!(" k2:{K2} , k1:{K1}")).unwrap();
        assert_eq!(keys.primary_id(), Some("k2"));
        assert_eq!(keys.len(), 2);
        // The parsed keys are the same keys as the literal ones.
        let sealed = Sealer::new(Some(keys)).seal_bytes(b"x", b"hello");
        let literal = Sealer::new(Some(EncryptionKeys::new().key("k2", [2; 32])));
        assert_eq!(literal.open_bytes(b"x", &sealed).unwrap(), b"hello");
        // URL-safe alphabet without padding.
        let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert!(EncryptionKeys::parse(&format!("a.b-c_1:{urlsafe}")).is_ok());
    }

    #[test]
    fn parse_errors_name_the_problem_without_key_material() {
        let secretish = "c2VjcmV0LWtleS1tYXRlcmlhbA"; // "secret-key-material"
        let cases = [
            ("", InvalidKeys::Empty),
            ("  ", InvalidKeys::Empty),
            (
                &format!("k1:{K1},"),
                InvalidKeys::EmptyEntry { position: 2 },
            ),
            (
                &format!("k1:{K1},,k2:{K2}"),
                InvalidKeys::EmptyEntry { position: 2 },
            ),
            (K1, InvalidKeys::MissingId { position: 1 }),
            (&format!(":{K1}"), InvalidKeys::InvalidId { position: 1 }),
            (&format!("k 1:{K1}"), InvalidKeys::InvalidId { position: 1 }),
            (
                &format!("{}:{K1}", "k".repeat(65)),
                InvalidKeys::InvalidId { position: 1 },
            ),
            (
                &format!("k1:{K1},k1:{K2}"),
                InvalidKeys::DuplicateId { position: 2 },
            ),
            ("k1:not*base64!", InvalidKeys::InvalidBase64 { position: 1 }),
            (
                &format!("k1:{secretish}"),
                InvalidKeys::WrongLength {
                    position: 1,
                    len: 19,
                },
            ),
        ];
        for (input, expected) in cases {
            let err = EncryptionKeys::parse(input).unwrap_err();
            assert_eq!(err, expected, "{input:?}");
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains(secretish) && !shown.contains("AQEB"),
                "{shown}"
            );
        }
    }

    #[test]
    fn from_env_with_reads_wise_token_keys() {
        let keys = EncryptionKeys::from_env_with(|name| {
            (name == "WISE_TOKEN_KEYS").then(|| format!("k1:{K1}"))
        })
        .unwrap();
        assert_eq!(keys.primary_id(), Some("k1"));
        let err = EncryptionKeys::from_env_with(|_| None).unwrap_err();
        assert!(err.to_string().contains("WISE_TOKEN_KEYS"), "{err}");
    }

    #[test]
    fn debug_is_redacted() {
        let keys = EncryptionKeys::parse(&format!("k1:{K1}")).unwrap();
        let shown = format!("{keys:?} {:?}", Sealer::new(Some(keys.clone())));
        assert!(
            shown.contains("k1") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert!(
            !shown.contains("AQEB") && !shown.contains("1, 1, 1"),
            "{shown}"
        );
    }

    #[test]
    fn builder_rejects_bad_ids() {
        assert_eq!(
            EncryptionKeys::new().try_key("", [0; 32]).unwrap_err(),
            InvalidKeys::InvalidId { position: 1 }
        );
        assert_eq!(
            keys1().try_key("k1", [0; 32]).unwrap_err(),
            InvalidKeys::DuplicateId { position: 2 }
        );
        assert!(Sealer::try_new(Some(EncryptionKeys::new())).is_err());
        assert!(Sealer::new(None).keys.is_none());
    }
}
