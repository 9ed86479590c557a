//! The token endpoint against hostile servers on loopback (no emulator needed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::test_server::{Reply, ScriptServer};
use super::*;
use crate::clock::TimeSource;
use crate::config::{Environment, WiseConfigBuilder};
use crate::secret::ClientSecret;

const OK_BODY: &str = r#"{"access_token":"AT-CANARY","token_type":"bearer","refresh_token":"RT-CANARY","expires_in":43199,"scope":"transfers"}"#;

fn config(
    url: &str,
    client_id: &str,
    tune: impl FnOnce(WiseConfigBuilder) -> WiseConfigBuilder,
) -> WiseConfig {
    let env = Environment::custom("loopback", url, &format!("{url}/oauth/authorize")).unwrap();
    tune(
        WiseConfig::builder(
            client_id,
            ClientSecret::new("SECRET-CANARY"),
            "http://127.0.0.1:3000/cb",
        )
        .environment(env),
    )
    .build()
    .unwrap()
}

fn endpoint_for(server: &ScriptServer) -> TokenEndpoint {
    endpoint_with(server, |b| b)
}

fn endpoint_with(
    server: &ScriptServer,
    tune: impl FnOnce(WiseConfigBuilder) -> WiseConfigBuilder,
) -> TokenEndpoint {
    TokenEndpoint::new(&config(&server.url(), "client-1", tune), TimeSource::System).unwrap()
}

fn code() -> AuthorizationCode {
    AuthorizationCode::new("CODE-CANARY")
}

fn refresh_token() -> RefreshToken {
    RefreshToken::new("RT-OLD-CANARY")
}

async fn always(reply: Reply) -> ScriptServer {
    ScriptServer::start(Vec::new(), reply).await
}

