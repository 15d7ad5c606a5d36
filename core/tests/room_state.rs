//! The server's room state machine under arbitrary command sequences, from
//! any connection, host or not, aimed at known or unknown targets: joins,
//! leaves, kicks, mutes and force-mutes, blocks, closes and timeouts.
//!
//! After every step, with every output drained and every close the server
//! asked for carried out:
//!
//! - every non-empty room has exactly one host, and it is a member;
//! - every joined client's roster, rebuilt from the frames it was sent,
//!   equals the server's roster, host included;
//! - a kicked client is in no room and its connection is closed;
//! - the server's open connections are the ones the harness has open.
//!
//! Only the public core API is used: [`Server`], its inputs and outputs,
//! and the wire codec.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use voicemcu_core::ids::{ClientId, ConnectionId};
use voicemcu_core::server::{Server, ServerConfig, ServerInput, ServerOutput};
use voicemcu_core::time::Instant;
use voicemcu_core::wire::{
    decode_message, encode_frame, encode_message, Dialect, FrameDecoder, SignalMessage,
};

/// Connections the generated commands come from.
const CONNECTIONS: usize = 5;

/// Rooms the generated joins go to.
const ROOMS: [&str; 2] = ["alpha", "beta"];

/// A target for kicks, mutes and blocks.
#[derive(Clone, Debug)]
enum Target {
    /// The client on this connection, if it has joined.
    Connection(usize),
    /// An id no client has.
    Unknown,
}

#[derive(Clone, Debug)]
enum Step {
    Open {
        conn: usize,
        legacy: bool,
    },
    Join {
        conn: usize,
        room: usize,
    },
    Leave {
        conn: usize,
    },
    Mute {
        conn: usize,
        muted: bool,
    },
    Kick {
        conn: usize,
        target: Target,
    },
    ForceMute {
        conn: usize,
        target: Target,
        muted: bool,
    },
    Block {
        conn: usize,
        target: Target,
        blocked: bool,
    },
    FinishStream {
        conn: usize,
    },
    Close {
        conn: usize,
    },
    Wait {
        millis: u64,
    },
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => (0..CONNECTIONS).prop_map(Target::Connection),
        1 => Just(Target::Unknown),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let conn = 0..CONNECTIONS;
    prop_oneof![
        3 => (conn.clone(), any::<bool>()).prop_map(|(conn, legacy)| Step::Open { conn, legacy }),
        4 => (conn.clone(), 0..ROOMS.len()).prop_map(|(conn, room)| Step::Join { conn, room }),
        1 => conn.clone().prop_map(|conn| Step::Leave { conn }),
        1 => (conn.clone(), any::<bool>()).prop_map(|(conn, muted)| Step::Mute { conn, muted }),
        2 => (conn.clone(), target()).prop_map(|(conn, target)| Step::Kick { conn, target }),
        1 => (conn.clone(), target(), any::<bool>())
            .prop_map(|(conn, target, muted)| Step::ForceMute { conn, target, muted }),
        1 => (conn.clone(), target(), any::<bool>())
            .prop_map(|(conn, target, blocked)| Step::Block { conn, target, blocked }),
        1 => conn.clone().prop_map(|conn| Step::FinishStream { conn }),
        1 => conn.prop_map(|conn| Step::Close { conn }),
        1 => (1u64..15_000).prop_map(|millis| Step::Wait { millis }),
    ]
}

/// What one connection's client has learnt from the frames sent to it.
#[derive(Debug, Default)]
struct ClientModel {
    dialect: Option<Dialect>,
    frames: FrameDecoder,
    own_id: Option<ClientId>,
    members: BTreeMap<ClientId, String>,
    host: Option<ClientId>,
    kicked: bool,
}

impl ClientModel {
    fn apply(&mut self, message: SignalMessage) {
        match message {
            SignalMessage::Joined { client_id } => self.own_id = Some(client_id),
            SignalMessage::RoomInfo { clients } => {
                self.members = clients
                    .iter()
                    .map(|client| (client.client_id, client.display_name.clone()))
                    .collect();
                self.host = clients
                    .iter()
                    .find(|client| client.is_host)
                    .map(|client| client.client_id);
            }
            SignalMessage::ClientJoined {
                client_id,
                display_name,
            } => {
                self.members.insert(client_id, display_name);
            }
            SignalMessage::ClientLeft { client_id } => {
                self.members.remove(&client_id);
                if self.host == Some(client_id) {
                    self.host = None;
                }
            }
            SignalMessage::YouAreHost => self.host = self.own_id,
            SignalMessage::Kicked { .. } => self.kicked = true,
            _ => {}
        }
    }
}

