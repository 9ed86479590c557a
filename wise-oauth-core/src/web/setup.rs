//! The checks a plugin's settings pass before any route is mounted, and their error.

use thiserror::Error;

use super::mount::InvalidPrefix;

/// Settings the routes cannot work with, found when an adapter builds its routes
/// (`WiseRoutes::router` / `WiseRoutes::configure`, which panic with this message like an
/// invalid route pattern) or by `WiseRoutes::check`, which returns it.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::SetupError;
///
/// let e = SetupError::CallbackMismatch {
///     redirect_uri_path: "/wise/callback".into(),
///     callback_route: "/integrations/wise/callback".into(),
/// };
/// let text = e.to_string();
/// assert!(text.contains("/wise/callback") && text.contains("/integrations/wise/callback"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The route prefix is not a valid path prefix.
    #[error("invalid prefix {prefix:?}: {source}")]
    InvalidPrefix {
        /// The prefix as given.
        prefix: String,
        /// What is wrong with it.
        source: InvalidPrefix,
    },
    /// Wise would send the user back to a path the mounted callback route does not serve.
    #[error(
        "the configured redirect URI has the path `{redirect_uri_path}`, but the callback \
         route is mounted at `{callback_route}`: Wise would send every user to a path with no \
         route. Set the prefix so that `{{prefix}}/callback` is `{redirect_uri_path}` (and \
         mount the routes with `merge`/`configure` on the app itself, not under a nested \
         path), or register `{callback_route}` at Wise and configure it as the redirect URI"
    )]
    CallbackMismatch {
        /// The path of the configured redirect URI.
        redirect_uri_path: String,
        /// The path of the mounted callback route (`{prefix}/callback`).
        callback_route: String,
    },
    /// The login URL is neither a local path nor an `http(s)` URL.
    #[error(
        "invalid login URL {url:?}: use a local path (`/login?next={{return_to}}`) or an \
         absolute http(s) URL, without spaces or control characters"
    )]
    InvalidLoginUrl {
        /// The URL as given.
        url: String,
    },
}

/// A setup error as an I/O error (kind `InvalidInput`), for `?` in actix-web's usual
/// `main() -> std::io::Result<()>`.
impl From<SetupError> for std::io::Error {
    fn from(e: SetupError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// The path of a redirect URI (`/` when it has none).
pub(crate) fn redirect_uri_path(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "/".to_owned())
}

/// The callback route must be the path of the redirect URI.
pub(crate) fn check_callback(redirect_uri: &str, callback_route: &str) -> Result<(), SetupError> {
    let redirect_uri_path = redirect_uri_path(redirect_uri);
    if redirect_uri_path == callback_route {
        Ok(())
    } else {
        Err(SetupError::CallbackMismatch {
            redirect_uri_path,
            callback_route: callback_route.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_must_be_the_redirect_path() {
        assert_eq!(
            check_callback("https://app.example.com/wise/callback", "/wise/callback"),
            Ok(())
        );
        let e =
            check_callback("https://app.example.com/wise/callback?x=1", "/a/callback").unwrap_err();
        assert_eq!(
            e,
            SetupError::CallbackMismatch {
                redirect_uri_path: "/wise/callback".into(),
                callback_route: "/a/callback".into(),
            }
        );
    }
}