#[tokio::test]
async fn authorization_code_sends_exact_form_basic_auth_and_correlation_id() {
    let server = always(Reply::json("200 OK", OK_BODY)).await;
    let ep = endpoint_for(&server);
    let tokens = ep
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "AT-CANARY");
    let req = &server.captured()[0];
    assert_eq!(req.request_line(), "POST /oauth/token HTTP/1.1");
    assert_eq!(
        req.form(),
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("client_id".into(), "client-1".into()),
            ("code".into(), "CODE-CANARY".into()),
            ("redirect_uri".into(), "http://127.0.0.1:3000/cb".into()),
        ]
    );
    assert_eq!(
        req.header("authorization").unwrap(),
        format!("Basic {}", STANDARD.encode("client-1:SECRET-CANARY"))
    );
    assert_eq!(
        req.header("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let correlation = req.header("x-external-correlation-id").unwrap();
    assert_eq!(correlation.len(), 36);
    assert!(uuid::Uuid::parse_str(&correlation).is_ok());
    assert!(
        !req.body.contains("SECRET-CANARY"),
        "secret must not be in the body"
    );
}

#[tokio::test]
async fn pkce_verifier_is_sent_when_given() {
    let server = always(Reply::json("200 OK", OK_BODY)).await;
    let ep = endpoint_for(&server);
    let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    ep.exchange_code(&code(), "http://127.0.0.1:3000/cb", Some(&verifier))
        .await
        .unwrap();
    let form = server.captured()[0].form();
    assert_eq!(
        form.last().unwrap(),
        &(
            "code_verifier".to_owned(),
            verifier.expose_secret().to_owned()
        )
    );
}

#[tokio::test]
async fn refresh_client_credentials_and_registration_forms() {
    let server = always(Reply::json("200 OK", OK_BODY)).await;
    let ep = endpoint_for(&server);
    ep.refresh(&refresh_token()).await.unwrap();
    ep.client_credentials().await.unwrap();
    ep.registration_code("new@example.com", &RegistrationCode::new("REG-CANARY"))
        .await
        .unwrap();
    let reqs = server.captured();
    let forms: Vec<_> = reqs.iter().map(|r| r.form()).collect();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        forms[0],
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "RT-OLD-CANARY")
        ])
    );
    assert_eq!(forms[1], pairs(&[("grant_type", "client_credentials")]));
    assert_eq!(
        forms[2],
        pairs(&[
            ("grant_type", "registration_code"),
            ("client_id", "client-1"),
            ("email", "new@example.com"),
            ("registration_code", "REG-CANARY"),
        ])
    );
    for r in &reqs {
        assert!(r.header("authorization").unwrap().starts_with("Basic "));
    }
    // Each logical call has its own correlation id.
    let ids: std::collections::HashSet<_> = reqs
        .iter()
        .map(|r| r.header("x-external-correlation-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn url_unsafe_client_id_is_form_encoded_in_basic_auth() {
    // golang TestURLUnsafeClientConfig
    let server = always(Reply::json("200 OK", OK_BODY)).await;
    let cfg = config(&server.url(), "CLIENT_ID??", |b| b);
    let ep = TokenEndpoint::new(&cfg, TimeSource::System).unwrap();
    ep.client_credentials().await.unwrap();
    assert_eq!(
        server.captured()[0].header("authorization").unwrap(),
        format!("Basic {}", STANDARD.encode("CLIENT_ID%3F%3F:SECRET-CANARY"))
    );
}

#[tokio::test]
async fn versioned_token_path() {
    let server = always(Reply::json("200 OK", OK_BODY)).await;
    let ep = endpoint_with(&server, |b| b.api_version("2026Q3"));
    ep.client_credentials().await.unwrap();
    assert_eq!(
        server.captured()[0].request_line(),
        "POST /2026Q3/oauth/token HTTP/1.1"
    );
}

#[tokio::test]
async fn html_502_is_retried_on_refresh_then_unavailable() {
    let server = always(Reply::http(
        "502 Bad Gateway",
        &[("content-type", "text/html")],
        "<html><body>502</body></html>",
    ))
    .await;
    let err = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::Unavailable {
            status: Some(502),
            retry_after: None,
            source: None,
        }
    );
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn html_502_on_code_exchange_is_not_retried() {
    let server = always(Reply::http(
        "502 Bad Gateway",
        &[],
        "<html>bad gateway</html>",
    ))
    .await;
    let err = endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::Unavailable {
            status: Some(502),
            retry_after: None,
            source: None,
        }
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn garbage_200_is_transient_on_refresh_and_fatal_on_exchange() {
    let server = always(Reply::http(
        "200 OK",
        &[("content-type", "application/json")],
        "<html>oops</html>",
    ))
    .await;
    let err = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::MalformedResponse {
            reason: "body is not JSON"
        }
    );
    assert_eq!(server.requests(), 3);

    let server = always(Reply::json("200 OK", "[]")).await;
    let err = endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::MalformedResponse {
            reason: "body is not a JSON object"
        }
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn garbage_200_then_success_on_refresh() {
    let server = ScriptServer::start(
        vec![Reply::json("200 OK", "")],
        Reply::json("200 OK", OK_BODY),
    )
    .await;
    let tokens = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap();
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "RT-CANARY");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn error_object_in_200_is_an_error() {
    let server = always(Reply::json(
        "200 OK",
        r#"{"error":"invalid_grant","error_description":"RT-OLD-CANARY"}"#,
    ))
    .await;
    let err = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    // Not a verdict of Wise's token service: transient, retried, and never a dead link.
    assert_eq!(
        err,
        WiseError::MalformedResponse {
            reason: "a 2xx body carrying an error object"
        }
    );
    assert!(!err.needs_relink());
}

#[tokio::test]
async fn oversized_200_is_malformed() {
    let big = format!(
        r#"{{"access_token":"a","expires_in":1,"pad":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let server = always(Reply::json("200 OK", &big)).await;
    let err = endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::MalformedResponse {
            reason: "body is larger than 64 KiB"
        }
    );
    // Chunked (no content-length) oversized body is cut off while reading too.
    let mut raw =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..80 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b' '; 1024]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let server = always(Reply::Raw(raw)).await;
    let err = endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::MalformedResponse {
            reason: "body is larger than 64 KiB"
        }
    );
}

