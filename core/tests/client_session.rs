//! Client sessions driven by hand-built server frames, in both dialects:
//! joining, rejection, timeouts, kicks, shutdowns, and malformed input.

#[path = "client_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use voicemcu_core::audio::SILENCE;
use voicemcu_core::client::{
    Client, ClientConfig, ClientEvent, ClientInput, ClientOutput, ClientState, JOIN_TIMEOUT,
};
use voicemcu_core::codec::{CodecError, OpusSettings};
use voicemcu_core::time::Instant;
use voicemcu_core::wire::{encode_frame, encode_message, ClientInfo, Dialect, SignalMessage};

#[test]
fn connect_sends_join_frame() {
    let config = ClientConfig::new("ab", "c");
    let mut client = Client::new(config, Instant::ZERO).unwrap();
    assert_eq!(client.state(), ClientState::Connecting);
    assert_eq!(client.poll_timeout(), None);

    client.handle_input(
        Instant::from_millis(5),
        ClientInput::Connected {
            dialect: Dialect::Legacy,
        },
    );
    // The protocol's own example of a framed Join.
    assert_eq!(
        client.poll_output(),
        Some(ClientOutput::SendFrame(vec![
            0, 0, 0, 6, 0, 2, b'a', b'b', 1, b'c'
        ]))
    );
    assert_eq!(client.poll_output(), None);
    assert_eq!(client.state(), ClientState::Joining);
    assert_eq!(client.dialect(), Some(Dialect::Legacy));
    assert_eq!(
        client.poll_timeout(),
        Some(Instant::from_millis(5) + JOIN_TIMEOUT)
    );
}

#[test]
fn legacy_join_reports_roster() {
    let mut session = Session::connect(Dialect::Legacy);
    let out = session.bidi(&SignalMessage::Joined { client_id: 123 });
    assert_eq!(lines(&out), ["joined room \"abc\" as \"alice\" (id 123)"]);
    assert_eq!(session.client.state(), ClientState::Joined);
    assert_eq!(session.client.client_id(), Some(123));
    assert_eq!(session.client.poll_timeout(), None);

    let out = session.bidi(&room_info(vec![host(7, "bob"), info(123, "alice")]));
    assert_eq!(
        lines(&out),
        ["roster: bob (id 7, host), alice (id 123, you)"]
    );
    assert!(!session.client.is_host());
    assert_eq!(session.roster_ids(), [7, 123]);
    assert_eq!(session.client.roster().host().map(|e| e.client_id), Some(7));
    assert_eq!(
        session.client.roster().self_entry().map(|e| e.client_id),
        Some(123)
    );
}

#[test]
fn first_in_room_becomes_host() {
    let mut session = Session::connect(Dialect::Native);
    session.bidi(&SignalMessage::Joined { client_id: 5 });
    let out = session.bidi(&room_info(vec![host(5, "alice")]));
    assert_eq!(
        lines(&out),
        ["you are now the host", "roster: alice (id 5, you, host)"]
    );
    assert!(session.client.is_host());

    // A YouAreHost after the RoomInfo repeats nothing.
    let out = session.push(&SignalMessage::YouAreHost);
    assert!(lines(&out).is_empty());
}

#[test]
fn stream_data_in_single_bytes() {
    let mut session = Session::connect(Dialect::Legacy);
    let mut bytes = frame(&SignalMessage::Joined { client_id: 9 }, Dialect::Legacy);
    bytes.extend(frame(&room_info(vec![host(9, "alice")]), Dialect::Legacy));
    let mut all = Vec::new();
    for byte in &bytes {
        all.extend(session.input(ClientInput::StreamData(std::slice::from_ref(byte))));
    }
    assert_eq!(
        lines(&all),
        [
            "joined room \"abc\" as \"alice\" (id 9)",
            "you are now the host",
            "roster: alice (id 9, you, host)",
        ]
    );
}

