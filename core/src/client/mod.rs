//! The client state machine: joins a room, keeps the roster, turns typed
//! slash commands into signalling, encodes captured audio and plays out the
//! server's mix through a jitter buffer.
//!
//! STUB: signatures are fixed; bodies to be written.

use crate::audio::PcmFrame;
use crate::codec::{CodecError, OpusSettings};
use crate::ids::ClientId;
use crate::jitter::JitterConfig;
use crate::time::Instant;
use crate::wire::Dialect;

/// What a client needs to join.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    pub room_code: String,
    pub display_name: String,
    pub jitter: JitterConfig,
    pub opus: OpusSettings,
}

/// What happened to the client, handed in by the adapter.
#[derive(Debug)]
pub enum ClientInput<'a> {
    /// The handshake finished; the client sends `Join` on the bidirectional
    /// stream.
    Connected { dialect: Dialect },
    /// Bytes read from the bidirectional stream, in any chunking.
    StreamData(&'a [u8]),
    /// The whole content of one server-opened unidirectional stream (legacy
    /// pushes: one frame each).
    PushStream(&'a [u8]),
    /// One audio datagram from the server.
    Datagram(&'a [u8]),
    /// A line the user typed.
    Command(&'a str),
    /// The connection ended.
    ConnectionLost { reason: String },
    /// `poll_timeout` passed.
    Timeout,
}

/// What the client wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutput {
    /// Write this framed message on the bidirectional stream.
    SendFrame(Vec<u8>),
    /// Send this audio datagram.
    SendDatagram(Vec<u8>),
    /// Close the connection; the session is over.
    Close { reason: String },
    /// Something the user or the log should see.
    Event(ClientEvent),
}

/// Something the user or the log should see.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {}

pub struct Client {}

impl Client {
    pub fn new(_config: ClientConfig, _now: Instant) -> Result<Self, CodecError> {
        todo!()
    }

    pub fn handle_input(&mut self, _now: Instant, _input: ClientInput<'_>) {
        todo!()
    }

    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        todo!()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Encodes one captured frame and queues it as a datagram, when joined
    /// and not muted.
    pub fn send_audio(&mut self, _now: Instant, _pcm: &PcmFrame) {
        todo!()
    }

    /// Fills `out` with the next 20 ms of what the server sent, concealing
    /// losses and playing silence when there is nothing.
    pub fn playout(&mut self, _now: Instant, _out: &mut PcmFrame) {
        todo!()
    }

    pub fn client_id(&self) -> Option<ClientId> {
        todo!()
    }
}
