//! The HTML of the authorization pages: plain forms, small inline CSS, everything escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::users::ProfileKind;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2F;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f2f5f7;color:#0e0f0c}\
header{background:#163300;color:#9fe870;padding:14px 24px;font-weight:700;font-size:20px;letter-spacing:.5px}\
header small{color:#d2f5b8;font-weight:400;font-size:12px;margin-left:10px}\
main{max-width:420px;margin:40px auto;background:#fff;border-radius:16px;padding:28px 32px;box-shadow:0 2px 12px rgba(0,0,0,.08)}\
h1{font-size:22px;margin:0 0 8px}\
p{line-height:1.45;color:#454745}\
label{display:block;font-weight:600;margin:14px 0 6px}\
input[type=email],input[type=password],input[type=text]{width:100%;padding:11px 12px;border:1px solid #c9cbce;border-radius:10px;font-size:16px}\
button{margin-top:18px;width:100%;padding:12px;border:0;border-radius:24px;font-size:16px;font-weight:600;cursor:pointer;background:#9fe870;color:#163300}\
button.secondary{background:#fff;border:1px solid #c9cbce;color:#0e0f0c}\
.error{background:#ffeceb;color:#a8200d;border-radius:10px;padding:10px 12px;margin:10px 0}\
.choice{display:flex;gap:10px;align-items:center;border:1px solid #c9cbce;border-radius:10px;padding:12px;margin:8px 0;cursor:pointer}\
.choice small{color:#6a6c6a;display:block}\
.hint{font-size:13px;color:#6a6c6a;margin-top:22px;border-top:1px solid #eee;padding-top:12px}\
code{background:#f2f5f7;padding:1px 5px;border-radius:4px}";

/// A full page with the given status.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} · Wise (emulator)</title><style>{CSS}</style></head><body>\
<header>wise<small>OAuth emulator — not the real Wise</small></header><main>{body}</main></body></html>",
        title = escape(title),
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    resp
}

fn error_box(error: Option<&str>) -> String {
    error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default()
}

fn hidden(session: &str, step: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"session\" value=\"{}\"><input type=\"hidden\" name=\"step\" value=\"{}\">",
        escape(session),
        escape(step)
    )
}

/// An error page with no way back to the client (bad client or redirect URI, expired session).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p class=\"hint\">You can close this window.</p>",
            escape(title),
            escape(message)
        ),
    )
}

/// Step 1: email and password.
pub(crate) fn login_page(
    status: StatusCode,
    session: &str,
    client_id: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    page(
        status,
        "Log in",
        &format!(
            "<h1>Log in to continue</h1><p><strong>{client}</strong> wants to connect to your Wise account.</p>{err}\
<form method=\"post\" action=\"\">{hidden}\
<label for=\"email\">Email</label><input type=\"email\" id=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Log in</button></form>\
<p class=\"hint\">Demo users: <code>alice@example.com</code> and <code>bob@example.com</code> (2FA), password <code>password1</code>.</p>",
            client = escape(client_id),
            err = error_box(error),
            hidden = hidden(session, "login"),
            email = escape(email),
        ),
    )
}

/// Step 2 (users with 2FA): the code.
pub(crate) fn two_factor_page(
    status: StatusCode,
    session: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    page(
        status,
        "Two-step verification",
        &format!(
            "<h1>Two-step verification</h1><p>Enter the 6-digit code sent to the phone of <strong>{email}</strong>.</p>{err}\
<form method=\"post\" action=\"\">{hidden}\
<label for=\"code\">Code</label><input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" required autofocus>\
<button type=\"submit\">Verify</button></form>\
<p class=\"hint\">As in Wise's sandbox, the code is always <code>111111</code>.</p>",
            email = escape(email),
            err = error_box(error),
            hidden = hidden(session, "2fa"),
        ),
    )
}

/// A profile as the choice page shows it.
pub(crate) struct ProfileChoice {
    pub(crate) id: u64,
    pub(crate) kind: ProfileKind,
    pub(crate) name: String,
}

/// Step 3: one profile.
pub(crate) fn profile_page(
    status: StatusCode,
    session: &str,
    client_id: &str,
    profiles: &[ProfileChoice],
    error: Option<&str>,
) -> Response {
    if profiles.is_empty() {
        return page(
            status,
            "Choose a profile",
            &format!(
                "<h1>No profile yet</h1><p>This Wise account has no profile, so it cannot be connected to <strong>{client}</strong>.</p>{err}\
<form method=\"post\" action=\"\">{hidden}<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Cancel and go back</button></form>",
                client = escape(client_id),
                err = error_box(error),
                hidden = hidden(session, "consent"),
            ),
        );
    }
    let mut choices = String::new();
    for (i, p) in profiles.iter().enumerate() {
        let kind = match p.kind {
            ProfileKind::Personal => "Personal",
            ProfileKind::Business => "Business",
        };
        choices.push_str(&format!(
            "<label class=\"choice\"><input type=\"radio\" name=\"profileId\" value=\"{id}\"{checked}><span>{name}<small>{kind} · {id}</small></span></label>",
            id = p.id,
            checked = if i == 0 { " checked" } else { "" },
            name = escape(&p.name),
        ));
    }
    page(
        status,
        "Choose a profile",
        &format!(
            "<h1>Choose a profile</h1><p><strong>{client}</strong> will get access to one profile only.</p>{err}\
<form method=\"post\" action=\"\">{hidden}{choices}<button type=\"submit\">Continue</button></form>",
            client = escape(client_id),
            err = error_box(error),
            hidden = hidden(session, "profile"),
        ),
    )
}

/// Step 4: approve or deny.
pub(crate) fn consent_page(
    status: StatusCode,
    session: &str,
    client_id: &str,
    profile: &ProfileChoice,
    error: Option<&str>,
) -> Response {
    page(
        status,
        "Allow access",
        &format!(
            "<h1>Allow access?</h1><p><strong>{client}</strong> wants to access your <strong>{name}</strong> profile ({id}) to:</p>\
<ul><li>see your profile and balances</li><li>create and fund transfers</li></ul>{err}\
<form method=\"post\" action=\"\">{hidden}\
<button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>",
            client = escape(client_id),
            name = escape(&profile.name),
            id = profile.id,
            err = error_box(error),
            hidden = hidden(session, "consent"),
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(
            super::escape("<script>\"a\"&'b'</script>"),
            "&lt;script&gt;&quot;a&quot;&amp;&#x27;b&#x27;&lt;&#x2F;script&gt;"
        );
    }
}