#[test]
fn join_times_out_after_ten_seconds() {
    let mut session = Session::connect(Dialect::Legacy);
    let deadline = Instant::ZERO + Duration::from_secs(10);
    assert_eq!(session.client.poll_timeout(), Some(deadline));

    session.now = Instant::from_millis(9_999);
    assert!(session.input(ClientInput::Timeout).is_empty());
    assert_eq!(session.client.state(), ClientState::Joining);

    session.now = deadline;
    let out = session.input(ClientInput::Timeout);
    assert_eq!(
        lines(&out),
        ["join timed out: no reply from the server within 10 s"]
    );
    assert_eq!(
        close_reason(&out).as_deref(),
        Some("join timed out after 10 s")
    );
    assert_eq!(session.client.state(), ClientState::Closed);
    assert_eq!(session.client.poll_timeout(), None);
}

#[test]
fn timeout_after_join_does_nothing() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    session.now = Instant::from_millis(60_000);
    assert!(session.input(ClientInput::Timeout).is_empty());
    assert_eq!(session.client.state(), ClientState::Joined);
}

#[test]
fn join_rejected_closes() {
    let mut session = Session::connect(Dialect::Legacy);
    let out = session.bidi(&SignalMessage::Error {
        message: "room is full".to_string(),
    });
    assert_eq!(lines(&out), ["join rejected by the server: room is full"]);
    assert_eq!(
        close_reason(&out).as_deref(),
        Some("join rejected: room is full")
    );
    assert_eq!(session.client.state(), ClientState::Closed);
}

#[test]
fn error_after_join_keeps_session() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "bob")]);
    let out = session.bidi(&SignalMessage::Error {
        message: "only the host can kick".to_string(),
    });
    assert_eq!(lines(&out), ["error from server: only the host can kick"]);
    assert_eq!(close_reason(&out), None);
    assert_eq!(session.client.state(), ClientState::Joined);
}

#[test]
fn kicked_closes_and_ignores_rest() {
    for dialect in [Dialect::Legacy, Dialect::Native] {
        let mut session = Session::joined(dialect, 1, &[(2, "bob")]);
        let out = session.push(&SignalMessage::Kicked {
            reason: "spam".to_string(),
        });
        assert_eq!(lines(&out), ["kicked: spam"], "{dialect}");
        assert_eq!(close_reason(&out).as_deref(), Some("kicked: spam"));
        assert_eq!(session.client.state(), ClientState::Closed);

        // Nothing more is processed once closed.
        assert!(session.push(&joined_msg(3, "carol")).is_empty());
        assert_eq!(session.roster_ids(), [1, 2]);
        let out = session.command("/mute");
        assert_eq!(lines(&out), ["the session has ended"]);
        assert!(sent(&out, dialect).is_empty());
    }
}

#[test]
fn kicked_mid_chunk_drops_rest() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let mut bytes = frame(
        &SignalMessage::Kicked {
            reason: "spam".to_string(),
        },
        Dialect::Native,
    );
    bytes.extend(frame(&joined_msg(3, "carol"), Dialect::Native));
    let out = session.input(ClientInput::StreamData(&bytes));
    assert_eq!(lines(&out), ["kicked: spam"]);
    assert_eq!(session.roster_ids(), [1]);
}

#[test]
fn native_shutdown_closes() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let out = session.bidi(&SignalMessage::ShuttingDown {
        reason: "maintenance".to_string(),
    });
    assert_eq!(lines(&out), ["the server is shutting down: maintenance"]);
    assert_eq!(
        close_reason(&out).as_deref(),
        Some("the server is shutting down: maintenance")
    );
    assert_eq!(session.client.state(), ClientState::Closed);
}

#[test]
fn legacy_shutdown_error_is_reported() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    let out = session.push(&SignalMessage::Error {
        message: "server is shutting down".to_string(),
    });
    assert_eq!(lines(&out), ["error from server: server is shutting down"]);
    let out = session.input(ClientInput::ConnectionLost {
        reason: "closed by peer".to_string(),
    });
    assert_eq!(lines(&out), ["connection lost: closed by peer"]);
    assert_eq!(close_reason(&out), None);
    assert_eq!(session.client.state(), ClientState::Closed);
    // A second report of the same loss produces no output.
    assert!(session
        .input(ClientInput::ConnectionLost {
            reason: "again".to_string()
        })
        .is_empty());
}

