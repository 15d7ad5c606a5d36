//! The server state machine: connections, rooms, moderation and the mixer
//! clock.
//!
//! The adapter hands in what happened with [`Server::handle_input`], drains
//! [`Server::poll_output`] until it returns `None`, and calls again with
//! [`ServerInput::Timeout`] once [`Server::poll_timeout`] has passed.
//!
//! Replies to a client's own command go on its bidirectional stream. Pushes
//! (someone joined, left, was muted, the host changed) go on the same stream
//! in the native dialect, and each on a new unidirectional stream in the
//! legacy dialect, as voicemcu 0.1 does.

mod access;
mod config;
mod event;
mod mix_log;
mod recording;
mod room;
mod talking;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::{debug, trace, warn};

use crate::arrival::{ArrivalReport, ArrivalStats};
use crate::audio::{FRAME_DURATION, FRAME_SAMPLES};
use crate::ids::{ClientId, ConnectionId};
use crate::mixer::{MemberStats, MixedFrame, RoomMixer};
use crate::rate_limit::TokenBucket;
use crate::text::sanitize;
use crate::time::Instant;
use crate::wire::{
    decode_datagram, decode_message, encode_datagram, encode_frame, encode_message, AudioHeader,
    ClientInfo, Dialect, FrameDecoder, SignalMessage,
};

pub use access::MAX_PASSWORD_LEN;
use access::{password_matches, same_ban_address, BanList};
pub use config::ServerConfig;
pub use event::{LeaveReason, ServerEvent};
pub use mix_log::MixRecord;
pub use recording::{RecordEvent, RecordedAction, RoomSerial};
use room::{Member, Room, RoomPolicy};
pub use talking::{MIN_REPORT_INTERVAL as MIN_TALKING_REPORT_INTERVAL, TALKING_HANGOVER};

/// How long a connection may stay open without sending `Join`.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Mixer ticks the server runs late before it skips ahead instead of
/// catching up one tick at a time.
const MAX_CATCH_UP_TICKS: u32 = 5;

/// QUIC application close codes the server uses.
pub mod close_code {
    /// The client left, or the server closed a finished session.
    pub const NORMAL: u32 = 0;
    /// The host kicked the client.
    pub const KICKED: u32 = 1;
    /// The join was rejected (invalid name, full room, ...).
    pub const JOIN_REJECTED: u32 = 2;
    /// The client broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 3;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 4;
    /// The client sent no `Join` in time.
    pub const JOIN_TIMEOUT: u32 = 5;
}

/// What happened, handed in by the adapter.
#[derive(Debug)]
pub enum ServerInput<'a> {
    /// A handshake finished and the client opened its bidirectional stream.
    ConnectionOpened {
        conn: ConnectionId,
        peer: SocketAddr,
        dialect: Dialect,
    },
    /// Bytes read from the connection's bidirectional stream, in any chunking.
    StreamData { conn: ConnectionId, bytes: &'a [u8] },
    /// The client finished its side of the bidirectional stream.
    StreamFinished { conn: ConnectionId },
    /// One datagram from the connection.
    Datagram { conn: ConnectionId, bytes: &'a [u8] },
    /// The connection is gone (closed by the peer, timed out, or closed by
    /// the adapter after a [`ServerOutput::Close`]).
    ConnectionClosed { conn: ConnectionId },
    /// `poll_timeout` passed.
    Timeout,
}

/// Which stream a frame goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutStream {
    /// The client's bidirectional stream, in order with earlier frames.
    Control,
    /// A new server-opened unidirectional stream carrying only this frame,
    /// then finished (legacy pushes).
    Push,
}

/// Why the server closes a connection, sent as the QUIC application close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// One of [`close_code`].
    pub code: u32,
    pub message: String,
}

/// What the server wants done, drained by the adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerOutput {
    /// Write this length-prefixed frame.
    SendFrame {
        conn: ConnectionId,
        stream: OutStream,
        frame: Vec<u8>,
    },
    /// Send this datagram; drop it if the connection cannot take it.
    SendDatagram {
        conn: ConnectionId,
        datagram: Vec<u8>,
    },
    /// Close the connection once every frame queued before this output for
    /// it has been delivered, or after a short grace period.
    Close {
        conn: ConnectionId,
        reason: CloseReason,
    },
    /// For logs and the status view.
    Event(ServerEvent),
}

/// How a message relates to what the client asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// An answer to the client's own command: always the control stream.
    Reply,
    /// Unsolicited news: a push stream in the legacy dialect.
    Push,
}

/// Where a connection is in its life.
#[derive(Debug)]
enum Phase {
    /// Opened; `Join` not yet received.
    AwaitingJoin { since: Instant },
    /// In a room.
    Joined { client: ClientId, room: String },
    /// A `Close` was issued; everything further from it is ignored.
    Closing,
}

