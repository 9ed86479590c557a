//! The public keys Wise signs webhooks with, and the signature check.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use thiserror::Error;

/// Wise's production webhook key, as published in "Event handling" (docs.wise.com).
const PRODUCTION_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvO8vXV+JksBzZAY6GhSO
XdoTCfhXaaiZ+qAbtaDBiu2AGkGVpmEygFmWP4Li9m5+Ni85BhVvZOodM9epgW3F
bA5Q1SexvAF1PPjX4JpMstak/QhAgl1qMSqEevL8cmUeTgcMuVWCJmlge9h7B1CS
D4rtlimGZozG39rUBDg6Qt2K+P4wBfLblL0k4C4YUdLnpGYEDIth+i8XsRpFlogx
CAFyH9+knYsDbR43UJ9shtc42Ybd40Afihj8KnYKXzchyQ42aC8aZ/h5hyZ28yVy
Oj3Vos0VdBIs/gAyJ/4yyQFCXYte64I7ssrlbGRaco4nKF3HmaNhxwyKyJafz19e
HwIDAQAB
-----END PUBLIC KEY-----";

/// Wise's sandbox webhook key, as published in "Event handling" (docs.wise.com).
const SANDBOX_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwpb91cEYuyJNQepZAVfP
ZIlPZfNUefH+n6w9SW3fykqKu938cR7WadQv87oF2VuT+fDt7kqeRziTmPSUhqPU
ys/V2Q1rlfJuXbE+Gga37t7zwd0egQ+KyOEHQOpcTwKmtZ81ieGHynAQzsn1We3j
wt760MsCPJ7GMT141ByQM+yW1Bx+4SG3IGjXWyqOWrcXsxAvIXkpUD/jK/L958Cg
nZEgz0BSEh0QxYLITnW1lLokSx/dTianWPFEhMC9BgijempgNXHNfcVirg1lPSyg
z7KqoKUN0oHqWLr2U1A+7kqrl6O2nx3CKs1bj1hToT1+p4kcMoHXA7kA+VBLUpEs
VwIDAQAB
-----END PUBLIC KEY-----";

/// The DER of the `rsaEncryption` algorithm identifier's OID (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The longest `X-Signature-SHA256` value looked at (an 8192-bit signature is 1,368
/// base64 characters).
const MAX_SIGNATURE_LEN: usize = 2048;

/// Why a text is not a usable webhook key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidWebhookKey {
    /// Not a PEM `PUBLIC KEY` (or `RSA PUBLIC KEY`) block with valid base64.
    #[error("not a PEM public key")]
    NotPem,
    /// The DER inside is not an RSA public key.
    #[error("not an RSA public key")]
    NotRsa,
    /// The RSA modulus is outside 2048 to 8192 bits.
    #[error("the RSA key must have 2048 to 8192 bits")]
    UnsupportedSize,
}

/// An RSA public key that webhook signatures (`X-Signature-SHA256`: RSASSA-PKCS1-v1_5
/// with SHA-256 over the raw body, base64) are checked against.
///
/// The handle checks deliveries against the key of its environment
/// ([`WebhookKey::production`] or [`WebhookKey::sandbox`]) unless the builder's
/// [`webhook_keys`](crate::WiseOAuthBuilder::webhook_keys) names others, such as the
/// emulator's.
///
/// ```
/// use wise_oauth_core::WebhookKey;
/// let sandbox = WebhookKey::sandbox();
/// assert_eq!(sandbox.name(), "wise-sandbox");
/// assert!(WebhookKey::from_pem("not a key").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookKey {
    name: Arc<str>,
    /// The key as a DER `RSAPublicKey` (PKCS#1), what `ring` verifies with.
    rsa_der: Arc<[u8]>,
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookKey")
            .field("name", &&*self.name)
            .field("bits", &self.bits())
            .finish()
    }
}

impl WebhookKey {
    /// Wise's production key.
    pub fn production() -> Self {
        Self::named("wise-production", PRODUCTION_PEM).expect("built-in key")
    }

    /// Wise's sandbox key.
    pub fn sandbox() -> Self {
        Self::named("wise-sandbox", SANDBOX_PEM).expect("built-in key")
    }

