//! QUIC transport for voicemcu: quinn endpoints, TLS with certificate
//! pinning, and the event loops that drive the core's state machines.
//!
//! - [`tls`]: self-signed certificates, PEM files, fingerprints, and the
//!   pinning and skip-verification certificate verifiers.
//! - [`endpoint`]: transport parameters and the quinn configurations,
//!   including ALPN, which decides the dialect of each connection.
//! - [`known_servers`]: the client's file of trusted server fingerprints
//!   and the probe that reads a new server's certificate.
//! - [`connection_limit`]: the per-address limit on connection attempts.
//! - [`settings`]: the server's configuration file, its defaults and their
//!   validation.
//! - [`recording`]: the bounded queue that carries the core's recording
//!   feed to a writer thread without ever blocking the mix.
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
pub mod connection_limit;
pub mod endpoint;
mod event_log;
pub mod known_servers;
pub mod recording;
pub mod server;
pub mod settings;
#[cfg(unix)]
pub mod status;
pub mod tls;

/// The quinn version this crate is built on, for callers that drive raw
/// connections, such as tests of hostile clients.
pub use quinn;

pub use client::{
    connect, run_client, run_client_on, ClientError, ClientExit, ClientOptions, ConnectOptions,
    DialectChoice, SenderFaults,
};
pub use endpoint::{TransportSettings, Trust};
pub use server::{
    CertificateSource, QuicServer, ServerError, ServerOptions, ServerTuning,
    DEFAULT_CONNECTION_RATE,
};
pub use settings::{
    default_certificate_files, dump_default_config, ServerSettings, SettingsError,
    SettingsOverrides,
};
pub use tls::{Fingerprint, Identity, TlsError};
