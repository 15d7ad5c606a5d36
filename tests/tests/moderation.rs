//! Moderation and blocking over real QUIC, judged from what each client
//! actually hears: every participant sends its own tone, so a Goertzel
//! filter on a listener's output tells whom it hears.

mod common;

use std::time::Duration;

use common::{tail, tone_level};
use voicemcu_audio::ToneSource;
use voicemcu_core::client::ClientEvent;
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::{ClientExit, DialectChoice};
use voicemcu_sim::loopback::{LoopbackClient, LoopbackServer};
use voicemcu_sim::memory::MemorySink;

const HOST_HZ: f32 = 500.0;
const ALICE_HZ: f32 = 800.0;
const BOB_HZ: f32 = 1_300.0;

/// Tone level (fraction of full scale) above which a tone counts as heard;
/// the tones are sent at -12 dBFS, an amplitude of about 0.25.
const HEARD: f32 = 0.05;

/// Time for a change to reach every ear: a round trip, jitter buffers and
/// the measurement window.
const SETTLE: Duration = Duration::from_millis(1_000);
const MEASURE: Duration = Duration::from_millis(300);
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Participant {
    client: LoopbackClient,
    ears: MemorySink,
}

impl Participant {
    async fn join(
        server: &LoopbackServer,
        name: &str,
        tone_hz: f32,
        dialect: DialectChoice,
    ) -> Participant {
        let ears = MemorySink::new();
        let options = server.client_options("moderated", name, dialect);
        let tone = ToneSource::new(tone_hz, -12.0).unwrap();
        let client = server.join(options, Box::new(tone), Box::new(ears.clone()));
        client.joined(EVENT_TIMEOUT).await.unwrap();
        Participant { client, ears }
    }

    /// Whether the last moments of what this participant heard contain
    /// `frequency`.
    fn hears(&self, frequency: f32) -> bool {
        tone_level(tail(&self.ears.samples(), MEASURE), frequency) > HEARD
    }
}

async fn settle() {
    tokio::time::sleep(SETTLE).await;
}

/// How long a change may take to reach every ear on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(8);

/// Waits until `condition` holds, polling what the participants hear, and
/// panics with `what` if it still does not after [`CONVERGE`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}, still after {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn room_of_three(
    dialect: DialectChoice,
) -> (LoopbackServer, Participant, Participant, Participant) {
    let server = LoopbackServer::start(ServerConfig::default(), 5)
        .await
        .unwrap();
    let host = Participant::join(&server, "host", HOST_HZ, dialect).await;
    let alice = Participant::join(&server, "alice", ALICE_HZ, dialect).await;
    let bob = Participant::join(&server, "bob", BOB_HZ, dialect).await;
    settle().await;
    (server, host, alice, bob)
}

async fn moderation_in(dialect: DialectChoice) {
    let (server, host, alice, bob) = room_of_three(dialect).await;

    // Mix-minus: everyone hears the other two and never themselves.
    eventually("someone does not hear both others", || {
        host.hears(ALICE_HZ)
            && host.hears(BOB_HZ)
            && alice.hears(HOST_HZ)
            && alice.hears(BOB_HZ)
            && bob.hears(HOST_HZ)
            && bob.hears(ALICE_HZ)
    })
    .await;
    assert!(!host.hears(HOST_HZ));
    assert!(!alice.hears(ALICE_HZ));
    assert!(!bob.hears(BOB_HZ));

    // Blocking changes only what the blocker hears.
    host.client.command("/block alice").await;
    eventually("host still hears alice after blocking her", || {
        !host.hears(ALICE_HZ)
    })
    .await;
    eventually("host lost bob when blocking alice", || host.hears(BOB_HZ)).await;
    assert!(
        bob.hears(ALICE_HZ),
        "bob lost alice because the host blocked her"
    );
    host.client.command("/unblock alice").await;
    eventually("host does not hear alice after unblocking", || {
        host.hears(ALICE_HZ)
    })
    .await;

    // Force-mute silences bob for everyone, and bob is told.
    host.client.command("/forcemute bob").await;
    bob.client
        .wait_for("the force-mute", EVENT_TIMEOUT, |e| {
            matches!(e, ClientEvent::ForceMuted { muted: true })
        })
        .await
        .unwrap();
    eventually("someone hears force-muted bob", || {
        !alice.hears(BOB_HZ) && !host.hears(BOB_HZ)
    })
    .await;
    eventually("alice lost the host when bob was force-muted", || {
        alice.hears(HOST_HZ)
    })
    .await;

    host.client.command("/forceunmute bob").await;
    bob.client
        .wait_for("the force-unmute", EVENT_TIMEOUT, |e| {
            matches!(e, ClientEvent::ForceMuted { muted: false })
        })
        .await
        .unwrap();
    eventually("alice does not hear bob after force-unmute", || {
        alice.hears(BOB_HZ)
    })
    .await;

    // Self-mute: alice goes quiet for everyone.
    alice.client.command("/mute").await;
    eventually("bob hears alice while she is muted", || {
        !bob.hears(ALICE_HZ)
    })
    .await;
    alice.client.command("/mute off").await;
    eventually("bob does not hear alice after she unmutes", || {
        bob.hears(ALICE_HZ)
    })
    .await;

    // Only the host may kick.
    alice.client.command("/kick bob").await;
    let refusal = alice
        .client
        .wait_for("the refusal", EVENT_TIMEOUT, |e| {
            matches!(e, ClientEvent::ServerError { .. })
        })
        .await
        .unwrap();
    assert_eq!(
        refusal.to_string(),
        "error from server: only the host can kick"
    );

    // The host kicks alice: she is told why, the others see her go.
    host.client.command("/kick alice").await;
    let exit = alice.client.finish(EVENT_TIMEOUT).await.unwrap();
    assert_eq!(
        exit,
        ClientExit::Kicked {
            reason: "kicked by the host".to_string()
        }
    );
    bob.client
        .wait_for("alice leaving", EVENT_TIMEOUT, |e| {
            matches!(e, ClientEvent::PeerLeft { .. })
        })
        .await
        .unwrap();
    eventually("bob still hears kicked alice", || !bob.hears(ALICE_HZ)).await;

    // The host leaves: bob, the lowest remaining id, becomes host.
    host.client.command("/leave").await;
    assert_eq!(
        host.client.finish(EVENT_TIMEOUT).await.unwrap(),
        ClientExit::Left
    );
    bob.client
        .wait_for("becoming host", EVENT_TIMEOUT, |e| {
            matches!(e, ClientEvent::YouAreHost)
        })
        .await
        .unwrap();

    bob.client.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_native_dialect() {
    moderation_in(DialectChoice::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_legacy_dialect() {
    moderation_in(DialectChoice::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_every_client() {
    let (server, host, alice, bob) = room_of_three(DialectChoice::Auto).await;
    server.stop().await.unwrap();
    for participant in [host, alice, bob] {
        let exit = participant.client.finish(EVENT_TIMEOUT).await.unwrap();
        assert!(
            matches!(exit, ClientExit::ServerShutdown { .. }),
            "{exit:?}"
        );
        assert!(participant.ears.is_finished());
    }
}
