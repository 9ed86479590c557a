//! Where the browser goes after linking: a same-origin relative path, validated once at the
//! start of a flow and kept in the pending record (never read from the callback).

use super::callback::percent_decode;

/// Where the browser lands when no (valid) `return_to` was given.
pub const DEFAULT_RETURN_TO: &str = "/";

/// The longest accepted `return_to`, in bytes.
pub(crate) const MAX_RETURN_TO_LEN: usize = 2048;

/// Returns `raw` when it is a safe local path, otherwise [`DEFAULT_RETURN_TO`].
///
/// Safe means, for the raw value and for the value after one percent-decode: exactly one
/// leading `/` (no `//`), no `\` anywhere, no control or non-ASCII characters, no
/// whitespace, valid percent-encoding, at most [`MAX_RETURN_TO_LEN`] bytes. A path that
/// starts with a single `/` cannot carry a scheme or a host.
pub(crate) fn sanitize(raw: Option<&str>) -> String {
    match raw {
        Some(value) if is_safe_local_path(value) => value.to_owned(),
        _ => DEFAULT_RETURN_TO.to_owned(),
    }
}

/// `raw` when it is a safe local path (see [`sanitize`]), otherwise [`DEFAULT_RETURN_TO`]:
/// for every link and `Location` the library renders, so none is ever protocol-relative
/// (`//evil.com`) or carries a scheme.
///
/// Checked like a `return_to`, except that only the path (before `?` or `#`) must also be
/// local after one percent-decode: a query's encoded characters are data, not a location.
pub(crate) fn local_or_root(raw: &str) -> &str {
    if is_local_link(raw) {
        raw
    } else {
        DEFAULT_RETURN_TO
    }
}

/// The longest link [`local_or_root`] keeps, in bytes.
const MAX_LINK_LEN: usize = 8192;

fn is_local_link(raw: &str) -> bool {
    if raw.is_empty() || raw.len() > MAX_LINK_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    if !path_shape_is_local(raw.as_bytes()) {
        return false;
    }
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    percent_decode(path, false).is_some_and(|decoded| {
        !decoded.iter().any(|b| b.is_ascii_control()) && path_shape_is_local(&decoded)
    })
}

fn is_safe_local_path(raw: &str) -> bool {
    if raw.is_empty() || raw.len() > MAX_RETURN_TO_LEN || !raw.is_ascii() {
        return false;
    }
    // Printable ASCII without space: no control characters, no header splitting.
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    if !path_shape_is_local(raw.as_bytes()) {
        return false;
    }
    let Some(decoded) = percent_decode(raw, false) else {
        return false;
    };
    if std::str::from_utf8(&decoded).is_err() {
        return false;
    }
    if decoded.iter().any(|b| b.is_ascii_control() || *b == b' ') {
        return false;
    }
    path_shape_is_local(&decoded)
}

fn path_shape_is_local(path: &[u8]) -> bool {
    path.first() == Some(&b'/') && path.get(1) != Some(&b'/') && !path.contains(&b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_fall_back_to_the_default() {
        for bad in [
            "https://evil.com",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/%2F%2Fevil.com",
            "/%2f%2fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "http:evil.com",
            "javascript:alert(1)",
            "java%09script:",
            "/x%0d%0aLocation:%20//evil",
            "/x\r\nLocation: //evil",
            "https://app.example.com.evil.com",
            "evil.com",
            "",
            " /path",
            "/path with space",
            "/tab\there",
            "/%",
            "/%zz",
            "/%ff",
            "/caf\u{e9}",
            "/\u{0}",
            "/%00",
        ] {
            assert_eq!(sanitize(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(
            sanitize(Some(&format!("/{}", "a".repeat(MAX_RETURN_TO_LEN)))),
            "/"
        );
        assert_eq!(sanitize(None), "/");
        assert_eq!(local_or_root("//evil.com/x"), "/");
        assert_eq!(local_or_root("/%2F%2Fevil.com"), "/");
        assert_eq!(local_or_root("/\\evil.com"), "/");
        assert_eq!(local_or_root("/%5Cevil.com"), "/");
        assert_eq!(local_or_root("/a?b=c d"), "/");
        for kept in [
            "/wise/connect?return_to=%2Fa",
            "/wise/connect?return_to=%2Fp%3F%5Cx",
            "/wise/connect?return_to=%2F%2Fevil.com",
        ] {
            assert_eq!(local_or_root(kept), kept);
        }
    }

    #[test]
    fn local_paths_are_kept() {
        for good in [
            "/",
            "/settings",
            "/settings/wise?tab=accounts&x=1",
            "/a/b#frag",
            "/caf%C3%A9",
            "/x:y",
            "/%252F%252Fevil.com",
        ] {
            assert_eq!(sanitize(Some(good)), good, "{good:?}");
        }
    }
}
