//! TLS and ALPN over real quinn on loopback: pinning, skipping
//! verification, dialect negotiation and the legacy fallback. The server
//! side is a bare quinn endpoint, so these tests need no core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::Endpoint;
use tokio::task::JoinHandle;
use voicemcu_core::wire::Dialect;
use voicemcu_quic::endpoint::{
    client_transport, negotiated_dialect, server_config, server_transport,
};
use voicemcu_quic::tls::{crypto_provider, SkipServerVerification};
use voicemcu_quic::{
    connect, ClientError, ConnectOptions, DialectChoice, Fingerprint, Identity, Trust,
};

/// Upper bound for any one step of these tests.
const STEP: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Accepts one connection on `endpoint` and returns the dialect the server
/// side negotiated, or `None` when the handshake failed.
fn accept_one(endpoint: Endpoint) -> JoinHandle<Option<Dialect>> {
    tokio::spawn(async move {
        let incoming = endpoint.accept().await?;
        let connection = incoming.await.ok()?;
        let dialect = negotiated_dialect(&connection);
        // Stay open until the client closes, so its side completes.
        let _ = tokio::time::timeout(STEP, connection.closed()).await;
        Some(dialect)
    })
}

/// Binds a voicemcu server endpoint (both dialects) with a fresh certificate.
fn voicemcu_server() -> (Endpoint, Identity) {
    let identity = Identity::generate().unwrap();
    let endpoint = Endpoint::server(server_config(&identity).unwrap(), loopback()).unwrap();
    (endpoint, identity)
}

/// Binds a server configured like voicemcu 0.1's: the same kind of certificate,
/// no ALPN at all.
fn legacy_server() -> (Endpoint, Identity) {
    let identity = Identity::generate().unwrap();
    let crypto = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            identity.cert_chain().to_vec(),
            identity.private_key().clone_key(),
        )
        .unwrap();
    let mut config =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(crypto).unwrap()));
    config.transport_config(Arc::new(server_transport()));
    let endpoint = Endpoint::server(config, loopback()).unwrap();
    (endpoint, identity)
}

async fn connect_to(
    server: &Endpoint,
    trust: Trust,
    dialect: DialectChoice,
) -> Result<Dialect, ClientError> {
    let client = Endpoint::client(loopback()).unwrap();
    let mut options = ConnectOptions::new(server.local_addr().unwrap(), trust);
    options.dialect = dialect;
    let (connection, negotiated) = tokio::time::timeout(STEP, connect(&client, &options))
        .await
        .expect("connect did not time out by itself")?;
    connection.close(0u32.into(), b"done");
    // A handshake that failed (the legacy fallback's first attempt) drains
    // for seconds; waiting for it adds nothing to these tests.
    let _ = tokio::time::timeout(Duration::from_millis(500), client.wait_idle()).await;
    Ok(negotiated)
}

#[tokio::test]
async fn pinned_fingerprint_accepted() {
    let (server, identity) = voicemcu_server();
    let accepted = accept_one(server.clone());

    let dialect = connect_to(
        &server,
        Trust::Pinned(identity.fingerprint()),
        DialectChoice::Auto,
    )
    .await;

    assert_eq!(dialect.unwrap(), Dialect::Native);
    assert_eq!(accepted.await.unwrap(), Some(Dialect::Native));
}

#[tokio::test]
async fn wrong_fingerprint_rejected() {
    let (server, identity) = voicemcu_server();
    let _accepted = accept_one(server.clone());
    let wrong = Fingerprint([0x5a; 32]);

    let error = connect_to(&server, Trust::Pinned(wrong), DialectChoice::Auto)
        .await
        .unwrap_err();

    match &error {
        ClientError::FingerprintMismatch { expected, got, .. } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*got, identity.fingerprint());
        }
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("does not match the pinned fingerprint"),
        "{message}"
    );
    assert!(message.contains(&wrong.to_string()), "{message}");
    assert!(
        message.contains(&identity.fingerprint().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn skip_verify_accepts_any_certificate() {
    let (server, _identity) = voicemcu_server();
    let accepted = accept_one(server.clone());

    let dialect = connect_to(&server, Trust::SkipVerify, DialectChoice::Auto).await;

    assert_eq!(dialect.unwrap(), Dialect::Native);
    assert_eq!(accepted.await.unwrap(), Some(Dialect::Native));
}

#[tokio::test]
async fn no_alpn_gives_legacy_dialect() {
    let (server, identity) = voicemcu_server();
    let accepted = accept_one(server.clone());

    let dialect = connect_to(
        &server,
        Trust::Pinned(identity.fingerprint()),
        DialectChoice::Legacy,
    )
    .await;

    assert_eq!(dialect.unwrap(), Dialect::Legacy);
    assert_eq!(accepted.await.unwrap(), Some(Dialect::Legacy));
}

#[tokio::test]
async fn legacy_server_gets_fallback_connection() {
    let (server, identity) = legacy_server();
    // The first connection (offering ALPN) fails, the second is the fallback.
    let endpoint = server.clone();
    let accepted = tokio::spawn(async move {
        let first = endpoint.accept().await.unwrap();
        assert!(
            first.await.is_err(),
            "a 0.1 server must reject an ALPN offer"
        );
        accept_one(endpoint).await.unwrap()
    });

    let dialect = connect_to(
        &server,
        Trust::Pinned(identity.fingerprint()),
        DialectChoice::Auto,
    )
    .await;

    assert_eq!(dialect.unwrap(), Dialect::Legacy);
    assert_eq!(accepted.await.unwrap(), Some(Dialect::Legacy));
}

#[tokio::test]
async fn unknown_alpn_rejected() {
    let (server, _identity) = voicemcu_server();
    let accepted = accept_one(server.clone());

    let provider = crypto_provider();
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SkipServerVerification::new(&provider)))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let mut config =
        quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto).unwrap()));
    config.transport_config(Arc::new(client_transport()));

    let client = Endpoint::client(loopback()).unwrap();
    let connecting = client
        .connect_with(config, server.local_addr().unwrap(), "localhost")
        .unwrap();
    let result = tokio::time::timeout(STEP, connecting).await.unwrap();

    let error = result.expect_err("a client offering only h3 must be rejected");
    assert!(
        error.to_string().contains("120"),
        "expected the no_application_protocol alert (120): {error}"
    );
    assert_eq!(accepted.await.unwrap(), None);
}

#[tokio::test]
async fn silent_server_times_out() {
    // A bound socket that never replies plays the part of a server that is down.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let client = Endpoint::client(loopback()).unwrap();
    let mut options = ConnectOptions::new(silent.local_addr().unwrap(), Trust::SkipVerify);
    options.connect_timeout = Duration::from_millis(300);

    let error = tokio::time::timeout(STEP, connect(&client, &options))
        .await
        .unwrap()
        .unwrap_err();

    assert!(
        matches!(error, ClientError::ConnectTimeout { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("timed out after 0.3 s"), "{message}");
    assert!(
        message.contains(&silent.local_addr().unwrap().to_string()),
        "{message}"
    );
}
