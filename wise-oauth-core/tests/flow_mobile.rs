//! The mobile link flow: custom-scheme redirect, no binding cookie, completion from fields.

mod flow_support;

use flow_support::*;
use url::Url;
use wise_oauth_core::{
    ClientSecret, Environment, FlowError, MobileCallback, WiseConfig, WiseOAuth,
};

#[tokio::test]
async fn mobile_start_and_complete_link_the_profile() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env.wise.start_mobile_link(&alice).await.unwrap();
    let url = start.authorize_url();
    assert_eq!(
        param(url, "redirect_uri").as_deref(),
        Some(MOBILE_REDIRECT_URI)
    );
    assert_eq!(
        param(url, "state").as_deref(),
        Some(start.state().expose_secret())
    );
    assert!(!format!("{start:?}").contains(start.state().expose_secret()));

    let location = env.authorize(url).await;
    assert!(location.as_str().starts_with(MOBILE_REDIRECT_URI));
    let code = param(&location, "code").unwrap();
    let state = param(&location, "state").unwrap();
    let profile = param(&location, "profileId");
    let done = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Fields {
                code: &code,
                state: &state,
                profile_id: profile.as_deref(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.profile_id().get(), 30000000);
    assert_eq!(done.return_to(), "/");
    assert!(env.wise.token(&alice).await.is_ok());

    // Replay → unknown state, still one exchange.
    let r = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Fields {
                code: &code,
                state: &state,
                profile_id: profile.as_deref(),
            },
        )
        .await;
    assert!(matches!(r, Err(FlowError::UnknownState)));
    assert_eq!(env.code_exchanges(), 1);
}

#[tokio::test]
async fn mobile_completion_checks_user_and_profile() {
    let env = setup().await;
    let (alice, mallory) = (user("app-alice"), user("app-mallory"));
    let start = env.wise.start_mobile_link(&alice).await.unwrap();
    let location = env.authorize(start.authorize_url()).await;
    let code = param(&location, "code").unwrap();
    let state = param(&location, "state").unwrap();
    let r = env
        .wise
        .complete_mobile_link(
            &mallory,
            MobileCallback::Fields {
                code: &code,
                state: &state,
                profile_id: Some("30000000"),
            },
        )
        .await;
    assert!(matches!(r, Err(FlowError::UserMismatch)));

    let start = env.wise.start_mobile_link(&alice).await.unwrap();
    let location = env.authorize(start.authorize_url()).await;
    let code = param(&location, "code").unwrap();
    let state = param(&location, "state").unwrap();
    let r = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Fields {
                code: &code,
                state: &state,
                profile_id: Some("30000002"),
            },
        )
        .await;
    assert!(matches!(r, Err(FlowError::ProfileRejected)));
    assert!(env.wise.status(&alice).await.unwrap().is_none());

    // Missing profileId: resolved; bad spelling of the number: rejected before any call.
    let start = env.wise.start_mobile_link(&alice).await.unwrap();
    let location = env.authorize(start.authorize_url()).await;
    let code = param(&location, "code").unwrap();
    let state = param(&location, "state").unwrap();
    let calls = env.token_calls();
    let r = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Fields {
                code: &code,
                state: &state,
                profile_id: Some("+30000000"),
            },
        )
        .await;
    assert_eq!(r.unwrap_err().reason(), "malformed_callback");
    assert_eq!(env.token_calls(), calls);
    // ...and that state was consumed.
    let r = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Fields {
                code: &code,
                state: &state,
                profile_id: None,
            },
        )
        .await;
    assert!(matches!(r, Err(FlowError::UnknownState)));
}

#[tokio::test]
async fn web_and_mobile_states_do_not_mix() {
    let env = setup().await;
    let alice = user("app-alice");
    // A mobile state on the web callback.
    let start = env.wise.start_mobile_link(&alice).await.unwrap();
    let location = env.authorize(start.authorize_url()).await;
    let r = env
        .wise
        .complete_link(&alice, location.query().unwrap(), None)
        .await;
    assert!(matches!(r, Err(FlowError::WrongFlow)));
    // A web state through the mobile completion.
    let web = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let query = env.callback_query(&web).await;
    let q = Url::parse(&format!("http://x/?{query}")).unwrap();
    let r = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Fields {
                code: &param(&q, "code").unwrap(),
                state: &param(&q, "state").unwrap(),
                profile_id: None,
            },
        )
        .await;
    assert!(matches!(r, Err(FlowError::WrongFlow)));
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn mobile_deep_link_query_handles_denial() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env.wise.start_mobile_link(&alice).await.unwrap();
    let state = start.state().expose_secret().to_owned();
    let r = env
        .wise
        .complete_mobile_link(
            &alice,
            MobileCallback::Query(&format!("error=access_denied&state={state}")),
        )
        .await;
    assert!(matches!(r, Err(FlowError::Denied)));
    let location = env.authorize(start.authorize_url()).await;
    let r = env
        .wise
        .complete_mobile_link(&alice, MobileCallback::Query(location.query().unwrap()))
        .await;
    assert!(matches!(r, Err(FlowError::UnknownState)));
}

#[tokio::test]
async fn mobile_start_without_a_mobile_redirect_uri_is_misconfigured() {
    let env = setup().await;
    let config = WiseConfig::builder(CLIENT_ID, ClientSecret::new(CLIENT_SECRET), REDIRECT_URI)
        .environment(
            Environment::custom("emulator", &env.mock.base_url(), &env.mock.authorize_url())
                .unwrap(),
        )
        .build()
        .unwrap();
    let wise = WiseOAuth::builder(config).build().unwrap();
    let e = wise.start_mobile_link(&user("u")).await.unwrap_err();
    assert!(matches!(e, FlowError::Misconfigured));
    assert_eq!(e.status(), 500);
    assert_eq!(e.reason(), "misconfigured");
}