#[test]
fn extension_rejected_in_legacy() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    let body = encode_message(
        &SignalMessage::ShuttingDown {
            reason: "x".to_string(),
        },
        Dialect::Native,
    )
    .unwrap();
    let out = session.input(ClientInput::StreamData(&encode_frame(&body)));
    assert_eq!(
        lines(&out),
        [
            "protocol error: malformed message on the bidirectional stream ignored: \
          unknown message variant 15 (this dialect knows 0 to 14)"
        ]
    );
    assert_eq!(session.client.state(), ClientState::Joined);
}

#[test]
fn hostile_frame_length_ends_session() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let out = session.input(ClientInput::StreamData(&[0xff, 0xff, 0xff, 0xff, 0]));
    assert_eq!(
        lines(&out),
        ["protocol error: bidirectional stream: frame length 4294967295 is over the limit of 65536 bytes"]
    );
    assert_eq!(
        close_reason(&out).as_deref(),
        Some("protocol error on the bidirectional stream: frame length 4294967295 is over the limit of 65536 bytes")
    );
    assert_eq!(session.client.state(), ClientState::Closed);
}

#[test]
fn malformed_bidi_frame_skipped() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let mut bytes = encode_frame(&[99]);
    bytes.extend(frame(&SignalMessage::Leave, Dialect::Native));
    bytes.extend(frame(&joined_msg(2, "bob"), Dialect::Native));
    let out = session.input(ClientInput::StreamData(&bytes));
    assert_eq!(
        lines(&out),
        [
            "protocol error: malformed message on the bidirectional stream ignored: \
             unknown message variant 99 (this dialect knows 0 to 17)",
            "protocol error: the server sent Leave, which only clients send; ignored",
            "bob (id 2) joined",
        ]
    );
    assert_eq!(session.client.state(), ClientState::Joined);
}

#[test]
fn bad_push_streams_ignored() {
    let good = frame(&joined_msg(2, "bob"), Dialect::Legacy);
    let mut two_frames = good.clone();
    two_frames.extend(frame(&joined_msg(3, "carol"), Dialect::Legacy));
    let mut trailing = good.clone();
    trailing.push(0);

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            Vec::new(),
            "protocol error: push stream ignored: it ends inside its frame after 0 bytes",
        ),
        (
            vec![0, 0],
            "protocol error: push stream ignored: it ends inside its frame after 2 bytes",
        ),
        (
            good[..good.len() - 1].to_vec(),
            "protocol error: push stream ignored: it ends inside its frame after 9 bytes",
        ),
        (
            two_frames,
            "protocol error: push stream ignored: 12 bytes follow its one frame",
        ),
        (
            trailing,
            "protocol error: push stream ignored: 1 bytes follow its one frame",
        ),
        (
            encode_frame(&[10]),
            "protocol error: malformed message on a push stream ignored: \
             message ends in the middle of a field",
        ),
    ];
    for (bytes, expected) in cases {
        let mut session = Session::joined(Dialect::Legacy, 1, &[]);
        let out = session.input(ClientInput::PushStream(&bytes));
        assert_eq!(lines(&out), [expected], "push stream {bytes:?}");
        assert_eq!(session.client.state(), ClientState::Joined);
        assert_eq!(session.roster_ids(), [1]);
    }

    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    let out = session.input(ClientInput::PushStream(&[0, 1, 0, 1]));
    assert_eq!(
        lines(&out),
        ["protocol error: push stream ignored: frame length 65537 is over the limit of 65536 bytes"]
    );
    assert_eq!(session.client.state(), ClientState::Joined);
}

#[test]
fn native_push_stream_rejected() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let bytes = frame(&joined_msg(2, "bob"), Dialect::Native);
    let out = session.input(ClientInput::PushStream(&bytes));
    assert_eq!(
        lines(&out),
        ["protocol error: a native server must not open push streams; ignored one of 10 bytes"]
    );
    assert_eq!(session.roster_ids(), [1]);
}

