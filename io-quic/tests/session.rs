//! Whole sessions over real quinn on loopback: the QUIC server with the
//! core server, and `run_client` with the core client, audio from a test
//! tone into a collecting sink.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use voicemcu_core::audio::{FrameSink, FrameSource, PcmFrame, FRAME_SAMPLES, SAMPLE_RATE};
use voicemcu_core::client::{ClientConfig, ClientEvent};
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::{
    run_client, CertificateSource, ClientError, ClientExit, ClientOptions, ConnectOptions,
    DialectChoice, Fingerprint, QuicServer, SenderFaults, ServerError, ServerOptions, Trust,
};

/// Upper bound for waiting on any one thing in these tests.
const STEP: Duration = Duration::from_secs(10);

/// A sine tone, for a fixed number of frames or forever.
struct Tone {
    frequency: f32,
    frames_left: Option<usize>,
    sample: u64,
}

impl FrameSource for Tone {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        if let Some(left) = &mut self.frames_left {
            if *left == 0 {
                return false;
            }
            *left -= 1;
        }
        for out in frame.iter_mut() {
            let t = self.sample as f32 / SAMPLE_RATE as f32;
            *out = 0.3 * (std::f32::consts::TAU * self.frequency * t).sin();
            self.sample += 1;
        }
        true
    }
}

/// Keeps every played sample and whether `finish` ran.
struct Collect {
    samples: Arc<Mutex<Vec<f32>>>,
    finished: Arc<AtomicBool>,
}

impl FrameSink for Collect {
    fn write_frame(&mut self, frame: &PcmFrame) -> std::io::Result<()> {
        self.samples.lock().unwrap().extend_from_slice(frame);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

struct TestServer {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

async fn start_server() -> TestServer {
    // Logs show with `RUST_LOG=voicemcu_quic=debug cargo test -- --nocapture`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();

    let options = ServerOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        certificate: CertificateSource::Generate,
        core: ServerConfig::default(),
        seed: 7,
    };
    let server = QuicServer::bind(options).unwrap();
    let addr = server.local_addr().unwrap();
    let fingerprint = server.fingerprint();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        fingerprint,
        stop: Some(stop),
        task,
    }
}

impl TestServer {
    async fn shut_down(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(STEP, self.task).await;
        result
            .expect("server did not stop in time")
            .unwrap()
            .unwrap();
    }
}

struct TestClient {
    name: String,
    commands: mpsc::Sender<String>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    /// Every event taken from `events` so far.
    seen: Vec<ClientEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<ClientExit, ClientError>>,
    samples: Arc<Mutex<Vec<f32>>>,
    finished: Arc<AtomicBool>,
}

/// Starts a client in room `room`. `tone_frames` of `None` plays forever.
fn start_client(
    server: &TestServer,
    room: &str,
    name: &str,
    dialect: DialectChoice,
    frequency: f32,
    tone_frames: Option<usize>,
) -> TestClient {
    let mut connect = ConnectOptions::new(server.addr, Trust::Pinned(server.fingerprint));
    connect.dialect = dialect;
    let options = ClientOptions {
        connect,
        core: ClientConfig::new(room, name),
        end_when_source_ends: tone_frames.is_some(),
        faults: SenderFaults::default(),
    };

    let source = Tone {
        frequency,
        frames_left: tone_frames,
        sample: 0,
    };
    let samples = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(AtomicBool::new(false));
    let sink = Collect {
        samples: samples.clone(),
        finished: finished.clone(),
    };

    let (commands, command_rx) = mpsc::channel(16);
    let (event_tx, events) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_client(
        options,
        Box::new(source),
        Box::new(sink),
        command_rx,
        event_tx,
        async move {
            let _ = stopped.await;
        },
    ));

    TestClient {
        name: name.to_owned(),
        commands,
        events,
        seen: Vec::new(),
        stop: Some(stop),
        task,
        samples,
        finished,
    }
}

impl TestClient {
    /// Waits for an event matching `wanted` and returns it.
    async fn wait_for(&mut self, what: &str, wanted: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: no {what} within {STEP:?}; saw {:?}",
                        self.name, self.seen
                    )
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{}: events ended before {what}; saw {:?}",
                        self.name, self.seen
                    )
                });
            self.seen.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    async fn wait_joined(&mut self) {
        self.wait_for("Joined", |e| matches!(e, ClientEvent::Joined { .. }))
            .await;
    }

    async fn exit(self) -> (ClientExit, Arc<Mutex<Vec<f32>>>, bool) {
        let exit = tokio::time::timeout(STEP, self.task)
            .await
            .unwrap_or_else(|_| panic!("{}: client did not end within {STEP:?}", self.name))
            .unwrap()
            .unwrap();
        (exit, self.samples, self.finished.load(Ordering::SeqCst))
    }
}

