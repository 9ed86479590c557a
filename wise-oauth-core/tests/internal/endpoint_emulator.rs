//! The token endpoint and the API client against the emulator (`wise-oauth-mock`).

use std::time::{Duration, SystemTime};

use wise_oauth_mock::{
    Fault, MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS,
};

use super::*;
use crate::api::{ProfileKind, SignupOutcome, WiseApi};
use crate::clock::TimeSource;
use crate::config::{Environment, WiseConfigBuilder};
use crate::ids::ProfileId;
use crate::secret::{AccessToken, ClientSecret};

const ALICE: &str = "alice@example.com";

struct Env {
    wise: MockWiseHandle,
    config: WiseConfig,
    endpoint: TokenEndpoint,
    api: WiseApi,
}

async fn start(tune: impl FnOnce(WiseConfigBuilder) -> WiseConfigBuilder) -> Env {
    let wise = MockWise::builder()
        .auto_approve(ALICE)
        .start()
        .await
        .unwrap();
    let env = Environment::custom("emulator", &wise.base_url(), &wise.authorize_url()).unwrap();
    let config = tune(
        WiseConfig::builder(
            DEMO_CLIENT_ID,
            ClientSecret::new(DEMO_CLIENT_SECRET),
            DEMO_REDIRECT_URIS[0],
        )
        .environment(env),
    )
    .build()
    .unwrap();
    let endpoint = TokenEndpoint::new(&config, TimeSource::System).unwrap();
    let api = WiseApi::new(&config, &endpoint);
    Env {
        wise,
        config,
        endpoint,
        api,
    }
}

/// Runs the auto-approved authorization step and returns (code, profileId).
async fn authorize(env: &Env) -> (AuthorizationCode, u64) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = env.config.authorize_url().clone();
    url.query_pairs_mut()
        .append_pair("client_id", env.config.client_id())
        .append_pair("redirect_uri", env.config.redirect_uri())
        .append_pair("state", "state-123")
        .append_pair("response_type", "code");
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(env.config.redirect_uri()),
        "{location}"
    );
    let location = url::Url::parse(&location).unwrap();
    let get = |k: &str| {
        location
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(get("state").as_deref(), Some("state-123"));
    (
        AuthorizationCode::new(get("code").unwrap()),
        get("profileId").unwrap().parse().unwrap(),
    )
}

#[tokio::test]
async fn code_exchange_via_auto_approve() {
    let env = start(|b| b).await;
    let (code, profile) = authorize(&env).await;
    assert_eq!(profile, 30000000);
    let before = SystemTime::now();
    let tokens = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap();
    assert!(env
        .wise
        .access_token_is_valid(tokens.access_token.expose_secret()));
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(env.wise.refresh_token_is_valid(refresh.expose_secret()));
    assert_eq!(tokens.scope.as_deref(), Some("transfers"));
    let lifetime = tokens.expires_at.duration_since(before).unwrap();
    assert!(
        lifetime > Duration::from_secs(43190) && lifetime <= Duration::from_secs(43200),
        "{lifetime:?}"
    );
    assert!(
        tokens.refresh_token_expires_at.unwrap() > before + Duration::from_secs(10 * 365 * 86400)
    );
    assert_eq!(env.wise.stats().token_successes("authorization_code"), 1);

    // The code is single-use: a second exchange is invalid_grant and is not retried.
    let err = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap_err();
    assert!(err.needs_relink(), "{err:?}");
    assert_eq!(env.wise.stats().token_requests("authorization_code"), 2);
    env.wise.shutdown().await;
}

