//! Where the plugin's answers lead into the app: its login, its own pages after a failed
//! link, and the look of the plugin's HTML pages.

use std::fmt;
use std::sync::Arc;

use super::pages::{DefaultPages, Page, Pages};
use super::reply::Reply;
use super::setup::SetupError;

/// The placeholder of a login URL that is replaced by the percent-encoded path to come
/// back to after logging in.
pub const RETURN_TO_PLACEHOLDER: &str = "{return_to}";

/// The query parameter carrying a failed link's reason back into the app when
/// [`Hooks::error_redirect`] is on (`/settings?wise_error=access_denied`).
pub const ERROR_PARAM: &str = "wise_error";

/// The app's hooks into the plugin's answers, set through the adapters' `WiseRoutes`
/// (`login_url`, `error_redirect`, `pages`). The defaults are the plugin's own answers:
/// a 401 page linking to `/`, the plugin's error page after a failed link, and
/// [`DefaultPages`].
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::Hooks;
///
/// let hooks = Hooks::default().login_url("/login?next={return_to}")?.error_redirect(true);
/// assert_eq!(hooks.login_url_for("/wise/connect?return_to=%2F").as_deref(),
///            Some("/login?next=%2Fwise%2Fconnect%3Freturn_to%3D%252F"));
/// assert!(Hooks::default().login_url("//evil.example").is_err());
/// # Ok::<(), wise_oauth::web::SetupError>(())
/// ```
#[derive(Clone)]
pub struct Hooks {
    login_url: Option<String>,
    error_redirect: bool,
    pages: Arc<dyn Pages>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            login_url: None,
            error_redirect: false,
            pages: Arc::new(DefaultPages),
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("login_url", &self.login_url)
            .field("error_redirect", &self.error_redirect)
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// Where a browser without a logged-in user is sent: a GET (or HEAD) is redirected
    /// (303) there, other requests get a 401 page linking there, and API clients find it
    /// as `login_url` in the 401 JSON. A local path (`/login`) or an absolute `http(s)`
    /// URL (a separate login site); [`RETURN_TO_PLACEHOLDER`] in it is replaced by the
    /// percent-encoded path to come back to (the path of the request, or the connect route
    /// for a callback, so a code and state never reach the login page); like any
    /// `next` parameter, your login should follow it only when it is a local path.
    /// Default: none (a 401 page linking to `/`).
    pub fn login_url(mut self, url: impl Into<String>) -> Result<Self, SetupError> {
        let url = url.into();
        if !is_valid_login_url(&url) {
            return Err(SetupError::InvalidLoginUrl { url });
        }
        self.login_url = Some(url);
        Ok(self)
    }

    /// On a declined or failed link, redirect the browser (303) back into the app instead
    /// of showing the plugin's error page: to the flow's `return_to` with
    /// [`ERROR_PARAM`]`=<reason>` added (`/settings?wise_error=access_denied`; the reasons
    /// are [`FlowError::reason`](crate::FlowError::reason)). When the callback cannot be
    /// tied to this user's flow in this browser (unknown or replayed state, another
    /// browser), its `return_to` is not trusted and the target is
    /// [`DEFAULT_RETURN_TO`](crate::DEFAULT_RETURN_TO). Default: off.
    pub fn error_redirect(mut self, on: bool) -> Self {
        self.error_redirect = on;
        self
    }

    /// How the plugin's HTML pages look. Default: [`DefaultPages`].
    pub fn pages(mut self, pages: impl Pages) -> Self {
        self.pages = Arc::new(pages);
        self
    }

    /// The login URL for coming back to `return_to`, when one is set.
    pub fn login_url_for(&self, return_to: &str) -> Option<String> {
        self.login_url.as_ref().map(|template| {
            let encoded: String =
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
            template.replace(RETURN_TO_PLACEHOLDER, &encoded)
        })
    }

    /// Whether a failed link goes back into the app.
    pub fn redirects_errors(&self) -> bool {
        self.error_redirect
    }

    /// A page rendered by the app's [`Pages`], as a complete HTML answer.
    pub(crate) fn page(&self, page: &Page<'_>) -> Reply {
        Reply::html(page.status(), self.pages.render(page))
    }
}

/// A local path (one leading `/`) or an absolute `http(s)` URL, printable ASCII only.
fn is_valid_login_url(url: &str) -> bool {
    let printable =
        !url.is_empty() && url.len() <= 2048 && url.bytes().all(|b| b.is_ascii_graphic());
    let local = url.starts_with('/') && !url.starts_with("//") && !url.contains('\\');
    let absolute = (url.starts_with("https://") || url.starts_with("http://"))
        && url::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
    printable && (local || absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_urls() {
        for ok in [
            "/login",
            "/login?next={return_to}",
            "https://auth.example.com/login?to={return_to}",
        ] {
            assert!(Hooks::default().login_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "login",
            "//evil",
            "/\\evil",
            "/a b",
            "javascript:alert(1)",
            "https://",
            "/x\r\n",
        ] {
            assert!(Hooks::default().login_url(bad).is_err(), "{bad}");
        }
        let hooks = Hooks::default().login_url("/login").unwrap();
        assert_eq!(hooks.login_url_for("/x").as_deref(), Some("/login"));
        assert_eq!(Hooks::default().login_url_for("/x"), None);
    }
}
