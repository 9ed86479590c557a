//! The small HTML pages of the routes, with escaping.

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A minimal self-contained page (no scripts, no third-party content). `title` and
/// `message` are escaped here; `link` is a local path and its label: anything but a
/// same-origin absolute path (one leading `/`, never `//host`) is replaced by `/`.
pub(crate) fn page(title: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let link = link
        .map(|(href, label)| {
            let href = crate::flow::local_or_root(href);
            format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(label))
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}\
         h1{{font-size:1.4rem}}a{{color:#163300}}</style></head>\
         <body><h1>{title}</h1><p>{message}</p>{link}</body></html>\n",
        title = escape(title),
        message = escape(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let p = page("<b>", "a\u{0}b<i>", Some(("/x?a=\"1\"", "go")));
        assert!(!p.contains("<b>") && !p.contains("<i>") && !p.contains('\u{0}'));
        assert!(p.contains("href=\"/x?a=&quot;1&quot;\""), "{p}");
        let p = page("t", "m", Some(("/x?a=1&b=2", "go")));
        assert!(p.contains("href=\"/x?a=1&amp;b=2\""), "{p}");
    }

    #[test]
    fn links_are_never_protocol_relative() {
        for hostile in [
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "/%2F%2Fevil.com",
            "https://evil.com",
            "javascript:alert(1)",
            "",
        ] {
            let p = page("t", "m", Some((hostile, "go")));
            assert!(p.contains("<a href=\"/\">go</a>"), "{hostile}: {p}");
            assert!(!p.contains("evil") && !p.contains("javascript"), "{p}");
        }
    }
}
