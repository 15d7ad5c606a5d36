//! QUIC transport settings and the quinn configurations built from them.
//!
//! Transport parameters stay at voicemcu 0.1's values, which are quinn 0.11's
//! defaults (30 s idle timeout, datagrams enabled) with path-MTU discovery
//! capped at 1200 bytes of UDP payload. There are three additions. Our client
//! sends a keep-alive every 5 s so that a muted, silent client is not
//! dropped for idleness. The server sends keep-alives too, at an interval
//! chosen from its idle timeout ([`auto_keep_alive`]), so that clients which
//! send none (voicemcu 0.1 clients) stay connected while silent. The server
//! lets each client open one bidirectional stream and no unidirectional
//! ones, which is all either dialect uses. [`TransportSettings`] lets the
//! operator change the server's idle timeout, keep-alive and datagram
//! receive buffer.
//!
//! ALPN decides the dialect: the server accepts both [`NATIVE_ALPN`] and no
//! ALPN (the private `alpn` module explains how), and the client offers either the
//! native ALPN or nothing.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};
use sha2::{Digest, Sha256};
use voicemcu_core::wire::{Dialect, NATIVE_ALPN};

use crate::alpn::DialectServerCrypto;
use crate::tls::{
    crypto_provider, Fingerprint, Identity, PinnedCertVerifier, SkipServerVerification, TlsError,
};

/// How long a connection may be silent before either side drops it. The
/// same as voicemcu 0.1 (quinn 0.11's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often our client sends a keep-alive, well under [`IDLE_TIMEOUT`].
pub const CLIENT_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The upper bound of path-MTU discovery, in bytes of UDP payload. Equal to
/// QUIC's minimum, so packets never grow past it.
pub const MAX_UDP_PAYLOAD: u16 = 1200;

/// Bidirectional streams a client may have open at once: its signalling
/// stream.
pub const MAX_CLIENT_BIDI_STREAMS: u32 = 1;

/// Bytes of received datagrams the server buffers per connection before
/// quinn drops the oldest. 64 KiB is over two seconds of the largest
/// audio datagrams, far more than a well-behaved sender ever has queued.
pub const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;

/// Bytes of outgoing datagrams quinn queues per connection while the
/// congestion window is full; beyond it quinn drops the oldest. About
/// twenty audio datagrams (400 ms): audio queued longer than a jitter
/// buffer keeps is worth less than the audio behind it. quinn's default of
/// 1 MiB keeps everything sent during an outage, and the queue then delays
/// every later datagram of the connection for good, because audio arrives
/// at the rate the link drains it.
pub const DATAGRAM_SEND_BUFFER: usize = 2 * 1024;

/// The idle timeout that voicemcu 0.1 and our client advertise. The idle
/// timeout a connection negotiates is the smaller of the two sides', so it
/// is at most this for every client we know of.
const PEER_IDLE_TIMEOUT: Duration = IDLE_TIMEOUT;

/// The server's transport settings that an operator may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportSettings {
    /// The idle timeout the server advertises.
    pub idle_timeout: Duration,
    /// How long the server lets a connection stay quiet before it sends a
    /// keep-alive. Must be shorter than `idle_timeout`.
    pub keep_alive: Duration,
    /// Bytes of received datagrams buffered per connection; the oldest are
    /// dropped beyond it.
    pub datagram_receive_buffer: usize,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            idle_timeout: IDLE_TIMEOUT,
            keep_alive: auto_keep_alive(IDLE_TIMEOUT),
            datagram_receive_buffer: DATAGRAM_RECEIVE_BUFFER,
        }
    }
}

/// Chooses the server's keep-alive interval for an advertised idle timeout:
/// a third of the idle timeout the connection will negotiate, so that two
/// keep-alives in a row may be lost before the connection times out.
///
/// The negotiated timeout is the smaller of the server's and the client's.
/// quinn 0.11 does not expose the client's value, so this takes the
/// client's to be [`IDLE_TIMEOUT`], which voicemcu 0.1 clients and ours
/// advertise.
// NOTE: a client advertising less than 30 s must send its own keep-alives.
pub fn auto_keep_alive(idle_timeout: Duration) -> Duration {
    idle_timeout.min(PEER_IDLE_TIMEOUT) / 3
}

/// How a client decides that a server certificate is the right one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Accept only the certificate with this SHA-256 fingerprint.
    Pinned(Fingerprint),
    /// Accept any certificate (`--danger-skip-verify`). For tests only:
    /// anyone on the network path can impersonate the server.
    SkipVerify,
}

/// Returns the dialect a handshake negotiated, read from its ALPN.
pub fn negotiated_dialect(connection: &quinn::Connection) -> Dialect {
    let protocol = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    Dialect::from_alpn(protocol.as_deref())
}

fn base_transport() -> TransportConfig {
    let mut mtu = MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);

    let mut transport = TransportConfig::default();
    transport
        .mtu_discovery_config(Some(mtu))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(
            IDLE_TIMEOUT.as_millis() as u32,
        ))));
    transport
}

