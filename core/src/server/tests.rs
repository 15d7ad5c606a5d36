//! In-memory tests of the server state machine: fake connections, real
//! frames, no sockets.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::wire::{decode_message, FRAME_HEADER_LEN};

/// A server and a clock, with helpers to speak for fake clients.
struct Harness {
    server: Server,
    now: Instant,
    dialects: BTreeMap<ConnectionId, Dialect>,
}

/// One decoded output.
#[derive(Debug, PartialEq)]
enum Out {
    Frame(ConnectionId, OutStream, SignalMessage),
    Datagram(ConnectionId),
    Close(ConnectionId, u32),
    Event(ServerEvent),
}

impl Harness {
    fn new() -> Self {
        Self::with_config(ServerConfig::default())
    }

    fn with_config(config: ServerConfig) -> Self {
        Harness {
            server: Server::new(config, 7),
            now: Instant::ZERO,
            dialects: BTreeMap::new(),
        }
    }

    fn open(&mut self, conn: u64, dialect: Dialect) -> ConnectionId {
        self.open_from(conn, dialect, "127.0.0.1")
    }

    /// Opens a connection from `ip`, on a port derived from `conn`.
    fn open_from(&mut self, conn: u64, dialect: Dialect, ip: &str) -> ConnectionId {
        let conn = ConnectionId(conn);
        let peer: SocketAddr = format!("{ip}:{}", 40000 + conn.0).parse().unwrap();
        self.dialects.insert(conn, dialect);
        self.server.handle_input(
            self.now,
            ServerInput::ConnectionOpened {
                conn,
                peer,
                dialect,
            },
        );
        conn
    }

    fn send(&mut self, conn: ConnectionId, message: SignalMessage) {
        let dialect = self.dialects[&conn];
        let frame = encode_frame(&encode_message(&message, dialect).unwrap());
        self.server.handle_input(
            self.now,
            ServerInput::StreamData {
                conn,
                bytes: &frame,
            },
        );
    }

    fn send_raw(&mut self, conn: ConnectionId, bytes: &[u8]) {
        self.server
            .handle_input(self.now, ServerInput::StreamData { conn, bytes });
    }

    /// Opens a connection, joins `room` as `name` and returns the connection
    /// and the client id, discarding the outputs.
    fn join(
        &mut self,
        conn: u64,
        dialect: Dialect,
        room: &str,
        name: &str,
    ) -> (ConnectionId, ClientId) {
        let conn = self.open(conn, dialect);
        self.send(conn, join(room, name));
        self.drain();
        (conn, self.server.client_of(conn).expect("join accepted"))
    }

    fn drain(&mut self) -> Vec<Out> {
        let mut outs = Vec::new();
        while let Some(output) = self.server.poll_output() {
            outs.push(match output {
                ServerOutput::SendFrame {
                    conn,
                    stream,
                    frame,
                } => {
                    let message =
                        decode_message(&frame[FRAME_HEADER_LEN..], self.dialects[&conn]).unwrap();
                    Out::Frame(conn, stream, message)
                }
                ServerOutput::SendDatagram { conn, .. } => Out::Datagram(conn),
                ServerOutput::Close { conn, reason } => Out::Close(conn, reason.code),
                ServerOutput::Event(event) => Out::Event(event),
            });
        }
        outs
    }

    /// The frames sent to `conn` in `outs`, with their streams.
    fn frames_to(outs: &[Out], conn: ConnectionId) -> Vec<(OutStream, SignalMessage)> {
        outs.iter()
            .filter_map(|out| match out {
                Out::Frame(to, stream, message) if *to == conn => Some((*stream, message.clone())),
                _ => None,
            })
            .collect()
    }

    fn closed(outs: &[Out], conn: ConnectionId) -> Option<u32> {
        outs.iter().find_map(|out| match out {
            Out::Close(to, code) if *to == conn => Some(*code),
            _ => None,
        })
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(deadline) = self.server.poll_timeout() {
            if deadline > end {
                break;
            }
            self.now = deadline.max(self.now);
            self.server.handle_input(self.now, ServerInput::Timeout);
        }
        self.now = end;
    }
}

fn join(room: &str, name: &str) -> SignalMessage {
    SignalMessage::Join {
        room_code: room.to_string(),
        display_name: name.to_string(),
    }
}

