//! Who the current user is: the app tells the plugin.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use wise_oauth_core::UserId;

/// The logged-in app user, as a request extension your auth middleware inserts.
///
/// The plugin reads it (unless you registered a
/// [`WiseRoutes::user_resolver`](crate::WiseRoutes::user_resolver)) in the routes and in
/// the [`WiseToken`](crate::WiseToken) extractor. No extension means "not logged in": 401.
///
/// ```
/// use wise_oauth_axum::WiseUser;
/// use wise_oauth_core::UserId;
///
/// let mut req = axum::http::Request::new(());
/// req.extensions_mut().insert(WiseUser::new(UserId::new("user-42").unwrap()));
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

pub(crate) type Resolver = Arc<dyn Fn(&Parts) -> Option<UserId> + Send + Sync + 'static>;

pub(crate) fn from_extension(parts: &Parts) -> Option<UserId> {
    parts.extensions.get::<WiseUser>().map(|u| u.0.clone())
}

/// Debug for the resolver slot without printing the closure.
pub(crate) struct ResolverDebug<'a>(pub(crate) &'a Option<Resolver>);

impl fmt::Debug for ResolverDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "custom"
        } else {
            "WiseUser extension"
        })
    }
}
