//! Room passwords and kick bans over real QUIC on loopback: who gets in,
//! the error a rejected joiner receives, and that a pair in another room
//! keeps talking while it happens.

mod common;

use std::time::Duration;

use common::{tail, tone_level};
use std::net::SocketAddr;
use voicemcu_audio::ToneSource;
use voicemcu_core::client::ClientEvent;
use voicemcu_core::server::ServerConfig;

use voicemcu_core::wire::{
    decode_message, encode_frame, encode_message, Dialect, FrameDecoder, SignalMessage,
};
use voicemcu_quic::{
    connect, quinn, ClientExit, ClientOptions, ConnectOptions, DialectChoice, Trust,
};
use voicemcu_sim::loopback::{LoopbackClient, LoopbackServer};
use voicemcu_sim::memory::MemorySink;

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const ALICE_HZ: f32 = 700.0;
const BOB_HZ: f32 = 1_100.0;

/// Tone level above which a -12 dBFS tone (amplitude about 0.25) counts as
/// heard.
const HEARD: f32 = 0.05;

fn options(
    server: &LoopbackServer,
    room: &str,
    name: &str,
    password: Option<&str>,
) -> ClientOptions {
    let mut options = server.client_options(room, name, DialectChoice::Auto);
    options.core.password = password.map(str::to_string);
    options
}

fn join(
    server: &LoopbackServer,
    options: ClientOptions,
    tone_hz: f32,
) -> (LoopbackClient, MemorySink) {
    let ears = MemorySink::new();
    let tone = ToneSource::new(tone_hz, -12.0).unwrap();
    let client = server.join(options, Box::new(tone), Box::new(ears.clone()));
    (client, ears)
}

/// Joins, expects the server to reject the join, and returns its message.
async fn rejected(server: &LoopbackServer, options: ClientOptions) -> String {
    let (client, _) = join(server, options, 300.0);
    match client.finish(EVENT_TIMEOUT).await.unwrap() {
        ClientExit::JoinRejected { message } => message,
        other => panic!("expected the join to be rejected, got {other:?}"),
    }
}

/// A pair talking in a room of its own, to show that rejections elsewhere leave
/// other rooms alone.
struct Bystanders {
    alice: (LoopbackClient, MemorySink),
    bob: (LoopbackClient, MemorySink),
}

impl Bystanders {
    async fn start(server: &LoopbackServer) -> Bystanders {
        let alice = join(
            server,
            options(server, "elsewhere", "alice", None),
            ALICE_HZ,
        );
        let bob = join(server, options(server, "elsewhere", "bob", None), BOB_HZ);
        alice.0.joined(EVENT_TIMEOUT).await.unwrap();
        bob.0.joined(EVENT_TIMEOUT).await.unwrap();
        Bystanders { alice, bob }
    }