    /// A key from its PEM text: `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo, as
    /// Wise publishes them and `openssl pkey -pubout` writes) or `-----BEGIN RSA PUBLIC
    /// KEY-----` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Self, InvalidWebhookKey> {
        Self::named("configured", pem)
    }

    fn named(name: &str, pem: &str) -> Result<Self, InvalidWebhookKey> {
        let (label, der) = pem_block(pem).ok_or(InvalidWebhookKey::NotPem)?;
        let rsa_der = match label {
            "PUBLIC KEY" => spki_rsa_key(&der).ok_or(InvalidWebhookKey::NotRsa)?,
            "RSA PUBLIC KEY" => der,
            _ => return Err(InvalidWebhookKey::NotPem),
        };
        let bits = modulus_bits(&rsa_der).ok_or(InvalidWebhookKey::NotRsa)?;
        if !(2048..=8192).contains(&bits) {
            return Err(InvalidWebhookKey::UnsupportedSize);
        }
        Ok(Self {
            name: Arc::from(name),
            rsa_der: Arc::from(rsa_der),
        })
    }

    /// A short name for logs: `wise-production`, `wise-sandbox` or `configured`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn bits(&self) -> usize {
        modulus_bits(&self.rsa_der).unwrap_or(0)
    }

    /// Whether `signature` is this key's RSA-SHA256 signature of `body`.
    pub(crate) fn verifies(&self, body: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &*self.rsa_der)
            .verify(body, signature)
            .is_ok()
    }
}

/// Decodes an `X-Signature-SHA256` value (standard base64, surrounding spaces allowed).
pub(crate) fn decode_signature(value: &str) -> Option<Vec<u8>> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_SIGNATURE_LEN {
        return None;
    }
    STANDARD.decode(value).ok()
}

/// The label and the decoded bytes of the one PEM block in `pem`.
fn pem_block(pem: &str) -> Option<(&str, Vec<u8>)> {
    let text = pem.trim();
    let first_line_end = text.find('\n').unwrap_or(text.len());
    let label = text[..first_line_end]
        .trim()
        .strip_prefix("-----BEGIN ")?
        .strip_suffix("-----")?;
    let footer = format!("-----END {label}-----");
    let body = text[first_line_end..].trim().strip_suffix(&footer)?;
    let base64: String = body.split_whitespace().collect();
    let der = STANDARD.decode(base64).ok()?;
    Some((label, der))
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The `RSAPublicKey` inside a SubjectPublicKeyInfo whose algorithm is `rsaEncryption`.
fn spki_rsa_key(der: &[u8]) -> Option<Vec<u8>> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    const BIT_STRING: u8 = 0x03;
    let (SEQUENCE, spki, []) = der_element(der)? else {
        return None;
    };
    let (SEQUENCE, algorithm, rest) = der_element(spki)? else {
        return None;
    };
    let (OID, oid, _parameters) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION_OID {
        return None;
    }
    let (BIT_STRING, bits, []) = der_element(rest)? else {
        return None;
    };
    match bits.split_first()? {
        (0, key) => Some(key.to_vec()),
        _ => None,
    }
}

