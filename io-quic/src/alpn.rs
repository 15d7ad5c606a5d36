//! Server-side TLS that serves both dialects on one endpoint.
//!
//! rustls (0.23) applies QUIC's strict ALPN rule (RFC 9001, section 8.1):
//! a server configured with ALPN protocols rejects a client that offers
//! none, and a server configured with none rejects a client that offers
//! some. voicemcu 0.1 clients offer no ALPN, our clients offer
//! [`NATIVE_ALPN`], and one server must accept both. No single
//! `rustls::ServerConfig` can. [`DialectServerCrypto`] therefore contains two,
//! one with the native ALPN and one without. It picks one per connection by
//! reading the ALPN extension of the client's ClientHello before rustls
//! sees it.
//!
//! Clients offering other protocols go to the native configuration, which
//! rejects them with the `no_application_protocol` alert.
//!
//! [`NATIVE_ALPN`]: voicemcu_core::wire::NATIVE_ALPN

use std::any::Any;
use std::sync::Arc;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::crypto::{
    ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, ServerConfig, Session,
    UnsupportedVersion,
};
use quinn::{ConnectionId, Side};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::TransportError;

/// The TLS extension type of ALPN (RFC 7301).
const ALPN_EXTENSION: u16 = 16;

/// The TLS handshake message type of ClientHello.
const CLIENT_HELLO: u8 = 1;

/// The largest ClientHello this module waits for before handing the bytes
/// to rustls undecided. Real ones are a few hundred bytes, or under 2 KiB
/// with post-quantum key shares.
const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// A QUIC server crypto configuration that chooses between a native
/// (ALPN-offering) and a legacy (no ALPN) rustls configuration per
/// connection.
pub(crate) struct DialectServerCrypto {
    native: Arc<QuicServerConfig>,
    legacy: Arc<QuicServerConfig>,
}

impl DialectServerCrypto {
    /// `native` must list the native ALPN and `legacy` no ALPN at all. Both
    /// must share the certificate and the crypto provider, because the
    /// initial packet keys and retry tags come from `native` for either.
    pub(crate) fn new(native: QuicServerConfig, legacy: QuicServerConfig) -> DialectServerCrypto {
        DialectServerCrypto {
            native: Arc::new(native),
            legacy: Arc::new(legacy),
        }
    }
}

impl ServerConfig for DialectServerCrypto {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.native.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.native.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn Session> {
        let native = self.native.clone().start_session(version, params);
        let legacy = self.legacy.clone().start_session(version, params);
        Box::new(DialectSession {
            active: native,
            choice: Choice::Undecided {
                legacy,
                client_hello: Vec::new(),
            },
        })
    }
}

enum Choice {
    /// The ClientHello is not complete yet. Its bytes so far are held back
    /// from both sessions.
    Undecided {
        legacy: Box<dyn Session>,
        client_hello: Vec<u8>,
    },
    Decided,
}

/// One connection's TLS session. Until the ClientHello is complete,
/// `active` is the native session, which has read nothing yet, so every
/// query returns its empty result and the initial keys (which depend only on
/// the QUIC version and the connection id) are right for either choice.
struct DialectSession {
    active: Box<dyn Session>,
    choice: Choice,
}

impl Session for DialectSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.active.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.active.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.active.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.active.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.active.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.active.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        let Choice::Undecided {
            legacy,
            mut client_hello,
        } = std::mem::replace(&mut self.choice, Choice::Decided)
        else {
            return self.active.read_handshake(buf);
        };

        client_hello.extend_from_slice(buf);
        let use_legacy = match inspect_client_hello(&client_hello) {
            HelloAlpn::Incomplete if client_hello.len() <= MAX_CLIENT_HELLO => {
                self.choice = Choice::Undecided {
                    legacy,
                    client_hello,
                };
                return Ok(false);
            }
            HelloAlpn::NotOffered => true,
            // Unparseable or oversized hellos go to rustls, which rejects
            // them with a proper alert.
            HelloAlpn::Incomplete | HelloAlpn::Offered | HelloAlpn::Unparseable => false,
        };

        if use_legacy {
            self.active = legacy;
        }
        self.active.read_handshake(&client_hello)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.active.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.active.write_handshake(buf)
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.active.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.active.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.active.export_keying_material(output, label, context)
    }
}

/// The ALPN offer found in a (possibly partial) ClientHello.
#[derive(Debug, PartialEq, Eq)]
enum HelloAlpn {
    Incomplete,
    Offered,
    NotOffered,
    Unparseable,
}

/// A cursor over TLS wire data whose reads return `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Skips a vector whose length prefix is `prefix_len` bytes (1 or 2).
    fn skip_vector(&mut self, prefix_len: usize) -> Option<()> {
        let len = match prefix_len {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        self.take(len).map(|_| ())
    }
}

