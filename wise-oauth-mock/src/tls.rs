//! HTTPS and mTLS serving: a certificate authority made at start, the server certificate it
//! signs (for `localhost`, `127.0.0.1` and `::1`), client certificates it issues for tests,
//! and the TLS handshake in front of each connection.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// How long a connection whose handshake failed is kept open to read what the client
/// already sent, so that it receives the TLS alert rather than a TCP reset.
const FAILED_HANDSHAKE_LINGER: Duration = Duration::from_secs(2);

/// Whether the emulator asks for client certificates (see
/// [`MockWiseBuilder::tls`](crate::MockWiseBuilder::tls)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTPS without client certificates, like `api.wise.com`.
    #[default]
    None,
    /// mTLS, like `api-mtls.transferwise.com`: every connection must present a certificate
    /// issued by the emulator's CA ([`MockWiseHandle::issue_client_identity`](crate::MockWiseHandle::issue_client_identity));
    /// without one the handshake fails with a TLS alert (`certificate_required` in TLS 1.3).
    Required,
}

/// A client certificate and its private key, issued by an emulator's CA for mTLS tests.
/// `Debug` does not show the key.
#[derive(Clone)]
pub struct ClientIdentity {
    certificate_pem: String,
    private_key_pem: String,
}

impl ClientIdentity {
    /// The certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The private key (PKCS#8), PEM.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The certificate followed by the key, the one-PEM form many clients take.
    pub fn to_pem(&self) -> String {
        format!("{}{}", self.certificate_pem, self.private_key_pem)
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"[redacted]")
            .finish()
    }
}

/// The emulator's TLS material: its CA (which signs the server and client certificates)
/// and the acceptor of incoming connections.
pub(crate) struct TlsServer {
    ca: Certificate,
    ca_key: KeyPair,
    acceptor: TlsAcceptor,
    client_auth: ClientAuth,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

fn io_error(what: &str, e: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("wise-oauth-mock TLS setup: {what}: {e}"))
}

impl TlsServer {
    /// Makes a fresh CA and server certificate, and the server configuration.
    pub(crate) fn new(client_auth: ClientAuth) -> std::io::Result<Self> {
        let ca_key = KeyPair::generate().map_err(|e| io_error("CA key", e))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| io_error("CA parameters", e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wise-oauth-mock CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params
            .self_signed(&ca_key)
            .map_err(|e| io_error("CA certificate", e))?;

        let server_key = KeyPair::generate().map_err(|e| io_error("server key", e))?;
        let mut server_params = CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(|e| io_error("server parameters", e))?;
        server_params.subject_alt_names.extend([
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]);
        server_params
            .distinguished_name
            .push(DnType::CommonName, "wise-oauth-mock");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .map_err(|e| io_error("server certificate", e))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| io_error("protocol versions", e))?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(ca.der().clone())
                    .map_err(|e| io_error("client CA", e))?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| io_error("client verifier", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![server.der().clone()];
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| io_error("server certificate", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca,
            ca_key,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_auth,
        })
    }

    /// Whether client certificates are required.
    pub(crate) fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// The CA certificate, PEM: what a client adds to its trusted roots.
    pub(crate) fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A client certificate for `common_name` (Wise puts the client id there), signed by
    /// the CA.
    pub(crate) fn issue(&self, common_name: &str) -> std::io::Result<ClientIdentity> {
        let key = KeyPair::generate().map_err(|e| io_error("client key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| io_error("client parameters", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "wise-oauth-mock partner");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .map_err(|e| io_error("client certificate", e))?;
        Ok(ClientIdentity {
            certificate_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
        })
    }

    /// Runs the handshake, then serves the connection. A failed handshake (no or a foreign
    /// client certificate) ends the connection after the alert: the write side is closed
    /// and what the client sent meanwhile is read and dropped, so the client reads the
    /// alert instead of a reset.
    pub(crate) async fn serve(&self, stream: TcpStream, router: axum::Router) {
        let _ = stream.set_nodelay(true);
        match self.acceptor.accept(stream).into_fallible().await {
            Ok(tls) => crate::server::serve_conn(tls, router).await,
            Err((e, mut stream)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 4096];
                let _ = tokio::time::timeout(FAILED_HANDSHAKE_LINGER, async {
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
            }
        }
    }
}