/// The bit length of the modulus of a DER `RSAPublicKey` (`SEQUENCE { n, e }`).
fn modulus_bits(rsa_der: &[u8]) -> Option<usize> {
    let (0x30, key, []) = der_element(rsa_der)? else {
        return None;
    };
    let (0x02, modulus, rest) = der_element(key)? else {
        return None;
    };
    let (0x02, _exponent, []) = der_element(rest)? else {
        return None;
    };
    let modulus = match modulus.iter().position(|&b| b != 0) {
        Some(start) => &modulus[start..],
        None => return None,
    };
    let top = modulus[0];
    Some((modulus.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vector (transferwise/digital-signatures-examples), signed with
    /// the sandbox key.
    const VECTOR_BODY: &str = r#"{"data":{"resource":{"id":49983981,"profile_id":16055450,"account_id":14124090,"type":"transfer"},"current_state":"incoming_payment_waiting","previous_state":null,"occurred_at":"2021-08-23T10:12:50Z"},"subscription_id":"90aa8e14-4ef1-4a56-861c-f3c9cde097ea","event_type":"transfers#state-change","schema_version":"2.0.0","sent_at":"2021-08-23T10:12:50Z"}"#;
    const VECTOR_SIGNATURE: &str = "wKcKCYXAzxNgiu7xmoDm943NUni7Rz33QN8JkEA9dWSGebgndonabgSj18Y4C08OrwVmueGsED2s00M7DtJVcYKOS1i3G4TMVx+mgM3aL9djMBkQtiYNBFUd6wrPI7ZUNHv/TrlKSjTMc+6JFvUvJ7owY3z85e3I4jLRLJowMFvO8kvCJ60+1pY9wDwZvtZ//WS93LrwGjk9Dvwzpmu0w+P4J75tETT5qC3Uv0y5G2yO8SEoO3yNP/tg/BOli02niHb53vEOUWUb9bly6thnfMoXoiV/osoGxgF20R58RlvkAmezyyl1Sv542TfS2DpiwVnmjjjkCyXeSUcKookYLQ==";

    #[test]
    fn the_published_vector_verifies_with_the_sandbox_key_only() {
        assert_eq!(VECTOR_BODY.len(), 354);
        let signature = decode_signature(VECTOR_SIGNATURE).unwrap();
        assert!(WebhookKey::sandbox().verifies(VECTOR_BODY.as_bytes(), &signature));
        assert!(!WebhookKey::production().verifies(VECTOR_BODY.as_bytes(), &signature));
        let mut changed = VECTOR_BODY.as_bytes().to_vec();
        changed[100] ^= 1;
        assert!(!WebhookKey::sandbox().verifies(&changed, &signature));
        let mut trailing = VECTOR_BODY.as_bytes().to_vec();
        trailing.push(b'\n');
        assert!(!WebhookKey::sandbox().verifies(&trailing, &signature));
    }

    #[test]
    fn the_built_in_keys_are_2048_bits() {
        assert_eq!(WebhookKey::production().bits(), 2048);
        assert_eq!(WebhookKey::sandbox().bits(), 2048);
        assert_ne!(WebhookKey::production(), WebhookKey::sandbox());
        let debug = format!("{:?}", WebhookKey::sandbox());
        assert_eq!(debug, r#"WebhookKey { name: "wise-sandbox", bits: 2048 }"#);
    }

    #[test]
    fn a_pkcs1_key_reads_like_its_spki_form() {
        let spki = WebhookKey::sandbox();
        let pkcs1 = format!(
            "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
            STANDARD.encode(&*spki.rsa_der)
        );
        let key = WebhookKey::from_pem(&pkcs1).unwrap();
        assert_eq!(key.rsa_der, spki.rsa_der);
        assert_eq!(key.name(), "configured");
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert_eq!(WebhookKey::from_pem(""), Err(InvalidWebhookKey::NotPem));
        assert_eq!(
            WebhookKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----"),
            Err(InvalidWebhookKey::NotPem)
        );
        let mismatched = SANDBOX_PEM.replace("END PUBLIC", "END PRIVATE");
        assert_eq!(
            WebhookKey::from_pem(&mismatched),
            Err(InvalidWebhookKey::NotPem)
        );
        let not_rsa = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
            STANDARD.encode([0x30, 0x03, 0x02, 0x01, 0x01])
        );
        assert_eq!(
            WebhookKey::from_pem(&not_rsa),
            Err(InvalidWebhookKey::NotRsa)
        );
        // A 1024-bit modulus with exponent 65537.
        let mut small = vec![0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00, 0xc0];
        small.extend([0x11; 127]);
        small.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let small = format!(
            "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----",
            STANDARD.encode(&small)
        );
        assert_eq!(
            WebhookKey::from_pem(&small),
            Err(InvalidWebhookKey::UnsupportedSize)
        );
    }

    #[test]
    fn signatures_decode_strictly() {
        assert!(decode_signature("").is_none());
        assert!(decode_signature("not base64!").is_none());
        assert!(decode_signature(&"A".repeat(MAX_SIGNATURE_LEN + 4)).is_none());
        assert_eq!(decode_signature(" AQID ").unwrap(), [1, 2, 3]);
    }
}
