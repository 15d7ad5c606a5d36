//! The server state machine: connections, rooms, moderation and the mixer
//! clock.
//!
//! The adapter hands in what happened with [`Server::handle_input`], drains
//! [`Server::poll_output`] until it returns `None`, and calls again with
//! [`ServerInput::Timeout`] once [`Server::poll_timeout`] has passed.
//!
//! STUB: signatures are fixed; bodies being written.

use std::net::SocketAddr;
use std::time::Duration;

use crate::ids::{ClientId, ConnectionId};
use crate::mixer::MixerConfig;
use crate::time::Instant;
use crate::wire::Dialect;

/// Server settings. The defaults match voicemcu 0.1 where it has one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerConfig {
    /// Participants per room at most.
    pub max_room_size: usize,
    /// Rooms at most, across the server.
    pub max_rooms: usize,
    /// Display name length at most, in characters.
    pub max_name_len: usize,
    /// Room code length at most, in characters.
    pub max_room_code_len: usize,
    /// How often empty rooms and idle state are swept.
    pub cleanup_interval: Duration,
    pub mixer: MixerConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_room_size: 16,
            max_rooms: 1024,
            max_name_len: 64,
            max_room_code_len: 128,
            cleanup_interval: Duration::from_secs(30),
            mixer: MixerConfig::default(),
        }
    }
}

/// What happened, handed in by the adapter.
#[derive(Debug)]
pub enum ServerInput<'a> {
    /// A handshake finished and the client opened its bidirectional stream.
    ConnectionOpened { conn: ConnectionId, peer: SocketAddr, dialect: Dialect },
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
    pub code: u32,
    pub message: String,
}

/// What the server wants done, drained by the adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerOutput {
    /// Write this length-prefixed frame.
    SendFrame { conn: ConnectionId, stream: OutStream, frame: Vec<u8> },
    /// Send this datagram; drop it if the connection cannot take it.
    SendDatagram { conn: ConnectionId, datagram: Vec<u8> },
    /// Close the connection once every frame queued before this output for
    /// it has been delivered, or after a short grace period.
    Close { conn: ConnectionId, reason: CloseReason },
    /// For logs and the status view.
    Event(ServerEvent),
}

/// Something worth logging.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {}

pub struct Server {}

impl Server {
    /// A server whose client ids start from an offset drawn from `seed`.
    pub fn new(_config: ServerConfig, _seed: u64) -> Self {
        todo!()
    }

    pub fn handle_input(&mut self, _now: Instant, _input: ServerInput<'_>) {
        todo!()
    }

    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        todo!()
    }

    /// When the server next wants a [`ServerInput::Timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Tells every client the server is going away and closes every
    /// connection.
    pub fn shutdown(&mut self, _now: Instant, _reason: &str) {
        todo!()
    }

    pub fn client_of(&self, _conn: ConnectionId) -> Option<ClientId> {
        todo!()
    }
}
