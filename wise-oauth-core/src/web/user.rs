//! Who the current user is: the app tells the plugin.

use crate::UserId;

/// The logged-in app user, as a request extension the app's auth middleware inserts.
///
/// The adapters read it in their routes and in the `WiseToken` extractor, unless the app
/// registered a resolver of its own ([`PluginBuilder::user_resolver`](super::PluginBuilder::user_resolver)).
/// No extension means "not logged in": 401. The plugin never takes the user from the query
/// string or a header.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::WiseUser;
/// use wise_oauth::UserId;
///
/// // In your auth middleware: `req.extensions_mut().insert(user)`.
/// let user = WiseUser::new(UserId::new("user-42").unwrap());
/// assert_eq!(user.id().as_str(), "user-42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiseUser(UserId);

impl WiseUser {
    /// Wraps the app's id of the logged-in user.
    pub fn new(user: UserId) -> Self {
        WiseUser(user)
    }

    /// The user id.
    pub fn id(&self) -> &UserId {
        &self.0
    }
}
