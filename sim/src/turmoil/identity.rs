//! A server certificate that is the same for the same seed.
//!
//! `Identity::generate` in io-quic makes an ECDSA P-256 key from the
//! operating system's randomness, and ECDSA signatures (in the certificate
//! and in every TLS handshake) carry a random nonce, so their DER length
//! varies by a byte or two. Over a simulated network that changes packet
//! sizes, and so, in principle, congestion-control decisions. The simulation
//! uses an Ed25519 key derived from the seed instead, because Ed25519
//! signatures are deterministic and always 64 bytes. rcgen (0.13) derives
//! the serial number from the public key and uses fixed validity dates, so
//! the certificate and its fingerprint are identical for the same seed.
//!
//! io-quic has no constructor from DER, so the PEM pair is written to a
//! temporary folder and read back with the production loader,
//! `Identity::load`, which also checks that the key matches the
//! certificate.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use voicemcu_quic::tls::SERVER_NAME;
use voicemcu_quic::Identity;

/// The fixed PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the
/// version, the id-Ed25519 algorithm identifier, and the octet string
/// header of the 32-byte seed that follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An error that kept the simulated server's certificate from being made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("failed to build the Ed25519 certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("failed to write the certificate to a temporary folder: {0}")]
    Write(#[from] std::io::Error),
    #[error("io-quic rejected the generated certificate: {0}")]
    Load(#[from] voicemcu_quic::TlsError),
}

/// Builds the self-signed `localhost` certificate of a simulated server from
/// `seed`.
pub fn seeded_identity(seed: u64) -> Result<Identity, IdentityError> {
    let mut key_seed = [0u8; 32];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut key_seed);
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&key_seed);

    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
    let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
    let certificate = params.self_signed(&key_pair)?;

    let folder = tempfile::tempdir()?;
    let cert_path = folder.path().join("cert.pem");
    let key_path = folder.path().join("key.pem");
    std::fs::write(&cert_path, certificate.pem())?;
    std::fs::write(&key_path, key_pair.serialize_pem())?;
    Ok(Identity::load(&cert_path, &key_path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_fingerprint() {
        let first = seeded_identity(7).unwrap().fingerprint();
        let again = seeded_identity(7).unwrap().fingerprint();
        let other = seeded_identity(8).unwrap().fingerprint();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }
}