#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    dialect: Dialect,
    frames: FrameDecoder,
    phase: Phase,
    /// Sequence number of the next mixed frame sent to this listener.
    next_sequence: u32,
    /// Datagrams dropped because they could not be decoded.
    malformed_datagrams: u64,
    /// Signalling messages allowed, per [`ServerConfig::signalling_rate`].
    signalling: TokenBucket,
    /// Audio datagrams allowed, per [`ServerConfig::datagram_rate`].
    datagrams: TokenBucket,
    /// Datagrams dropped for going over [`ServerConfig::datagram_rate`].
    rate_limited_datagrams: u64,
    /// When the partial frame now buffered started to arrive.
    partial_frame_since: Option<Instant>,
    /// Loss and jitter of the audio this connection sends.
    arrival: ArrivalStats,
}

/// Counters for one participant, for the status view and tests.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParticipantStatus {
    pub client_id: ClientId,
    pub name: String,
    pub muted: bool,
    pub server_muted: bool,
    pub is_host: bool,
    pub dialect: Dialect,
    pub peer: SocketAddr,
    pub malformed_datagrams: u64,
    /// Datagrams dropped for going over the server's datagram rate limit.
    pub rate_limited_datagrams: u64,
    /// Loss and interarrival jitter of the audio this participant sends.
    pub arrival: ArrivalReport,
    pub media: Option<MemberStats>,
}

/// A room as the status view shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RoomStatus {
    pub code: String,
    pub participants: Vec<ParticipantStatus>,
}

pub struct Server {
    config: ServerConfig,
    next_client_id: ClientId,
    connections: BTreeMap<ConnectionId, Connection>,
    rooms: BTreeMap<String, Room>,
    outputs: VecDeque<ServerOutput>,
    /// The room clock's next 20 ms tick, while any room exists.
    next_tick: Option<Instant>,
    /// Counts every tick the room clock has run, for datagram timestamps.
    ticks: u64,
    next_cleanup: Option<Instant>,
    shutting_down: bool,
    mixed: Vec<MixedFrame>,
    /// What each mix contained, while the opt-in mix log is enabled.
    mix_log: Option<Vec<MixRecord>>,
    /// Addresses the hosts kicked, kept out of their rooms for
    /// [`ServerConfig::kick_ban`].
    bans: BanList,
    /// The opt-in recording feed, see [`recording`].
    recording: Option<recording::Recorder>,
}

impl Server {
    /// A server whose client ids start from an offset drawn from `seed`.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        // Keep the top bits clear so ids never wrap in the server's lifetime.
        let offset = ChaCha8Rng::seed_from_u64(seed).random::<u64>() >> 12;
        Server {
            config,
            next_client_id: offset.max(1),
            connections: BTreeMap::new(),
            rooms: BTreeMap::new(),
            outputs: VecDeque::new(),
            next_tick: None,
            ticks: 0,
            next_cleanup: None,
            shutting_down: false,
            mixed: Vec::new(),
            mix_log: None,
            bans: BanList::default(),
            recording: None,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Starts or stops recording a [`MixRecord`] for every mix sent. Off by
    /// default. Stopping discards the records not yet taken.
    pub fn set_mix_log(&mut self, enabled: bool) {
        self.mix_log = if enabled { Some(Vec::new()) } else { None };
    }

    /// Takes the mix records made since the last call, oldest first. Empty
    /// when the mix log is off.
    pub fn take_mix_log(&mut self) -> Vec<MixRecord> {
        match &mut self.mix_log {
            Some(log) => std::mem::take(log),
            None => Vec::new(),
        }
    }

    /// Starts or stops the recording feed: decoded audio, joins, leaves and
    /// moderation of every room opened from now on, for
    /// [`Server::take_recording`]. Off by default. Stopping discards the
    /// events not yet taken.
    pub fn set_recording(&mut self, enabled: bool) {
        match (enabled, &self.recording) {
            (true, None) => self.recording = Some(recording::Recorder::default()),
            (false, Some(_)) => self.recording = None,
            _ => {}
        }
    }

    /// Takes the recording events made since the last call, oldest first.
    /// Empty when recording is off.
    pub fn take_recording(&mut self) -> Vec<RecordEvent> {
        self.recording
            .as_mut()
            .map(recording::Recorder::take)
            .unwrap_or_default()
    }

    pub fn handle_input(&mut self, now: Instant, input: ServerInput<'_>) {
        match input {
            ServerInput::ConnectionOpened {
                conn,
                peer,
                dialect,
            } => self.on_connection_opened(now, conn, peer, dialect),
            ServerInput::StreamData { conn, bytes } => self.on_stream_data(now, conn, bytes),
            ServerInput::StreamFinished { conn } => self.on_stream_finished(conn),
            ServerInput::Datagram { conn, bytes } => self.on_datagram(now, conn, bytes),
            ServerInput::ConnectionClosed { conn } => self.on_connection_closed(conn),
            ServerInput::Timeout => self.on_timeout(now),
        }
    }

    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.outputs.pop_front()
    }

