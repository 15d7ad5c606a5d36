//! Arbitrary bytes from the network, in any mix of bidirectional stream
//! chunks, push streams and datagrams, never make the client panic, and
//! leave it in a consistent state.

#[path = "client_harness.rs"]
mod harness;

use harness::*;
use proptest::prelude::*;
use voicemcu_core::audio::SILENCE;
use voicemcu_core::client::{ClientInput, ClientState};
use voicemcu_core::wire::{Dialect, SignalMessage};

#[derive(Clone, Debug)]
enum Chunk {
    Stream(Vec<u8>),
    Push(Vec<u8>),
    Datagram(Vec<u8>),
    Command(String),
    Play,
}

/// Bytes that are sometimes well-formed frames, so the fuzzing reaches the
/// message handlers and not only the decoders.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (0u8..16, proptest::collection::vec(any::<u8>(), 0..24)).prop_map(|(index, rest)| {
            let mut body = vec![index];
            body.extend(rest);
            let mut framed = (body.len() as u32).to_be_bytes().to_vec();
            framed.extend(body);
            framed
        }),
    ]
}

fn chunk() -> impl Strategy<Value = Chunk> {
    prop_oneof![
        bytes().prop_map(Chunk::Stream),
        bytes().prop_map(Chunk::Push),
        proptest::collection::vec(any::<u8>(), 0..600).prop_map(Chunk::Datagram),
        "/?[a-z]{0,10}( [a-z0-9]{0,6})?".prop_map(Chunk::Command),
        Just(Chunk::Play),
    ]
}

fn run(dialect: Dialect, chunks: &[Chunk]) {
    let mut session = Session::joined(dialect, 1, &[(2, "bob")]);
    for chunk in chunks {
        match chunk {
            Chunk::Stream(bytes) => drop(session.input(ClientInput::StreamData(bytes))),
            Chunk::Push(bytes) => drop(session.input(ClientInput::PushStream(bytes))),
            Chunk::Datagram(bytes) => drop(session.input(ClientInput::Datagram(bytes))),
            Chunk::Command(line) => drop(session.command(line)),
            Chunk::Play => {
                let mut out = SILENCE;
                session.client.playout(session.now, &mut out);
                assert!(out.iter().all(|s| s.is_finite()));
            }
        }
        session.client.send_audio(session.now, &SILENCE);
        session.drain();

        let client = &session.client;
        let ids: Vec<u64> = client.roster().iter().map(|e| e.client_id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "roster out of order: {ids:?}"
        );
        if client.state() == ClientState::Joined {
            assert!(client.roster().self_entry().is_some_and(|e| e.is_self));
        }
        assert!(client.roster().iter().filter(|e| e.is_self).count() <= 1);
    }

    // A legacy session that survived still handles a push. A push stream
    // is self-contained, unlike the bidirectional stream, where leftover bytes
    // of a partial frame would swallow the next message.
    if dialect == Dialect::Legacy && session.client.state() == ClientState::Joined {
        let out = session.push(&SignalMessage::Error {
            message: "ping".to_string(),
        });
        assert_eq!(lines(&out), ["error from server: ping"]);
    }
}

proptest! {
    #[test]
    fn legacy_input_never_panics(chunks in proptest::collection::vec(chunk(), 0..40)) {
        run(Dialect::Legacy, &chunks);
    }

    #[test]
    fn native_input_never_panics(chunks in proptest::collection::vec(chunk(), 0..40)) {
        run(Dialect::Native, &chunks);
    }
}
