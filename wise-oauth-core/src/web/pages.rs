//! The plugin's HTML pages: what each one says, and how an app renders them its own way.

use http::StatusCode;

use super::html;

/// One HTML page the plugin answers a browser with (not logged in, link declined, Wise
/// unavailable, ...), as data: its status, a stable machine-readable reason, today's
/// English title and message, and at most one link (a trusted URL and its label).
///
/// A [`Pages`] implementation turns it into a document; [`Page::default_html`] is the
/// plugin's own page.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    status: StatusCode,
    reason: &'static str,
    title: &'a str,
    message: &'a str,
    link: Option<(&'a str, &'a str)>,
}

impl<'a> Page<'a> {
    /// A page; `link` is `(href, label)` with `href` a URL the plugin built.
    pub fn new(
        status: StatusCode,
        reason: &'static str,
        title: &'a str,
        message: &'a str,
        link: Option<(&'a str, &'a str)>,
    ) -> Self {
        Page {
            status,
            reason,
            title,
            message,
            link,
        }
    }

    /// The HTTP status the page is sent with (the renderer cannot change it).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why the page is shown: the same stable code as the `error` field of the JSON
    /// answers (`not_logged_in`, `wise_not_linked`, `wise_relink_required`,
    /// `wise_unavailable`, `wise_misconfigured`, `cross_site_request`) or, for a failed
    /// link, [`FlowError::reason`](crate::FlowError::reason) (`access_denied`,
    /// `unknown_state`, `browser_mismatch`, `unavailable`, ...). Match on it to translate.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The English title (plain text, not escaped).
    pub fn title(&self) -> &'a str {
        self.title
    }

    /// The English message (plain text, not escaped).
    pub fn message(&self) -> &'a str {
        self.message
    }

    /// The page's link, `(href, label)`: where the user goes next (log in, connect Wise
    /// again, try again). Plain text, not escaped.
    pub fn link(&self) -> Option<(&'a str, &'a str)> {
        self.link
    }

    /// The plugin's own page: a minimal self-contained document (no scripts, no
    /// third-party content) with every text escaped.
    pub fn default_html(&self) -> String {
        html::page(self.title, self.message, self.link)
    }
}

/// Renders the plugin's HTML pages, to brand or translate them; register it with the
/// adapters' `WiseRoutes::pages`. Only browsers get these pages (API clients get JSON), and
/// only the body changes: status and headers stay the plugin's. The default is
/// [`DefaultPages`].
///
/// Escape every text you put into the document ([`escape_html`]); the link's `href` is a
/// URL the plugin built, but escape it too when you put it into an attribute.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::{escape_html, Page, Pages};
///
/// /// German pages in the app's own layout.
/// struct German;
///
/// impl Pages for German {
///     fn render(&self, page: &Page<'_>) -> String {
///         let (title, message) = match page.reason() {
///             "access_denied" => ("Nicht verbunden", "Sie haben die Verbindung abgelehnt."),
///             "not_logged_in" => ("Bitte anmelden", "Melden Sie sich zuerst an."),
///             _ => (page.title(), page.message()),
///         };
///         let link = page
///             .link()
///             .map(|(href, _)| format!("<a href=\"{}\">Weiter</a>", escape_html(href)))
///             .unwrap_or_default();
///         format!(
///             "<!doctype html><html lang=\"de\"><title>{}</title><h1>{0}</h1><p>{}</p>{link}</html>",
///             escape_html(title),
///             escape_html(message),
///         )
///     }
/// }
///
/// let page = Page::new(http::StatusCode::BAD_REQUEST, "access_denied", "Not connected", "You declined.", None);
/// assert!(German.render(&page).contains("Nicht verbunden"));
/// ```
pub trait Pages: Send + Sync + 'static {
    /// The HTML document for `page`.
    fn render(&self, page: &Page<'_>) -> String;
}

/// The plugin's own pages ([`Page::default_html`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPages;

impl Pages for DefaultPages {
    fn render(&self, page: &Page<'_>) -> String {
        page.default_html()
    }
}

/// Escapes text for HTML element content and double-quoted attribute values (`&`, `<`,
/// `>`, `"`, `'`; control characters become spaces).
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// assert_eq!(wise_oauth::web::escape_html("<a href=\"x\">"), "&lt;a href=&quot;x&quot;&gt;");
/// ```
pub fn escape_html(text: &str) -> String {
    html::escape(text)
}