fn error_text(message: &SignalMessage) -> &str {
    match message {
        SignalMessage::Error { message } => message,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn legacy_join_replies_on_control_stream() {
    let mut h = Harness::new();
    let conn = h.open(1, Dialect::Legacy);
    h.send(conn, join("room", "alice"));
    let outs = h.drain();
    let id = h.server.client_of(conn).unwrap();

    let frames = Harness::frames_to(&outs, conn);
    assert_eq!(
        frames[0],
        (OutStream::Control, SignalMessage::Joined { client_id: id })
    );
    assert_eq!(
        frames[1],
        (
            OutStream::Control,
            SignalMessage::RoomInfo {
                clients: vec![ClientInfo {
                    client_id: id,
                    display_name: "alice".to_string(),
                    muted: false,
                    server_muted: false,
                    is_host: true,
                }]
            }
        )
    );
    assert_eq!(frames[2], (OutStream::Push, SignalMessage::YouAreHost));
    assert_eq!(frames.len(), 3);
}

#[test]
fn pushes_use_streams_of_each_dialect() {
    let mut h = Harness::new();
    let (legacy, _) = h.join(1, Dialect::Legacy, "room", "old");
    let (native, _) = h.join(2, Dialect::Native, "room", "new");
    let native_id = h.server.client_of(native).unwrap();

    let conn = h.open(3, Dialect::Native);
    h.send(conn, join("room", "third"));
    let outs = h.drain();
    let third = h.server.client_of(conn).unwrap();
    let joined = SignalMessage::ClientJoined {
        client_id: third,
        display_name: "third".to_string(),
    };

    assert_eq!(
        Harness::frames_to(&outs, legacy),
        vec![(OutStream::Push, joined.clone())]
    );
    assert_eq!(
        Harness::frames_to(&outs, native),
        vec![(OutStream::Control, joined)]
    );
    assert!(native_id < third);
}

#[test]
fn client_ids_come_from_seed() {
    let first_id = |seed| {
        let mut server = Server::new(ServerConfig::default(), seed);
        let conn = ConnectionId(1);
        server.handle_input(
            Instant::ZERO,
            ServerInput::ConnectionOpened {
                conn,
                peer: "127.0.0.1:1".parse().unwrap(),
                dialect: Dialect::Native,
            },
        );
        let frame = encode_frame(&encode_message(&join("r", "n"), Dialect::Native).unwrap());
        server.handle_input(
            Instant::ZERO,
            ServerInput::StreamData {
                conn,
                bytes: &frame,
            },
        );
        server.client_of(conn).unwrap()
    };
    assert_eq!(first_id(1), first_id(1));
    assert_ne!(first_id(1), first_id(2));
    assert!(first_id(3) < u64::MAX >> 8, "ids leave room to count up");
}

#[test]
fn host_leaving_promotes_lowest_id() {
    let mut h = Harness::new();
    let (host, host_id) = h.join(1, Dialect::Legacy, "room", "host");
    let (second, second_id) = h.join(2, Dialect::Legacy, "room", "second");
    let (third, _) = h.join(3, Dialect::Native, "room", "third");

    h.send(host, SignalMessage::Leave);
    let outs = h.drain();

    assert_eq!(Harness::closed(&outs, host), Some(close_code::NORMAL));
    let to_second = Harness::frames_to(&outs, second);
    assert_eq!(
        to_second[0].1,
        SignalMessage::ClientLeft { client_id: host_id }
    );
    assert_eq!(to_second[1].1, SignalMessage::YouAreHost);
    let SignalMessage::RoomInfo { clients } = &to_second[2].1 else {
        panic!("expected RoomInfo")
    };
    assert!(
        clients
            .iter()
            .find(|c| c.client_id == second_id)
            .unwrap()
            .is_host
    );
    assert_eq!(clients.len(), 2);

    let to_third = Harness::frames_to(&outs, third);
    assert_eq!(
        to_third.len(),
        2,
        "third gets ClientLeft and RoomInfo: {to_third:?}"
    );
    assert!(matches!(to_third[1].1, SignalMessage::RoomInfo { .. }));
    assert!(outs.contains(&Out::Event(ServerEvent::HostChanged {
        room: "room".to_string(),
        client: second_id
    })));
}

#[test]
fn kicked_client_hears_why_before_close() {
    let mut h = Harness::new();
    let (host, _) = h.join(1, Dialect::Legacy, "room", "host");
    let (target, target_id) = h.join(2, Dialect::Legacy, "room", "target");

    h.send(host, SignalMessage::Kick { target: target_id });
    let outs = h.drain();

    let kicked_at = outs
        .iter()
        .position(|o| matches!(o, Out::Frame(c, _, SignalMessage::Kicked { .. }) if *c == target))
        .expect("Kicked sent");
    let closed_at = outs
        .iter()
        .position(|o| matches!(o, Out::Close(c, _) if *c == target))
        .expect("closed");
    assert!(kicked_at < closed_at);
    assert_eq!(Harness::closed(&outs, target), Some(close_code::KICKED));
    assert_eq!(
        Harness::frames_to(&outs, host),
        vec![(
            OutStream::Push,
            SignalMessage::ClientLeft {
                client_id: target_id
            }
        )]
    );
    assert_eq!(h.server.roster("room").unwrap().len(), 1);
}

#[test]
fn moderation_by_non_host_rejected() {
    let mut h = Harness::new();
    let (_, host_id) = h.join(1, Dialect::Native, "room", "host");
    let (other, _) = h.join(2, Dialect::Native, "room", "other");

    for command in [
        SignalMessage::Kick { target: host_id },
        SignalMessage::ServerMute {
            target: host_id,
            muted: true,
        },
    ] {
        h.send(other, command);
        let outs = h.drain();
        let frames = Harness::frames_to(&outs, other);
        assert_eq!(frames.len(), 1);
        assert!(error_text(&frames[0].1).starts_with("only the host can"));
        assert_eq!(Harness::closed(&outs, other), None);
    }
    let roster = h.server.roster("room").unwrap();
    assert_eq!(roster.len(), 2);
    assert!(!roster[0].server_muted);
}

#[test]
fn moderation_of_other_room_rejected() {
    let mut h = Harness::new();
    let (host, _) = h.join(1, Dialect::Native, "one", "host");
    let (elsewhere, elsewhere_id) = h.join(2, Dialect::Native, "two", "elsewhere");

    for command in [
        SignalMessage::Kick {
            target: elsewhere_id,
        },
        SignalMessage::ServerMute {
            target: elsewhere_id,
            muted: true,
        },
        SignalMessage::Kick { target: 12345 },
    ] {
        h.send(host, command);
        let outs = h.drain();
        let frames = Harness::frames_to(&outs, host);
        assert!(error_text(&frames[0].1).contains("no such participant in this room"));
        assert!(Harness::frames_to(&outs, elsewhere).is_empty());
        assert_eq!(Harness::closed(&outs, elsewhere), None);
    }
    assert!(!h.server.roster("two").unwrap()[0].server_muted);
}

#[test]
fn force_mute_reaches_everyone() {
    let mut h = Harness::new();
    let (host, _) = h.join(1, Dialect::Legacy, "room", "host");
    let (target, target_id) = h.join(2, Dialect::Native, "room", "target");

    h.send(
        host,
        SignalMessage::ServerMute {
            target: target_id,
            muted: true,
        },
    );
    let outs = h.drain();
    let muted = SignalMessage::PeerMuted {
        client_id: target_id,
        muted: true,
        by_server: true,
    };
    assert_eq!(
        Harness::frames_to(&outs, host),
        vec![(OutStream::Push, muted.clone())]
    );
    assert_eq!(
        Harness::frames_to(&outs, target),
        vec![(OutStream::Control, muted)]
    );
    assert!(h.server.roster("room").unwrap()[1].server_muted);

    h.send(
        host,
        SignalMessage::ServerMute {
            target: target_id,
            muted: false,
        },
    );
    h.drain();
    assert!(!h.server.roster("room").unwrap()[1].server_muted);
}

#[test]
fn self_mute_broadcast() {
    let mut h = Harness::new();
    let (first, first_id) = h.join(1, Dialect::Legacy, "room", "a");
    let (second, _) = h.join(2, Dialect::Legacy, "room", "b");

    h.send(first, SignalMessage::Mute { muted: true });
    let outs = h.drain();
    let muted = SignalMessage::PeerMuted {
        client_id: first_id,
        muted: true,
        by_server: false,
    };
    assert_eq!(
        Harness::frames_to(&outs, first),
        vec![(OutStream::Push, muted.clone())]
    );
    assert_eq!(
        Harness::frames_to(&outs, second),
        vec![(OutStream::Push, muted)]
    );
}

#[test]
fn block_tells_nobody() {
    let mut h = Harness::new();
    let (first, _) = h.join(1, Dialect::Legacy, "room", "a");
    let (_, second_id) = h.join(2, Dialect::Legacy, "room", "b");

    h.send(first, SignalMessage::BlockPeer { target: second_id });
    let outs = h.drain();
    assert!(outs.iter().all(|o| !matches!(o, Out::Frame(..))));
    assert!(h.server.rooms["room"]
        .members
        .values()
        .next()
        .unwrap()
        .blocked
        .contains(&second_id));

    h.send(first, SignalMessage::BlockPeer { target: 999 });
    let outs = h.drain();
    assert!(error_text(&Harness::frames_to(&outs, first)[0].1).contains("no such participant"));

    h.send(first, SignalMessage::UnblockPeer { target: second_id });
    h.drain();
    assert!(h.server.rooms["room"]
        .members
        .values()
        .next()
        .unwrap()
        .blocked
        .is_empty());
}

#[test]
fn full_room_rejected_with_error() {
    let mut h = Harness::with_config(ServerConfig {
        max_room_size: 2,
        ..ServerConfig::default()
    });
    h.join(1, Dialect::Legacy, "room", "a");
    h.join(2, Dialect::Legacy, "room", "b");

    let conn = h.open(3, Dialect::Legacy);
    h.send(conn, join("room", "c"));
    let outs = h.drain();
    let frames = Harness::frames_to(&outs, conn);
    assert_eq!(
        error_text(&frames[0].1),
        "room \"room\" is full (2 of 2 participants)"
    );
    assert_eq!(
        Harness::closed(&outs, conn),
        Some(close_code::JOIN_REJECTED)
    );
    assert_eq!(h.server.roster("room").unwrap().len(), 2);
}

#[test]
fn invalid_names_and_codes_rejected() {
    let mut h = Harness::new();
    let cases = [
        (join("room", ""), "display name is empty"),
        (join("room", "\u{202e}\u{200b}"), "display name is empty"),
        (join(" ", "name"), "room code is empty"),
        (
            join("room", &"x".repeat(65)),
            "display name is 65 characters long, over the limit of 64",
        ),
        (
            join(&"r".repeat(129), "name"),
            "room code is 129 characters long, over the limit of 128",
        ),
    ];
    for (index, (message, expected)) in cases.into_iter().enumerate() {
        let conn = h.open(index as u64, Dialect::Native);
        h.send(conn, message);
        let outs = h.drain();
        assert_eq!(error_text(&Harness::frames_to(&outs, conn)[0].1), expected);
        assert_eq!(
            Harness::closed(&outs, conn),
            Some(close_code::JOIN_REJECTED)
        );
    }
}

#[test]
fn names_are_cleaned_in_roster() {
    let mut h = Harness::new();
    h.join(1, Dialect::Native, "ro\u{200b}om", "\u{202e}alice\u{0007}");
    let roster = h.server.roster("room").unwrap();
    assert_eq!(roster[0].display_name, "alice");
}

#[test]
fn command_before_join_rejected() {
    let mut h = Harness::new();
    let conn = h.open(1, Dialect::Legacy);
    h.send(conn, SignalMessage::Mute { muted: true });
    let outs = h.drain();
    assert_eq!(
        error_text(&Harness::frames_to(&outs, conn)[0].1),
        "Mute is not allowed before Join: send Join first"
    );
    assert_eq!(
        Harness::closed(&outs, conn),
        Some(close_code::PROTOCOL_ERROR)
    );
}

#[test]
fn second_join_rejected_but_kept() {
    let mut h = Harness::new();
    let (conn, _) = h.join(1, Dialect::Native, "room", "a");
    h.send(conn, join("other", "a"));
    let outs = h.drain();
    assert!(error_text(&Harness::frames_to(&outs, conn)[0].1).starts_with("already in a room"));
    assert_eq!(Harness::closed(&outs, conn), None);
    assert!(h.server.roster("other").is_none());
}

#[test]
fn malformed_frames_close_with_error() {
    let cases: [(&[u8], &str); 3] = [
        (
            &[0xff, 0xff, 0xff, 0xff],
            "malformed frame: frame length 4294967295 is over the limit of 65536 bytes",
        ),
        (
            &[0, 0, 0, 1, 42],
            "malformed message: unknown message variant 42 (this dialect knows 0 to 14)",
        ),
        (
            &[0, 0, 0, 4, 0, 1, 0xc3, 0],
            "malformed message: message contains invalid UTF-8",
        ),
    ];
    for (bytes, expected) in cases {
        let mut h = Harness::new();
        let (conn, _) = h.join(1, Dialect::Legacy, "room", "a");
        let (other, _) = h.join(2, Dialect::Legacy, "room", "b");
        h.send_raw(conn, bytes);
        let outs = h.drain();
        assert_eq!(error_text(&Harness::frames_to(&outs, conn)[0].1), expected);
        assert_eq!(
            Harness::closed(&outs, conn),
            Some(close_code::PROTOCOL_ERROR)
        );
        assert!(matches!(
            Harness::frames_to(&outs, other)[0].1,
            SignalMessage::ClientLeft { .. }
        ));
    }
}

#[test]
fn shutdown_notifies_each_dialect() {
    let mut h = Harness::new();
    let (legacy, _) = h.join(1, Dialect::Legacy, "room", "a");
    let (native, _) = h.join(2, Dialect::Native, "room", "b");

    h.server.shutdown(h.now, "server is shutting down");
    let outs = h.drain();
    assert_eq!(
        Harness::frames_to(&outs, legacy),
        vec![(
            OutStream::Push,
            SignalMessage::Error {
                message: "server is shutting down".to_string()
            }
        )]
    );
    assert_eq!(
        Harness::frames_to(&outs, native),
        vec![(
            OutStream::Control,
            SignalMessage::ShuttingDown {
                reason: "server is shutting down".to_string()
            }
        )]
    );
    assert_eq!(Harness::closed(&outs, legacy), Some(close_code::SHUTDOWN));
    assert_eq!(Harness::closed(&outs, native), Some(close_code::SHUTDOWN));
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn silent_connection_closed_after_join_timeout() {
    let mut h = Harness::new();
    let conn = h.open(1, Dialect::Native);
    h.advance(JOIN_TIMEOUT - Duration::from_millis(100));
    assert_eq!(Harness::closed(&h.drain(), conn), None);
    h.advance(JOIN_TIMEOUT);
    assert_eq!(
        Harness::closed(&h.drain(), conn),
        Some(close_code::JOIN_TIMEOUT)
    );
}

#[test]
fn disconnect_removes_member_and_room() {
    let mut h = Harness::new();
    let (conn, _) = h.join(1, Dialect::Native, "room", "a");
    assert!(h.server.poll_timeout().is_some());
    h.server
        .handle_input(h.now, ServerInput::ConnectionClosed { conn });
    let outs = h.drain();
    assert!(outs.contains(&Out::Event(ServerEvent::RoomClosed {
        room: "room".to_string()
    })));
    assert!(h.server.roster("room").is_none());
    assert_eq!(h.server.connection_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn mixer_clock_ticks_every_frame() {
    let mut h = Harness::new();
    h.join(1, Dialect::Native, "room", "a");
    let first = h.server.poll_timeout().unwrap();
    h.advance(Duration::from_millis(200));
    let later = h.server.poll_timeout().unwrap();
    assert_eq!(later - first, Duration::from_millis(200));
}

#[test]
fn transcript_of_a_small_session() {
    let mut h = Harness::new();
    let (host, _) = h.join(1, Dialect::Native, "room", "host");
    let (guest, guest_id) = h.join(2, Dialect::Legacy, "room", "guest");
    h.send(guest, SignalMessage::Mute { muted: true });
    h.send(
        host,
        SignalMessage::ServerMute {
            target: guest_id,
            muted: true,
        },
    );
    h.send(guest, SignalMessage::Kick { target: 1 });
    h.send(host, SignalMessage::Kick { target: guest_id });
    h.send(host, SignalMessage::Leave);

    let lines: Vec<String> = h
        .drain()
        .into_iter()
        .map(|out| match out {
            Out::Frame(conn, stream, message) => format!("{conn} {stream:?} {message:?}"),
            Out::Datagram(conn) => format!("{conn} datagram"),
            Out::Close(conn, code) => format!("{conn} close {code}"),
            Out::Event(event) => format!("event: {event}"),
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn force_unmute_by_non_host_named() {
    let mut h = Harness::new();
    let (_, host_id) = h.join(1, Dialect::Native, "room", "host");
    let (other, _) = h.join(2, Dialect::Native, "room", "other");
    h.send(
        other,
        SignalMessage::ServerMute {
            target: host_id,
            muted: false,
        },
    );
    let outs = h.drain();
    assert_eq!(
        error_text(&Harness::frames_to(&outs, other)[0].1),
        "only the host can force-unmute"
    );
}

#[test]
fn server_messages_from_client_close_connection() {
    for joined in [false, true] {
        let mut h = Harness::new();
        let conn = if joined {
            h.join(1, Dialect::Native, "room", "a").0
        } else {
            h.open(1, Dialect::Native)
        };
        h.send(
            conn,
            SignalMessage::ShuttingDown {
                reason: "no".to_string(),
            },
        );
        let outs = h.drain();
        assert_eq!(
            error_text(&Harness::frames_to(&outs, conn)[0].1),
            "ShuttingDown is a server-to-client message; a client cannot send it"
        );
        assert_eq!(
            Harness::closed(&outs, conn),
            Some(close_code::PROTOCOL_ERROR)
        );
    }
}

#[test]
fn stream_ending_mid_frame_is_protocol_error() {
    let mut h = Harness::new();
    let (conn, _) = h.join(1, Dialect::Legacy, "room", "a");
    h.send_raw(conn, &[0, 0, 0, 100, 1, 2]);
    h.server
        .handle_input(h.now, ServerInput::StreamFinished { conn });
    let outs = h.drain();
    assert_eq!(
        error_text(&Harness::frames_to(&outs, conn)[0].1),
        "signalling stream ended in the middle of a frame (6 bytes of it received)"
    );
    assert_eq!(
        Harness::closed(&outs, conn),
        Some(close_code::PROTOCOL_ERROR)
    );
}

#[test]
fn shutdown_announces_no_new_hosts() {
    let mut h = Harness::new();
    h.join(1, Dialect::Native, "room", "a");
    h.join(2, Dialect::Native, "room", "b");
    h.server.shutdown(h.now, "server is shutting down");
    let outs = h.drain();
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Out::Event(ServerEvent::HostChanged { .. }))));
}

#[test]
fn signalling_flood_rejected_with_error() {
    let mut h = Harness::with_config(ServerConfig {
        signalling_rate: crate::rate_limit::RateLimit::new(2, 3),
        ..ServerConfig::default()
    });
    // The join takes the first of three tokens.
    let (conn, _) = h.join(1, Dialect::Native, "room", "a");
    h.send(conn, SignalMessage::Mute { muted: true });
    h.send(conn, SignalMessage::Mute { muted: false });
    h.drain();

    h.send(conn, SignalMessage::Mute { muted: true });
    let outs = h.drain();
    let frames = Harness::frames_to(&outs, conn);
    assert_eq!(frames.len(), 1);
    let text = error_text(&frames[0].1);
    assert!(
        text.starts_with("too many signalling messages: Mute was not carried out"),
        "{text}"
    );
    assert!(text.contains("2 per second with bursts of 3"), "{text}");
    assert_eq!(Harness::closed(&outs, conn), None);
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Out::Event(ServerEvent::MuteChanged { .. }))));

    // Half a second refills one token at two per second.
    h.now += Duration::from_millis(500);
    h.send(conn, SignalMessage::Mute { muted: true });
    let outs = h.drain();
    assert!(outs
        .iter()
        .any(|o| matches!(o, Out::Event(ServerEvent::MuteChanged { muted: true, .. }))));
}

#[test]
fn leave_allowed_over_signalling_limit() {
    let mut h = Harness::with_config(ServerConfig {
        signalling_rate: crate::rate_limit::RateLimit::new(1, 1),
        ..ServerConfig::default()
    });
    let (conn, _) = h.join(1, Dialect::Native, "room", "a");
    h.send(conn, SignalMessage::Mute { muted: true });
    h.drain();
    h.send(conn, SignalMessage::Leave);
    let outs = h.drain();
    assert_eq!(Harness::closed(&outs, conn), Some(close_code::NORMAL));
    assert!(h.server.roster("room").is_none());
}

#[test]
fn stalled_partial_frame_closes_connection() {
    let mut h = Harness::with_config(ServerConfig {
        frame_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    let (conn, _) = h.join(1, Dialect::Native, "room", "a");
    h.send_raw(conn, &[0, 0, 0, 100, 1, 2, 3]);
    h.advance(Duration::from_millis(1900));
    assert_eq!(Harness::closed(&h.drain(), conn), None);

    h.advance(Duration::from_millis(200));
    let outs = h.drain();
    let frames = Harness::frames_to(&outs, conn);
    assert_eq!(
        error_text(&frames[0].1),
        "signalling frame incomplete after 2.0 s (7 bytes of it received): \
         a frame must arrive whole within that time"
    );
    assert_eq!(
        Harness::closed(&outs, conn),
        Some(close_code::PROTOCOL_ERROR)
    );
    assert!(h.server.roster("room").is_none());
}

#[test]
fn completed_frame_stops_frame_timer() {
    let mut h = Harness::with_config(ServerConfig {
        frame_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    let (conn, _) = h.join(1, Dialect::Native, "room", "a");
    let frame = encode_frame(
        &encode_message(&SignalMessage::Mute { muted: true }, Dialect::Native).unwrap(),
    );
    h.send_raw(conn, &frame[..2]);
    h.advance(Duration::from_secs(1));
    h.send_raw(conn, &frame[2..]);
    h.advance(Duration::from_secs(5));
    assert_eq!(Harness::closed(&h.drain(), conn), None);
    assert!(h.server.roster("room").unwrap()[0].muted);
}

#[test]
fn datagram_flood_dropped_over_rate() {
    let mut h = Harness::with_config(ServerConfig {
        datagram_rate: crate::rate_limit::RateLimit::new(50, 10),
        ..ServerConfig::default()
    });
    let (conn, client) = h.join(1, Dialect::Native, "room", "a");
    for sequence in 0..25 {
        let header = AudioHeader {
            client_id: client,
            sequence,
            timestamp: sequence * 960,
        };
        let datagram = encode_datagram(header, &[0u8; 20]);
        h.server.handle_input(
            h.now,
            ServerInput::Datagram {
                conn,
                bytes: &datagram,
            },
        );
    }
    let status = h.server.status();
    assert_eq!(status[0].participants[0].rate_limited_datagrams, 15);
}

fn join_with_password(room: &str, name: &str, password: &str) -> SignalMessage {
    SignalMessage::JoinWithPassword {
        room_code: room.to_string(),
        display_name: name.to_string(),
        password: password.to_string(),
    }
}

/// Sends `message` on a new connection and returns the `Error` text it got
/// back, checking that the join was refused and the connection closed.
fn refused_join(h: &mut Harness, conn: ConnectionId, message: SignalMessage) -> String {
    h.send(conn, message);
    let outs = h.drain();
    assert_eq!(
        Harness::closed(&outs, conn),
        Some(close_code::JOIN_REJECTED),
        "{outs:?}"
    );
    error_text(&Harness::frames_to(&outs, conn)[0].1).to_string()
}

#[test]
fn room_password_set_by_first_joiner() {
    let mut h = Harness::new();
    let first = h.open(1, Dialect::Native);
    h.send(first, join_with_password("room", "a", "hunter2"));
    h.drain();
    assert!(h.server.client_of(first).is_some());

    let right = h.open(2, Dialect::Native);
    h.send(right, join_with_password("room", "b", "hunter2"));
    h.drain();
    assert!(h.server.client_of(right).is_some());

    let wrong = h.open(3, Dialect::Native);
    assert_eq!(
        refused_join(&mut h, wrong, join_with_password("room", "c", "hunter3")),
        "wrong password for room \"room\""
    );
    let none = h.open(4, Dialect::Native);
    assert_eq!(
        refused_join(&mut h, none, join("room", "d")),
        "room \"room\" needs a password: join again with the room's password"
    );
    let legacy = h.open(5, Dialect::Legacy);
    assert!(refused_join(&mut h, legacy, join("room", "e"))
        .starts_with("room \"room\" needs a password, which this client cannot send"));
    assert_eq!(h.server.roster("room").unwrap().len(), 2);
}

#[test]
fn password_for_open_room_refused() {
    let mut h = Harness::new();
    h.join(1, Dialect::Native, "room", "a");

    let conn = h.open(2, Dialect::Native);
    let reason = refused_join(&mut h, conn, join_with_password("room", "b", "secret"));
    assert!(
        reason.starts_with("room \"room\" has no password"),
        "{reason}"
    );
    assert_eq!(h.server.roster("room").unwrap().len(), 1);
}

#[test]
fn empty_and_long_passwords_refused() {
    let mut h = Harness::new();
    let conn = h.open(1, Dialect::Native);
    assert!(
        refused_join(&mut h, conn, join_with_password("room", "a", ""))
            .starts_with("the room password is empty")
    );

    let conn = h.open(2, Dialect::Native);
    let long = "x".repeat(MAX_PASSWORD_LEN + 1);
    assert_eq!(
        refused_join(&mut h, conn, join_with_password("room", "a", &long)),
        "the room password is 257 bytes long, over the limit of 256 bytes"
    );
    assert!(h.server.roster("room").is_none());
}

#[test]
fn password_ends_with_its_room() {
    let mut h = Harness::new();
    let (first, _) = h.join(1, Dialect::Native, "room", "a");
    h.send(first, SignalMessage::Leave);
    h.drain();
    assert!(h.server.roster("room").is_none());

    let conn = h.open(2, Dialect::Native);
    h.send(conn, join_with_password("room", "b", "new"));
    h.drain();
    assert!(
        h.server.client_of(conn).is_some(),
        "a new room, a new password"
    );
}

#[test]
fn kicked_address_banned_from_room_until_ban_ends() {
    let mut h = Harness::with_config(ServerConfig {
        kick_ban: Duration::from_secs(60),
        ..ServerConfig::default()
    });
    let host = h.open_from(1, Dialect::Native, "192.0.2.1");
    h.send(host, join("room", "host"));
    let target = h.open_from(2, Dialect::Native, "192.0.2.2");
    h.send(target, join("room", "target"));
    h.drain();
    let target_id = h.server.client_of(target).unwrap();

    h.send(host, SignalMessage::Kick { target: target_id });
    h.drain();
    h.advance(Duration::from_secs(20));

    let again = h.open_from(3, Dialect::Native, "192.0.2.2");
    assert_eq!(
        refused_join(&mut h, again, join("room", "target")),
        "you were removed from room \"room\" by its host; try again in 40 s"
    );

    // Another room, and another address, are not affected.
    let elsewhere = h.open_from(4, Dialect::Native, "192.0.2.2");
    h.send(elsewhere, join("other", "target"));
    let neighbour = h.open_from(5, Dialect::Native, "192.0.2.3");
    h.send(neighbour, join("room", "neighbour"));
    h.drain();
    assert!(h.server.client_of(elsewhere).is_some());
    assert!(h.server.client_of(neighbour).is_some());

    h.advance(Duration::from_secs(40));
    let after = h.open_from(6, Dialect::Native, "192.0.2.2");
    h.send(after, join("room", "target"));
    h.drain();
    assert!(h.server.client_of(after).is_some(), "the ban has ended");
}

#[test]
fn ban_outlives_its_room() {
    let mut h = Harness::new();
    let host = h.open_from(1, Dialect::Native, "192.0.2.1");
    h.send(host, join("room", "host"));
    let target = h.open_from(2, Dialect::Native, "192.0.2.2");
    h.send(target, join("room", "target"));
    h.drain();
    let target_id = h.server.client_of(target).unwrap();
    h.send(host, SignalMessage::Kick { target: target_id });
    h.send(host, SignalMessage::Leave);
    h.drain();
    assert!(h.server.roster("room").is_none());

    let again = h.open_from(3, Dialect::Native, "192.0.2.2");
    let reason = refused_join(&mut h, again, join("room", "target"));
    assert!(reason.starts_with("you were removed from room"), "{reason}");
}

#[test]
fn zero_kick_ban_disables_ban() {
    let mut h = Harness::with_config(ServerConfig {
        kick_ban: Duration::ZERO,
        ..ServerConfig::default()
    });
    let (host, _) = h.join(1, Dialect::Native, "room", "host");
    let (_, target_id) = h.join(2, Dialect::Native, "room", "target");
    h.send(host, SignalMessage::Kick { target: target_id });
    h.drain();

    h.join(3, Dialect::Native, "room", "target");
    assert_eq!(h.server.roster("room").unwrap().len(), 2);
}

#[test]
fn kick_from_host_address_not_banned() {
    let mut h = Harness::new();
    let (host, _) = h.join(1, Dialect::Native, "room", "host");
    let (_, housemate) = h.join(2, Dialect::Native, "room", "housemate");
    h.send(host, SignalMessage::Kick { target: housemate });
    h.drain();

    // Both came from 127.0.0.1: a ban would keep the host's household out.
    h.join(3, Dialect::Native, "room", "housemate");
    assert_eq!(h.server.roster("room").unwrap().len(), 2);
}
