//! `WiseOAuthBuilder`: defaults, encryption of pending flows, event handlers, errors.

mod flow_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flow_support::*;
use wise_oauth_core::{
    ConfigError, EncryptionKeys, LinkKey, MemoryPendingStore, PendingStore, StoreError, WiseEvent,
    WiseOAuth,
};

/// One `insert` call: owner, sealed bytes, TTL.
type Written = (LinkKey, Vec<u8>, Duration);

/// A pending store that remembers every value written to it.
#[derive(Debug, Clone, Default)]
struct Spy {
    inner: MemoryPendingStore,
    written: Arc<Mutex<Vec<Written>>>,
}

#[async_trait]
impl PendingStore for Spy {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.written
            .lock()
            .unwrap()
            .push((owner.clone(), pending.to_vec(), ttl));
        self.inner.insert(state_hash, owner, pending, ttl).await
    }
    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.take(state_hash).await
    }
}

#[tokio::test]
async fn pending_flows_are_sealed_with_the_configured_keys() {
    let env = setup_with(Options {
        pkce: true,
        ..Options::default()
    })
    .await;
    let spy = Spy::default();
    let wise = WiseOAuth::builder(config_for(&env.mock, &env.options))
        .pending_store(spy.clone())
        .encryption(EncryptionKeys::new().key("k1", [7; 32]))
        .build()
        .unwrap();
    let alice = user("app-alice-unique-name");
    let start = wise
        .start_link(
            &alice,
            &wise_oauth_core::LinkOptions::new().return_to("/very-private-path"),
            None,
        )
        .await
        .unwrap();
    {
        let written = spy.written.lock().unwrap();
        let (owner, bytes, ttl) = &written[0];
        assert_eq!(owner, &wise.link_key(&alice));
        assert_eq!(*ttl, Duration::from_secs(30 * 60));
        assert_eq!(bytes[0], 1, "encrypted format");
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("very-private-path") && !text.contains("app-alice-unique-name"));
    }
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    wise.complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
}

#[tokio::test]
async fn without_keys_pending_flows_are_plain_but_hold_no_state() {
    let env = setup().await;
    let spy = Spy::default();
    let wise = WiseOAuth::builder(config_for(&env.mock, &env.options))
        .pending_store(spy.clone())
        .build()
        .unwrap();
    let start = wise
        .start_link(&user("u"), &Default::default(), None)
        .await
        .unwrap();
    let state = param(start.authorize_url(), "state").unwrap();
    let cookie = cookie_value(start.set_cookie());
    let written = spy.written.lock().unwrap();
    let text = String::from_utf8_lossy(&written[0].1);
    // Only hashes of the state (the key) and of the binding id are kept.
    assert!(!text.contains(&state));
    assert!(!text.contains(&cookie));
}

#[tokio::test]
async fn event_handlers_see_linked_and_unlinked() {
    let env = setup().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let wise = WiseOAuth::builder(config_for(&env.mock, &env.options))
        .on_event(move |e: &WiseEvent| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let alice = user("app-alice");
    let start = wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let done = wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    assert!(wise.unlink(&alice).await.unwrap());
    assert!(wise.status(&alice).await.unwrap().is_none());
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            WiseEvent::Linked {
                user: alice.clone(),
                profile_id: done.profile_id()
            },
            WiseEvent::Unlinked { user: alice }
        ]
    );
}

#[tokio::test]
async fn an_empty_key_list_is_a_configuration_error() {
    let env = setup().await;
    let e = WiseOAuth::builder(config_for(&env.mock, &env.options))
        .encryption(EncryptionKeys::new())
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        ConfigError::Invalid {
            setting: "encryption",
            ..
        }
    ));
}

#[tokio::test]
async fn a_cache_of_no_links_is_a_configuration_error() {
    let env = setup().await;
    let e = WiseOAuth::builder(config_for(&env.mock, &env.options))
        .cache_capacity(0)
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        ConfigError::Invalid {
            setting: "cache_capacity",
            ..
        }
    ));
}

#[tokio::test]
async fn clones_share_state_and_debug_is_redacted() {
    let env = setup().await;
    let wise = env.wise.clone();
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    // Started on one clone, completed on another.
    wise.complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    assert!(env.wise.token(&alice).await.is_ok());
    let shown = format!("{wise:?}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert_eq!(wise.link_key(&alice).environment(), "emulator");
    assert_eq!(wise.link_key(&alice).client_id(), CLIENT_ID);
}

#[derive(Debug)]
struct Veto {
    allow: bool,
    seen: Arc<Mutex<Vec<(String, u64, bool)>>>,
    mock: wise_oauth_mock::MockWiseHandle,
}

#[async_trait]
impl wise_oauth_core::ProfileCheck for Veto {
    async fn accept(
        &self,
        user: &wise_oauth_core::UserId,
        profile: &wise_oauth_core::ProfileSummary,
        access_token: &wise_oauth_core::AccessToken,
    ) -> bool {
        let valid = self
            .mock
            .access_token_is_valid(access_token.expose_secret());
        self.seen
            .lock()
            .unwrap()
            .push((user.to_string(), profile.id.get(), valid));
        self.allow
    }
}

#[tokio::test]
async fn the_profile_check_can_veto_a_link() {
    let env = setup().await;
    for allow in [false, true] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let wise = WiseOAuth::builder(config_for(&env.mock, &env.options))
            .profile_check(Veto {
                allow,
                seen: seen.clone(),
                mock: env.mock.clone(),
            })
            .build()
            .unwrap();
        let alice = user("app-alice");
        let start = wise
            .start_link(&alice, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        let result = wise.complete_link(&alice, &query, Some(&cookie)).await;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![("app-alice".to_owned(), 30000000, true)],
            "the check saw the verified profile and the new (valid) token"
        );
        if allow {
            assert_eq!(result.unwrap().profile_id().get(), 30000000);
            assert!(wise.status(&alice).await.unwrap().is_some());
        } else {
            let e = result.unwrap_err();
            assert_eq!(e.reason(), "profile_rejected");
            assert!(wise.status(&alice).await.unwrap().is_none());
        }
    }
}
