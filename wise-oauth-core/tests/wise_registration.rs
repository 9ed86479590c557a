//! `WiseOAuth::register_user`: new users are created and linked; existing emails are sent
//! to the link flow.

mod flow_support;

use flow_support::*;
use wise_oauth_core::{Registration, RegistrationCode, RegistrationError};

fn code(seed: char) -> RegistrationCode {
    RegistrationCode::new(seed.to_string().repeat(40))
}

#[tokio::test]
async fn a_new_email_is_registered_and_linked() {
    let env = setup().await;
    let carol = user("app-carol");
    let outcome = env
        .wise
        .register_user(&carol, "carol@example.com", &code('c'))
        .await
        .unwrap();
    let Registration::Linked { profile_id } = outcome else {
        panic!("expected a link, got {outcome:?}");
    };
    assert_eq!(
        env.mock.profile_ids("carol@example.com"),
        vec![profile_id.get()]
    );
    assert_eq!(env.mock.stats().token_successes("registration_code"), 1);
    let token = env.wise.token(&carol).await.unwrap();
    assert_eq!(token.profile_id(), profile_id);
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}

#[tokio::test]
async fn an_existing_email_must_use_the_link_flow() {
    let env = setup().await;
    let someone = user("app-someone");
    let outcome = env
        .wise
        .register_user(&someone, ALICE, &code('a'))
        .await
        .unwrap();
    assert_eq!(outcome, Registration::UseLinkFlow);
    assert_eq!(env.mock.stats().token_requests("registration_code"), 0);
    assert!(env.wise.status(&someone).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_input_is_rejected_before_calling_wise() {
    let env = setup().await;
    let u = user("app-u");
    let e = env
        .wise
        .register_user(&u, "not-an-email", &code('x'))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistrationError::InvalidEmail));
    assert_eq!((e.status().as_u16(), e.reason()), (400, "invalid_email"));
    let e = env
        .wise
        .register_user(&u, "u@example.com", &RegistrationCode::new("short"))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistrationError::InvalidRegistrationCode));
    assert_eq!(env.token_calls(), 0);
}