#[tokio::test]
async fn a_body_in_several_chunks_is_read_whole() {
    // No content-length: the body is read chunk by chunk, the first chunk kept as it is
    // until a second one comes, then both joined. Three chunks of uneven size
    // must give back the JSON byte for byte.
    let (first, rest) = OK_BODY.split_at(7);
    let (second, third) = rest.split_at(50);
    let mut raw =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_vec();
    for part in [first, second, third] {
        raw.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let server = always(Reply::Raw(raw)).await;
    let tokens = endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "AT-CANARY");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "RT-CANARY");
}

#[tokio::test]
async fn slow_drip_body_times_out() {
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
            .to_vec();
    let server = always(Reply::Drip {
        head,
        interval: Duration::from_millis(100),
    })
    .await;
    let ep = endpoint_with(&server, |b| b.request_timeout(Duration::from_millis(700)));
    let err = ep
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WiseError::Timeout { source: Some(_) }),
        "{err:?}"
    );
    assert_eq!(
        server.requests(),
        1,
        "a timed-out code exchange is never retried"
    );
}

#[tokio::test]
async fn redirect_is_not_followed() {
    // security.md threat 9: 307 to a second listener -> error, and it sees 0 requests.
    let second = always(Reply::json("200 OK", OK_BODY)).await;
    let location = format!("{}/oauth/token", second.url());
    let first = always(Reply::http(
        "307 Temporary Redirect",
        &[("location", &location)],
        "",
    ))
    .await;
    let err = endpoint_for(&first)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert_eq!(err, WiseError::Redirected { status: 307 });
    assert!(err.is_configuration());
    assert_eq!(first.requests(), 1);
    assert_eq!(second.requests(), 0);
}

#[tokio::test]
async fn reset_connection_is_retried_on_refresh_only() {
    let server = ScriptServer::start(vec![Reply::Reset], Reply::json("200 OK", OK_BODY)).await;
    endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);

    let server = always(Reply::Reset).await;
    let err = endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WiseError::Unavailable {
                status: None,
                retry_after: None,
                source: Some(_),
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        server.requests(),
        1,
        "the code may have been consumed: no retry"
    );
}