/// Reads the ALPN extension's presence from the start of the Initial-level
/// CRYPTO stream, which begins with the ClientHello (RFC 8446, 4.1.2).
fn inspect_client_hello(bytes: &[u8]) -> HelloAlpn {
    if bytes.len() < 4 {
        return HelloAlpn::Incomplete;
    }
    if bytes[0] != CLIENT_HELLO {
        return HelloAlpn::Unparseable;
    }
    let len = usize::from(bytes[1]) << 16 | usize::from(bytes[2]) << 8 | usize::from(bytes[3]);
    if len > MAX_CLIENT_HELLO {
        return HelloAlpn::Unparseable;
    }
    let Some(body) = bytes.get(4..4 + len) else {
        return HelloAlpn::Incomplete;
    };

    match client_hello_has_alpn(body) {
        Some(true) => HelloAlpn::Offered,
        Some(false) => HelloAlpn::NotOffered,
        None => HelloAlpn::Unparseable,
    }
}

/// Walks a complete ClientHello body to its extensions. `None` means the
/// body is malformed.
fn client_hello_has_alpn(body: &[u8]) -> Option<bool> {
    let mut reader = Reader(body);
    reader.take(2)?; // legacy_version
    reader.take(32)?; // random
    reader.skip_vector(1)?; // legacy_session_id
    reader.skip_vector(2)?; // cipher_suites
    reader.skip_vector(1)?; // legacy_compression_methods
    if reader.0.is_empty() {
        return Some(false);
    }

    let extensions_len = usize::from(reader.u16()?);
    let mut extensions = Reader(reader.take(extensions_len)?);
    while !extensions.0.is_empty() {
        let extension_type = extensions.u16()?;
        extensions.skip_vector(2)?;
        if extension_type == ALPN_EXTENSION {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::pki_types::ServerName;
    use rustls::quic::{ClientConnection, Version};

    use quinn::crypto::rustls::HandshakeData;

    use crate::endpoint::rustls_server_config;
    use crate::tls::{crypto_provider, SkipServerVerification};

    /// Returns the CRYPTO-stream bytes a rustls QUIC client sends first.
    fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
        let provider = crypto_provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification::new(&provider)))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

        let name = ServerName::try_from("localhost").unwrap();
        let mut connection =
            ClientConnection::new(Arc::new(config), Version::V1, name, vec![0x01, 0x00]).unwrap();
        let mut bytes = Vec::new();
        connection.write_hs(&mut bytes);
        bytes
    }

    /// Feeds a ClientHello to a fresh [`DialectSession`] in two pieces and
    /// returns the ALPN protocol the chosen session negotiated.
    fn negotiate_split_hello(alpn: &[&[u8]]) -> Option<Vec<u8>> {
        let identity = crate::tls::Identity::generate().unwrap();
        let native = rustls_server_config(&identity, vec![b"voicemcu/2".to_vec()]).unwrap();
        let legacy = rustls_server_config(&identity, Vec::new()).unwrap();
        let crypto = Arc::new(DialectServerCrypto::new(native, legacy));
        let params = TransportParameters::read(Side::Server, &mut &[][..]).unwrap();
        let mut session = crypto.start_session(1, &params);

        let hello = client_hello(alpn);
        let (first, rest) = hello.split_at(100);
        assert!(!session.read_handshake(first).unwrap());
        let mut reply = Vec::new();
        assert!(session.write_handshake(&mut reply).is_none());
        assert!(reply.is_empty(), "the server replied to half a ClientHello");

        assert!(session.read_handshake(rest).unwrap());
        let data = session.handshake_data().unwrap();
        let data = data.downcast::<HandshakeData>().unwrap();
        assert_eq!(data.server_name.as_deref(), Some("localhost"));
        data.protocol
    }

    #[test]
    fn split_hello_with_alpn_gets_native() {
        assert_eq!(
            negotiate_split_hello(&[b"voicemcu/2"]),
            Some(b"voicemcu/2".to_vec())
        );
    }

    #[test]
    fn split_hello_without_alpn_gets_legacy() {
        assert_eq!(negotiate_split_hello(&[]), None);
    }

    #[test]
    fn hello_with_alpn_is_offered() {
        let hello = client_hello(&[b"voicemcu/2"]);
        assert_eq!(inspect_client_hello(&hello), HelloAlpn::Offered);
    }

    #[test]
    fn hello_without_alpn_is_not_offered() {
        let hello = client_hello(&[]);
        assert_eq!(inspect_client_hello(&hello), HelloAlpn::NotOffered);
    }

    #[test]
    fn partial_hello_is_incomplete() {
        let hello = client_hello(&[b"voicemcu/2"]);
        for cut in [0, 3, 4, 40, hello.len() - 1] {
            assert_eq!(
                inspect_client_hello(&hello[..cut]),
                HelloAlpn::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn other_message_is_unparseable() {
        assert_eq!(inspect_client_hello(&[2, 0, 0, 0]), HelloAlpn::Unparseable);
    }

    #[test]
    fn truncated_extensions_are_unparseable() {
        let mut hello = client_hello(&[]);
        // Cut the last extension short and fix up the message length, so the
        // hello is complete but its extensions overrun it.
        hello.truncate(hello.len() - 1);
        let len = hello.len() - 4;
        hello[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        assert_eq!(inspect_client_hello(&hello), HelloAlpn::Unparseable);
    }
}
