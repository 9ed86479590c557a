//! Hooks for what happens to links: linked, refreshed, relink required, unlinked.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::ids::{ProfileId, UserId};

/// Something that happened to a link. Delivered to every [`EventHandler`] after the change
/// was written to the token store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WiseEvent {
    /// A user linked (or re-linked) a Wise profile.
    Linked {
        /// The app user.
        user: UserId,
        /// The verified Wise profile.
        profile_id: ProfileId,
    },
    /// The tokens of a link were refreshed and stored.
    Refreshed {
        /// The app user.
        user: UserId,
        /// The linked Wise profile.
        profile_id: ProfileId,
    },
    /// Wise rejected the refresh token: the user must link again. The record is kept,
    /// marked as needing a re-link.
    RelinkRequired {
        /// The app user.
        user: UserId,
        /// The linked Wise profile.
        profile_id: ProfileId,
    },
    /// The app unlinked the user; the record was deleted.
    Unlinked {
        /// The app user.
        user: UserId,
    },
}

impl WiseEvent {
    /// The app user the event is about.
    pub fn user(&self) -> &UserId {
        match self {
            Self::Linked { user, .. }
            | Self::Refreshed { user, .. }
            | Self::RelinkRequired { user, .. }
            | Self::Unlinked { user } => user,
        }
    }
}

/// Receives [`WiseEvent`]s (for audit logs, metrics, notifying the user to re-link, ...).
///
/// Handlers run synchronously on the task that made the change, after the store write;
/// keep them short (spawn a task for slow work). A panicking handler is caught and logged;
/// it never breaks a request or a refresh.
///
/// Any `Fn(&WiseEvent) + Send + Sync + 'static` closure is a handler:
///
/// ```
/// use wise_oauth_core::{EventHandler, WiseEvent};
/// fn takes_handler(_: impl EventHandler) {}
/// takes_handler(|event: &WiseEvent| {
///     if let WiseEvent::RelinkRequired { user, .. } = event {
///         println!("ask {user} to link Wise again");
///     }
/// });
/// ```
pub trait EventHandler: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &WiseEvent);
}

impl<F> EventHandler for F
where
    F: Fn(&WiseEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &WiseEvent) {
        self(event);
    }
}

/// The registered handlers; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Events {
    handlers: Vec<Arc<dyn EventHandler>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("handlers", &self.handlers.len())
            .finish()
    }
}

impl Events {
    /// No handlers.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a handler (called in registration order).
    pub(crate) fn push(&mut self, handler: Arc<dyn EventHandler>) {
        self.handlers.push(handler);
    }

    /// Delivers `event` to every handler, containing panics.
    pub(crate) fn emit(&self, event: &WiseEvent) {
        for handler in &self.handlers {
            if catch_unwind(AssertUnwindSafe(|| handler.on_event(event))).is_err() {
                tracing::error!(user = %event.user(), "a WiseEvent handler panicked; ignored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn panicking_handler_does_not_stop_the_others() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut events = Events::new();
        events.push(Arc::new(|_: &WiseEvent| panic!("boom")));
        let s = seen.clone();
        events.push(Arc::new(move |e: &WiseEvent| {
            s.lock().unwrap().push(e.clone())
        }));
        let user = UserId::new("u").unwrap();
        events.emit(&WiseEvent::Unlinked { user: user.clone() });
        assert_eq!(*seen.lock().unwrap(), vec![WiseEvent::Unlinked { user }]);
    }
}
