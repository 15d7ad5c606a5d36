//! Trust on first use over real QUIC on 127.0.0.1: the probe reads a
//! server's real fingerprint, the known-servers file remembers it, a
//! restarted server with the same certificate files matches it, and a
//! server with another certificate under the same name is reported as
//! changed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::known_servers::{probe_fingerprint, server_key, KnownServers, Verdict};
use voicemcu_quic::quinn::Endpoint;
use voicemcu_quic::tls::SERVER_NAME;
use voicemcu_quic::{
    connect, CertificateSource, ConnectOptions, Fingerprint, QuicServer, ServerError,
    ServerOptions, Trust,
};

const STEP: Duration = Duration::from_secs(10);

/// A directory in the temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("voicemcu-known-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    fn start(bind: SocketAddr, certificate: CertificateSource) -> Running {
        let server = QuicServer::bind(ServerOptions {
            bind,
            certificate,
            core: ServerConfig::default(),
            seed: 9,
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let fingerprint = server.fingerprint();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            fingerprint,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(STEP, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_remembered_then_matched() {
    let dir = TempDir::new("first");
    let files = CertificateSource::Files {
        cert: dir.0.join("cert.pem"),
        key: dir.0.join("key.pem"),
    };
    let store_path = dir.0.join("config").join("known_servers");
    let server = Running::start(loopback(), files.clone());
    let key = server_key("127.0.0.1", server.addr);

    // First contact: the probe reads the real fingerprint, which is new.
    let seen = probe_fingerprint(server.addr, SERVER_NAME, STEP)
        .await
        .unwrap();
    assert_eq!(seen, server.fingerprint);
    let mut store = KnownServers::load(&store_path).unwrap();
    assert_eq!(store.check(&key, seen), Verdict::New);
    store.add(&key, seen).unwrap();

    // Pinned to what was remembered, the real connection succeeds.
    let endpoint = Endpoint::client(loopback()).unwrap();
    let (connection, _) = connect(
        &endpoint,
        &ConnectOptions::new(server.addr, Trust::Pinned(seen)),
    )
    .await
    .unwrap();
    connection.close(0u32.into(), b"done");

    // The server restarted with the same certificate files matches. It
    // gets a new ephemeral port, but stands for the same remembered entry.
    server.stop().await;
    let restarted = Running::start(loopback(), files);
    let seen_again = probe_fingerprint(restarted.addr, SERVER_NAME, STEP)
        .await
        .unwrap();
    let reloaded = KnownServers::load(&store_path).unwrap();
    assert_eq!(reloaded.check(&key, seen_again), Verdict::Known);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_certificate_reported() {
    let dir = TempDir::new("changed");
    let store_path = dir.0.join("known_servers");
    let server = Running::start(loopback(), CertificateSource::Generate);
    let key = server_key("127.0.0.1", server.addr);

    // The file remembers another certificate for this address.
    let other = Fingerprint::of_der(b"some other certificate");
    let mut store = KnownServers::load(&store_path).unwrap();
    store.add(&key, other).unwrap();

    let seen = probe_fingerprint(server.addr, SERVER_NAME, STEP)
        .await
        .unwrap();
    let reloaded = KnownServers::load(&store_path).unwrap();
    assert_eq!(
        reloaded.check(&key, seen),
        Verdict::Changed { stored: other }
    );

    // Pinned to the remembered fingerprint, the real handshake fails too.
    let endpoint = Endpoint::client(loopback()).unwrap();
    let result = connect(
        &endpoint,
        &ConnectOptions::new(server.addr, Trust::Pinned(other)),
    )
    .await;
    assert!(result.is_err(), "connected despite a changed certificate");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_of_silent_port_times_out() {
    // A bound socket that never replies.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let addr = silent.local_addr().unwrap();
    let error = probe_fingerprint(addr, SERVER_NAME, Duration::from_millis(500))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("timed out after 0.5 s"), "{error}");
}