#[tokio::test]
async fn refresh_replaces_the_access_token_and_keeps_the_refresh_token() {
    let env = start(|b| b).await;
    let (code, _) = authorize(&env).await;
    let first = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap();
    let first_set = first.clone().into_token_set(None).unwrap();
    let refreshed = env
        .endpoint
        .refresh(&first_set.refresh_token)
        .await
        .unwrap();
    let set = refreshed
        .into_token_set(Some(&first_set.refresh_token))
        .unwrap();
    assert_ne!(
        set.access_token.expose_secret(),
        first_set.access_token.expose_secret()
    );
    assert!(env
        .wise
        .access_token_is_valid(set.access_token.expose_secret()));
    assert!(
        !env.wise
            .access_token_is_valid(first_set.access_token.expose_secret()),
        "old access token dies"
    );
    assert!(env
        .wise
        .refresh_token_is_valid(set.refresh_token.expose_secret()));
    assert_eq!(env.wise.stats().token_successes("refresh_token"), 1);

    // With rotation on, the new refresh token is taken.
    env.wise.set_rotate_refresh_tokens(true);
    let rotated = env.endpoint.refresh(&set.refresh_token).await.unwrap();
    let rotated = rotated.into_token_set(Some(&set.refresh_token)).unwrap();
    assert_ne!(
        rotated.refresh_token.expose_secret(),
        set.refresh_token.expose_secret()
    );
    assert!(env
        .wise
        .refresh_token_is_valid(rotated.refresh_token.expose_secret()));

    // A revoked user: invalid_grant, exactly one request.
    env.wise.revoke(ALICE);
    let before = env.wise.stats().token_requests("refresh_token");
    let err = env
        .endpoint
        .refresh(&rotated.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err, WiseError::InvalidGrant { status: 400 });
    assert_eq!(env.wise.stats().token_requests("refresh_token"), before + 1);
    env.wise.shutdown().await;
}

#[tokio::test]
async fn email_change_makes_refresh_forbidden() {
    let env = start(|b| b).await;
    let (code, _) = authorize(&env).await;
    let set = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap()
        .into_token_set(None)
        .unwrap();
    env.wise.change_email(ALICE, "alice2@example.com");
    let err = env.endpoint.refresh(&set.refresh_token).await.unwrap_err();
    // Wise answers 403 with invalid_grant: a dead link (a bare 403 would be a gateway's).
    assert_eq!(err, WiseError::InvalidGrant { status: 403 });
    assert!(err.needs_relink());
    env.wise.shutdown().await;
}

#[tokio::test]
async fn client_credentials_token() {
    let env = start(|b| b).await;
    let before = SystemTime::now();
    let app = env.endpoint.client_credentials().await.unwrap();
    assert!(env
        .wise
        .access_token_is_valid(app.access_token.expose_secret()));
    assert!(app.expires_at > before + Duration::from_secs(43000));
    assert_eq!(env.wise.stats().token_successes("client_credentials"), 1);
    env.wise.shutdown().await;
}

#[tokio::test]
async fn wrong_client_secret_is_a_configuration_error() {
    let wise = MockWise::builder().start().await.unwrap();
    let env = Environment::custom("emulator", &wise.base_url(), &wise.authorize_url()).unwrap();
    let config = WiseConfig::builder(
        DEMO_CLIENT_ID,
        ClientSecret::new("wrong"),
        DEMO_REDIRECT_URIS[0],
    )
    .environment(env)
    .build()
    .unwrap();
    let endpoint = TokenEndpoint::new(&config, TimeSource::System).unwrap();
    let err = endpoint
        .refresh(&RefreshToken::new("whatever"))
        .await
        .unwrap_err();
    assert!(err.is_configuration(), "{err:?}");
    assert_eq!(wise.stats().total_token_requests(), 1);
    wise.shutdown().await;
}