/// Counts the 20 ms frames of `samples` whose peak is above the noise floor.
fn loud_frames(samples: &[f32]) -> usize {
    samples
        .chunks(FRAME_SAMPLES)
        .filter(|frame| frame.iter().any(|s| s.abs() > 0.01))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_hear_each_other() {
    let server = start_server().await;

    // Two seconds of tone each. Alice joins first so that Bob's arrival is
    // reported to her as a join rather than listed in her first roster.
    let mut alice = start_client(
        &server,
        "smoke",
        "alice",
        DialectChoice::Auto,
        440.0,
        Some(100),
    );
    alice.wait_joined().await;
    let mut bob = start_client(
        &server,
        "smoke",
        "bob",
        DialectChoice::Auto,
        660.0,
        Some(100),
    );
    bob.wait_joined().await;
    alice
        .wait_for(
            "bob joining",
            |e| matches!(e, ClientEvent::PeerJoined { name, .. } if name == "bob"),
        )
        .await;

    let (alice_exit, alice_heard, alice_finished) = alice.exit().await;
    let (bob_exit, bob_heard, bob_finished) = bob.exit().await;

    assert_eq!(alice_exit, ClientExit::SourceEnded);
    assert_eq!(bob_exit, ClientExit::SourceEnded);
    assert!(alice_finished, "alice's sink was not finished");
    assert!(bob_finished, "bob's sink was not finished");
    // Each hears the other for most of two seconds (100 frames). A minimum
    // of 50 leaves room for the join offset, the jitter buffer's delay and a
    // loaded test machine.
    let alice_loud = loud_frames(&alice_heard.lock().unwrap());
    let bob_loud = loud_frames(&bob_heard.lock().unwrap());
    assert!(
        alice_loud >= 50,
        "alice heard only {alice_loud} loud frames"
    );
    assert!(bob_loud >= 50, "bob heard only {bob_loud} loud frames");

    server.shut_down().await;
}

async fn kick_bob(bob_dialect: DialectChoice) {
    let server = start_server().await;
    let mut alice = start_client(&server, "kick", "alice", DialectChoice::Auto, 440.0, None);
    alice.wait_joined().await;
    let mut bob = start_client(&server, "kick", "bob", bob_dialect, 660.0, None);
    bob.wait_joined().await;
    alice
        .wait_for(
            "bob joining",
            |e| matches!(e, ClientEvent::PeerJoined { name, .. } if name == "bob"),
        )
        .await;

    alice.commands.send("/kick bob".to_owned()).await.unwrap();

    bob.wait_for("Kicked", |e| matches!(e, ClientEvent::Kicked { .. }))
        .await;
    let (bob_exit, _, bob_finished) = bob.exit().await;
    assert!(
        matches!(bob_exit, ClientExit::Kicked { .. }),
        "{bob_exit:?}"
    );
    assert!(bob_finished, "bob's sink was not finished");
    alice
        .wait_for(
            "bob leaving",
            |e| matches!(e, ClientEvent::PeerLeft { name, .. } if name == "bob"),
        )
        .await;

    let _ = alice.stop.take().unwrap().send(());
    let (alice_exit, _, _) = alice.exit().await;
    assert_eq!(alice_exit, ClientExit::Stopped);
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_reaches_native_client_before_close() {
    kick_bob(DialectChoice::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_reaches_legacy_client_before_close() {
    kick_bob(DialectChoice::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_both_dialects() {
    let server = start_server().await;
    let mut native = start_client(&server, "bye", "native", DialectChoice::Auto, 440.0, None);
    native.wait_joined().await;
    let mut legacy = start_client(&server, "bye", "legacy", DialectChoice::Legacy, 660.0, None);
    legacy.wait_joined().await;

    server.shut_down().await;

    let (native_exit, _, native_finished) = native.exit().await;
    let (legacy_exit, _, legacy_finished) = legacy.exit().await;
    for (name, exit) in [("native", &native_exit), ("legacy", &legacy_exit)] {
        match exit {
            ClientExit::ServerShutdown { reason } => {
                assert!(reason.contains("shutting down"), "{name}: {reason}")
            }
            other => panic!("{name}: expected a server shutdown, got {other:?}"),
        }
    }
    assert!(native_finished);
    assert!(legacy_finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_client_leaves_room() {
    let server = start_server().await;
    let mut alice = start_client(&server, "stop", "alice", DialectChoice::Auto, 440.0, None);
    alice.wait_joined().await;
    let mut bob = start_client(&server, "stop", "bob", DialectChoice::Legacy, 660.0, None);
    bob.wait_joined().await;
    alice
        .wait_for(
            "bob joining",
            |e| matches!(e, ClientEvent::PeerJoined { name, .. } if name == "bob"),
        )
        .await;

    let _ = bob.stop.take().unwrap().send(());

    alice
        .wait_for(
            "bob leaving",
            |e| matches!(e, ClientEvent::PeerLeft { name, .. } if name == "bob"),
        )
        .await;
    let (bob_exit, _, bob_finished) = bob.exit().await;
    assert_eq!(bob_exit, ClientExit::Stopped);
    assert!(bob_finished);

    let _ = alice.stop.take().unwrap().send(());
    alice.exit().await;
    server.shut_down().await;
}
