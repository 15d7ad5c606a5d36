//! QUIC transport for voicemcu: quinn endpoints, TLS with certificate
//! pinning, and the event loops that drive the core's state machines.
//!
//! - [`tls`]: self-signed certificates, PEM files, fingerprints, and the
//!   pinning and skip-verification certificate verifiers.
//! - [`endpoint`]: transport parameters and the quinn configurations,
//!   including ALPN, which decides the dialect of each connection.
//! - [`server`]: [`QuicServer`], which feeds one core
//!   [`voicemcu_core::server::Server`] from every connection and carries out
//!   its outputs.
//! - [`client`]: [`connect`] and [`run_client`], which run one
//!   [`voicemcu_core::client::Client`] session with a 20 ms audio clock.
//!
//! Everything here runs on tokio and reads tokio's clock, converted to the
//! core's [`voicemcu_core::time::Instant`] through a fixed epoch per server
//! or client.

mod alpn;
pub mod client;
mod clock;
pub mod endpoint;
pub mod server;
pub mod tls;

pub use client::{
    connect, run_client, run_client_on, ClientError, ClientExit, ClientOptions, ConnectOptions,
    DialectChoice,
};
pub use endpoint::Trust;
pub use server::{CertificateSource, QuicServer, ServerError, ServerOptions};
pub use tls::{Fingerprint, Identity, TlsError};
