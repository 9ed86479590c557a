//! HTTPS and mTLS serving over loopback, seen from a plain reqwest client.

use reqwest::{Certificate, Client, Identity};
use wise_oauth_mock::{ClientAuth, MockWise, MockWiseHandle, DEMO_CLIENT_ID};

fn client(ca: Option<&str>, identity: Option<String>) -> Client {
    let mut builder = Client::builder().tls_built_in_root_certs(false);
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    if let Some(pem) = identity {
        builder = builder.identity(Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn stats(wise: &MockWiseHandle, client: &Client) -> Result<u16, reqwest::Error> {
    let res = client
        .get(format!("{}/__mock/stats", wise.base_url()))
        .send()
        .await?;
    Ok(res.status().as_u16())
}

#[tokio::test]
async fn https_without_client_certificates() {
    let wise = MockWise::builder()
        .tls(ClientAuth::None)
        .start()
        .await
        .unwrap();
    assert!(wise.base_url().starts_with("https://127.0.0.1:"));
    assert!(!wise.requires_client_certificate());
    let ca = wise.ca_certificate_pem().expect("a CA");
    assert_eq!(stats(&wise, &client(Some(&ca), None)).await.unwrap(), 200);
    // Without the CA the server certificate is not trusted.
    let err = stats(&wise, &client(None, None)).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // `localhost` is in the certificate too.
    let res = client(Some(&ca), None)
        .get(format!(
            "https://localhost:{}/__mock/stats",
            wise.addr().port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    wise.shutdown().await;
}

#[tokio::test]
async fn mtls_requires_a_certificate_from_the_emulators_ca() {
    let wise = MockWise::builder()
        .tls(ClientAuth::Required)
        .start()
        .await
        .unwrap();
    assert!(wise.requires_client_certificate());
    let ca = wise.ca_certificate_pem().unwrap();
    let identity = wise.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    assert!(identity
        .certificate_pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(identity.to_pem().contains("PRIVATE KEY"));
    let shown = format!("{identity:?}");
    assert!(
        shown.contains("[redacted]") && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
    assert_eq!(
        stats(&wise, &client(Some(&ca), Some(identity.to_pem())))
            .await
            .unwrap(),
        200
    );
    // No certificate, or one from another emulator's CA: the handshake is refused.
    let other = MockWise::builder()
        .tls(ClientAuth::Required)
        .start()
        .await
        .unwrap();
    let foreign = other.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    for (what, identity) in [("none", None), ("foreign", Some(foreign.to_pem()))] {
        let err = stats(&wise, &client(Some(&ca), identity))
            .await
            .expect_err(what);
        let chain = format!("{err:?}");
        assert!(chain.contains("AlertReceived"), "{what}: {chain}");
    }
    other.shutdown().await;
    wise.shutdown().await;
}

#[tokio::test]
async fn plain_http_has_no_tls_material() {
    let wise = MockWise::builder().start().await.unwrap();
    assert!(wise.base_url().starts_with("http://"));
    assert!(wise.ca_certificate_pem().is_none());
    assert!(wise.issue_client_identity("x").is_none());
    assert!(!wise.requires_client_certificate());
    wise.shutdown().await;
}
