//! Where the routes live: the path prefix and the URLs built from it.

use thiserror::Error;

/// The default path prefix of the routes: `/wise/connect`, `/wise/callback`, ...
pub const DEFAULT_PREFIX: &str = "/wise";

/// The path prefix under which an adapter serves the routes.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::Mount;
/// let mount = Mount::new("/integrations/wise").unwrap();
/// assert_eq!(mount.path("/connect"), "/integrations/wise/connect");
/// assert_eq!(
///     mount.connect_url(Some("/balances?currency=EUR")),
///     "/integrations/wise/connect?return_to=%2Fbalances%3Fcurrency%3DEUR"
/// );
/// assert!(Mount::new("wise").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    prefix: String,
}

/// The prefix is not an absolute path of plain segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "the route prefix must be empty or start with `/`, not end with `/`, and use only \
     letters, digits, `-`, `_`, `.` and `/` (no empty segments)"
)]
pub struct InvalidPrefix;

impl Default for Mount {
    fn default() -> Self {
        Mount {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl Mount {
    /// Validates a prefix: `""` (routes at the root) or `/seg[/seg...]` with segments of
    /// letters, digits, `-`, `_` and `.`.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid = prefix.is_empty()
            || (prefix.starts_with('/')
                && prefix[1..].split('/').all(|seg| {
                    !seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                }));
        if valid {
            Ok(Mount {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(InvalidPrefix)
        }
    }

    /// The prefix (`""` or `/...` without a trailing slash).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full path of a route, `route` starting with `/` (e.g. `"/connect"`).
    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.prefix)
    }

    /// The connect URL, with `return_to` (a local path) percent-encoded when given.
    pub fn connect_url(&self, return_to: Option<&str>) -> String {
        match return_to {
            Some(r) => format!(
                "{}?return_to={}",
                self.path("/connect"),
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            ),
            None => self.path("/connect"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for ok in ["", "/wise", "/a/b-c_d.e"] {
            assert!(Mount::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "wise", "/wise/", "//wise", "/a//b", "/../x", "/w ise", "/w?x", "/é",
        ] {
            assert!(Mount::new(bad).is_err(), "{bad}");
        }
    }
}
