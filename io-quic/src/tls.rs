//! Certificates and their verification.
//!
//! voicemcu servers use a self-signed certificate for the name `localhost`,
//! so there is no certificate authority to check against. A client trusts a
//! server either by pinning the SHA-256 fingerprint of the end-entity
//! certificate's DER bytes (`--cert-hash`), or, for tests only, by skipping
//! verification (`--danger-skip-verify`). This module generates and stores
//! such certificates, computes and parses fingerprints, and provides the two
//! rustls verifiers.
//!
//! Every rustls configuration in this crate is built with the ring provider
//! from [`crypto_provider`], passed explicitly, so nothing depends on a
//! process-wide default provider.

use std::fmt;
use std::fs;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

/// The name in every certificate voicemcu generates, and the server name
/// (SNI) voicemcu 0.1 clients connect with.
pub const SERVER_NAME: &str = "localhost";

/// Creates the rustls crypto provider used throughout this crate: ring.
// rustls 0.23.48 deprecates `ring::default_provider` because ring has no
// post-quantum key exchange. The workspace chooses ring deliberately, and
// voicemcu 0.1 peers negotiate classical groups anyway.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An error from generating, loading, storing or parsing a certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),

    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("failed to write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },

    #[error("{} is not valid PEM: {source}", path.display())]
    InvalidPem { path: PathBuf, source: io::Error },

    #[error("{} contains no PEM certificate (expected a \"BEGIN CERTIFICATE\" block)", path.display())]
    NoCertificate { path: PathBuf },

    #[error(
        "{} contains no PEM private key (expected a PKCS#8, PKCS#1 or SEC1 \"PRIVATE KEY\" block)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },

    #[error(
        "certificate file {} exists but key file {} does not: supply both files, or neither to create a new pair",
        present.display(),
        missing.display()
    )]
    KeyFileMissing { present: PathBuf, missing: PathBuf },

    #[error(
        "key file {} exists but certificate file {} does not: supply both files, or neither to create a new pair",
        present.display(),
        missing.display()
    )]
    CertFileMissing { present: PathBuf, missing: PathBuf },

    #[error(
        "the private key in {} cannot be used with the certificate in {}: {source}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },

    #[error("invalid certificate hash {value:?}: {problem}")]
    InvalidCertHash { value: String, problem: String },

    #[error("failed to build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),

    #[error("the TLS configuration cannot be used for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The SHA-256 of a certificate's DER bytes. Displayed, as voicemcu 0.1
/// logs it, as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Hashes the DER encoding of a certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parses a `--cert-hash` value: 64 hex digits in either case, with or
    /// without colons between them.
    pub fn parse(value: &str) -> Result<Fingerprint, TlsError> {
        let invalid = |problem: String| TlsError::InvalidCertHash {
            value: value.to_owned(),
            problem,
        };

        let digits: Vec<char> = value.trim().chars().filter(|c| *c != ':').collect();
        if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "{bad:?} is not a hex digit; expected the 64 hex digits of a SHA-256 fingerprint, optionally separated by colons"
            )));
        }
        if digits.len() != 64 {
            return Err(invalid(format!(
                "expected 64 hex digits (a SHA-256 fingerprint), found {}",
                digits.len()
            )));
        }

        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            // Both characters were checked to be hex digits above.
            let high = pair[0].to_digit(16).unwrap_or(0);
            let low = pair[1].to_digit(16).unwrap_or(0);
            *byte = (high * 16 + low) as u8;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = TlsError;

    fn from_str(value: &str) -> Result<Fingerprint, TlsError> {
        Fingerprint::parse(value)
    }
}

/// A server's certificate chain and private key.
#[derive(Debug)]
pub struct Identity {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The PEM text of a freshly generated certificate and its key.
struct GeneratedPem {
    cert: String,
    key: String,
    identity: Identity,
}

fn generate_pem() -> Result<GeneratedPem, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    Ok(GeneratedPem {
        cert: generated.cert.pem(),
        key: generated.key_pair.serialize_pem(),
        identity: Identity {
            cert_chain: vec![generated.cert.der().clone()],
            key,
        },
    })
}

impl Identity {
    /// Generates a self-signed certificate for `localhost` with a new
    /// ECDSA P-256 key.
    pub fn generate() -> Result<Identity, TlsError> {
        Ok(generate_pem()?.identity)
    }