    /// Waits until each of the pair hears the other; panics with the
    /// levels if that does not happen within [`EVENT_TIMEOUT`].
    async fn assert_still_talking(&self) {
        let window = Duration::from_millis(300);
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let alice_hears = tone_level(tail(&self.alice.1.samples(), window), BOB_HZ);
            let bob_hears = tone_level(tail(&self.bob.1.samples(), window), ALICE_HZ);
            if alice_hears > HEARD && bob_hears > HEARD {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the pair in another room stopped hearing each other: \
                 alice hears bob at {alice_hears}, bob hears alice at {bob_hears}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.alice.0.stop().await.unwrap();
        self.bob.0.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_protects_room() {
    let server = LoopbackServer::start(ServerConfig::default(), 11)
        .await
        .unwrap();
    let bystanders = Bystanders::start(&server).await;

    let (owner, _) = join(
        &server,
        options(&server, "private", "owner", Some("s3cret")),
        400.0,
    );
    owner.joined(EVENT_TIMEOUT).await.unwrap();

    assert_eq!(
        rejected(
            &server,
            options(&server, "private", "guess", Some("secret"))
        )
        .await,
        "wrong password for room \"private\""
    );
    assert_eq!(
        rejected(&server, options(&server, "private", "nopass", None)).await,
        "room \"private\" needs a password: join again with the room's password"
    );
    let legacy = server.client_options("private", "old", DialectChoice::Legacy);
    let message = rejected(&server, legacy).await;
    assert!(
        message.contains("needs a password, which this client cannot send"),
        "{message}"
    );

    let (friend, _) = join(
        &server,
        options(&server, "private", "friend", Some("s3cret")),
        600.0,
    );
    friend.joined(EVENT_TIMEOUT).await.unwrap();

    bystanders.assert_still_talking().await;

    friend.stop().await.unwrap();
    owner.stop().await.unwrap();
    bystanders.stop().await;
    server.stop().await.unwrap();
}

/// A client on its own loopback address, 127.0.0.2, speaking raw frames,
/// so that the server sees an address other than everyone else's.
struct Elsewhere {
    _endpoint: quinn::Endpoint,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    frames: FrameDecoder,
}

impl Elsewhere {
    async fn join(server: &LoopbackServer, room: &str, name: &str) -> Elsewhere {
        let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let options = ConnectOptions::new(server.addr(), Trust::Pinned(server.fingerprint()));
        let (connection, _) = connect(&endpoint, &options).await.unwrap();
        let (mut send, recv) = connection.open_bi().await.unwrap();
        let join = SignalMessage::Join {
            room_code: room.to_string(),
            display_name: name.to_string(),
        };
        let frame = encode_frame(&encode_message(&join, Dialect::Native).unwrap());
        send.write_all(&frame).await.unwrap();
        Elsewhere {
            _endpoint: endpoint,
            send,
            recv,
            frames: FrameDecoder::default(),
        }
    }

    /// Reads messages until `wanted` accepts one, or the stream ends.
    async fn until(&mut self, wanted: impl Fn(&SignalMessage) -> bool) -> Option<SignalMessage> {
        loop {
            if let Some(body) = self.frames.next_frame().unwrap() {
                let message = decode_message(&body, Dialect::Native).unwrap();
                if wanted(&message) {
                    return Some(message);
                }
                continue;
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.recv.read_chunk(65_536, true))
                .await
                .expect("the server neither sent nor closed in time");
            match chunk {
                Ok(Some(chunk)) => self.frames.push(&chunk.bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicked_address_cannot_rejoin() {
    let config = ServerConfig {
        kick_ban: Duration::from_secs(300),
        ..ServerConfig::default()
    };
    let server = LoopbackServer::start(config, 12).await.unwrap();
    let bystanders = Bystanders::start(&server).await;

    let (host, _) = join(&server, options(&server, "club", "host", None), 400.0);
    host.joined(EVENT_TIMEOUT).await.unwrap();
    let mut troll = Elsewhere::join(&server, "club", "troll").await;
    troll
        .until(|m| matches!(m, SignalMessage::Joined { .. }))
        .await
        .expect("the troll joined");
    // The host kicks by name, so it must have heard of the troll first.
    host.wait_for(
        "the troll in the host's roster",
        EVENT_TIMEOUT,
        |e| matches!(e, ClientEvent::PeerJoined { name, .. } if name == "troll"),
    )
    .await
    .unwrap();

    host.command("/kick troll").await;
    let kicked = troll
        .until(|m| matches!(m, SignalMessage::Kicked { .. }))
        .await;
    assert!(kicked.is_some(), "the troll was not told it was kicked");
    drop(troll.send);

    // The same address under a new name is refused.
    let mut again = Elsewhere::join(&server, "club", "troll2").await;
    let refusal = again
        .until(|m| matches!(m, SignalMessage::Error { .. }))
        .await;
    let Some(SignalMessage::Error { message }) = refusal else {
        panic!("the banned address was let back in");
    };
    assert!(
        message.starts_with("you were removed from room \"club\" by its host; try again in "),
        "{message}"
    );

    // The host's own address, shared here with the bystanders, is not
    // banned: a newcomer from it gets in.
    let (friend, _) = join(&server, options(&server, "club", "friend", None), 600.0);
    friend.joined(EVENT_TIMEOUT).await.unwrap();

    bystanders.assert_still_talking().await;

    friend.stop().await.unwrap();
    host.stop().await.unwrap();
    bystanders.stop().await;
    server.stop().await.unwrap();
}
