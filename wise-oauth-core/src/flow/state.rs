//! The `state` parameter of a link flow: 32 CSPRNG bytes, base64url without padding.
//!
//! Only the SHA-256 hash of a state is ever stored (it is the pending-store key), so a
//! leaked pending store does not hand out usable states.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::CsrfState;

/// Random bytes in a state (and in a browser-binding id).
pub(crate) const RANDOM_BYTES: usize = 32;

/// Length of the base64url (no padding) text of [`RANDOM_BYTES`] bytes.
pub(crate) const ENCODED_LEN: usize = 43;

/// 32 bytes from the operating system's CSPRNG, base64url without padding (43 chars).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh state for one flow.
pub(crate) fn new_state() -> CsrfState {
    CsrfState::new(random_token())
}

/// Whether `value` has the exact shape of a value made by [`random_token`]: 43 characters
/// of the base64url alphabet, and canonical (the last character carries no stray bits).
pub(crate) fn is_well_formed(value: &str) -> bool {
    value.len() == ENCODED_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == RANDOM_BYTES)
}

/// SHA-256 of a state or binding id: the key under which it is stored.
pub(crate) fn hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Constant-time equality of two hashes.
pub(crate) fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn state_is_43_base64url_chars_without_padding() {
        for _ in 0..200 {
            let state = new_state();
            let s = state.expose_secret();
            assert_eq!(s.len(), 43);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert!(!s.contains(['+', '/', '=']));
            assert!(is_well_formed(s));
            assert_eq!(URL_SAFE_NO_PAD.decode(s).unwrap().len(), 32);
        }
    }

    #[test]
    fn states_are_unique() {
        let set: HashSet<String> = (0..10_000)
            .map(|_| new_state().expose_secret().to_owned())
            .collect();
        assert_eq!(set.len(), 10_000);
    }

    #[test]
    fn malformed_states_are_recognised() {
        let good = random_token();
        assert!(is_well_formed(&good));
        for bad in [
            String::new(),
            good[..42].to_owned(),
            format!("{good}A"),
            format!("{}=", &good[..42]),
            format!("{}+", &good[..42]),
            format!("{}/", &good[..42]),
            format!("{}é", &good[..41]),
        ] {
            assert!(!is_well_formed(&bad), "{bad:?}");
        }
    }

    #[test]
    fn hash_differs_for_one_char_and_case() {
        let s = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
        let h = hash(s);
        assert!(hashes_equal(&h, &hash(s)));
        assert!(!hashes_equal(
            &h,
            &hash("bbcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ")
        ));
        assert!(!hashes_equal(
            &h,
            &hash("Abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq")
        ));
    }
}
