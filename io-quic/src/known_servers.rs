//! Servers the client has trusted before, remembered like SSH's
//! `known_hosts`: trust on first use.
//!
//! The file has one server per line, `HOST:PORT FINGERPRINT`, with the
//! SHA-256 fingerprint as 64 hex digits; blank lines and lines starting
//! with `#` are ignored. The host is the name the user typed (or the IP
//! address), so a server reached under two names has two entries.
//!
//! On first contact the client does not know which certificate to expect,
//! so [`probe_fingerprint`] runs a handshake whose verifier records the
//! certificate's fingerprint and then aborts the handshake. Nothing is sent
//! on that connection. The caller decides, by asking the user or by flag,
//! whether to trust the fingerprint, and then connects for real pinned to
//! it, so the real handshake still proves that the server has the private key.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::Endpoint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::endpoint::{client_bind_addr, client_transport};
use crate::tls::{crypto_provider, Fingerprint, TlsError};

/// The environment variable that overrides where the file is.
pub const KNOWN_SERVERS_ENV: &str = "VOICEMCU_KNOWN_SERVERS";

/// Returns where the known-servers file is: `$VOICEMCU_KNOWN_SERVERS`, else
/// `$XDG_CONFIG_HOME/voicemcu/known_servers`, else
/// `$HOME/.config/voicemcu/known_servers`; `None` when none of these
/// variables is set.
pub fn default_path() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(path) = non_empty(KNOWN_SERVERS_ENV) {
        return Some(PathBuf::from(path));
    }
    let config = non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("voicemcu").join("known_servers"))
}

/// Returns the key a server is remembered under: the host part of what the
/// user typed, lower-cased, and the port of the resolved address.
pub fn server_key(typed: &str, resolved: SocketAddr) -> String {
    let typed = typed.trim();
    if typed.parse::<SocketAddr>().is_ok() {
        // An IP address with a port: the resolved address is the same.
        return resolved.to_string();
    }
    let host = if typed.starts_with('[') {
        typed
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else if typed.matches(':').count() == 1 {
        typed.split(':').next().unwrap_or(typed).to_owned()
    } else if typed.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{typed}]")
    } else {
        typed.to_owned()
    };
    format!("{}:{}", host.to_ascii_lowercase(), resolved.port())
}

/// An error reading or writing the known-servers file.
#[derive(Debug, thiserror::Error)]
pub enum KnownServersError {
    #[error("failed to read the known-servers file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("failed to write the known-servers file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "invalid line {line} in the known-servers file {}: {problem} (expected HOST:PORT and a SHA-256 fingerprint)",
        path.display()
    )]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// The result of comparing a fingerprint with the file's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The server is remembered with this fingerprint.
    Known,
    /// The server is not in the file.
    New,
    /// The server is remembered with another fingerprint.
    Changed { stored: Fingerprint },
}

/// The contents of a known-servers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownServers {
    path: PathBuf,
    entries: BTreeMap<String, Fingerprint>,
}

impl KnownServers {
    /// Reads the file at `path`; a missing file counts as empty.
    pub fn load(path: &Path) -> Result<KnownServers, KnownServersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KnownServersError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };

        let mut entries = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |problem: String| KnownServersError::Malformed {
                path: path.to_owned(),
                line: index + 1,
                problem,
            };
            let mut fields = line.split_whitespace();
            let (Some(host), Some(hash), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed(format!("{line:?} does not have two fields")));
            };
            let fingerprint =
                Fingerprint::parse(hash).map_err(|error| malformed(error.to_string()))?;
            entries.insert(host.to_owned(), fingerprint);
        }
        Ok(KnownServers {
            path: path.to_owned(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the remembered fingerprint of `key`.
    pub fn get(&self, key: &str) -> Option<Fingerprint> {
        self.entries.get(key).copied()
    }

    /// Compares `seen` with what is remembered for `key`.
    pub fn check(&self, key: &str, seen: Fingerprint) -> Verdict {
        match self.get(key) {
            Some(stored) if stored == seen => Verdict::Known,
            Some(stored) => Verdict::Changed { stored },
            None => Verdict::New,
        }
    }

    /// Remembers `fingerprint` for a server not yet in the file, appending
    /// a line and creating the file and its directory when missing. A
    /// server already in the file is never overwritten: a changed
    /// certificate needs the user to edit the file.
    pub fn add(&mut self, key: &str, fingerprint: Fingerprint) -> Result<(), KnownServersError> {
        let write_error = |source| KnownServersError::Write {
            path: self.path.clone(),
            source,
        };
        if self.entries.contains_key(key) {
            let source = io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{key} is already in the file; remove its line first"),
            );
            return Err(write_error(source));
        }
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }

        let new_file = !self.path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(write_error)?;
        let mut text = String::new();
        if ends_without_newline(&self.path) {
            // A hand-edited file whose last line has no newline: without
            // one here the new entry would join that line.
            text.push('\n');
        }
        if new_file {
            text.push_str(
                "# Servers voicemcu has trusted: HOST:PORT and the SHA-256 fingerprint\n\
                 # of its certificate. Delete a line to forget a server.\n",
            );
        }
        text.push_str(&format!("{key} {fingerprint}\n"));
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;

        self.entries.insert(key.to_owned(), fingerprint);
        Ok(())
    }
}