#[test]
fn data_before_connected_reported() {
    let mut client = Client::new(ClientConfig::new(ROOM, NAME), Instant::ZERO).unwrap();
    let bytes = frame(&SignalMessage::Joined { client_id: 1 }, Dialect::Legacy);
    client.handle_input(Instant::ZERO, ClientInput::StreamData(&bytes));
    let event = client.poll_output();
    assert_eq!(
        event.map(|o| match o {
            ClientOutput::Event(e) => e.to_string(),
            other => format!("{other:?}"),
        }),
        Some(
            "warning: ignored data on the bidirectional stream that arrived before the \
             connection was established"
                .to_string()
        )
    );
    assert_eq!(client.state(), ClientState::Connecting);
}

#[test]
fn second_joined_reported() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    let out = session.bidi(&SignalMessage::Joined { client_id: 2 });
    assert_eq!(
        lines(&out),
        ["protocol error: the server sent Joined (id 2) after the join was already accepted; ignored"]
    );
    assert_eq!(session.client.client_id(), Some(1));
}

#[test]
fn host_change_to_peer_reported() {
    let mut session = Session::joined(Dialect::Native, 3, &[(1, "old"), (2, "bob")]);
    let out = session.push(&left_msg(1));
    assert_eq!(lines(&out), ["old (id 1) left"]);
    let out = session.push(&room_info(vec![host(2, "bob"), info(3, NAME)]));
    assert_eq!(
        lines(&out),
        [
            "bob (id 2) is now the host",
            "roster: bob (id 2, host), alice (id 3, you)"
        ]
    );
}

#[test]
fn force_mute_of_self() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "bob")]);
    let out = session.push(&muted_msg(1, true, true));
    assert_eq!(lines(&out), ["you were muted by the host"]);
    assert!(session.client.is_server_muted());
    assert!(session.client.roster().self_entry().unwrap().server_muted);

    // Force-muted clients send no audio.
    session.client.send_audio(session.now, &SILENCE);
    assert!(session.drain().is_empty());

    let out = session.push(&muted_msg(1, false, true));
    assert_eq!(lines(&out), ["you were unmuted by the host"]);
    assert!(!session.client.is_server_muted());
}

#[test]
fn peer_mutes_reported_once() {
    let mut session = Session::joined(Dialect::Native, 1, &[(2, "bob")]);
    let out = session.push(&muted_msg(2, true, false));
    assert_eq!(lines(&out), ["bob (id 2) muted themselves"]);
    // The same state again is not news.
    assert!(session.push(&muted_msg(2, true, false)).is_empty());
    let out = session.push(&muted_msg(2, true, true));
    assert_eq!(lines(&out), ["bob (id 2) was muted by the host"]);
    let entry = session.client.roster().get(2).unwrap().clone();
    assert!(entry.muted);
    assert!(entry.server_muted);
}

#[test]
fn server_text_cleaned_of_control_characters() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let out = session.push(&joined_msg(2, "\u{1b}[31mbob\u{7}"));
    assert_eq!(lines(&out), ["[31mbob (id 2) joined"]);
    let out = session.push(&SignalMessage::Error {
        message: "\u{1b}]0;pwned\u{7}".to_string(),
    });
    assert_eq!(lines(&out), ["error from server: ]0;pwned"]);
}

#[test]
fn invalid_opus_settings_fail_new() {
    let mut config = ClientConfig::new(ROOM, NAME);
    config.opus = OpusSettings {
        bitrate: 1,
        ..OpusSettings::default()
    };
    let result = Client::new(config, Instant::ZERO);
    assert!(matches!(
        result,
        Err(CodecError::InvalidSetting {
            setting: "bitrate",
            ..
        })
    ));
}

#[test]
fn no_audio_before_join() {
    let mut session = Session::connect(Dialect::Legacy);
    session.client.send_audio(session.now, &SILENCE);
    assert!(session.drain().is_empty());

    let mut out = [1.0; 960];
    session.client.playout(session.now, &mut out);
    assert_eq!(out, SILENCE);

    session.input(ClientInput::Datagram(&[0; 40]));
    let stats = session.client.stats();
    assert_eq!(stats.datagrams_ignored, 1);
    assert_eq!(stats.datagrams_received, 0);
}

