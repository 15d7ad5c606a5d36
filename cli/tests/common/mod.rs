//! Helpers for the CLI tests that run the real `voicemcu server`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_voicemcu");

/// The address and certificate fingerprint a server printed at start.
pub struct ServerStart {
    pub addr: String,
    pub fingerprint: String,
}

/// Starts `voicemcu server` with `args` and the certificate and key in
/// `dir`, and waits until it has printed its address, its fingerprint and
/// a line starting with `ready`.
pub fn start_server<I, S>(dir: &Path, args: I, ready: &str) -> (Child, ServerStart)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(BINARY)
        .arg("server")
        .args(args)
        .arg("--cert-file")
        .arg(dir.join("cert.pem"))
        .arg("--key-file")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the voicemcu binary starts");
    let start = read_server_start(&mut child, ready);
    (child, start)
}

/// Reads `child`'s standard output, which must be piped, until the server
/// has printed its address, its fingerprint and a line starting with
/// `ready`, and returns the first two.
fn read_server_start(child: &mut Child, ready: &str) -> ServerStart {
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let mut addr = None;
    let mut fingerprint = None;
    let mut is_ready = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("server stdout is UTF-8");
        if let Some(rest) = line.strip_prefix("listening on ") {
            addr = Some(rest.to_string());
        }
        if let Some(rest) = line.split("--cert-hash ").nth(1) {
            fingerprint = Some(rest.trim_end_matches(')').to_string());
        }
        is_ready |= line.starts_with(ready);
        if is_ready && addr.is_some() && fingerprint.is_some() {
            break;
        }
    }
    ServerStart {
        addr: addr.expect("the server printed its address"),
        fingerprint: fingerprint.expect("the server printed its fingerprint"),
    }
}
