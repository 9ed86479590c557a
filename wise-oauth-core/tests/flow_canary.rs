//! Log canaries (security.md threat 7, invariant I4): a full flow with secret values we
//! control, every tracing level captured, and every error rendered → no secret appears.

mod flow_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use flow_support::*;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    // Everything the library and its HTTP stack log, at every level; the emulator's own
    // logs are not the library's and are filtered out.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace,wise_oauth_mock=off"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let secret = "SECRET-CANARY-0f1e2d3c4b5a";
    let env = setup_with(Options {
        client_secret: secret.to_owned(),
        pkce: true,
        ..Options::default()
    })
    .await;
    let alice = user("app-alice");
    let mut rendered = Vec::<String>::new();
    let mut secrets = vec![secret.to_owned()];

    // A successful flow.
    let start = env
        .wise
        .start_link(
            &alice,
            &wise_oauth_core::LinkOptions::new().return_to("/after"),
            None,
        )
        .await
        .unwrap();
    rendered.push(format!("{start:?}"));
    let cookie = cookie_value(start.set_cookie());
    secrets.push(cookie.clone());
    let location = env.authorize(start.authorize_url()).await;
    secrets.push(param(&location, "code").unwrap());
    secrets.push(param(&location, "state").unwrap());
    secrets.push(param(start.authorize_url(), "code_challenge").unwrap());
    let query = location.query().unwrap().to_owned();
    let done = env
        .wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
    rendered.push(format!("{done:?}"));
    let token = env.wise.token(&alice).await.unwrap();
    rendered.push(format!("{token:?}"));
    rendered.push(format!("{:?}", env.wise));
    rendered.push(format!("{:?}", env.wise.config()));

    // Failures: replay, tampered profile, denied, malformed.
    let e = env
        .wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    rendered.push(format!("{e} {e:?}"));
    let start = env
        .wise
        .start_link(&alice, &Default::default(), Some(&cookie))
        .await
        .unwrap();
    let location = env.authorize(start.authorize_url()).await;
    secrets.push(param(&location, "code").unwrap());
    secrets.push(param(&location, "state").unwrap());
    let q = with_param(location.query().unwrap(), "profileId", Some("30000002"));
    let e = env
        .wise
        .complete_link(&alice, &q, Some(&cookie))
        .await
        .unwrap_err();
    rendered.push(format!("{e} {e:?}"));
    let start = env
        .wise
        .start_link(&alice, &Default::default(), Some(&cookie))
        .await
        .unwrap();
    let location = env.authorize(start.authorize_url()).await;
    secrets.push(param(&location, "code").unwrap());
    let q = format!("{}&code=again", location.query().unwrap());
    let e = env
        .wise
        .complete_link(&alice, &q, Some(&cookie))
        .await
        .unwrap_err();
    rendered.push(format!("{e} {e:?}"));

    // Every token the emulator issued to this user (including the current one).
    for issued in env.mock.user_tokens(ALICE) {
        secrets.extend(issued.access_token);
        secrets.extend(issued.refresh_token);
    }
    secrets.push(token.access_token().expose_secret().to_owned());

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    if let Ok(path) = std::env::var("FLOW_CANARY_DUMP") {
        std::fs::write(path, &logs).unwrap();
    }
    // The capture works: the library's own events at DEBUG and INFO were recorded.
    assert!(logs.contains("link flow started"), "{logs}");
    assert!(logs.contains("Wise account linked"), "{logs}");
    assert!(logs.contains("link flow failed"), "{logs}");
    for s in &secrets {
        assert!(s.len() >= 8, "canary too short to be meaningful: {s:?}");
        assert!(!logs.contains(s.as_str()), "a secret leaked into the logs");
        for r in &rendered {
            assert!(!r.contains(s.as_str()), "a secret leaked into {r}");
        }
    }
}
