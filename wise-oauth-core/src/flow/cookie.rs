//! The browser-binding cookie: ties a pending flow to the browser that started it.
//!
//! The core produces the exact `Set-Cookie` strings so that every adapter behaves the same.

use super::state::{is_well_formed, random_token};

/// The name of the browser-binding cookie when the redirect URI is plain `http` (local
/// development), `wise_oauth_binding`. With an `https` redirect URI the cookie is
/// [`SECURE_BINDING_COOKIE_NAME`]; [`WiseOAuth::binding_cookie_name`](crate::WiseOAuth::binding_cookie_name)
/// gives the one in use. Pass its value to
/// [`WiseOAuth::start_link`](crate::WiseOAuth::start_link) and
/// [`WiseOAuth::complete_link`](crate::WiseOAuth::complete_link). The library writes the
/// whole `Set-Cookie` value ([`LinkStart::set_cookie`](crate::LinkStart::set_cookie),
/// [`WiseOAuth::clear_binding_cookie`](crate::WiseOAuth::clear_binding_cookie)).
pub const BINDING_COOKIE_NAME: &str = "wise_oauth_binding";

/// The name of the browser-binding cookie when the redirect URI is `https`:
/// `__Host-wise_oauth_binding`. Browsers accept a `__Host-` cookie only with `Secure`,
/// `Path=/` and no `Domain`, so a sibling subdomain or a plain-http page cannot set or
/// shadow it (a cookie-tossing attacker cannot plant their own binding).
pub const SECURE_BINDING_COOKIE_NAME: &str = "__Host-wise_oauth_binding";

/// Lifetime of the binding cookie, in seconds (the 30-minute life of a flow).
pub(crate) const BINDING_MAX_AGE_SECS: u64 = 1800;

/// The `Set-Cookie` values of the browser-binding cookie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowCookie;

impl FlowCookie {
    /// The `Set-Cookie` value that deletes the cookie. `secure` must match the value the
    /// cookie was set with ([`WiseOAuth::clear_binding_cookie`](crate::WiseOAuth::clear_binding_cookie)
    /// picks it from the configuration).
    pub(crate) fn clear(secure: bool) -> String {
        format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
            Self::name(secure),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that sets the cookie to `id`. Never a `Domain`: the cookie
    /// stays on the app's own host.
    pub(crate) fn set(id: &str, secure: bool) -> String {
        format!(
            "{}={id}; Path=/; Max-Age={BINDING_MAX_AGE_SECS}; HttpOnly; SameSite=Lax{}",
            Self::name(secure),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The cookie's name: `__Host-` prefixed whenever it is `Secure`.
    pub(crate) fn name(secure: bool) -> &'static str {
        if secure {
            SECURE_BINDING_COOKIE_NAME
        } else {
            BINDING_COOKIE_NAME
        }
    }
}

/// The browser's binding id: the existing one when it is well formed, else a fresh one.
pub(crate) fn binding_id(existing: Option<&str>) -> String {
    match existing {
        Some(id) if is_well_formed(id) => id.to_owned(),
        _ => random_token(),
    }
}

/// Whether the cookie must carry `Secure`: always, except when the redirect URI is plain
/// `http` (only allowed on loopback hosts, for local development).
pub(crate) fn secure_for(redirect_uri: &str) -> bool {
    !redirect_uri
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_has_the_exact_attributes() {
        let id = random_token();
        assert_eq!(
            FlowCookie::set(&id, true),
            format!(
                "__Host-wise_oauth_binding={id}; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax; Secure"
            )
        );
        assert_eq!(
            FlowCookie::set(&id, false),
            format!("wise_oauth_binding={id}; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax")
        );
        assert_eq!(
            FlowCookie::clear(false),
            "wise_oauth_binding=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            FlowCookie::clear(true),
            "__Host-wise_oauth_binding=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
        );
        for secure in [true, false] {
            let set = FlowCookie::set(&id, secure);
            assert!(!set.contains("Strict"));
            assert!(!set.to_ascii_lowercase().contains("domain"), "{set}");
            // The `__Host-` rules: Secure, Path=/, no Domain.
            assert_eq!(set.starts_with("__Host-"), secure);
            assert_eq!(set.ends_with("; Secure"), secure);
        }
        assert_eq!(FlowCookie::name(true), SECURE_BINDING_COOKIE_NAME);
        assert_eq!(FlowCookie::name(false), BINDING_COOKIE_NAME);
    }

    #[test]
    fn existing_binding_is_reused_only_when_well_formed() {
        let id = random_token();
        assert_eq!(binding_id(Some(&id)), id);
        let fresh = binding_id(Some("short"));
        assert_ne!(fresh, "short");
        assert!(is_well_formed(&fresh));
        assert!(is_well_formed(&binding_id(None)));
        assert_ne!(binding_id(None), binding_id(None));
        assert_ne!(binding_id(Some("x; Domain=evil.com")), "x; Domain=evil.com");
    }

    #[test]
    fn secure_unless_plain_http() {
        assert!(secure_for("https://app.example.com/wise/callback"));
        assert!(!secure_for("http://127.0.0.1:3000/wise/callback"));
        assert!(!secure_for("HTTP://localhost/cb"));
        assert!(secure_for("myapp://cb"));
    }
}