#[tokio::test]
async fn connect_failure_is_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let ep = TokenEndpoint::new(&config(&url, "c", |b| b), TimeSource::System).unwrap();
    let err = ep
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WiseError::Connect { source: Some(_) }),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn rate_limit_with_short_retry_after_is_honoured_then_succeeds() {
    let server = ScriptServer::start(
        vec![Reply::http(
            "429 Too Many Requests",
            &[
                ("retry-after", "1"),
                ("x-rate-limited-by", "wise-public-api"),
            ],
            "",
        )],
        Reply::json("200 OK", OK_BODY),
    )
    .await;
    // Also on a code exchange: a 429 means the code was not used.
    endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn rate_limit_with_long_retry_after_fails_fast() {
    let server = always(Reply::http(
        "429 Too Many Requests",
        &[("retry-after", "3600")],
        "",
    ))
    .await;
    let err = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn rate_limit_with_http_date_in_the_past_retries() {
    let server = ScriptServer::start(
        vec![Reply::http(
            "429 Too Many Requests",
            &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")],
            "",
        )],
        Reply::json("200 OK", OK_BODY),
    )
    .await;
    endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn odd_retry_after_on_503_is_ignored() {
    let server = always(Reply::http(
        "503 Service Unavailable",
        &[("retry-after", "soon-ish")],
        "",
    ))
    .await;
    let err = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::Unavailable {
            status: Some(503),
            retry_after: None,
            source: None,
        }
    );
    assert_eq!(server.requests(), 3);
    // On a code exchange, a 503 without a usable Retry-After is not retried.
    let server = always(Reply::http(
        "503 Service Unavailable",
        &[("retry-after", "-3")],
        "",
    ))
    .await;
    endpoint_for(&server)
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn three_503_are_unavailable() {
    let server = always(Reply::http("503 Service Unavailable", &[], "")).await;
    let err = endpoint_for(&server)
        .client_credentials()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::Unavailable {
            status: Some(503),
            retry_after: None,
            source: None,
        }
    );
    assert!(err.is_transient());
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn max_attempts_bounds_retries() {
    let server = always(Reply::http("503 Service Unavailable", &[], "")).await;
    let err = endpoint_with(&server, |b| b.max_attempts(1))
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let cases: [(&str, &str, WiseError); 6] = [
        (
            "400 Bad Request",
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
            WiseError::InvalidGrant { status: 400 },
        ),
        (
            "401 Unauthorized",
            r#"{"error":"invalid_grant","error_description":"Invalid user credentials."}"#,
            WiseError::InvalidGrant { status: 401 },
        ),
        (
            "401 Unauthorized",
            r#"{"error":"invalid_client","error_description":"Bad client credentials"}"#,
            WiseError::Client {
                code: OAuthErrorCode::InvalidClient,
            },
        ),
        (
            "400 Bad Request",
            r#"{"error":"unauthorized_client"}"#,
            WiseError::Client {
                code: OAuthErrorCode::UnauthorizedClient,
            },
        ),
        (
            "403 Forbidden",
            r#"{"error":"access_denied"}"#,
            WiseError::Forbidden,
        ),
        (
            "400 Bad Request",
            r#"{"error":"invalid_request","error_description":"Missing grant type"}"#,
            WiseError::Rejected {
                status: 400,
                code: Some(OAuthErrorCode::InvalidRequest),
            },
        ),
    ];
    for (status, body, expected) in cases {
        let server = always(Reply::json(status, body)).await;
        let err = endpoint_for(&server)
            .refresh(&refresh_token())
            .await
            .unwrap_err();
        assert_eq!(err, expected, "{status} {body}");
        assert_eq!(server.requests(), 1, "{status} {body}");
    }
    // A non-JSON 401 is a rejection without a code.
    let server = always(Reply::http("401 Unauthorized", &[], "<html>no</html>")).await;
    let err = endpoint_for(&server)
        .refresh(&refresh_token())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WiseError::Rejected {
            status: 401,
            code: None
        }
    );
    assert!(err.is_configuration() || !err.is_transient());
}

/// A `MakeWriter` that collects everything logged.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn trace_id_is_recorded_and_no_secret_is_logged() {
    let sink = LogSink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = ScriptServer::start(
        vec![Reply::http(
            "400 Bad Request",
            &[
                ("x-trace-id", "trace-abc-123"),
                ("content-type", "application/json"),
            ],
            r#"{"error":"invalid_grant","error_description":"RT-OLD-CANARY CODE-CANARY"}"#,
        )],
        Reply::http("200 OK", &[("x-trace-id", "trace-ok-456")], OK_BODY),
    )
    .await;
    let ep = endpoint_for(&server);
    let err = ep
        .exchange_code(&code(), "http://127.0.0.1:3000/cb", None)
        .await
        .unwrap_err();
    ep.refresh(&refresh_token()).await.unwrap();
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("trace-abc-123"), "{logs}");
    assert!(
        logs.contains("grant=\"authorization_code\"") || logs.contains("grant=authorization_code"),
        "{logs}"
    );
    assert!(!logs.contains("CANARY"), "{logs}");
    assert!(!format!("{err} {err:?} {ep:?}").contains("CANARY"));
}

#[tokio::test]
async fn endpoint_builds_with_an_mtls_identity() {
    let server = always(Reply::json("200 OK", OK_BODY)).await;
    let pem = include_bytes!("../../tests/fixtures/test_client_identity.pem");
    // Plain http to loopback ignores the identity, but the client must build with it.
    let ep = endpoint_with(&server, |b| b.client_identity(pem.to_vec()));
    ep.client_credentials().await.unwrap();
    assert_eq!(server.requests(), 1);
}
