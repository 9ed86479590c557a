//! Who the current user is: the app tells the plugin.

use std::fmt;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use wise_oauth_core::UserId;

/// The logged-in app user, as a request extension your auth middleware inserts.
///
/// The plugin reads it (unless you registered a
/// [`WiseRoutes::user_resolver`](crate::WiseRoutes::user_resolver)) in the routes and in
/// the [`WiseToken`](crate::WiseToken) extractor. No extension means "not logged in": 401.
/// Your own handlers can read it back with `web::ReqData<WiseUser>`.
///
/// ```
/// use actix_web::HttpMessage;
/// use wise_oauth_actix::WiseUser;
/// use wise_oauth_core::UserId;
///
/// let req = actix_web::test::TestRequest::default().to_http_request();
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

pub(crate) type Resolver = Arc<dyn Fn(&HttpRequest) -> Option<UserId> + Send + Sync + 'static>;

pub(crate) fn from_extension(req: &HttpRequest) -> Option<UserId> {
    req.extensions().get::<WiseUser>().map(|u| u.0.clone())
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
