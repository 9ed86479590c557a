//! The token endpoint: grants, lifetimes, PKCE, refresh rules, user actions.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wise_oauth_mock::{MockWise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

fn ts(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("timestamp"), &Rfc3339).expect("rfc3339")
}

#[tokio::test]
async fn authorization_code_grant_returns_every_field_from_one_clock() {
    let wise = start().await;
    let params = login_and_approve(&wise, "alice@example.com", None, &[]).await;
    let (status, body) = exchange(&wise, param(&params, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(is_uuid(body["access_token"].as_str().unwrap()));
    assert!(is_uuid(body["refresh_token"].as_str().unwrap()));
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "transfers");
    assert_eq!(body["expires_in"], 43199);
    let created = ts(&body["created_at"]);
    let expires = ts(&body["expires_at"]);
    let rt_expires = ts(&body["refresh_token_expires_at"]);
    let rt_in = body["refresh_token_expires_in"].as_i64().unwrap();
    assert!(rt_in > 19 * 365 * 86_400 && rt_in < i64::from(i32::MAX));
    // Millisecond truncation is the only slack.
    let d = (expires - created).whole_milliseconds();
    assert!((43_199_000 - 1..=43_199_000).contains(&d), "{d}");
    let d = (rt_expires - created).whole_seconds();
    assert!((rt_in - 1..=rt_in).contains(&d));
    let raw_created = body["created_at"].as_str().unwrap();
    assert_eq!(raw_created.len(), "2023-12-06T18:28:14.206824830Z".len());
    assert_eq!(
        body["expires_at"].as_str().unwrap().len(),
        "2025-04-11T03:43:28.148Z".len()
    );
    assert_eq!(wise.stats().token_requests("authorization_code"), 1);
    assert_eq!(wise.stats().token_successes("authorization_code"), 1);
    let tokens = wise.user_tokens("alice@example.com");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].profile_id, 30000000);
    assert_eq!(tokens[0].client_id, DEMO_CLIENT_ID);
    assert_eq!(
        tokens[0].access_token.as_deref(),
        body["access_token"].as_str()
    );
}

#[tokio::test]
async fn client_credentials_has_no_user_fields() {
    let wise = start().await;
    let (status, body) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_at",
            "expires_in",
            "scope",
            "token_type"
        ]
    );
    assert!(wise.access_token_is_valid(body["access_token"].as_str().unwrap()));
}

