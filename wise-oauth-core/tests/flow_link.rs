//! The web link flow against the emulator: happy path, replay, binding, expiry, profile
//! verification, error callbacks, return_to, PKCE, floods and relink races.

mod flow_support;

use std::time::Duration;

use flow_support::*;
use url::Url;
use wise_oauth_core::{CallbackProblem, FlowError, ProviderErrorCode};

fn assert_reason(result: Result<impl std::fmt::Debug, FlowError>, reason: &str) -> FlowError {
    match result {
        Ok(v) => panic!("expected {reason}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.reason(), reason, "{e:?}");
            e
        }
    }
}

#[tokio::test]
async fn whole_link_flow_links_the_consented_profile() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(
            &alice,
            &wise_oauth_core::LinkOptions::new().return_to("/settings/wise?tab=1"),
            None,
        )
        .await
        .unwrap();
    let url = start.authorize_url();
    assert!(url.as_str().starts_with(&env.mock.authorize_url()));
    assert_eq!(param(url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(param(url, "redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(param(url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(url, "state").unwrap().len(), 43);
    assert_eq!(param(url, "code_challenge"), None, "PKCE is opt-in");
    // The state never shows in Debug output.
    let shown = format!("{start:?}");
    assert!(!shown.contains(&param(url, "state").unwrap()), "{shown}");

    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let done = env
        .wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    assert_eq!(done.profile_id().get(), 30000000);
    assert_eq!(done.return_to(), "/settings/wise?tab=1");
    assert_eq!(
        env.wise.clear_binding_cookie(),
        "wise_oauth_binding=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    );
    assert_eq!(env.code_exchanges(), 1);

    let token = env.wise.token(&alice).await.unwrap();
    assert_eq!(token.profile_id().get(), 30000000);
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
    let status = env.wise.status(&alice).await.unwrap().unwrap();
    assert_eq!(status.profile_id.get(), 30000000);
    assert!(!status.relink_required);
}

#[tokio::test]
async fn binding_cookie_is_reused_and_plain_http_has_no_secure_flag() {
    let env = setup().await;
    let alice = user("app-alice");
    let first = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let id = cookie_value(first.set_cookie());
    assert_eq!(id.len(), 43);
    assert_eq!(
        first.set_cookie(),
        format!("wise_oauth_binding={id}; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax")
    );
    let second = env
        .wise
        .start_link(&alice, &Default::default(), Some(&id))
        .await
        .unwrap();
    assert_eq!(cookie_value(second.set_cookie()), id);
    let third = env
        .wise
        .start_link(&alice, &Default::default(), Some("forged; Domain=evil.com"))
        .await
        .unwrap();
    assert_ne!(cookie_value(third.set_cookie()), id);
    assert!(!third.set_cookie().contains("evil"));
    // Both flows of the same browser complete (several tabs).
    let q1 = env.callback_query(&first).await;
    let q2 = env.callback_query(&second).await;
    env.wise
        .complete_link(&alice, &q2, Some(&id))
        .await
        .unwrap();
    env.wise
        .complete_link(&alice, &q1, Some(&id))
        .await
        .unwrap();
}

#[tokio::test]
async fn https_redirect_uri_makes_the_cookie_secure() {
    let options = Options {
        redirect_uri: "https://app.example.com/wise/callback".to_owned(),
        ..Options::default()
    };
    let env = setup_with(options).await;
    let start = env
        .wise
        .start_link(&user("u"), &Default::default(), None)
        .await
        .unwrap();
    assert!(start
        .set_cookie()
        .ends_with("; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax; Secure"));
    assert!(start.set_cookie().starts_with("__Host-wise_oauth_binding="));
    assert_eq!(env.wise.binding_cookie_name(), "__Host-wise_oauth_binding");
    assert_eq!(
        env.wise.clear_binding_cookie(),
        "__Host-wise_oauth_binding=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
    );
}

#[tokio::test]
async fn replayed_state_is_rejected_and_exchanged_once() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    env.wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    let again = env.wise.complete_link(&alice, &query, Some(&cookie)).await;
    let e = assert_reason(again, "unknown_state");
    assert_eq!(e.status(), 400);
    assert_eq!(
        env.code_exchanges(),
        1,
        "the emulator saw exactly one exchange"
    );
}

#[tokio::test]
async fn state_started_by_another_user_is_rejected_and_consumed() {
    let env = setup().await;
    let (alice, mallory) = (user("app-alice"), user("app-mallory"));
    let start = env
        .wise
        .start_link(&mallory, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let r = env.wise.complete_link(&alice, &query, Some(&cookie)).await;
    assert!(matches!(
        assert_reason(r, "user_mismatch"),
        FlowError::UserMismatch
    ));
    // Consumed: not even the rightful user can use it now.
    let r = env
        .wise
        .complete_link(&mallory, &query, Some(&cookie))
        .await;
    assert_reason(r, "unknown_state");
    assert_eq!(env.token_calls(), 0);
    assert!(env.wise.status(&alice).await.unwrap().is_none());
}

#[tokio::test]
async fn callback_in_another_browser_is_rejected_and_consumed() {
    let env = setup().await;
    let alice = user("app-alice");
    for other_cookie in [None, Some("A".repeat(43)), Some(String::new())] {
        let start = env
            .wise
            .start_link(&alice, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        let r = env
            .wise
            .complete_link(&alice, &query, other_cookie.as_deref())
            .await;
        assert_reason(r, "browser_mismatch");
        let r = env.wise.complete_link(&alice, &query, Some(&cookie)).await;
        assert_reason(r, "unknown_state");
    }
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn expired_state_is_rejected() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    env.clock.advance(Duration::from_secs(31 * 60));
    let r = env.wise.complete_link(&alice, &query, Some(&cookie)).await;
    assert_reason(r, "unknown_state");
    assert_eq!(env.token_calls(), 0);
    // A flow started after the clock moved works.
    env.link(&alice).await.unwrap();
}

#[tokio::test]
async fn state_differing_in_one_char_or_case_is_unknown_and_leaves_the_flow_intact() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let state = raw_param(&query, "state").unwrap().to_owned();
    let mut one_char = state.clone().into_bytes();
    one_char[10] = if one_char[10] == b'A' { b'B' } else { b'A' };
    let one_char = String::from_utf8(one_char).unwrap();
    let swapped_case: String = state
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    for bad in [
        one_char,
        swapped_case,
        format!("{state}A"),
        state[..42].to_owned(),
    ] {
        let q = with_param(&query, "state", Some(&bad));
        let r = env.wise.complete_link(&alice, &q, Some(&cookie)).await;
        assert_reason(r, "unknown_state");
    }
    assert_eq!(env.token_calls(), 0);
    env.wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_state_is_rejected_without_token_calls() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let r = env
        .wise
        .complete_link(&alice, &with_param(&query, "state", None), Some(&cookie))
        .await;
    assert!(matches!(
        assert_reason(r, "missing_state"),
        FlowError::MissingState
    ));
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn malformed_callback_still_consumes_its_state() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let doubled = format!("{query}&code=other");
    let r = env
        .wise
        .complete_link(&alice, &doubled, Some(&cookie))
        .await;
    let e = assert_reason(r, "malformed_callback");
    assert!(matches!(
        e,
        FlowError::MalformedCallback {
            problem: CallbackProblem::DuplicateParameter
        }
    ));
    let r = env.wise.complete_link(&alice, &query, Some(&cookie)).await;
    assert_reason(r, "unknown_state");
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn non_canonical_profile_ids_are_rejected_before_any_call() {
    let env = setup().await;
    let alice = user("app-alice");
    for bad in [
        "%2B30000000",
        "0030000000",
        "%EF%BC%93%EF%BC%90",
        "12345678901234567890",
    ] {
        let start = env
            .wise
            .start_link(&alice, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        let q = with_param(&query, "profileId", Some(bad));
        let r = env.wise.complete_link(&alice, &q, Some(&cookie)).await;
        let e = assert_reason(r, "malformed_callback");
        assert_eq!(e.status(), 400);
    }
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn tampered_profile_id_is_rejected_and_nothing_is_stored() {
    let env = setup().await;
    let alice = user("app-alice");
    // Bob's profile, and Alice's own business profile she did not consent to.
    for foreign in ["30000002", "30000001"] {
        let start = env
            .wise
            .start_link(&alice, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        assert_eq!(raw_param(&query, "profileId"), Some("30000000"));
        let q = with_param(&query, "profileId", Some(foreign));
        let r = env.wise.complete_link(&alice, &q, Some(&cookie)).await;
        let e = assert_reason(r, "profile_rejected");
        assert!(matches!(e, FlowError::ProfileRejected));
        assert!(env.wise.status(&alice).await.unwrap().is_none());
    }
    assert_eq!(env.code_exchanges(), 2);
}

#[tokio::test]
async fn missing_profile_id_is_resolved_through_the_api() {
    let env = setup().await;
    let alice = user("app-alice");
    for spelling in ["profileID", "profileid"] {
        let start = env
            .wise
            .start_link(&alice, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        let q = with_param(&query, "profileId", None);
        let q = with_param(&q, spelling, Some("30000000"));
        let done = env
            .wise
            .complete_link(&alice, &q, Some(&cookie))
            .await
            .unwrap();
        assert_eq!(done.profile_id().get(), 30000000);
    }
    let before = env.mock.stats().endpoint_requests("GET /v2/profiles");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let q = with_param(&query, "profileId", None);
    let done = env
        .wise
        .complete_link(&alice, &q, Some(&cookie))
        .await
        .unwrap();
    assert_eq!(done.profile_id().get(), 30000000);
    assert_eq!(
        env.mock.stats().endpoint_requests("GET /v2/profiles"),
        before + 1,
        "the profile list was read"
    );
    assert_eq!(
        env.wise
            .status(&alice)
            .await
            .unwrap()
            .unwrap()
            .profile_id
            .get(),
        30000000
    );
}

#[tokio::test]
async fn access_denied_with_a_valid_state_is_denied_and_consumes_the_state() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let state = param(start.authorize_url(), "state").unwrap();
    let denied = format!(
        "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}"
    );
    let r = env.wise.complete_link(&alice, &denied, Some(&cookie)).await;
    let e = assert_reason(r, "access_denied");
    assert!(matches!(e, FlowError::Denied));
    assert_eq!(e.status(), 400);
    assert!(!format!("{e} {e:?}").contains("script"));
    // The real approval arriving afterwards finds the state consumed.
    let query = env.callback_query(&start).await;
    let r = env.wise.complete_link(&alice, &query, Some(&cookie)).await;
    assert_reason(r, "unknown_state");
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn other_error_callbacks_are_provider_errors() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let state = param(start.authorize_url(), "state").unwrap();
    let r = env
        .wise
        .complete_link(
            &alice,
            &format!("error=server_error&state={state}"),
            Some(&cookie),
        )
        .await;
    let e = assert_reason(r, "provider_error");
    assert!(matches!(
        e,
        FlowError::ProviderError {
            code: ProviderErrorCode::ServerError
        }
    ));
    assert_eq!(e.status(), 502);
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn hostile_return_to_lands_on_the_default_path() {
    let env = setup().await;
    let alice = user("app-alice");
    for hostile in [
        "https://evil.com",
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\/evil.com",
        "/%2F%2Fevil.com",
        "http:evil.com",
        "javascript:alert(1)",
        "java%09script:",
        "/x%0d%0aLocation:%20//evil",
        "https://app.example.com.evil.com",
    ] {
        let start = env
            .wise
            .start_link(
                &alice,
                &wise_oauth_core::LinkOptions::new().return_to(hostile),
                None,
            )
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        // Even a return_to smuggled into the callback is ignored.
        let q = format!("{query}&return_to=https%3A%2F%2Fevil.com");
        let done = env
            .wise
            .complete_link(&alice, &q, Some(&cookie))
            .await
            .unwrap();
        assert_eq!(done.return_to(), "/", "{hostile}");
    }
}

#[tokio::test]
async fn pkce_is_sent_and_enforced_by_the_emulator() {
    let env = setup_with(Options {
        pkce: true,
        ..Options::default()
    })
    .await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let url = start.authorize_url().clone();
    let challenge = param(&url, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43);
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    env.wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();

    // Code injection: flow X's code with flow Y's state → the verifier does not match.
    let x = env
        .wise
        .start_link(&alice, &Default::default(), Some(&cookie))
        .await
        .unwrap();
    let y = env
        .wise
        .start_link(&alice, &Default::default(), Some(&cookie))
        .await
        .unwrap();
    assert_ne!(
        param(x.authorize_url(), "code_challenge"),
        param(y.authorize_url(), "code_challenge"),
        "a fresh verifier per flow"
    );
    let qx = env.callback_query(&x).await;
    let qy = env.callback_query(&y).await;
    let injected = with_param(&qy, "code", raw_param(&qx, "code"));
    let before = env.wise.token(&alice).await.unwrap();
    let r = env
        .wise
        .complete_link(&alice, &injected, Some(&cookie))
        .await;
    let e = assert_reason(r, "code_rejected");
    assert!(matches!(e, FlowError::Exchange(_)));
    assert_eq!(env.mock.stats().token_successes("authorization_code"), 1);
    // The earlier link is untouched.
    let after = env.wise.token(&alice).await.unwrap();
    assert_eq!(
        before.access_token().expose_secret(),
        after.access_token().expose_secret()
    );
}

#[tokio::test]
async fn a_flood_of_bogus_callbacks_makes_no_token_calls() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    for i in 0..1000u32 {
        let state: String = (0..43)
            .map(|j| {
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                alphabet[((i as usize) * 31 + j * 7 + (i as usize >> 3)) % 64] as char
            })
            .collect();
        let q = format!("code=CODE{i}&state={state}&profileId=30000000");
        let r = env.wise.complete_link(&alice, &q, Some(&cookie)).await;
        assert!(matches!(r, Err(FlowError::UnknownState)), "{i}");
    }
    assert_eq!(env.token_calls(), 0);
    assert_eq!(env.mock.stats().endpoint_requests("GET /v2/profiles"), 0);
    // The genuine flow still works.
    let query = env.callback_query(&start).await;
    env.wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
}

#[tokio::test]
async fn two_tabs_finishing_out_of_order_keep_the_later_grant() {
    let env = setup().await;
    let alice = user("app-alice");
    let tab1 = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(tab1.set_cookie());
    let tab2 = env
        .wise
        .start_link(&alice, &Default::default(), Some(&cookie))
        .await
        .unwrap();
    let q1 = env.callback_query(&tab1).await;
    let q2 = env.callback_query(&tab2).await;
    // Tab 2 finishes first, then tab 1: tab 1's grant is the later one.
    env.wise
        .complete_link(&alice, &q2, Some(&cookie))
        .await
        .unwrap();
    let first = env.wise.token(&alice).await.unwrap();
    env.wise
        .complete_link(&alice, &q1, Some(&cookie))
        .await
        .unwrap();
    let stored = env.wise.token(&alice).await.unwrap();
    assert_ne!(
        first.access_token().expose_secret(),
        stored.access_token().expose_secret()
    );
    let issued = env.mock.user_tokens(ALICE);
    let live: Vec<_> = issued
        .iter()
        .filter(|t| t.client_id == CLIENT_ID && t.profile_id == 30000000)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].access_token.as_deref(),
        Some(stored.access_token().expose_secret()),
        "the store holds the emulator's current grant"
    );
    let rt = live[0].refresh_token.as_deref().unwrap();
    assert!(env.mock.refresh_token_is_valid(rt));
    assert!(env
        .mock
        .access_token_is_valid(stored.access_token().expose_secret()));
}

#[tokio::test]
async fn redirect_uri_is_the_configured_string_byte_for_byte() {
    // A registered redirect URI with its own query string and encoded characters.
    let redirect = "http://127.0.0.1:3000/wise/callback?tenant=a%20b&x=1+2";
    let env = setup_with(Options {
        redirect_uri: redirect.to_owned(),
        ..Options::default()
    })
    .await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    assert_eq!(
        param(start.authorize_url(), "redirect_uri").as_deref(),
        Some(redirect)
    );
    assert_eq!(env.wise.config().redirect_uri(), redirect);
    let cookie = cookie_value(start.set_cookie());
    let location = env.authorize(start.authorize_url()).await;
    // Wise appends its parameters to the registered URI; the adapter passes the raw query.
    let query = location.query().unwrap().to_owned();
    let done = env
        .wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    assert_eq!(done.profile_id().get(), 30000000);
    // The emulator checks redirect_uri at the token call too: the exchange succeeded.
    assert_eq!(env.mock.stats().token_successes("authorization_code"), 1);
}

#[tokio::test]
async fn authorize_url_keeps_no_trace_of_request_headers() {
    // There is no API through which a Host or X-Forwarded-* value could enter: the
    // authorize URL depends only on the configuration (and fresh randomness).
    let env = setup().await;
    let a = env
        .wise
        .start_link(&user("a"), &Default::default(), None)
        .await
        .unwrap();
    let b = env
        .wise
        .start_link(
            &user("b"),
            &wise_oauth_core::LinkOptions::new().return_to("/x"),
            None,
        )
        .await
        .unwrap();
    let strip = |u: &Url| {
        u.query_pairs()
            .filter(|(k, _)| k != "state")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(a.authorize_url()), strip(b.authorize_url()));
    assert_eq!(
        a.authorize_url().origin(),
        Url::parse(&env.mock.authorize_url()).unwrap().origin()
    );
}

#[tokio::test]
async fn claim_account_code_is_passed_through_and_redacted() {
    let env = setup().await;
    let alice = user("app-alice");
    let options = wise_oauth_core::LinkOptions::new()
        .return_to("/onboarding")
        .claim_account_code("CLAIM-CANARY-123");
    assert!(!format!("{options:?}").contains("CLAIM-CANARY"));
    let start = env.wise.start_link(&alice, &options, None).await.unwrap();
    assert_eq!(
        param(start.authorize_url(), "claim_account_code").as_deref(),
        Some("CLAIM-CANARY-123")
    );
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let done = env
        .wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    assert_eq!(done.return_to(), "/onboarding");

    let bad = wise_oauth_core::LinkOptions::new().claim_account_code("bad code\n");
    let e = env.wise.start_link(&alice, &bad, None).await.unwrap_err();
    // The user's (or the app's) bad input, not a misconfiguration: a 400 naming it.
    assert!(matches!(e, FlowError::InvalidClaimAccountCode), "{e:?}");
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(e.reason(), "invalid_claim_account_code");
}

#[tokio::test]
async fn many_starts_by_one_user_do_not_disturb_other_users() {
    let env = setup().await;
    let (flooder, bob) = (user("app-flooder"), user("app-bob"));
    let bob_start = env
        .wise
        .start_link(&bob, &Default::default(), None)
        .await
        .unwrap();
    let first = env
        .wise
        .start_link(&flooder, &Default::default(), None)
        .await
        .unwrap();
    let first_cookie = cookie_value(first.set_cookie());
    for _ in 0..2000 {
        env.wise
            .start_link(&flooder, &Default::default(), None)
            .await
            .unwrap();
    }
    // The flooder's oldest flow was dropped (bounded per user)...
    let q = env.callback_query(&first).await;
    let r = env
        .wise
        .complete_link(&flooder, &q, Some(&first_cookie))
        .await;
    assert_reason(r, "unknown_state");
    // ...while another user's flow is untouched.
    let cookie = cookie_value(bob_start.set_cookie());
    let q = env.callback_query(&bob_start).await;
    env.wise
        .complete_link(&bob, &q, Some(&cookie))
        .await
        .unwrap();
}