#[tokio::test]
async fn registration_code_grant_for_a_user_created_through_signup() {
    let env = start(|b| b).await;
    let app = env
        .endpoint
        .client_credentials()
        .await
        .unwrap()
        .access_token;
    let email = "carol@example.com";
    let code = RegistrationCode::new("a".repeat(24) + &uuid::Uuid::new_v4().simple().to_string());
    let outcome = env
        .api
        .signup(&app, email, &code, Some("en"))
        .await
        .unwrap();
    assert!(
        matches!(outcome, SignupOutcome::Created { wise_user_id } if wise_user_id > 0),
        "{outcome:?}"
    );
    // A second signup with the same email: 409 NOT_UNIQUE -> use the link flow.
    let again = env.api.signup(&app, email, &code, None).await.unwrap();
    assert_eq!(again, SignupOutcome::AlreadyExists);
    assert_eq!(
        env.api.signup(&app, ALICE, &code, None).await.unwrap(),
        SignupOutcome::AlreadyExists
    );

    let tokens = env.endpoint.registration_code(email, &code).await.unwrap();
    let set = tokens.into_token_set(None).unwrap();
    assert!(env
        .wise
        .access_token_is_valid(set.access_token.expose_secret()));
    let profiles = env.api.profiles(&set.access_token).await.unwrap();
    assert!(!profiles.is_empty());
    let one = env
        .api
        .profile(&set.access_token, profiles[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.id, profiles[0].id);

    // A wrong registration code: invalid_grant (401 at Wise), not retried.
    let before = env.wise.stats().token_requests("registration_code");
    let err = env
        .endpoint
        .registration_code(email, &RegistrationCode::new("b".repeat(40)))
        .await
        .unwrap_err();
    assert!(matches!(err, WiseError::InvalidGrant { .. }), "{err:?}");
    assert_eq!(
        env.wise.stats().token_requests("registration_code"),
        before + 1
    );
    env.wise.shutdown().await;
}

#[tokio::test]
async fn versioned_token_path_against_the_emulator() {
    let env = start(|b| b.api_version("2026Q3")).await;
    assert!(env
        .config
        .token_url()
        .path()
        .starts_with("/2026Q3/oauth/token"));
    let (code, _) = authorize(&env).await;
    let tokens = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap();
    assert!(env
        .wise
        .access_token_is_valid(tokens.access_token.expose_secret()));
    env.wise.shutdown().await;
}

#[tokio::test]
async fn profiles_are_verified_through_the_api() {
    let env = start(|b| b).await;
    let (code, profile) = authorize(&env).await;
    let set = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap()
        .into_token_set(None)
        .unwrap();
    let consented = ProfileId::new(profile).unwrap();
    let p = env
        .api
        .profile(&set.access_token, consented)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.id, consented);
    assert_eq!(p.kind, ProfileKind::Personal);
    assert!(p.visible);
    // Alice's business profile was not consented: not visible to this token.
    let other = ProfileId::new(30000001).unwrap();
    assert_eq!(
        env.api.profile(&set.access_token, other).await.unwrap(),
        None
    );
    let all = env.api.profiles(&set.access_token).await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![consented]
    );
    // A dead token: Unauthorized.
    let err = env
        .api
        .profiles(&AccessToken::new("00000000-0000-0000-0000-000000000000"))
        .await
        .unwrap_err();
    assert_eq!(err, WiseError::Unauthorized);
    env.wise.shutdown().await;
}

#[tokio::test]
async fn emulator_faults_rate_limit_lost_response_and_sca() {
    let env = start(|b| b).await;
    let (code, _) = authorize(&env).await;
    let set = env
        .endpoint
        .exchange_code(&code, env.config.redirect_uri(), None)
        .await
        .unwrap()
        .into_token_set(None)
        .unwrap();

    env.wise
        .inject_fault(Fault::rate_limit("token:refresh_token", 1));
    env.endpoint.refresh(&set.refresh_token).await.unwrap();
    assert_eq!(
        env.wise.stats().token_requests("refresh_token"),
        2,
        "429 honoured, then retried once"
    );

    // The lost response: Wise processed the refresh, the answer never arrived. The retry
    // with the same (non-rotating) refresh token succeeds.
    env.wise
        .inject_fault(Fault::drop_after_processing("token:refresh_token"));
    let again = env.endpoint.refresh(&set.refresh_token).await.unwrap();
    assert!(env
        .wise
        .access_token_is_valid(again.access_token.expose_secret()));
    assert_eq!(env.wise.stats().token_requests("refresh_token"), 4);

    env.wise.inject_fault(
        Fault::status_with_type("token", 502, "<h1>Bad gateway</h1>", "text/html").times(3),
    );
    let err = env.endpoint.refresh(&set.refresh_token).await.unwrap_err();
    assert_eq!(
        err,
        WiseError::Unavailable {
            status: Some(502),
            retry_after: None,
            source: None,
        }
    );

    let id = env.api.profiles(&again.access_token).await.unwrap()[0].id;
    env.wise.inject_fault(Fault::sca("profiles"));
    let err = env.api.profile(&again.access_token, id).await.unwrap_err();
    assert!(
        matches!(err, WiseError::Sca { .. }),
        "an SCA 403 is not 'profile not visible': {err:?}"
    );
    env.wise.inject_fault(Fault::sca("profiles"));
    let err = env.api.profiles(&again.access_token).await.unwrap_err();
    assert!(
        matches!(err, WiseError::Sca { ref one_time_token } if !one_time_token.is_empty()),
        "{err:?}"
    );
    env.wise.shutdown().await;
}