/// The server and the harness's record of each connection.
struct Harness {
    server: Server,
    now: Instant,
    /// Open connections and their clients' models.
    open: BTreeMap<usize, ClientModel>,
    /// Connections ever opened; a connection id is never reused.
    next_conn: u64,
    conn_ids: BTreeMap<usize, ConnectionId>,
    /// Client ids of clients the server kicked.
    kicked: BTreeSet<ClientId>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            server: Server::new(ServerConfig::default(), 11),
            now: Instant::ZERO,
            open: BTreeMap::new(),
            next_conn: 0,
            conn_ids: BTreeMap::new(),
            kicked: BTreeSet::new(),
        }
    }

    fn conn_id(&self, conn: usize) -> Option<ConnectionId> {
        self.open.contains_key(&conn).then(|| self.conn_ids[&conn])
    }

    fn target_id(&self, target: &Target) -> ClientId {
        match target {
            Target::Connection(conn) => self
                .conn_id(*conn)
                .and_then(|id| self.server.client_of(id))
                .unwrap_or(u64::MAX - 1),
            Target::Unknown => u64::MAX - 2,
        }
    }

    fn send(&mut self, conn: usize, message: &SignalMessage) {
        let (Some(id), Some(model)) = (self.conn_id(conn), self.open.get(&conn)) else {
            return;
        };
        let dialect = model.dialect.unwrap_or(Dialect::Native);
        let body = encode_message(message, dialect).expect("client messages encode");
        let frame = encode_frame(&body);
        self.server.handle_input(
            self.now,
            ServerInput::StreamData {
                conn: id,
                bytes: &frame,
            },
        );
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Open { conn, legacy } => {
                if self.open.contains_key(conn) {
                    return;
                }
                let id = ConnectionId(self.next_conn);
                self.next_conn += 1;
                let dialect = if *legacy {
                    Dialect::Legacy
                } else {
                    Dialect::Native
                };
                self.conn_ids.insert(*conn, id);
                self.open.insert(
                    *conn,
                    ClientModel {
                        dialect: Some(dialect),
                        ..ClientModel::default()
                    },
                );
                let peer = SocketAddr::from(([192, 0, 2, 1], 40_000 + *conn as u16));
                self.server.handle_input(
                    self.now,
                    ServerInput::ConnectionOpened {
                        conn: id,
                        peer,
                        dialect,
                    },
                );
            }
            Step::Join { conn, room } => {
                let message = SignalMessage::Join {
                    room_code: ROOMS[*room].to_owned(),
                    display_name: format!("user{conn}"),
                };
                self.send(*conn, &message);
            }
            Step::Leave { conn } => self.send(*conn, &SignalMessage::Leave),
            Step::Mute { conn, muted } => self.send(*conn, &SignalMessage::Mute { muted: *muted }),
            Step::Kick { conn, target } => {
                let target = self.target_id(target);
                self.send(*conn, &SignalMessage::Kick { target });
            }
            Step::ForceMute {
                conn,
                target,
                muted,
            } => {
                let target = self.target_id(target);
                let muted = *muted;
                self.send(*conn, &SignalMessage::ServerMute { target, muted });
            }
            Step::Block {
                conn,
                target,
                blocked,
            } => {
                let target = self.target_id(target);
                let message = if *blocked {
                    SignalMessage::BlockPeer { target }
                } else {
                    SignalMessage::UnblockPeer { target }
                };
                self.send(*conn, &message);
            }
            Step::FinishStream { conn } => {
                if let Some(id) = self.conn_id(*conn) {
                    self.server
                        .handle_input(self.now, ServerInput::StreamFinished { conn: id });
                }
            }
            Step::Close { conn } => self.close(*conn),
            Step::Wait { millis } => {
                self.now += Duration::from_millis(*millis);
                self.server.handle_input(self.now, ServerInput::Timeout);
            }
        }
        self.drain();
    }

    /// Closes `conn` as the adapter would when the peer goes away.
    fn close(&mut self, conn: usize) {
        let Some(id) = self.conn_id(conn) else {
            return;
        };
        self.open.remove(&conn);
        self.server
            .handle_input(self.now, ServerInput::ConnectionClosed { conn: id });
    }

    /// Drains the outputs: frames go to the clients' models in order, and
    /// closes are carried out once everything before them was delivered.
    fn drain(&mut self) {
        loop {
            let mut closes = Vec::new();
            while let Some(output) = self.server.poll_output() {
                match output {
                    ServerOutput::SendFrame { conn, frame, .. } => self.deliver(conn, &frame),
                    ServerOutput::Close { conn, .. } => closes.push(conn),
                    ServerOutput::SendDatagram { .. } | ServerOutput::Event(_) => {}
                }
            }
            if closes.is_empty() {
                return;
            }
            for id in closes {
                let conn = self
                    .conn_ids
                    .iter()
                    .find(|(conn, known)| **known == id && self.open.contains_key(conn))
                    .map(|(conn, _)| *conn);
                if let Some(conn) = conn {
                    self.close(conn);
                }
            }
        }
    }

    fn deliver(&mut self, id: ConnectionId, frame: &[u8]) {
        let Some(model) = self
            .conn_ids
            .iter()
            .find(|(_, known)| **known == id)
            .and_then(|(conn, _)| self.open.get_mut(conn))
        else {
            return;
        };
        let dialect = model.dialect.unwrap_or(Dialect::Native);
        model.frames.push(frame);
        while let Ok(Some(body)) = model.frames.next_frame() {
            let message = decode_message(&body, dialect).expect("server frames decode");
            if matches!(message, SignalMessage::Kicked { .. }) {
                if let Some(own) = model.own_id {
                    self.kicked.insert(own);
                }
            }
            model.apply(message);
        }
    }

    /// Checks every property, returning the first that fails.
    fn check(&self) -> Result<(), String> {
        let status = self.server.status();

        for room in &status {
            let hosts: Vec<ClientId> = room
                .participants
                .iter()
                .filter(|p| p.is_host)
                .map(|p| p.client_id)
                .collect();
            if room.participants.is_empty() {
                return Err(format!("room {:?} is listed but empty", room.code));
            }
            if hosts.len() != 1 {
                return Err(format!(
                    "room {:?} has {} hosts: {hosts:?}",
                    room.code,
                    hosts.len()
                ));
            }
            for participant in &room.participants {
                if self.kicked.contains(&participant.client_id) {
                    return Err(format!(
                        "kicked client {} is still in room {:?}",
                        participant.client_id, room.code
                    ));
                }
            }
        }

        for (conn, model) in &self.open {
            let Some(client) = self.server.client_of(self.conn_ids[conn]) else {
                continue;
            };
            let Some(room) = status
                .iter()
                .find(|room| room.participants.iter().any(|p| p.client_id == client))
            else {
                return Err(format!("client {client} is joined but in no room"));
            };
            let members: BTreeMap<ClientId, String> = room
                .participants
                .iter()
                .map(|p| (p.client_id, p.name.clone()))
                .collect();
            let host = room
                .participants
                .iter()
                .find(|p| p.is_host)
                .map(|p| p.client_id);
            if model.members != members {
                return Err(format!(
                    "client {client} sees {:?} but room {:?} has {members:?}",
                    model.members, room.code
                ));
            }
            if model.host != host {
                return Err(format!(
                    "client {client} thinks the host is {:?} but it is {host:?}",
                    model.host
                ));
            }
        }

        for (conn, model) in &self.open {
            if model.kicked {
                return Err(format!("kicked connection {conn} is still open"));
            }
        }

        if self.server.connection_count() != self.open.len() {
            return Err(format!(
                "the server has {} connections open, the harness {}",
                self.server.connection_count(),
                self.open.len()
            ));
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rooms_stay_consistent(steps in proptest::collection::vec(step(), 1..80)) {
        let mut harness = Harness::new();
        for (index, step) in steps.iter().enumerate() {
            harness.run(step);
            if let Err(problem) = harness.check() {
                prop_assert!(false, "after step {index} ({step:?}): {problem}");
            }
        }
    }
}

#[test]
fn kick_by_host_removes_target() {
    let mut harness = Harness::new();
    let steps = [
        Step::Open {
            conn: 0,
            legacy: false,
        },
        Step::Open {
            conn: 1,
            legacy: true,
        },
        Step::Join { conn: 0, room: 0 },
        Step::Join { conn: 1, room: 0 },
        Step::Kick {
            conn: 0,
            target: Target::Connection(1),
        },
    ];
    for step in &steps {
        harness.run(step);
        harness.check().unwrap();
    }
    assert_eq!(harness.kicked.len(), 1);
    assert!(!harness.open.contains_key(&1));
    assert_eq!(harness.server.status()[0].participants.len(), 1);
}

#[test]
fn kick_by_non_host_is_rejected() {
    let mut harness = Harness::new();
    let steps = [
        Step::Open {
            conn: 0,
            legacy: false,
        },
        Step::Open {
            conn: 1,
            legacy: false,
        },
        Step::Join { conn: 0, room: 0 },
        Step::Join { conn: 1, room: 0 },
        Step::Kick {
            conn: 1,
            target: Target::Connection(0),
        },
    ];
    for step in &steps {
        harness.run(step);
        harness.check().unwrap();
    }
    assert!(harness.kicked.is_empty());
    assert_eq!(harness.server.status()[0].participants.len(), 2);
}
