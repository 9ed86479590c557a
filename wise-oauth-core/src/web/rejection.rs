//! Why a `WiseToken` could not be extracted, and the answer to give.

use std::fmt;

use super::hooks::Hooks;
use super::mount::Mount;
use super::reply::Reply;
use super::request::RequestInfo;
use super::routes::{not_logged_in, not_set_up, token_rejection, RejectionKind};
use crate::TokenError;

/// A failed `WiseToken` extraction: its [`RejectionKind`] and the complete answer (see
/// [`token_rejection`], [`not_logged_in`] and [`not_set_up`]). An adapter wraps it in its
/// framework's rejection type and sends [`Rejection::reply`] verbatim.
///
/// The reply is boxed: an extraction's result is moved a few times on every request, and
/// a rejection is the rare case.
#[derive(Debug, Clone)]
pub struct Rejection {
    kind: RejectionKind,
    reply: Box<Reply>,
}

impl Rejection {
    pub(crate) fn token(
        error: &TokenError,
        req: &RequestInfo,
        mount: &Mount,
        hooks: &Hooks,
    ) -> Self {
        Rejection {
            kind: RejectionKind::of(error),
            reply: Box::new(token_rejection(error, req, mount, hooks)),
        }
    }

    pub(crate) fn not_logged_in(req: &RequestInfo, hooks: &Hooks) -> Self {
        Rejection {
            kind: RejectionKind::NotLoggedIn,
            reply: Box::new(not_logged_in(req, hooks)),
        }
    }

    /// The adapter found no plugin in its app state: 500 with `hint`, what the app's wiring
    /// most likely lacks (for frameworks where that is only known at run time).
    pub fn not_set_up(req: &RequestInfo, hint: &'static str) -> Self {
        Rejection {
            kind: RejectionKind::NotSetUp,
            reply: Box::new(not_set_up(req, hint)),
        }
    }

    /// Why the extraction failed.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The answer: status, headers and body.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// The answer, by value.
    pub fn into_reply(self) -> Reply {
        *self.reply
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no Wise token: {}", self.kind.reason())
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_location_query_and_body() {
        let mount = Mount::new("/wise").unwrap();
        let mut req = RequestInfo::new("GET", "/balances?secret-looking=S3CR3T");
        req.header("accept", b"text/html");
        let rejection = Rejection::token(&TokenError::NotLinked, &req, &mount, &Hooks::default());
        let location = rejection.reply().header("location").unwrap();
        assert!(location.contains("S3CR3T"), "{location}");
        let shown = format!("{rejection:?}");
        assert!(!shown.contains("S3CR3T"), "{shown}");
        assert!(shown.contains("/wise/connect?[redacted]"), "{shown}");
    }

    #[test]
    fn unavailable_page_never_links_to_a_protocol_relative_path() {
        let mount = Mount::new("/wise").unwrap();
        let mut req = RequestInfo::new("GET", "//evil.com/balances");
        req.header("accept", b"text/html");
        let rejection =
            Rejection::token(&TokenError::unavailable(), &req, &mount, &Hooks::default());
        let page = rejection.reply().body.as_str();
        assert!(page.contains("<a href=\"/\">"), "{page}");
        assert!(!page.contains("//evil.com"), "{page}");
    }
}
