//! Key names: the configurable prefix and the injective, hash-tagged encoding of link keys.

use wise_oauth_core::LinkKey;

use crate::error::SetupError;

/// The default prefix of every key the store writes.
pub const DEFAULT_KEY_PREFIX: &str = "wise-oauth:";

/// The longest accepted key prefix, in bytes.
pub const MAX_KEY_PREFIX_LEN: usize = 64;

/// Checks a key prefix: at most [`MAX_KEY_PREFIX_LEN`] printable ASCII characters without
/// spaces, braces (they would change the hash tag), or the glob characters `*?[]\` (so a
/// `SCAN MATCH prefix*` finds exactly the store's keys). May be empty.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), SetupError> {
    let ok = prefix.len() <= MAX_KEY_PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"{}*?[]\\".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SetupError::InvalidKeyPrefix)
    }
}

/// Percent-encodes `part` into `out`: ASCII letters, digits and `-._~@` stay, every other
/// byte becomes `%XX` (uppercase hex). Injective, and the output never contains `:`, `{`
/// or `}`.
fn encode_part(out: &mut String, part: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// The hash tag of a link: `environment:client_id:user_id`, each part percent-encoded.
/// No part's encoding contains `:`, so the three parts are recovered unambiguously: the
/// tag is injective. It never contains `{` or `}`, so Redis Cluster hashes exactly the tag.
pub(crate) fn link_tag(key: &LinkKey) -> String {
    let mut tag = String::with_capacity(
        key.environment().len() + key.client_id().len() + key.user().as_str().len() + 2,
    );
    encode_part(&mut tag, key.environment());
    tag.push(':');
    encode_part(&mut tag, key.client_id());
    tag.push(':');
    encode_part(&mut tag, key.user().as_str());
    tag
}

/// Whether `tag` could have been made by [`link_tag`] (read back from a pending flow).
pub(crate) fn is_link_tag(tag: &str) -> bool {
    tag.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~@%:".contains(&b))
        && tag.bytes().filter(|&b| b == b':').count() == 2
}

/// Lowercase hex of a state hash: the member of an owner's flow index.
pub(crate) fn state_member(state_hash: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in state_hash {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `member` is a [`state_member`] (read back from an owner's flow index).
pub(crate) fn is_state_member(member: &str) -> bool {
    member.len() == 64
        && member
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The names of the store's keys under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn tagged(&self, tag: &str, suffix: &str) -> String {
        format!("{}{{{tag}}}:{suffix}", self.prefix)
    }

    /// `{prefix}{tag}:link`: the link's hash (version, record fields).
    pub(crate) fn link(&self, key: &LinkKey) -> String {
        self.tagged(&link_tag(key), "link")
    }

    /// `{prefix}{tag}:lease`: the refresh lease (holder, with a TTL).
    pub(crate) fn lease(&self, key: &LinkKey) -> String {
        self.tagged(&link_tag(key), "lease")
    }

    /// `{prefix}{environment:client_id}:users`: the users with a link of one environment
    /// and client (sorted set, every score 0, so members sort by their bytes), kept by the
    /// save and unlink scripts for [`list_links`](wise_oauth_core::TokenStore::list_links).
    /// Its tag has one `:` where a link's has two, so it never names a link's keys.
    pub(crate) fn users(&self, environment: &str, client_id: &str) -> String {
        let mut tag = String::with_capacity(environment.len() + client_id.len() + 1);
        encode_part(&mut tag, environment);
        tag.push(':');
        encode_part(&mut tag, client_id);
        self.tagged(&tag, "users")
    }

    /// `{prefix}{environment:client_id}:wise-users`: the links of each Wise user, as
    /// members `<wise user id>:<user id>` of a sorted set (every score 0), kept by the save
    /// and unlink scripts for
    /// [`links_of_wise_user`](wise_oauth_core::TokenStore::links_of_wise_user). Same tag
    /// (and cluster slot) as the users index.
    pub(crate) fn wise_users(&self, environment: &str, client_id: &str) -> String {
        let mut tag = String::with_capacity(environment.len() + client_id.len() + 1);
        encode_part(&mut tag, environment);
        tag.push(':');
        encode_part(&mut tag, client_id);
        self.tagged(&tag, "wise-users")
    }

    /// The index of the users of `key`'s environment and client (see [`Keys::users`]).
    pub(crate) fn users_of(&self, key: &LinkKey) -> String {
        self.users(key.environment(), key.client_id())
    }

    /// `{prefix}{tag}:flows`: the owner's index of pending flows (sorted set).
    pub(crate) fn flows_of_tag(&self, tag: &str) -> String {
        self.tagged(tag, "flows")
    }

    /// `{prefix}flow-owners`: the owners with pending flows (sorted set, scored by when
    /// their newest flow expires, Redis server time in ms), for the global cap.
    pub(crate) fn flow_owners(&self) -> String {
        format!("{}flow-owners", self.prefix)
    }

    /// `{prefix}flow:<state hash hex>`: one pending flow (with a TTL).
    pub(crate) fn flow(&self, member: &str) -> String {
        format!("{}flow:{member}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use wise_oauth_core::UserId;

    fn key(env: &str, client: &str, user: &str) -> LinkKey {
        LinkKey::new(env, client, UserId::new(user).unwrap())
    }

    #[test]
    fn prefixes_are_validated() {
        for good in ["", "wise-oauth:", "app:v1:", "a.b_c-d/e|f=g"] {
            assert!(validate_prefix(good).is_ok(), "{good:?}");
        }
        let long = "x".repeat(MAX_KEY_PREFIX_LEN + 1);
        for bad in [
            "a b", "{tag}", "a}", "a*", "a?", "[a]", "a\\b", "é", "a\n", &long,
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_are_injective_and_brace_free() {
        let parts = [
            "", "a", "b", "a:b", "b:c", "c", "a%3Ab", "a%b", "{x}", "}", "{", ":", "%", "%25", "é",
            "e\u{301}", "🦀", "a b", "a+b",
        ];
        let mut seen = HashSet::new();
        for env in parts {
            for client in parts {
                for user in parts.iter().filter(|u| !u.is_empty()) {
                    let k = key(env, client, user);
                    let tag = link_tag(&k);
                    assert!(!tag.contains('{') && !tag.contains('}'), "{tag}");
                    assert!(is_link_tag(&tag), "{tag}");
                    assert!(seen.insert(tag.clone()), "collision on {tag} for {k:?}");
                }
            }
        }
    }

    #[test]
    fn key_layout() {
        let keys = Keys::new("p:".to_owned());
        let k = key("sandbox", "client-1", "alice@example.com");
        assert_eq!(keys.link(&k), "p:{sandbox:client-1:alice@example.com}:link");
        assert_eq!(
            keys.lease(&key("sandbox", "c", "a:b{x}")),
            "p:{sandbox:c:a%3Ab%7Bx%7D}:lease"
        );
        let member = state_member(&[0xab; 32]);
        assert!(is_state_member(&member));
        assert!(!is_state_member(&member.to_uppercase()));
        assert_eq!(keys.flow(&member), format!("p:flow:{member}"));
    }
}
