//! Listing the links of a store page by page, for jobs that walk every linked user.

use crate::ids::UserId;

/// The most links one page holds.
pub const MAX_LINK_PAGE: usize = 1000;

/// One page of the links of an environment and client, in ascending user-id order (byte
/// order of [`UserId::as_str`]). Ask for the next page with [`LinkPage::next`] as the
/// cursor; `None` means this was the last page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LinkPage {
    /// The users with a stored link (active or needing a re-link).
    pub users: Vec<UserId>,
    /// The cursor of the next page (the last user of this one), `None` at the end.
    pub next: Option<UserId>,
}

impl LinkPage {
    /// A page of `users` (already sorted, at most `limit`); `next` is set when the page is
    /// full (a next page may exist).
    pub fn new(users: Vec<UserId>, limit: usize) -> Self {
        let next = (users.len() >= limit.max(1))
            .then(|| users.last().cloned())
            .flatten();
        Self { users, next }
    }
}