    /// Loads the certificate and key PEM files, or, when neither exists,
    /// generates a new pair and saves it there (the key file readable by its
    /// owner only, on Unix). Exactly one of the two files existing is an
    /// error, so an existing file is never overwritten.
    pub fn load_or_create(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Identity::load(cert_path, key_path),
            (false, false) => Identity::create(cert_path, key_path),
            (true, false) => Err(TlsError::KeyFileMissing {
                present: cert_path.to_owned(),
                missing: key_path.to_owned(),
            }),
            (false, true) => Err(TlsError::CertFileMissing {
                present: key_path.to_owned(),
                missing: cert_path.to_owned(),
            }),
        }
    }

    /// Loads a certificate chain (end-entity first) and a private key from
    /// PEM files and checks that the key belongs to the certificate.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
        let cert_chain = read_cert_chain(cert_path)?;
        let key = read_private_key(key_path)?;

        let provider = crypto_provider();
        rustls::sign::CertifiedKey::from_der(cert_chain.clone(), key.clone_key(), &provider)
            .map_err(|source| TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
                source,
            })?;

        Ok(Identity { cert_chain, key })
    }

    /// Writes a new pair. Both files are written and synced under temporary
    /// names first and then renamed, so a server stopped mid-way leaves
    /// either both files or neither, never a certificate without its key.
    fn create(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
        let generated = generate_pem()?;
        let cert_temp = temporary_path(cert_path);
        let key_temp = temporary_path(key_path);
        write_new_file(&key_temp, generated.key.as_bytes(), true)?;
        write_new_file(&cert_temp, generated.cert.as_bytes(), false)?;

        for (temp, path) in [(&key_temp, key_path), (&cert_temp, cert_path)] {
            fs::rename(temp, path).map_err(|source| TlsError::Write {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(generated.identity)
    }

    /// Returns the fingerprint clients pin: the SHA-256 of the end-entity
    /// certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        // Both constructors guarantee at least one certificate.
        Fingerprint::of_der(self.cert_chain[0].as_ref())
    }

    /// Returns the certificate chain, end-entity first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// Returns the private key of the end-entity certificate.
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

fn read_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = fs::File::open(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let chain = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::InvalidPem {
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = fs::File::open(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|source| TlsError::InvalidPem {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_owned(),
        })
}

/// Creates `path` (and its missing parent directories) and writes
/// `contents`, failing if the file already exists. A `private` file gets
/// mode 0600 on Unix.
/// Returns the name a new file is written under before it is renamed to
/// `path`: hidden, in the same directory, so the rename stays atomic.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "voicemcu".into(), |name| name.to_string_lossy());
    path.with_file_name(format!(".{name}.new"))
}

fn write_new_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let write_error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };

    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(write_error)?;
    }

    // A temporary file left by a start that was stopped mid-way.
    if path.exists() {
        fs::remove_file(path).map_err(write_error)?;
    }

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if private {
            options.mode(0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = private;

    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// The error a [`PinnedCertVerifier`] hands rustls when the fingerprints
/// differ. Its text reaches the client's handshake error.
#[derive(Debug)]
struct FingerprintMismatch {
    expected: Fingerprint,
    got: Fingerprint,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate fingerprint mismatch: expected {}, got {}",
            self.expected, self.got
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// Accepts exactly the server certificate whose SHA-256 matches the pinned
/// fingerprint, whatever its names, issuer or validity dates, and still
/// checks that the server's TLS 1.3 handshake signature was made with that
/// certificate's key.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    expected: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: Mutex<Option<Fingerprint>>,
}

impl PinnedCertVerifier {
    pub fn new(expected: Fingerprint, provider: &CryptoProvider) -> PinnedCertVerifier {
        PinnedCertVerifier {
            expected,
            algorithms: provider.signature_verification_algorithms,
            mismatch: Mutex::new(None),
        }
    }

    /// Returns the pinned fingerprint.
    pub fn expected(&self) -> Fingerprint {
        self.expected
    }

    /// Returns the fingerprint of the last certificate this verifier
    /// rejected, if any.
    pub fn rejected(&self) -> Option<Fingerprint> {
        *self
            .mismatch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity.as_ref());
        if got == self.expected {
            return Ok(ServerCertVerified::assertion());
        }

        *self
            .mismatch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(got);
        let mismatch = FingerprintMismatch {
            expected: self.expected,
            got,
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
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

/// Accepts any server certificate (`--danger-skip-verify`). The handshake
/// signature is still checked against the presented certificate, which
/// proves only that the server has that certificate's key, not who it is.
#[derive(Debug)]
pub struct SkipServerVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl SkipServerVerification {
    pub fn new(provider: &CryptoProvider) -> SkipServerVerification {
        SkipServerVerification {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn fingerprint_display_roundtrip() {
        let parsed = Fingerprint::parse(HEX).unwrap();
        assert_eq!(parsed.0[1], 0x11);
        assert_eq!(parsed.to_string(), HEX);
    }

    #[test]
    fn cert_hash_accepts_upper_case_and_colons() {
        let expected = Fingerprint::parse(HEX).unwrap();
        let upper = HEX.to_uppercase();
        let colons = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(Fingerprint::parse(&upper).unwrap(), expected);
        assert_eq!(Fingerprint::parse(&colons).unwrap(), expected);
        assert_eq!(Fingerprint::parse(&format!(" {HEX}\n")).unwrap(), expected);
    }

    #[test]
    fn cert_hash_rejects_wrong_length() {
        let error = Fingerprint::parse("abcd").unwrap_err().to_string();
        assert!(error.contains("\"abcd\""), "{error}");
        assert!(error.contains("found 4"), "{error}");
    }

    #[test]
    fn cert_hash_rejects_non_hex() {
        let value = format!("{}g", &HEX[..63]);
        let error = Fingerprint::parse(&value).unwrap_err().to_string();
        assert!(error.contains(&value), "{error}");
        assert!(error.contains("'g' is not a hex digit"), "{error}");
    }

    #[test]
    fn generated_identity_has_one_certificate() {
        let identity = Identity::generate().unwrap();
        assert_eq!(identity.cert_chain().len(), 1);
        assert_eq!(
            identity.fingerprint(),
            Fingerprint::of_der(identity.cert_chain()[0].as_ref())
        );
    }
}