    /// When the server next wants a [`ServerInput::Timeout`]: the next mixer
    /// tick while any room is open, or the next sweep for connections that
    /// never joined.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_tick, self.next_cleanup) {
            (Some(tick), Some(cleanup)) => Some(tick.min(cleanup)),
            (tick, cleanup) => tick.or(cleanup),
        }
    }

    /// Tells every client the server is going away and closes every
    /// connection. Connections opened later are closed at once.
    pub fn shutdown(&mut self, _now: Instant, reason: &str) {
        self.shutting_down = true;

        let conns: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for conn in conns {
            let Some(connection) = self.connections.get(&conn) else {
                continue;
            };
            if matches!(connection.phase, Phase::Closing) {
                continue;
            }

            let notice = match connection.dialect {
                Dialect::Native => SignalMessage::ShuttingDown {
                    reason: reason.to_string(),
                },
                Dialect::Legacy => SignalMessage::Error {
                    message: reason.to_string(),
                },
            };
            self.send(conn, &notice, Delivery::Push);
            self.leave_room(conn, LeaveReason::Shutdown);
            self.close(conn, close_code::SHUTDOWN, reason);
        }

        self.next_tick = None;
        self.next_cleanup = None;
    }

    pub fn client_of(&self, conn: ConnectionId) -> Option<ClientId> {
        match self.connections.get(&conn)?.phase {
            Phase::Joined { client, .. } => Some(client),
            _ => None,
        }
    }

    /// The roster of `room` as a `RoomInfo` would carry it.
    pub fn roster(&self, room: &str) -> Option<Vec<ClientInfo>> {
        self.rooms.get(room).map(Room::roster)
    }

    /// Returns every open room with its participants and their counters,
    /// ordered by room code and client id.
    pub fn status(&self) -> Vec<RoomStatus> {
        self.rooms
            .values()
            .map(|room| RoomStatus {
                code: room.code.clone(),
                participants: room
                    .members
                    .iter()
                    .map(|(id, member)| {
                        let connection = self.connections.get(&member.conn);
                        ParticipantStatus {
                            client_id: *id,
                            name: member.name.clone(),
                            muted: member.muted,
                            server_muted: member.server_muted,
                            is_host: room.is_host(*id),
                            dialect: connection.map_or(Dialect::Legacy, |c| c.dialect),
                            peer: connection
                                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.peer),
                            malformed_datagrams: connection.map_or(0, |c| c.malformed_datagrams),
                            rate_limited_datagrams: connection
                                .map_or(0, |c| c.rate_limited_datagrams),
                            arrival: connection
                                .map_or_else(ArrivalReport::default, |c| c.arrival.report()),
                            media: room.mixer.member_stats(*id),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Open connections, joined or not.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    fn on_connection_opened(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        peer: SocketAddr,
        dialect: Dialect,
    ) {
        self.event(ServerEvent::ConnectionOpened {
            conn,
            peer,
            dialect,
        });
        self.connections.insert(
            conn,
            Connection {
                peer,
                dialect,
                frames: FrameDecoder::default(),
                phase: Phase::AwaitingJoin { since: now },
                next_sequence: 0,
                malformed_datagrams: 0,
                signalling: TokenBucket::new(self.config.signalling_rate, now),
                datagrams: TokenBucket::new(self.config.datagram_rate, now),
                rate_limited_datagrams: 0,
                partial_frame_since: None,
                arrival: ArrivalStats::default(),
            },
        );

        if self.shutting_down {
            self.send(
                conn,
                &SignalMessage::Error {
                    message: "server is shutting down".to_string(),
                },
                Delivery::Reply,
            );
            self.close(conn, close_code::SHUTDOWN, "server is shutting down");
            return;
        }

        if self.next_cleanup.is_none() {
            self.next_cleanup = Some(now + JOIN_TIMEOUT.min(self.config.cleanup_interval));
        }
    }

    fn on_stream_data(&mut self, now: Instant, conn: ConnectionId, bytes: &[u8]) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if matches!(connection.phase, Phase::Closing) {
            return;
        }
        connection.frames.push(bytes);

        self.handle_frames(now, conn);
        self.track_partial_frame(now, conn);
    }

    /// Decodes and handles every complete frame buffered for `conn`.
    fn handle_frames(&mut self, now: Instant, conn: ConnectionId) {
        loop {
            let Some(connection) = self.connections.get_mut(&conn) else {
                return;
            };
            if matches!(connection.phase, Phase::Closing) {
                return;
            }
            let dialect = connection.dialect;

            let body = match connection.frames.next_frame() {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(error) => {
                    self.protocol_error(conn, format!("malformed frame: {error}"));
                    return;
                }
            };

            match decode_message(&body, dialect) {
                Ok(message) => self.on_message(now, conn, message),
                Err(error) => {
                    self.protocol_error(conn, format!("malformed message: {error}"));
                    return;
                }
            }
        }
    }

    /// Starts the clock on a partial frame left in the buffer, or stops it
    /// once the buffer holds none, and makes sure a sweep runs when the
    /// frame's time is up.
    fn track_partial_frame(&mut self, now: Instant, conn: ConnectionId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if matches!(connection.phase, Phase::Closing) || !connection.frames.has_partial_frame() {
            connection.partial_frame_since = None;
            return;
        }
        if connection.partial_frame_since.is_none() {
            connection.partial_frame_since = Some(now);
            let deadline = now + self.config.frame_timeout;
            self.next_cleanup = Some(self.next_cleanup.map_or(deadline, |at| at.min(deadline)));
        }
    }

    fn on_message(&mut self, now: Instant, conn: ConnectionId, message: SignalMessage) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        trace!(%conn, message = message.name(), "signalling message");

        if !message.is_client_to_server() {
            let error = format!(
                "{} is a server-to-client message; a client cannot send it",
                message.name()
            );
            return self.protocol_error(conn, error);
        }
        if matches!(connection.phase, Phase::Closing) {
            return;
        }
        if !matches!(message, SignalMessage::Leave) && !self.take_signalling_token(now, conn) {
            return self.reject_over_rate(conn, &message);
        }
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };

        let client = match &connection.phase {
            Phase::Closing => return,
            Phase::AwaitingJoin { .. } => {
                match message {
                    SignalMessage::Join {
                        room_code,
                        display_name,
                    } => self.on_join(now, conn, &room_code, &display_name, None),
                    SignalMessage::JoinWithPassword {
                        room_code,
                        display_name,
                        password,
                    } => self.on_join(now, conn, &room_code, &display_name, Some(&password)),
                    SignalMessage::Leave => {
                        self.close(conn, close_code::NORMAL, "left before joining");
                    }
                    other => self.protocol_error(
                        conn,
                        format!(
                            "{} is not allowed before Join: send Join first",
                            other.name()
                        ),
                    ),
                }
                return;
            }
            Phase::Joined { client, .. } => *client,
        };

        match message {
            SignalMessage::Join { .. } | SignalMessage::JoinWithPassword { .. } => {
                let reason = "already in a room: a connection joins one room; \
                              open a new connection to join another";
                self.reject_command(conn, client, reason.to_string());
            }
            SignalMessage::Leave => {
                self.leave_room(conn, LeaveReason::Left);
                self.close(conn, close_code::NORMAL, "left");
            }
            SignalMessage::Mute { muted } => self.on_mute(conn, client, muted),
            SignalMessage::Kick { target } => self.on_kick(now, conn, client, target),
            SignalMessage::ServerMute { target, muted } => {
                self.on_server_mute(conn, client, target, muted)
            }
            SignalMessage::BlockPeer { target } => self.on_block(conn, client, target, true),
            SignalMessage::UnblockPeer { target } => self.on_block(conn, client, target, false),
            other => {
                debug!(%conn, message = other.name(), "server-to-client message got past the check")
            }
        }
    }

    fn take_signalling_token(&mut self, now: Instant, conn: ConnectionId) -> bool {
        self.connections
            .get_mut(&conn)
            .is_some_and(|connection| connection.signalling.try_take(now))
    }

    /// Rejects a message over the signalling rate limit: replies with an
    /// `Error` and drops the message. The connection stays open.
    fn reject_over_rate(&mut self, conn: ConnectionId, message: &SignalMessage) {
        let limit = self.config.signalling_rate;
        let reason = format!(
            "too many signalling messages: {} was not carried out; the limit is {} per second \
             with bursts of {}, so slow down",
            message.name(),
            limit.per_second,
            limit.burst
        );
        self.event(ServerEvent::CommandRejected {
            conn,
            client: self.client_of(conn),
            reason: reason.clone(),
        });
        self.send(
            conn,
            &SignalMessage::Error { message: reason },
            Delivery::Reply,
        );
    }

    fn on_join(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        room_code: &str,
        display_name: &str,
        password: Option<&str>,
    ) {
        let name = match sanitize(display_name, self.config.max_name_len, "display name") {
            Ok(name) => name,
            Err(error) => return self.reject_join(conn, error.to_string()),
        };
        let code = match sanitize(room_code, self.config.max_room_code_len, "room code") {
            Ok(code) => code,
            Err(error) => return self.reject_join(conn, error.to_string()),
        };
        if let Err(reason) = self.check_access(now, conn, &code, password) {
            return self.reject_join(conn, reason);
        }

        if let Some(room) = self.rooms.get(&code) {
            if room.members.len() >= self.config.max_room_size {
                let reason = format!(
                    "room {code:?} is full ({} of {} participants)",
                    room.members.len(),
                    self.config.max_room_size
                );
                return self.reject_join(conn, reason);
            }
        } else if self.rooms.len() >= self.config.max_rooms {
            let reason = format!(
                "the server has reached its limit of {} rooms: try again later or join an existing room",
                self.config.max_rooms
            );
            return self.reject_join(conn, reason);
        }

        let client = self.next_client_id;
        self.next_client_id = self.next_client_id.wrapping_add(1);

        let created = !self.rooms.contains_key(&code);
        let room = self.rooms.entry(code.clone()).or_insert_with(|| {
            let password = password.map(str::to_string);
            Room::new(code.clone(), RoomMixer::new(self.config.mixer), password)
        });
        if let Err(error) = room.mixer.add_member(client) {
            warn!(%conn, %error, "could not set up the codec for a new participant");
            if room.members.is_empty() {
                self.rooms.remove(&code);
            }
            return self.reject_join(conn, format!("the server could not set up audio: {error}"));
        }

        let is_host = room.members.is_empty();
        if is_host {
            room.host = Some(client);
        }
        room.members.insert(
            client,
            Member {
                conn,
                name: name.clone(),
                muted: false,
                server_muted: false,
                blocked: Default::default(),
            },
        );
        let roster = room.roster();
        let others: Vec<ConnectionId> = room
            .members
            .iter()
            .filter(|(id, _)| **id != client)
            .map(|(_, member)| member.conn)
            .collect();

        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.phase = Phase::Joined {
            client,
            room: code.clone(),
        };
        let peer = connection.peer;
        let dialect = connection.dialect;

        if created {
            self.event(ServerEvent::RoomCreated { room: code.clone() });
            if self.next_tick.is_none() {
                self.next_tick = Some(now + FRAME_DURATION);
            }
        }
        self.event(ServerEvent::ClientJoined {
            conn,
            client,
            room: code.clone(),
            name: name.clone(),
            peer,
            dialect,
            host: is_host,
        });

        self.stop_sweeping_if_idle();
        self.send(
            conn,
            &SignalMessage::Joined { client_id: client },
            Delivery::Reply,
        );
        self.send(
            conn,
            &SignalMessage::RoomInfo { clients: roster },
            Delivery::Reply,
        );
        if is_host {
            self.send(conn, &SignalMessage::YouAreHost, Delivery::Push);
        }

        let joined = SignalMessage::ClientJoined {
            client_id: client,
            display_name: name,
        };
        for other in others {
            self.send(other, &joined, Delivery::Push);
        }
    }

    fn on_mute(&mut self, conn: ConnectionId, client: ClientId, muted: bool) {
        let Some(room) = self.room_of_mut(conn) else {
            return;
        };
        let Some(member) = room.members.get_mut(&client) else {
            return;
        };
        member.muted = muted;
        let room_code = room.code.clone();

        self.event(ServerEvent::MuteChanged {
            room: room_code,
            client,
            muted,
            by_host: false,
        });
        self.broadcast(
            conn,
            &SignalMessage::PeerMuted {
                client_id: client,
                muted,
                by_server: false,
            },
        );
    }

    fn on_kick(&mut self, now: Instant, conn: ConnectionId, client: ClientId, target: ClientId) {
        let target_conn = match self.check_moderation(conn, client, target, "kick") {
            Ok(target_conn) => target_conn,
            Err(reason) => return self.reject_command(conn, client, reason),
        };
        if target == client {
            return self.reject_command(
                conn,
                client,
                "you cannot kick yourself: use Leave".to_string(),
            );
        }

        let room_code = self
            .room_of(conn)
            .map(|room| room.code.clone())
            .unwrap_or_default();
        self.ban_kicked(now, &room_code, conn, target_conn);
        self.event(ServerEvent::Kicked {
            room: room_code,
            host: client,
            target,
        });

        // The kicked client hears why before its connection closes.
        self.send(
            target_conn,
            &SignalMessage::Kicked {
                reason: "kicked by the host".to_string(),
            },
            Delivery::Push,
        );
        self.leave_room(target_conn, LeaveReason::Kicked);
        self.close(target_conn, close_code::KICKED, "kicked by the host");
    }

    /// Checks a join to `code` against the room's ban list and password.
    /// Runs before the room-full check, so a client that may not join
    /// learns nothing about how many are in the room.
    fn check_access(
        &self,
        now: Instant,
        conn: ConnectionId,
        code: &str,
        password: Option<&str>,
    ) -> Result<(), String> {
        let Some(connection) = self.connections.get(&conn) else {
            return Ok(());
        };
        if let Some(left) = self.bans.remaining(code, connection.peer.ip(), now) {
            // Round up, so "try again in 0 s" is never shown.
            let seconds = left.as_micros().div_ceil(1_000_000);
            return Err(format!(
                "you were removed from room {code:?} by its host; try again in {seconds} s"
            ));
        }

        if let Some(password) = password {
            if password.is_empty() {
                return Err("the room password is empty: leave the password out \
                            to join a room that has none"
                    .to_string());
            }
            if password.len() > MAX_PASSWORD_LEN {
                return Err(format!(
                    "the room password is {} bytes long, over the limit of {MAX_PASSWORD_LEN} bytes",
                    password.len()
                ));
            }
        }

        let Some(room) = self.rooms.get(code) else {
            return Ok(());
        };
        match (&room.password, password) {
            (None, None) => Ok(()),
            (Some(expected), Some(presented)) if password_matches(expected, presented) => Ok(()),
            (Some(_), Some(_)) => Err(format!("wrong password for room {code:?}")),
            (Some(_), None) if connection.dialect == Dialect::Legacy => Err(format!(
                "room {code:?} needs a password, which this client cannot send: \
                 join with a voicemcu client and its --password option"
            )),
            (Some(_), None) => Err(format!(
                "room {code:?} needs a password: join again with the room's password"
            )),
            // A joiner who expects a private room should learn that this one
            // is open to anyone who knows its code.
            (None, Some(_)) => Err(format!(
                "room {code:?} has no password, so anyone who knows its code can join: \
                 join again without a password, or pick another room code"
            )),
        }
    }

    /// Bans the address of `target_conn` from `room` for
    /// [`ServerConfig::kick_ban`], and drops bans that have ended. A target
    /// that shares the host's address (the same household behind one NAT)
    /// is not banned, because the ban would lock the host out too.
    fn ban_kicked(
        &mut self,
        now: Instant,
        room: &str,
        host_conn: ConnectionId,
        target_conn: ConnectionId,
    ) {
        let ban = self.config.kick_ban;
        if ban.is_zero() {
            return;
        }
        let Some(peer) = self.connections.get(&target_conn).map(|c| c.peer) else {
            return;
        };
        let host_peer = self.connections.get(&host_conn).map(|c| c.peer);
        if host_peer.is_some_and(|host| same_ban_address(host.ip(), peer.ip())) {
            debug!(room, %peer, "kicked client shares the host's address; not banned");
            return;
        }
        self.bans.prune(now);
        self.bans.ban(room, peer.ip(), now + ban);
        debug!(room, %peer, seconds = ban.as_secs(), "address banned from room after a kick");
    }

    fn on_server_mute(
        &mut self,
        conn: ConnectionId,
        client: ClientId,
        target: ClientId,
        muted: bool,
    ) {
        let action = if muted { "force-mute" } else { "force-unmute" };
        if let Err(reason) = self.check_moderation(conn, client, target, action) {
            return self.reject_command(conn, client, reason);
        }
        let Some(room) = self.room_of_mut(conn) else {
            return;
        };
        let Some(member) = room.members.get_mut(&target) else {
            return;
        };
        member.server_muted = muted;
        let room_code = room.code.clone();

        self.event(ServerEvent::MuteChanged {
            room: room_code,
            client: target,
            muted,
            by_host: true,
        });
        self.broadcast(
            conn,
            &SignalMessage::PeerMuted {
                client_id: target,
                muted,
                by_server: true,
            },
        );
    }

    fn on_block(&mut self, conn: ConnectionId, client: ClientId, target: ClientId, blocked: bool) {
        let verb = if blocked { "block" } else { "unblock" };
        let Some(room) = self.room_of_mut(conn) else {
            return;
        };
        if target == client {
            return self.reject_command(conn, client, format!("you cannot {verb} yourself"));
        }
        if !room.members.contains_key(&target) {
            let reason = format!("cannot {verb} id {target}: no such participant in this room");
            return self.reject_command(conn, client, reason);
        }
        let Some(member) = room.members.get_mut(&client) else {
            return;
        };
        if blocked {
            member.blocked.insert(target);
        } else {
            member.blocked.remove(&target);
        }
        let room_code = room.code.clone();

        self.event(ServerEvent::BlockChanged {
            room: room_code,
            client,
            target,
            blocked,
        });
    }

    /// Checks that `client` is its room's host and that `target` is in the
    /// same room, and returns the target's connection.
    fn check_moderation(
        &self,
        conn: ConnectionId,
        client: ClientId,
        target: ClientId,
        action: &str,
    ) -> Result<ConnectionId, String> {
        let Some(room) = self.room_of(conn) else {
            return Err(format!("cannot {action}: you are not in a room"));
        };
        if !room.is_host(client) {
            return Err(format!("only the host can {action}"));
        }
        match room.members.get(&target) {
            Some(member) => Ok(member.conn),
            None => Err(format!(
                "cannot {action} id {target}: no such participant in this room"
            )),
        }
    }

    fn on_stream_finished(&mut self, conn: ConnectionId) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        if matches!(connection.phase, Phase::Closing) {
            return;
        }
        let buffered = connection.frames.buffered_len();
        if buffered > 0 {
            let error = format!(
                "signalling stream ended in the middle of a frame ({buffered} bytes of it received)"
            );
            return self.protocol_error(conn, error);
        }

        debug!(%conn, "client finished its signalling stream");
        self.leave_room(conn, LeaveReason::Left);
        self.close(conn, close_code::NORMAL, "signalling stream finished");
    }

    fn on_datagram(&mut self, now: Instant, conn: ConnectionId, bytes: &[u8]) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let Phase::Joined { client, room } = &connection.phase else {
            trace!(%conn, "datagram before Join dropped");
            return;
        };
        if !connection.datagrams.try_take(now) {
            connection.rate_limited_datagrams += 1;
            trace!(%conn, "datagram over the rate limit dropped");
            return;
        }

        let (header, payload) = match decode_datagram(bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                connection.malformed_datagrams += 1;
                trace!(%conn, %error, "malformed datagram dropped");
                return;
            }
        };

        connection
            .arrival
            .record(now, header.sequence, header.timestamp);

        let client = *client;
        if let Some(room) = self.rooms.get_mut(room) {
            trace!(
                client,
                sequence = header.sequence,
                len = payload.len(),
                "audio datagram"
            );
            room.mixer.push_packet(client, header.sequence, payload);
        }
    }

    fn on_connection_closed(&mut self, conn: ConnectionId) {
        if self.connections.contains_key(&conn) {
            self.leave_room(conn, LeaveReason::Disconnected);
            self.connections.remove(&conn);
            self.stop_sweeping_if_idle();
        }
    }

    /// Cancels the sweep when no connection is waiting to join or in the
    /// middle of a frame, so an idle server asks for no wake-ups.
    fn stop_sweeping_if_idle(&mut self) {
        let waiting = self.connections.values().any(|connection| {
            matches!(connection.phase, Phase::AwaitingJoin { .. })
                || connection.partial_frame_since.is_some()
        });
        if !waiting {
            self.next_cleanup = None;
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        if let Some(mut tick) = self.next_tick {
            let mut ran = 0;
            while tick <= now {
                if ran == MAX_CATCH_UP_TICKS {
                    debug!(
                        late_ms = (now - tick).as_millis() as u64,
                        "mixer clock fell behind; skipping ahead"
                    );
                    tick = now + FRAME_DURATION;
                    break;
                }
                self.mix_tick(tick);
                tick += FRAME_DURATION;
                ran += 1;
            }
            self.next_tick = if self.rooms.is_empty() {
                None
            } else {
                Some(tick)
            };
        }

        if let Some(cleanup) = self.next_cleanup {
            if cleanup <= now {
                self.sweep(now);
            }
        }
    }

    /// Runs one 20 ms mixer tick in every room and queues the datagrams
    /// and any talking-indicator updates.
    fn mix_tick(&mut self, at: Instant) {
        self.ticks = self.ticks.wrapping_add(1);
        let timestamp = (self.ticks.wrapping_mul(FRAME_SAMPLES as u64)) as u32;
        let mut talking_updates = Vec::new();

        for room in self.rooms.values_mut() {
            self.mixed.clear();
            let policy = RoomPolicy {
                members: &room.members,
            };
            room.mixer.set_capture(self.recording.is_some());
            room.mixer.mix(&policy, &mut self.mixed);
            let connections = &self.connections;
            room.talking.update(
                at,
                room.mixer.voiced(),
                &room.members,
                |conn| {
                    connections
                        .get(&conn)
                        .is_some_and(|connection| connection.dialect == Dialect::Native)
                },
                &mut talking_updates,
            );
            if let Some(recording) = &mut self.recording {
                recording.on_tick(&room.code, room.mixer.take_captured());
            }

            for frame in self.mixed.drain(..) {
                let Some(member) = room.members.get(&frame.listener) else {
                    continue;
                };
                let Some(connection) = self.connections.get_mut(&member.conn) else {
                    continue;
                };
                if let Some(log) = &mut self.mix_log {
                    log.push(MixRecord {
                        at,
                        room: room.code.clone(),
                        listener: frame.listener,
                        speakers: frame.speakers.clone(),
                    });
                }
                let header = AudioHeader {
                    client_id: frame.listener,
                    sequence: connection.next_sequence,
                    timestamp,
                };
                connection.next_sequence = connection.next_sequence.wrapping_add(1);
                self.outputs.push_back(ServerOutput::SendDatagram {
                    conn: member.conn,
                    datagram: encode_datagram(header, &frame.packet),
                });
            }
        }

        for (conn, message) in talking_updates {
            self.send(conn, &message, Delivery::Push);
        }
    }

    /// Closes connections that never joined or whose partial frame stalled,
    /// drops bans that have ended, and schedules the next sweep.
    fn sweep(&mut self, now: Instant) {
        self.bans.prune(now);

        let stale: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, connection)| match connection.phase {
                Phase::AwaitingJoin { since } => now - since >= JOIN_TIMEOUT,
                _ => false,
            })
            .map(|(conn, _)| *conn)
            .collect();

        let frame_timeout = self.config.frame_timeout;
        let stalled: Vec<(ConnectionId, usize)> = self
            .connections
            .iter()
            .filter(|(_, connection)| !matches!(connection.phase, Phase::Closing))
            .filter(|(_, connection)| {
                connection
                    .partial_frame_since
                    .is_some_and(|since| now - since >= frame_timeout)
            })
            .map(|(conn, connection)| (*conn, connection.frames.buffered_len()))
            .collect();
        for (conn, buffered) in stalled {
            let error = format!(
                "signalling frame incomplete after {:.1} s ({buffered} bytes of it received): \
                 a frame must arrive whole within that time",
                frame_timeout.as_secs_f64()
            );
            self.protocol_error(conn, error);
        }

        for conn in stale {
            let closing = self
                .connections
                .get(&conn)
                .is_none_or(|connection| matches!(connection.phase, Phase::Closing));
            if closing {
                continue;
            }
            let message = format!("no Join received within {} s", JOIN_TIMEOUT.as_secs());
            self.event(ServerEvent::ProtocolError {
                conn,
                error: message.clone(),
            });
            self.send(
                conn,
                &SignalMessage::Error {
                    message: message.clone(),
                },
                Delivery::Reply,
            );
            self.close(conn, close_code::JOIN_TIMEOUT, &message);
        }

        let mut next = now + JOIN_TIMEOUT.min(self.config.cleanup_interval);
        for connection in self.connections.values() {
            if let Some(since) = connection.partial_frame_since {
                next = next.min(since + frame_timeout);
            }
        }
        self.next_cleanup = Some(next);
        self.stop_sweeping_if_idle();
    }

    /// Removes the connection's client from its room: tells the others,
    /// moves the host role if needed, and closes the room when it empties.
    fn leave_room(&mut self, conn: ConnectionId, reason: LeaveReason) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let Phase::Joined { client, room } =
            std::mem::replace(&mut connection.phase, Phase::Closing)
        else {
            return;
        };
        let Some(room_state) = self.rooms.get_mut(&room) else {
            return;
        };

        let (removed, new_host) = room_state.remove(client);
        let name = removed.map(|member| member.name).unwrap_or_default();
        let remaining: Vec<ConnectionId> = room_state
            .members
            .values()
            .map(|member| member.conn)
            .collect();
        let roster = room_state.roster();
        let empty = room_state.members.is_empty();

        self.event(ServerEvent::ClientLeft {
            client,
            room: room.clone(),
            name,
            reason,
        });

        if reason != LeaveReason::Shutdown {
            let left = SignalMessage::ClientLeft { client_id: client };
            for other in &remaining {
                self.send(*other, &left, Delivery::Push);
            }
        }

        // During a shutdown everyone leaves; announcing a host for each
        // step would only fill the log.
        if let Some(host) = new_host.filter(|_| reason != LeaveReason::Shutdown) {
            self.event(ServerEvent::HostChanged {
                room: room.clone(),
                client: host,
            });
            {
                if let Some(host_conn) = self
                    .rooms
                    .get(&room)
                    .and_then(|r| r.members.get(&host))
                    .map(|m| m.conn)
                {
                    self.send(host_conn, &SignalMessage::YouAreHost, Delivery::Push);
                }
                let info = SignalMessage::RoomInfo { clients: roster };
                for other in &remaining {
                    self.send(*other, &info, Delivery::Push);
                }
            }
        }

        if empty {
            self.rooms.remove(&room);
            self.event(ServerEvent::RoomClosed { room });
            if self.rooms.is_empty() {
                self.next_tick = None;
            }
        }
    }

    fn reject_join(&mut self, conn: ConnectionId, reason: String) {
        let peer = self
            .connections
            .get(&conn)
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.peer);
        self.event(ServerEvent::JoinRejected {
            conn,
            peer,
            reason: reason.clone(),
        });
        self.send(
            conn,
            &SignalMessage::Error {
                message: reason.clone(),
            },
            Delivery::Reply,
        );
        self.close(conn, close_code::JOIN_REJECTED, &reason);
    }

    fn reject_command(&mut self, conn: ConnectionId, client: ClientId, reason: String) {
        self.event(ServerEvent::CommandRejected {
            conn,
            client: Some(client),
            reason: reason.clone(),
        });
        self.send(
            conn,
            &SignalMessage::Error { message: reason },
            Delivery::Reply,
        );
    }

    /// Tells the client what it did wrong, removes it from its room and
    /// closes the connection.
    fn protocol_error(&mut self, conn: ConnectionId, error: String) {
        self.event(ServerEvent::ProtocolError {
            conn,
            error: error.clone(),
        });
        self.send(
            conn,
            &SignalMessage::Error {
                message: error.clone(),
            },
            Delivery::Reply,
        );
        self.leave_room(conn, LeaveReason::ProtocolError);
        self.close(conn, close_code::PROTOCOL_ERROR, &error);
    }

    /// Sends `message` to everyone in the room of `conn`, including `conn`.
    fn broadcast(&mut self, conn: ConnectionId, message: &SignalMessage) {
        let Some(room) = self.room_of(conn) else {
            return;
        };
        let members: Vec<ConnectionId> = room.members.values().map(|member| member.conn).collect();
        for member in members {
            self.send(member, message, Delivery::Push);
        }
    }

    fn send(&mut self, conn: ConnectionId, message: &SignalMessage, delivery: Delivery) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        if matches!(connection.phase, Phase::Closing) {
            return;
        }

        let stream = match (connection.dialect, delivery) {
            (Dialect::Legacy, Delivery::Push) => OutStream::Push,
            _ => OutStream::Control,
        };
        match encode_message(message, connection.dialect) {
            Ok(body) => self.outputs.push_back(ServerOutput::SendFrame {
                conn,
                stream,
                frame: encode_frame(&body),
            }),
            Err(error) => warn!(%conn, %error, "could not encode a message; not sent"),
        }
    }

    fn close(&mut self, conn: ConnectionId, code: u32, message: &str) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.phase = Phase::Closing;
        connection.partial_frame_since = None;
        self.outputs.push_back(ServerOutput::Close {
            conn,
            reason: CloseReason {
                code,
                message: message.to_string(),
            },
        });
    }

    fn event(&mut self, event: ServerEvent) {
        if let Some(recording) = &mut self.recording {
            recording.on_event(&event);
        }
        self.outputs.push_back(ServerOutput::Event(event));
    }

    fn room_of(&self, conn: ConnectionId) -> Option<&Room> {
        match &self.connections.get(&conn)?.phase {
            Phase::Joined { room, .. } => self.rooms.get(room),
            _ => None,
        }
    }

    fn room_of_mut(&mut self, conn: ConnectionId) -> Option<&mut Room> {
        match &self.connections.get(&conn)?.phase {
            Phase::Joined { room, .. } => self.rooms.get_mut(room),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