#[tokio::test]
async fn versioned_path_works_and_bad_versions_do_not() {
    let wise = start().await;
    for path in ["/2026Q3/oauth/token", "/2025Q1/oauth/token"] {
        let (status, _) = token_at(
            &wise,
            path,
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    for path in ["/2026Q5/oauth/token", "/v1/oauth/token"] {
        let (status, body) = token_at(
            &wise,
            path,
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string());
    }
    assert_eq!(wise.stats().endpoint_requests("POST /oauth/token"), 4);
    assert_eq!(wise.stats().token_successes("client_credentials"), 2);
}

#[tokio::test]
async fn registration_code_grant_and_reclaim() {
    let wise = start().await;
    let (_, cc) = token(&wise, &[("grant_type", "client_credentials")]).await;
    let app_token = cc["access_token"].as_str().unwrap();
    let reg = "r".repeat(40);
    let resp = http()
        .post(format!(
            "{}/v1/user/signup/registration_code",
            wise.base_url()
        ))
        .bearer_auth(app_token)
        .json(&json!({"email": "new@example.com", "registrationCode": reg}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let form = [
        ("grant_type", "registration_code"),
        ("client_id", DEMO_CLIENT_ID),
        ("email", "new@example.com"),
        ("registration_code", reg.as_str()),
    ];
    let (status, body) = token(&wise, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string() && body["created_at"].is_string());
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    // Wrong code: 401 invalid_grant "Invalid user credentials."
    let mut bad = form;
    bad[3] = ("registration_code", "x");
    let (status, body) = token(&wise, &bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Invalid user credentials."})
    );
    // Reclaim: the code is dead and so is the refresh token.
    wise.reclaim("new@example.com");
    let (status, body) = token(&wise, &form).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_description"], "Invalid user credentials.");
    let (status, body) = refresh(&wise, &rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_s256_and_plain() {
    let wise = start().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let s256 = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let code_form = |code: &str, v: Option<&str>| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", DEMO_CLIENT_ID.to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
        ];
        if let Some(v) = v {
            f.push(("code_verifier", v.to_owned()));
        }
        f
    };
    async fn send(
        wise: &wise_oauth_mock::MockWiseHandle,
        f: Vec<(&str, String)>,
    ) -> (StatusCode, Value) {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        token(wise, &f).await
    }
    // Wrong verifier fails (and burns nothing: the right one then works).
    let code = auto_code(&wise, "alice@example.com", &s256).await;
    let (status, body) = send(&wise, code_form(&code, Some(&"a".repeat(43)))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = auto_code(&wise, "alice@example.com", &s256).await;
    let (status, _) = send(&wise, code_form(&code, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let code = auto_code(&wise, "alice@example.com", &s256).await;
    let (status, body) = send(&wise, code_form(&code, Some(verifier))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // plain
    let plain = [
        ("code_challenge", verifier),
        ("code_challenge_method", "plain"),
    ];
    let code = auto_code(&wise, "alice@example.com", &plain).await;
    let (status, _) = send(&wise, code_form(&code, Some(challenge))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let code = auto_code(&wise, "alice@example.com", &plain).await;
    let (status, _) = send(&wise, code_form(&code, Some(verifier))).await;
    assert_eq!(status, StatusCode::OK);
    // No challenge: a verifier is not needed.
    let code = auto_code(&wise, "alice@example.com", &[]).await;
    let (status, _) = send(&wise, code_form(&code, None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn code_is_single_use_and_expires_after_30_minutes() {
    let wise = start().await;
    let code = auto_code(&wise, "alice@example.com", &[]).await;
    assert_eq!(exchange(&wise, &code).await.0, StatusCode::OK);
    let (status, body) = exchange(&wise, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let code = auto_code(&wise, "alice@example.com", &[]).await;
    wise.advance_clock(Duration::from_secs(29 * 60));
    let code2 = auto_code(&wise, "alice@example.com", &[]).await;
    wise.advance_clock(Duration::from_secs(61));
    let (status, body) = exchange(&wise, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(exchange(&wise, &code2).await.0, StatusCode::OK);
    assert_eq!(wise.clock_offset(), Duration::from_secs(30 * 60 + 1));
    assert!(wise.now() > SystemTime::now() + Duration::from_secs(29 * 60));
    let (status, body) = exchange(&wise, "ABCDEF").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn code_is_tied_to_redirect_uri_and_client() {
    let wise = start().await;
    wise.register_client("other", "other-secret", [REDIRECT]);
    let code = auto_code(&wise, "alice@example.com", &[]).await;
    let (status, body) = token(
        &wise,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEMO_CLIENT_ID),
            ("code", &code),
            ("redirect_uri", "http://localhost:3000/wise/callback"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = auto_code(&wise, "alice@example.com", &[]).await;
    let (status, body) = token_at(
        &wise,
        "/oauth/token",
        "other",
        "other-secret",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "other"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let wise = start().await;
    for (id, secret) in [(DEMO_CLIENT_ID, "wrong"), ("unknown", "x")] {
        let (status, body) = token_at(
            &wise,
            "/oauth/token",
            id,
            secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"error": "invalid_client"}));
    }
}

#[tokio::test]
async fn refresh_kills_the_old_access_token_and_keeps_the_refresh_token() {
    let wise = start().await;
    let (at1, rt) = link(&wise, "alice@example.com").await;
    let (status, body) = refresh(&wise, &rt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at2 = body["access_token"].as_str().unwrap();
    assert_eq!(body["refresh_token"].as_str(), Some(rt.as_str()));
    assert_ne!(at1, at2);
    assert!(!wise.access_token_is_valid(&at1));
    assert!(wise.access_token_is_valid(at2));
    assert_eq!(
        get_api(&wise, "/v1/me", &at1).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get_api(&wise, "/v1/me", at2).await.status(), StatusCode::OK);
    // Refresh-token expiry fields stay fixed without rotation.
    let (_, body2) = refresh(&wise, &rt).await;
    assert_eq!(
        body2["refresh_token_expires_at"],
        body["refresh_token_expires_at"]
    );
    assert_eq!(wise.stats().token_successes("refresh_token"), 2);
}

#[tokio::test]
async fn rotation_can_be_switched_on() {
    let wise = MockWise::builder()
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let (_, rt1) = link(&wise, "alice@example.com").await;
    let (status, body) = refresh(&wise, &rt1).await;
    assert_eq!(status, StatusCode::OK);
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert!(!wise.refresh_token_is_valid(&rt1));
    assert_eq!(refresh(&wise, &rt1).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&wise, &rt2).await.0, StatusCode::OK);
    wise.set_rotate_refresh_tokens(false);
    let rt3 = wise.user_tokens("alice@example.com")[0]
        .refresh_token
        .clone()
        .unwrap();
    let (_, body) = refresh(&wise, &rt3).await;
    assert_eq!(body["refresh_token"].as_str(), Some(rt3.as_str()));
}

#[tokio::test]
async fn new_code_grant_kills_old_refresh_token_but_not_its_last_access_token() {
    let wise = start().await;
    let (_, rt1) = link(&wise, "alice@example.com").await;
    let (_, body) = refresh(&wise, &rt1).await;
    let last_at = body["access_token"].as_str().unwrap().to_owned();
    let (at2, rt2) = link(&wise, "alice@example.com").await;
    assert!(!wise.refresh_token_is_valid(&rt1));
    let (status, body) = refresh(&wise, &rt1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(wise.access_token_is_valid(&last_at));
    assert_eq!(
        get_api(&wise, "/v2/profiles", &last_at).await.status(),
        StatusCode::OK
    );
    let tokens = wise.user_tokens("alice@example.com");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].access_token.as_deref(), Some(at2.as_str()));
    assert_eq!(tokens[0].refresh_token.as_deref(), Some(rt2.as_str()));
}

#[tokio::test]
async fn revoke_change_email_enhanced_security_and_expiry() {
    let wise = start().await;
    // revoke: refresh 400 invalid_grant, access dead
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.revoke("alice@example.com");
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::BAD_REQUEST);
    assert!(!wise.access_token_is_valid(&at));
    assert!(wise.user_tokens("alice@example.com").is_empty());
    // change email: refresh 403, everything revoked, login with the new email works
    let (at, rt) = link(&wise, "bob@example.com").await;
    wise.change_email("bob@example.com", "robert@example.com");
    let (status, body) = refresh(&wise, &rt).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "invalid_grant");
    assert!(!wise.access_token_is_valid(&at));
    assert_eq!(wise.profile_ids("robert@example.com"), vec![30000002]);
    // enhanced security: refresh token revoked
    let (_, rt) = link(&wise, "alice@example.com").await;
    wise.enable_enhanced_security("alice@example.com");
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::BAD_REQUEST);
    // access token expiry after 12 h, refresh token expiry after 20 years
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.advance_clock(Duration::from_secs(43_199));
    assert!(!wise.access_token_is_valid(&at));
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::OK);
    wise.advance_clock(Duration::from_secs(21 * 365 * 86_400));
    let (status, body) = refresh(&wise, &rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn refresh_token_from_another_client_is_invalid_grant() {
    let wise = start().await;
    wise.register_client("other", "other-secret", [REDIRECT]);
    let (_, rt) = link(&wise, "alice@example.com").await;
    let (status, body) = token_at(
        &wise,
        "/oauth/token",
        "other",
        "other-secret",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn links_are_per_profile() {
    let wise = start().await;
    let p = login_and_approve(&wise, "alice@example.com", Some(30000000), &[]).await;
    assert_eq!(
        exchange(&wise, param(&p, "code").unwrap()).await.0,
        StatusCode::OK
    );
    let p = login_and_approve(&wise, "alice@example.com", Some(30000001), &[]).await;
    assert_eq!(
        exchange(&wise, param(&p, "code").unwrap()).await.0,
        StatusCode::OK
    );
    let mut ids: Vec<u64> = wise
        .user_tokens("alice@example.com")
        .iter()
        .map(|t| t.profile_id)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![30000000, 30000001]);
}
