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
