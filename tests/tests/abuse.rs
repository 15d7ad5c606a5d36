//! Hostile clients over real QUIC on 127.0.0.1. In each test a well-behaved
//! pair talks in one room while a hostile client misbehaves in another;
//! the test checks that the hostile client gets the defined response, that
//! the server stays up, and that the pair keeps hearing each other.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{tail, tone_level};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use voicemcu_audio::ToneSource;
use voicemcu_core::client::ClientConfig;
use voicemcu_core::rate_limit::RateLimit;
use voicemcu_core::server::{close_code, ServerConfig};
use voicemcu_core::wire::{
    decode_message, encode_datagram, encode_frame, encode_message, AudioHeader, Dialect,
    FrameDecoder, SignalMessage,
};
use voicemcu_quic::endpoint::{client_config, TransportSettings};
use voicemcu_quic::quinn::{self, Connection, ConnectionError, Endpoint, RecvStream, SendStream};
use voicemcu_quic::{
    connect, run_client, CertificateSource, ClientError, ClientExit, ClientOptions, ConnectOptions,
    Fingerprint, QuicServer, SenderFaults, ServerError, ServerOptions, ServerTuning, Trust,
};
use voicemcu_sim::memory::MemorySink;

const ALICE_HZ: f32 = 500.0;
const BOB_HZ: f32 = 800.0;

/// Tone level above which a tone counts as heard; tones are sent at
/// -12 dBFS, an amplitude of about 0.25.
const HEARD: f32 = 0.05;

/// The window of a listener's output that is measured.
const MEASURE: Duration = Duration::from_millis(300);

/// Upper bound for waiting on any one thing.
const STEP: Duration = Duration::from_secs(10);

struct Running {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn start(core: ServerConfig, tuning: ServerTuning) -> Running {
        let server = QuicServer::bind_with(
            ServerOptions {
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                certificate: CertificateSource::Generate,
                core,
                seed: 3,
            },
            tuning,
        )
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
            stop: Some(stop),
            task,
        }
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::new(self.addr, Trust::Pinned(self.fingerprint))
    }

    /// Stops the server, which must still be running.
    async fn stop(mut self) {
        assert!(!self.task.is_finished(), "the server stopped by itself");
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, self.task).await;
        result.unwrap().unwrap().unwrap();
    }
}

/// One well-behaved participant sending a tone.
struct Speaker {
    ears: MemorySink,
    /// Kept so that the client's command channel stays open.
    _commands: mpsc::Sender<String>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<ClientExit, ClientError>>,
}

impl Speaker {
    fn join(server: &Running, name: &str, tone_hz: f32) -> Speaker {
        let ears = MemorySink::new();
        let options = ClientOptions {
            connect: server.connect_options(),
            core: ClientConfig::new("good", name),
            end_when_source_ends: false,
            faults: SenderFaults::default(),
        };
        let (commands, commands_rx) = mpsc::channel(1);
        let (events, mut events_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_client(
            options,
            Box::new(ToneSource::new(tone_hz, -12.0).unwrap()),
            Box::new(ears.clone()),
            commands_rx,
            events,
            async move {
                let _ = stopped.await;
            },
        ));
        Speaker {
            ears,
            _commands: commands,
            stop: Some(stop),
            task,
        }
    }

    fn hears(&self, frequency: f32) -> bool {
        tone_level(tail(&self.ears.samples(), MEASURE), frequency) > HEARD
    }

    async fn leave(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let exit = tokio::time::timeout(STEP, self.task).await;
        assert_eq!(exit.unwrap().unwrap().unwrap(), ClientExit::Stopped);
    }
}

/// Alice and Bob in room "good", each sending a tone.
struct Pair {
    alice: Speaker,
    bob: Speaker,
}

impl Pair {
    async fn join(server: &Running) -> Pair {
        let pair = Pair {
            alice: Speaker::join(server, "alice", ALICE_HZ),
            bob: Speaker::join(server, "bob", BOB_HZ),
        };
        pair.wait_until_hearing("after joining").await;
        pair
    }

