//! Redacted newtypes for every secret the library handles.
//!
//! None of them implements `Display` or `Serialize`; `Debug` prints `Name([redacted])`.
//! The value is reachable only through an explicit `expose_secret()` call.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

macro_rules! secret_type {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        $vis struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            $vis fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret value. Call this only where the value must leave the process
            /// (an HTTP header, a form field, an encrypted record).
            $vis fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// The OAuth client secret Wise issued to the partner.
    pub ClientSecret
);
secret_type!(
    /// A single-use authorization code from Wise's redirect.
    pub(crate) AuthorizationCode
);
secret_type!(
    /// A user access token (lives 12 hours at Wise).
    pub AccessToken
);
secret_type!(
    /// A user refresh token (lives up to 20 years at Wise).
    pub(crate) RefreshToken
);
secret_type!(
    /// The `state` value of one link flow (32 random bytes, base64url).
    pub CsrfState
);
secret_type!(
    /// A PKCE code verifier (RFC 7636).
    pub(crate) PkceVerifier
);
secret_type!(
    /// A registration code used to create a Wise user (works like a password).
    pub RegistrationCode
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let all = format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            ClientSecret::new("SECRET-CANARY"),
            AuthorizationCode::new("CODE-CANARY"),
            AccessToken::new("AT-CANARY"),
            RefreshToken::new("RT-CANARY"),
            CsrfState::new("STATE-CANARY"),
            PkceVerifier::new("PKCE-CANARY"),
            RegistrationCode::new("REG-CANARY"),
        );
        assert!(!all.contains("CANARY"), "{all}");
        assert!(all.contains("AccessToken([redacted])"));
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(AccessToken::new("abc").expose_secret(), "abc");
    }
}
