//! PKCE (RFC 7636) with the `S256` method only; `plain` is never used.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret::PkceVerifier;

use super::state::random_token;

/// A fresh verifier for one flow: 32 CSPRNG bytes, base64url (43 unreserved characters).
pub(crate) fn new_verifier() -> PkceVerifier {
    PkceVerifier::new(random_token())
}

/// `BASE64URL(SHA256(ASCII(verifier)))`, the `code_challenge` for method `S256`.
pub(crate) fn challenge_s256(verifier: &PkceVerifier) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// Whether `value` is a valid verifier: 43 to 128 characters of `[A-Za-z0-9-._~]`.
#[cfg(test)]
fn is_valid_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge_s256(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifier_has_valid_length_and_alphabet() {
        for _ in 0..100 {
            let v = new_verifier();
            assert!(is_valid_verifier(v.expose_secret()));
            assert_eq!(v.expose_secret().len(), 43);
        }
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn verifier_differs_per_flow() {
        let a = new_verifier();
        let b = new_verifier();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(challenge_s256(&a), challenge_s256(&b));
    }
}