    /// Waits until each hears the other in the latest window of its output.
    async fn wait_until_hearing(&self, when: &str) {
        let deadline = tokio::time::Instant::now() + STEP;
        while !(self.alice.hears(BOB_HZ) && self.bob.hears(ALICE_HZ)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "alice and bob did not hear each other {when}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks that both hear each other, allowing a loaded machine
    /// [`STEP`] to deliver the latest audio.
    async fn assert_hearing(&self, when: &str) {
        self.wait_until_hearing(when).await;
    }

    async fn leave(self) {
        self.alice.leave().await;
        self.bob.leave().await;
    }
}

/// A client driven by hand: raw frames and datagrams on a quinn connection.
struct Raw {
    _endpoint: Endpoint,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    frames: FrameDecoder,
}

impl Raw {
    async fn connect(server: &Running) -> Raw {
        Raw::connect_with(server, server.connect_options(), None).await
    }

    /// Connects with `transport` in place of our client's transport.
    async fn connect_with(
        server: &Running,
        options: ConnectOptions,
        transport: Option<quinn::TransportConfig>,
    ) -> Raw {
        let mut endpoint = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        if let Some(transport) = transport {
            let mut crypto = client_config(options.trust, true).unwrap();
            crypto.config.transport_config(Arc::new(transport));
            endpoint.set_default_client_config(crypto.config);
            let connecting = endpoint.connect(server.addr, &options.server_name).unwrap();
            let connection = tokio::time::timeout(STEP, connecting)
                .await
                .unwrap()
                .unwrap();
            return Raw::open(endpoint, connection).await;
        }
        let (connection, dialect) = connect(&endpoint, &options).await.unwrap();
        assert_eq!(dialect, Dialect::Native);
        Raw::open(endpoint, connection).await
    }

    async fn open(endpoint: Endpoint, connection: Connection) -> Raw {
        let (send, recv) = connection.open_bi().await.unwrap();
        Raw {
            _endpoint: endpoint,
            connection,
            send,
            recv,
            frames: FrameDecoder::default(),
        }
    }

    async fn send(&mut self, message: &SignalMessage) {
        let frame = encode_frame(&encode_message(message, Dialect::Native).unwrap());
        self.send.write_all(&frame).await.unwrap();
    }

    /// Reads the next message from the server, or `None` once the stream
    /// or the connection ends.
    async fn next_message(&mut self) -> Option<SignalMessage> {
        loop {
            if let Some(body) = self.frames.next_frame().unwrap() {
                return Some(decode_message(&body, Dialect::Native).unwrap());
            }
            let chunk = tokio::time::timeout(STEP, self.recv.read_chunk(64 * 1024, true))
                .await
                .expect("the server neither sent nor closed within the step");
            match chunk {
                Ok(Some(chunk)) => self.frames.push(&chunk.bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Reads messages until an `Error` and returns its text; panics if the
    /// connection ends first.
    async fn next_error(&mut self) -> String {
        loop {
            match self.next_message().await {
                Some(SignalMessage::Error { message }) => return message,
                Some(_) => continue,
                None => panic!("the connection ended without an Error"),
            }
        }
    }

    /// Joins `room` and returns the client id the server gave.
    async fn join(&mut self, room: &str, name: &str) -> u64 {
        self.send(&SignalMessage::Join {
            room_code: room.to_string(),
            display_name: name.to_string(),
        })
        .await;
        loop {
            match self.next_message().await {
                Some(SignalMessage::Joined { client_id }) => return client_id,
                Some(_) => continue,
                None => panic!("connection ended before the join was accepted"),
            }
        }
    }

    /// Waits for the connection to close and returns the application
    /// close code.
    async fn closed_code(&self) -> u64 {
        let error = tokio::time::timeout(STEP, self.connection.closed())
            .await
            .expect("the server did not close the connection");
        match error {
            ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
            other => panic!("expected an application close, got {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_flood_gets_slow_down_errors() {
    let core = ServerConfig {
        signalling_rate: RateLimit::new(5, 10),
        ..ServerConfig::default()
    };
    let server = Running::start(core, ServerTuning::default()).await;
    let pair = Pair::join(&server).await;

    let mut hostile = Raw::connect(&server).await;
    hostile.join("flood", "mallory").await;
    for i in 0..500 {
        hostile
            .send(&SignalMessage::Mute { muted: i % 2 == 0 })
            .await;
    }

    // The join took one token and the burst allows nine more mutes; each
    // later one gets an Error telling the client to slow down.
    let mut muted_replies = 0;
    let mut slow_down_errors = 0;
    while muted_replies + slow_down_errors < 500 {
        match hostile.next_message().await {
            Some(SignalMessage::PeerMuted { .. }) => muted_replies += 1,
            Some(SignalMessage::Error { message }) => {
                assert!(message.contains("slow down"), "{message}");
                slow_down_errors += 1;
            }
            Some(_) => {}
            None => panic!("the server closed a flooding client instead of refusing its commands"),
        }
    }
    assert!(muted_replies >= 9, "{muted_replies} mutes carried out");
    assert!(muted_replies < 100, "{muted_replies} mutes carried out");
    assert!(slow_down_errors > 400, "{slow_down_errors} errors");
    pair.assert_hearing("during a signalling flood").await;

    // Leave is allowed however empty the bucket is.
    hostile.send(&SignalMessage::Leave).await;
    assert_eq!(hostile.closed_code().await, u64::from(close_code::NORMAL));

    pair.assert_hearing("after a signalling flood").await;
    pair.leave().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_refused_per_address() {
    let tuning = ServerTuning {
        connection_rate: RateLimit::new(1, 4),
        ..ServerTuning::default()
    };
    let server = Running::start(ServerConfig::default(), tuning).await;
    // Alice and Bob take two of the four attempts 127.0.0.1 may make at once.
    let pair = Pair::join(&server).await;

    let endpoint = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    // One attempt each: the client's own retries would spread them out.
    let mut once = server.connect_options();
    once.refused_attempts = 1;
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..30 {
        match connect(&endpoint, &once).await {
            Ok((connection, _)) => {
                accepted += 1;
                connection.close(0u32.into(), b"done");
            }
            Err(ClientError::Refused { attempts: 1, .. }) => refused += 1,
            Err(other) => panic!("expected a refusal, got {other}"),
        }
    }
    // About one token refills during the 30 attempts.
    assert!((2..=6).contains(&accepted), "{accepted} attempts accepted");
    assert_eq!(accepted + refused, 30);
    pair.assert_hearing("during a connection flood").await;

    // A token refills after a second at one per second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (connection, _) = connect(&endpoint, &once).await.unwrap();
    connection.close(0u32.into(), b"done");

    // With its default retries, a client waits for the next token.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        let (connection, _) = connect(&endpoint, &server.connect_options()).await.unwrap();
        connection.close(0u32.into(), b"done");
    }

    pair.assert_hearing("after a connection flood").await;
    pair.leave().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frame_closes_with_error() {
    let core = ServerConfig {
        frame_timeout: Duration::from_secs(1),
        cleanup_interval: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let server = Running::start(core, ServerTuning::default()).await;
    let pair = Pair::join(&server).await;

    let mut hostile = Raw::connect(&server).await;
    hostile.join("stall", "mallory").await;
    // A frame header announcing 100 bytes, followed by two of them.
    hostile.send.write_all(&[0, 0, 0, 100, 1, 2]).await.unwrap();

    let error = loop {
        match hostile.next_message().await {
            Some(SignalMessage::Error { message }) => break message,
            Some(_) => continue,
            None => panic!("connection ended without an Error"),
        }
    };
    assert!(
        error.starts_with("signalling frame incomplete after 1.0 s (6 bytes of it received)"),
        "{error}"
    );
    assert_eq!(
        hostile.closed_code().await,
        u64::from(close_code::PROTOCOL_ERROR)
    );

    pair.assert_hearing("after a stalled frame").await;
    pair.leave().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_flood_leaves_others_unaffected() {
    let server = Running::start(ServerConfig::default(), ServerTuning::default()).await;
    let pair = Pair::join(&server).await;

    let mut hostile = Raw::connect(&server).await;
    let client_id = hostile.join("flood", "mallory").await;
    let mut sent = 0u32;
    let flood_end = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < flood_end {
        for _ in 0..200 {
            let header = AudioHeader {
                client_id,
                sequence: sent.wrapping_mul(7919),
                timestamp: sent,
            };
            // Junk that is not Opus, so each one also costs a failed decode.
            let datagram = encode_datagram(header, &[0xa5; 400]);
            // A full send buffer drops the datagram, which is what a flood
            // would see too.
            let _ = hostile.connection.send_datagram(datagram.into());
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    assert!(sent > 10_000, "only {sent} datagrams sent");
    pair.assert_hearing("at the end of a datagram flood").await;

    // The flooding client is still served: it may leave normally.
    hostile.send(&SignalMessage::Leave).await;
    assert_eq!(hostile.closed_code().await, u64::from(close_code::NORMAL));
    pair.assert_hearing("after a datagram flood").await;
    pair.leave().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_kept_alive_by_server() {
    // A 3 s idle timeout: the server sends a keep-alive every second.
    let tuning = ServerTuning {
        transport: TransportSettings {
            idle_timeout: Duration::from_secs(3),
            keep_alive: voicemcu_quic::endpoint::auto_keep_alive(Duration::from_secs(3)),
            ..TransportSettings::default()
        },
        ..ServerTuning::default()
    };
    let server = Running::start(ServerConfig::default(), tuning).await;

    // A client that sends no keep-alives and no audio, as a muted
    // voicemcu 0.1 client does.
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(None);
    let mut silent = Raw::connect_with(&server, server.connect_options(), Some(transport)).await;
    let client_id = silent.join("quiet", "mute").await;
    silent.send(&SignalMessage::Mute { muted: true }).await;

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        silent.connection.close_reason().is_none(),
        "silent client dropped: {:?}",
        silent.connection.close_reason()
    );
    silent.send(&SignalMessage::Mute { muted: false }).await;
    loop {
        match silent.next_message().await {
            Some(SignalMessage::PeerMuted {
                client_id: id,
                muted: false,
                ..
            }) if id == client_id => break,
            Some(_) => continue,
            None => panic!("silent client lost its connection"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_streams_never_granted() {
    let server = Running::start(ServerConfig::default(), ServerTuning::default()).await;
    let pair = Pair::join(&server).await;

    let mut hostile = Raw::connect(&server).await;
    hostile.join("streams", "mallory").await;

    // The server grants one bidirectional stream (the signalling stream)
    // and no unidirectional ones, so every further open waits for credit
    // that never comes.
    let second_bidi = tokio::time::timeout(Duration::from_secs(1), hostile.connection.open_bi());
    assert!(
        second_bidi.await.is_err(),
        "a second bidirectional stream opened"
    );
    let uni = tokio::time::timeout(Duration::from_secs(1), hostile.connection.open_uni());
    assert!(uni.await.is_err(), "a unidirectional stream opened");
    pair.assert_hearing("while a client asks for more streams")
        .await;

    // The signalling stream it has keeps working.
    hostile.send(&SignalMessage::Mute { muted: true }).await;
    loop {
        match hostile.next_message().await {
            Some(SignalMessage::PeerMuted { muted: true, .. }) => break,
            Some(_) => continue,
            None => panic!("the server closed the client that asked for more streams"),
        }
    }

    pair.assert_hearing("after a client asked for more streams")
        .await;
    pair.leave().await;
    server.stop().await;
}

/// What a hostile client does in one case of [`protocol_abuse_answered`].
#[derive(Debug)]
enum Abuse {
    /// Sends a command before `Join`.
    CommandBeforeJoin,
    /// Announces a frame longer than the limit.
    OversizeFrame,
    /// Joins with an empty display name.
    EmptyName,
    /// Joins a new room when the server is at its room limit.
    TooManyRooms,
    /// Joins, then sends `Join` again.
    SecondJoin,
    /// Joins as host, then kicks an id nobody has.
    UnknownTarget,
    /// Joins, then sends datagrams shorter than the header and with a
    /// payload over the limit.
    BadDatagrams,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_abuse_answered() {
    // Room "good" and the hostile client's room "bad" fill the limit.
    let core = ServerConfig {
        max_rooms: 2,
        ..ServerConfig::default()
    };
    let server = Running::start(core, ServerTuning::default()).await;
    let pair = Pair::join(&server).await;

    let cases = [
        (Abuse::CommandBeforeJoin, Some(close_code::PROTOCOL_ERROR)),
        (Abuse::OversizeFrame, Some(close_code::PROTOCOL_ERROR)),
        (Abuse::EmptyName, Some(close_code::JOIN_REJECTED)),
        (Abuse::TooManyRooms, Some(close_code::JOIN_REJECTED)),
        (Abuse::SecondJoin, None),
        (Abuse::UnknownTarget, None),
        (Abuse::BadDatagrams, None),
    ];
    for (abuse, expected_close) in cases {
        let mut hostile = Raw::connect(&server).await;
        let error = match abuse {
            Abuse::CommandBeforeJoin => {
                hostile.send(&SignalMessage::Mute { muted: true }).await;
                hostile.next_error().await
            }
            Abuse::OversizeFrame => {
                hostile
                    .send
                    .write_all(&u32::MAX.to_be_bytes())
                    .await
                    .unwrap();
                hostile.next_error().await
            }
            Abuse::EmptyName => {
                hostile
                    .send(&SignalMessage::Join {
                        room_code: "bad".to_string(),
                        display_name: String::new(),
                    })
                    .await;
                hostile.next_error().await
            }
            Abuse::TooManyRooms => {
                let mut occupant = Raw::connect(&server).await;
                occupant.join("bad", "occupant").await;
                hostile
                    .send(&SignalMessage::Join {
                        room_code: "third".to_string(),
                        display_name: "mallory".to_string(),
                    })
                    .await;
                let error = hostile.next_error().await;
                occupant.send(&SignalMessage::Leave).await;
                error
            }
            Abuse::SecondJoin => {
                hostile.join("bad", "mallory").await;
                hostile
                    .send(&SignalMessage::Join {
                        room_code: "other".to_string(),
                        display_name: "mallory".to_string(),
                    })
                    .await;
                hostile.next_error().await
            }
            Abuse::UnknownTarget => {
                hostile.join("bad", "mallory").await;
                hostile.send(&SignalMessage::Kick { target: 12_345 }).await;
                hostile.next_error().await
            }
            Abuse::BadDatagrams => {
                let client_id = hostile.join("bad", "mallory").await;
                for _ in 0..50 {
                    let _ = hostile.connection.send_datagram(vec![1, 2, 3].into());
                    let header = AudioHeader {
                        client_id,
                        sequence: 1,
                        timestamp: 960,
                    };
                    let oversize = encode_datagram(header, &[0u8; 900]);
                    let _ = hostile.connection.send_datagram(oversize.into());
                }
                // Datagrams get no reply: the connection still answering a
                // command shows they were dropped and nothing else happened.
                hostile.send(&SignalMessage::Mute { muted: true }).await;
                loop {
                    match hostile.next_message().await {
                        Some(SignalMessage::PeerMuted { muted: true, .. }) => break,
                        Some(_) => continue,
                        None => panic!("the server closed a client over malformed datagrams"),
                    }
                }
                String::new()
            }
        };

        let case = format!("{abuse:?}");
        if !matches!(abuse, Abuse::BadDatagrams) {
            assert!(!error.is_empty(), "{case}: the Error says nothing");
        }
        match expected_close {
            Some(code) => assert_eq!(hostile.closed_code().await, u64::from(code), "{case}"),
            None => {
                hostile.send(&SignalMessage::Leave).await;
                assert_eq!(
                    hostile.closed_code().await,
                    u64::from(close_code::NORMAL),
                    "{case}: the client was not kept"
                );
            }
        }
        pair.assert_hearing(&format!("after {case}")).await;
    }

    pair.leave().await;
    server.stop().await;
}