#[test]
fn malformed_datagrams_counted() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    for datagram in [vec![], vec![0; 16], vec![0; 16 + 481]] {
        assert!(session.input(ClientInput::Datagram(&datagram)).is_empty());
    }
    let stats = session.client.stats();
    assert_eq!(stats.datagrams_received, 3);
    assert_eq!(stats.datagrams_malformed, 3);
}

#[test]
fn typical_session_transcript() {
    let mut session = Session::connect(Dialect::Legacy);
    session.bidi(&SignalMessage::Joined { client_id: 123 });
    session.bidi(&room_info(vec![host(7, "bob"), info(123, NAME)]));
    session.push(&joined_msg(9, "carol"));
    session.command("/mute");
    session.push(&muted_msg(123, true, false));
    session.push(&muted_msg(9, true, false));
    session.push(&muted_msg(123, true, true));
    session.command("/mute off");
    session.push(&left_msg(7));
    session.push(&SignalMessage::YouAreHost);
    session.push(&room_info(vec![
        ClientInfo {
            is_host: true,
            server_muted: true,
            ..info(123, NAME)
        },
        ClientInfo {
            muted: true,
            ..info(9, "carol")
        },
    ]));
    session.command("/forceunmute alice");
    session.push(&muted_msg(123, false, true));
    session.command("/block carol");
    session.command("/kick carol");
    session.push(&SignalMessage::Kicked {
        reason: "bye".to_string(),
    });

    insta::assert_snapshot!(session.transcript.join("\n"));
}

#[test]
fn left_event_ends_session() {
    assert!(ClientEvent::Left.ends_session());
    assert!(!ClientEvent::YouAreHost.ends_session());
}

#[test]
fn joined_line_shows_cleaned_name() {
    let mut config = ClientConfig::new("ro\u{200b}om", "\u{202e}eve\u{7}");
    config.jitter = Default::default();
    let mut client = Client::new(config, Instant::ZERO).unwrap();
    client.handle_input(
        Instant::ZERO,
        ClientInput::Connected {
            dialect: Dialect::Native,
        },
    );
    let join = encode_frame(
        &encode_message(&SignalMessage::Joined { client_id: 4 }, Dialect::Native).unwrap(),
    );
    client.handle_input(Instant::ZERO, ClientInput::StreamData(&join));
    let lines: Vec<String> = std::iter::from_fn(|| client.poll_output())
        .filter_map(|output| match output {
            ClientOutput::Event(event) => Some(event.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [r#"joined room "room" as "eve" (id 4)"#]);
}

/// A client with the room password `pw` that has just connected to a
/// server of `dialect`.
fn connected_with_password(dialect: Dialect) -> Client {
    let mut config = ClientConfig::new("ab", "c");
    config.password = Some("pw".to_string());
    let mut client = Client::new(config, Instant::ZERO).unwrap();
    client.handle_input(Instant::ZERO, ClientInput::Connected { dialect });
    client
}

#[test]
fn password_sent_with_native_join() {
    let mut client = connected_with_password(Dialect::Native);

    // JoinWithPassword is native variant 16.
    assert_eq!(
        client.poll_output(),
        Some(ClientOutput::SendFrame(vec![
            0, 0, 0, 9, 16, 2, b'a', b'b', 1, b'c', 2, b'p', b'w'
        ]))
    );
    assert_eq!(client.state(), ClientState::Joining);
}

#[test]
fn password_never_sent_to_legacy_server() {
    let mut client = connected_with_password(Dialect::Legacy);

    let mut outputs = Vec::new();
    while let Some(output) = client.poll_output() {
        outputs.push(output);
    }
    assert!(
        !outputs
            .iter()
            .any(|output| matches!(output, ClientOutput::SendFrame(_))),
        "a Join without the password would put the user in an open room: {outputs:?}"
    );
    assert!(outputs.iter().any(|output| matches!(
        output,
        ClientOutput::Event(ClientEvent::JoinRejected { message }) if message.contains("legacy dialect")
    )));
    assert_eq!(client.state(), ClientState::Closed);
}
