//! Certificate files and `--cert-hash` parsing.

use voicemcu_quic::{Fingerprint, Identity, TlsError};

#[test]
fn cert_files_created_then_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls").join("cert.pem");
    let key = dir.path().join("tls").join("key.pem");

    let created = Identity::load_or_create(&cert, &key).unwrap();
    assert!(cert.exists());
    assert!(key.exists());

    let reloaded = Identity::load_or_create(&cert, &key).unwrap();
    assert_eq!(reloaded.fingerprint(), created.fingerprint());
}

#[cfg(unix)]
#[test]
fn created_key_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    Identity::load_or_create(&cert, &key).unwrap();

    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn lone_cert_file_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    Identity::load_or_create(&cert, &key).unwrap();
    std::fs::remove_file(&key).unwrap();

    let error = Identity::load_or_create(&cert, &key).unwrap_err();

    assert!(
        matches!(error, TlsError::KeyFileMissing { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&key.display().to_string()), "{message}");
    // The certificate that was there must not be replaced.
    assert!(cert.exists());
}

#[test]
fn garbage_cert_file_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, "not a key\n").unwrap();

    let error = Identity::load_or_create(&cert, &key).unwrap_err();

    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&cert.display().to_string()),
        "{error}"
    );
}

#[test]
fn mismatched_key_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = (dir.path().join("a.pem"), dir.path().join("a.key"));
    let (cert_b, key_b) = (dir.path().join("b.pem"), dir.path().join("b.key"));
    Identity::load_or_create(&cert_a, &key_a).unwrap();
    Identity::load_or_create(&cert_b, &key_b).unwrap();

    let error = Identity::load(&cert_a, &key_b).unwrap_err();

    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
}

#[test]
fn bad_cert_hash_names_value() {
    let error = "12:34:zz".parse::<Fingerprint>().unwrap_err();
    let message = error.to_string();
    assert!(message.contains("\"12:34:zz\""), "{message}");
    assert!(message.contains("'z' is not a hex digit"), "{message}");
}

#[test]
fn fingerprint_matches_logged_form() {
    let identity = Identity::generate().unwrap();
    let text = identity.fingerprint().to_string();
    assert_eq!(text.len(), 64);
    assert!(
        text.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{text}"
    );
    assert_eq!(text.parse::<Fingerprint>().unwrap(), identity.fingerprint());
}