/// Builds the transport settings of our server with the default
/// [`TransportSettings`].
pub fn server_transport() -> TransportConfig {
    server_transport_with(&TransportSettings::default())
}

/// Builds the transport settings of our server from `settings`.
pub fn server_transport_with(settings: &TransportSettings) -> TransportConfig {
    let idle_millis = u32::try_from(settings.idle_timeout.as_millis()).unwrap_or(u32::MAX);
    let mut transport = base_transport();
    transport
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_millis))))
        .keep_alive_interval(Some(settings.keep_alive))
        .datagram_receive_buffer_size(Some(settings.datagram_receive_buffer))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_CLIENT_BIDI_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    transport
}

/// Builds the transport settings of our client.
pub fn client_transport() -> TransportConfig {
    let mut transport = base_transport();
    transport
        .keep_alive_interval(Some(CLIENT_KEEP_ALIVE))
        .max_concurrent_bidi_streams(VarInt::from_u32(0));
    transport
}

pub(crate) fn rustls_server_config(
    identity: &Identity,
    alpn: Vec<Vec<u8>>,
) -> Result<QuicServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            identity.cert_chain().to_vec(),
            identity.private_key().clone_key(),
        )?;
    config.alpn_protocols = alpn;
    Ok(QuicServerConfig::try_from(config)?)
}

/// Builds the quinn server configuration: `identity`'s certificate, both
/// dialects, [`server_transport`].
pub fn server_config(identity: &Identity) -> Result<quinn::ServerConfig, TlsError> {
    server_config_with(identity, &TransportSettings::default())
}

/// Builds the quinn server configuration like [`server_config`], with the
/// transport from `settings`.
pub fn server_config_with(
    identity: &Identity,
    settings: &TransportSettings,
) -> Result<quinn::ServerConfig, TlsError> {
    let native = rustls_server_config(identity, vec![NATIVE_ALPN.to_vec()])?;
    let legacy = rustls_server_config(identity, Vec::new())?;
    let crypto = DialectServerCrypto::new(native, legacy);

    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(server_transport_with(settings)));
    Ok(config)
}

/// Domain separation for the keys derived from the private key, so that
/// no digest made here is the same as one made for another purpose.
const RESET_KEY_LABEL: &[u8] = b"voicemcu stateless reset key v1";
const CID_KEY_LABEL: &[u8] = b"voicemcu connection id key v1";

/// Builds the server's quinn endpoint configuration, with its stateless
/// reset key and connection id key derived from `identity`'s private key.
///
/// quinn's defaults draw both keys at random at each start. A restarted
/// server then cannot make the stateless resets (RFC 9000, section 10.3)
/// that tell clients their connection is gone. It does not recognise the
/// connection ids it issued before, and could not compute their reset
/// tokens anyway. Clients find out only when their idle timeout expires,
/// 30 s later. Both keys are now derived from the private key, which stays
/// the same across restarts. The restarted server then replies to a
/// client's next packet with a reset the client recognises, and the client
/// can reconnect at once. SHA-256 is one-way, so the keys do not expose the
/// private key.
pub fn server_endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let derive = |label: &[u8]| -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(label);
        digest.update(identity.private_key().secret_der());
        digest.finalize().into()
    };

    let reset_key = derive(RESET_KEY_LABEL);
    let mut config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset_key,
    )));

    // The connection id key lets the endpoint drop, cheaply, packets whose
    // ids it never issued.
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&derive(CID_KEY_LABEL)[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// A quinn client configuration and, when pinning, the verifier that can
/// report which certificate it rejected.
pub struct ClientCrypto {
    pub config: quinn::ClientConfig,
    pub pinned: Option<Arc<PinnedCertVerifier>>,
}

/// Builds the quinn client configuration for `trust`, offering the native ALPN
/// when `offer_native_alpn` is set and no ALPN otherwise (the legacy
/// dialect). Uses [`client_transport`].
pub fn client_config(trust: Trust, offer_native_alpn: bool) -> Result<ClientCrypto, TlsError> {
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous();

    let (mut crypto, pinned) = match trust {
        Trust::Pinned(expected) => {
            let verifier = Arc::new(PinnedCertVerifier::new(expected, &provider));
            let crypto = builder
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            (crypto, Some(verifier))
        }
        Trust::SkipVerify => {
            let verifier = Arc::new(SkipServerVerification::new(&provider));
            let crypto = builder
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            (crypto, None)
        }
    };
    if offer_native_alpn {
        crypto.alpn_protocols = vec![NATIVE_ALPN.to_vec()];
    }

    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto)?));
    config.transport_config(Arc::new(client_transport()));
    Ok(ClientCrypto { config, pinned })
}

/// Chooses the local address a client socket binds to for reaching `server`: the
/// loopback address of the same family when the server is on loopback,
/// otherwise the unspecified address of that family, port 0 either way.
pub fn client_bind_addr(server: SocketAddr) -> SocketAddr {
    let loopback = server.ip().is_loopback();
    match server {
        SocketAddr::V4(_) if loopback => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) if loopback => (Ipv6Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