/// An error from [`probe_fingerprint`].
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Tls(#[from] TlsError),

    #[error("failed to bind a UDP socket on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },

    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: SocketAddr,
        source: quinn::ConnectError,
    },

    #[error("{server} presented no certificate: {reason}")]
    NoCertificate { server: SocketAddr, reason: String },

    #[error(
        "timed out after {} s waiting for the certificate of {server} (check that the server is running and the address and port are right)",
        after.as_secs_f32()
    )]
    Timeout { server: SocketAddr, after: Duration },
}

/// Connects to `server` only far enough to read its certificate, and
/// returns the certificate's fingerprint. The handshake is aborted as soon
/// as the certificate arrives, so no data is exchanged.
pub async fn probe_fingerprint(
    server: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> Result<Fingerprint, ProbeError> {
    let provider = crypto_provider();
    let verifier = Arc::new(RecordingVerifier {
        seen: Mutex::new(None),
        algorithms: provider.signature_verification_algorithms,
    });
    let crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::from)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let mut config = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(crypto).map_err(TlsError::from)?,
    ));
    config.transport_config(Arc::new(client_transport()));

    let bind = client_bind_addr(server);
    let endpoint =
        Endpoint::client(bind).map_err(|source| ProbeError::Bind { addr: bind, source })?;
    let connecting = endpoint
        .connect_with(config, server, server_name)
        .map_err(|source| ProbeError::Connect { server, source })?;

    let outcome = tokio::time::timeout(timeout, connecting).await;
    endpoint.close(0u32.into(), b"certificate probe");
    if let Some(seen) = verifier.seen() {
        return Ok(seen);
    }
    match outcome {
        Ok(Ok(connection)) => {
            connection.close(0u32.into(), b"certificate probe");
            Err(ProbeError::NoCertificate {
                server,
                reason: "the handshake completed without a certificate".to_owned(),
            })
        }
        Ok(Err(error)) => Err(ProbeError::NoCertificate {
            server,
            reason: error.to_string(),
        }),
        Err(_) => Err(ProbeError::Timeout {
            server,
            after: timeout,
        }),
    }
}

/// The error that aborts a probe handshake once the certificate is read.
#[derive(Debug)]
struct ProbeDone;

impl fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("certificate recorded; probe handshake aborted")
    }
}

impl std::error::Error for ProbeDone {}

/// Records the end-entity certificate's fingerprint and rejects it.
#[derive(Debug)]
struct RecordingVerifier {
    seen: Mutex<Option<Fingerprint>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RecordingVerifier {
    fn seen(&self) -> Option<Fingerprint> {
        *self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some(Fingerprint::of_der(end_entity.as_ref()));
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(ProbeDone)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Returns whether the file at `path` is non-empty and its last byte is not
/// a newline. A file that cannot be read counts as ending in one.
fn ends_without_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};

    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.seek(SeekFrom::End(-1)).is_err() {
        return false;
    }
    let mut last = [0u8; 1];
    file.read_exact(&mut last).is_ok() && last[0] != b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HEX_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn keys_use_typed_host_and_resolved_port() {
        let resolved = addr("192.0.2.7:4433");
        assert_eq!(
            server_key("Voice.Example.org", resolved),
            "voice.example.org:4433"
        );
        assert_eq!(
            server_key("voice.example.org:4433", resolved),
            "voice.example.org:4433"
        );
        assert_eq!(server_key("192.0.2.7", resolved), "192.0.2.7:4433");
        assert_eq!(server_key("192.0.2.7:4433", resolved), "192.0.2.7:4433");
        let v6 = addr("[::1]:9");
        assert_eq!(server_key("[::1]:9", v6), "[::1]:9");
        assert_eq!(server_key("[::1]", v6), "[::1]:9");
        assert_eq!(server_key("::1", v6), "[::1]:9");
    }

    #[test]
    fn store_roundtrips_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("known_servers");
        let mut store = KnownServers::load(&path).unwrap();
        let a = Fingerprint::parse(HEX_A).unwrap();
        let b = Fingerprint::parse(HEX_B).unwrap();
        assert_eq!(store.check("host:1", a), Verdict::New);

        store.add("host:1", a).unwrap();
        let reloaded = KnownServers::load(&path).unwrap();
        assert_eq!(reloaded.check("host:1", a), Verdict::Known);
        assert_eq!(reloaded.check("host:1", b), Verdict::Changed { stored: a });
        assert_eq!(reloaded.check("host:2", a), Verdict::New);
        assert!(store.add("host:1", b).is_err());
    }

    #[test]
    fn add_after_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        std::fs::write(&path, format!("edited:1 {HEX_A}")).unwrap();
        let mut store = KnownServers::load(&path).unwrap();
        let b = Fingerprint::parse(HEX_B).unwrap();

        store.add("host:2", b).unwrap();
        let reloaded = KnownServers::load(&path).unwrap();
        let a = Fingerprint::parse(HEX_A).unwrap();
        assert_eq!(reloaded.check("edited:1", a), Verdict::Known);
        assert_eq!(reloaded.check("host:2", b), Verdict::Known);
    }

    #[test]
    fn malformed_line_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        std::fs::write(
            &path,
            format!("# comment\n\nhost:1 {HEX_A}\nhost:2 nothex\n"),
        )
        .unwrap();
        let error = KnownServers::load(&path).unwrap_err().to_string();
        assert!(error.contains("invalid line 4"), "{error}");
    }
}
