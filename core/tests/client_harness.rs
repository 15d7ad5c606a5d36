//! Shared helpers for the client tests: a client driven by hand-built server
//! frames, with its outputs decoded back into messages and event lines.
//!
//! The other `client_*` test files include this one with `#[path]`. Cargo
//! also builds it alone as a test crate with no tests.

#![allow(dead_code)]

use voicemcu_core::client::{Client, ClientConfig, ClientEvent, ClientInput, ClientOutput};
use voicemcu_core::ids::ClientId;
use voicemcu_core::time::Instant;
use voicemcu_core::wire::{
    decode_message, encode_frame, encode_message, ClientInfo, Dialect, FrameDecoder, SignalMessage,
};

pub const ROOM: &str = "abc";
pub const NAME: &str = "alice";

/// Frames `message` as a server of `dialect` would.
pub fn frame(message: &SignalMessage, dialect: Dialect) -> Vec<u8> {
    encode_frame(&encode_message(message, dialect).expect("test messages encode"))
}

/// A roster entry with no flags set.
pub fn info(client_id: ClientId, name: &str) -> ClientInfo {
    ClientInfo {
        client_id,
        display_name: name.to_string(),
        muted: false,
        server_muted: false,
        is_host: false,
    }
}

/// A roster entry for the host.
pub fn host(client_id: ClientId, name: &str) -> ClientInfo {
    ClientInfo {
        is_host: true,
        ..info(client_id, name)
    }
}

pub fn room_info(clients: Vec<ClientInfo>) -> SignalMessage {
    SignalMessage::RoomInfo { clients }
}

pub fn joined_msg(client_id: ClientId, name: &str) -> SignalMessage {
    SignalMessage::ClientJoined {
        client_id,
        display_name: name.to_string(),
    }
}

pub fn left_msg(client_id: ClientId) -> SignalMessage {
    SignalMessage::ClientLeft { client_id }
}

pub fn muted_msg(client_id: ClientId, muted: bool, by_server: bool) -> SignalMessage {
    SignalMessage::PeerMuted {
        client_id,
        muted,
        by_server,
    }
}

/// A client plus its virtual clock and everything it output so far.
pub struct Session {
    pub client: Client,
    pub now: Instant,
    pub dialect: Dialect,
    /// Every output rendered as one line, for transcripts.
    pub transcript: Vec<String>,
}

impl Session {
    /// A client that has completed the handshake and sent `Join`.
    pub fn connect(dialect: Dialect) -> Self {
        let config = ClientConfig::new(ROOM, NAME);
        let client = Client::new(config, Instant::ZERO).expect("client builds");
        let mut session = Session {
            client,
            now: Instant::ZERO,
            dialect,
            transcript: Vec::new(),
        };
        session.input(ClientInput::Connected { dialect });
        session
    }

    /// A client joined as `own_id` into a room that contains `others` as well.
    /// The first entry of `others` is the host, or this client when
    /// `others` is empty.
    pub fn joined(dialect: Dialect, own_id: ClientId, others: &[(ClientId, &str)]) -> Self {
        let mut session = Session::connect(dialect);
        let mut clients = vec![info(own_id, NAME)];
        for (id, name) in others {
            clients.push(info(*id, name));
        }
        clients[if others.is_empty() { 0 } else { 1 }].is_host = true;
        session.bidi(&SignalMessage::Joined { client_id: own_id });
        session.bidi(&room_info(clients));
        session
    }

    pub fn input(&mut self, input: ClientInput<'_>) -> Vec<ClientOutput> {
        self.client.handle_input(self.now, input);
        self.drain()
    }

    /// Collects the queued outputs and records them in the transcript.
    pub fn drain(&mut self) -> Vec<ClientOutput> {
        let mut outputs = Vec::new();
        while let Some(output) = self.client.poll_output() {
            self.transcript.push(render(&output, self.dialect));
            outputs.push(output);
        }
        outputs
    }

    /// Delivers `message` on the bidirectional stream.
    pub fn bidi(&mut self, message: &SignalMessage) -> Vec<ClientOutput> {
        let bytes = frame(message, self.dialect);
        self.input(ClientInput::StreamData(&bytes))
    }

    /// Delivers `message` the way the dialect pushes it: on its own
    /// unidirectional stream (legacy) or on the bidirectional stream
    /// (native).
    pub fn push(&mut self, message: &SignalMessage) -> Vec<ClientOutput> {
        let bytes = frame(message, self.dialect);
        match self.dialect {
            Dialect::Legacy => self.input(ClientInput::PushStream(&bytes)),
            Dialect::Native => self.input(ClientInput::StreamData(&bytes)),
        }
    }

    pub fn command(&mut self, line: &str) -> Vec<ClientOutput> {
        self.input(ClientInput::Command(line))
    }

    pub fn roster_ids(&self) -> Vec<ClientId> {
        self.client
            .roster()
            .iter()
            .map(|entry| entry.client_id)
            .collect()
    }
}

/// The events among `outputs`, rendered with `Display`.
pub fn lines(outputs: &[ClientOutput]) -> Vec<String> {
    events(outputs).iter().map(ToString::to_string).collect()
}

pub fn events(outputs: &[ClientOutput]) -> Vec<ClientEvent> {
    outputs
        .iter()
        .filter_map(|output| match output {
            ClientOutput::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// The signalling messages among `outputs`, decoded.
pub fn sent(outputs: &[ClientOutput], dialect: Dialect) -> Vec<SignalMessage> {
    outputs
        .iter()
        .filter_map(|output| match output {
            ClientOutput::SendFrame(bytes) => Some(decode_sent(bytes, dialect)),
            _ => None,
        })
        .collect()
}

/// The close reason among `outputs`, if any.
pub fn close_reason(outputs: &[ClientOutput]) -> Option<String> {
    outputs.iter().find_map(|output| match output {
        ClientOutput::Close { reason } => Some(reason.clone()),
        _ => None,
    })
}

fn decode_sent(bytes: &[u8], dialect: Dialect) -> SignalMessage {
    let mut decoder = FrameDecoder::default();
    decoder.push(bytes);
    let body = decoder
        .next_frame()
        .expect("client frames have a legal length")
        .expect("each SendFrame contains one whole frame");
    assert!(
        !decoder.has_partial_frame(),
        "SendFrame contains more than one frame"
    );
    decode_message(&body, dialect).expect("client frames decode")
}

fn render(output: &ClientOutput, dialect: Dialect) -> String {
    match output {
        ClientOutput::SendFrame(bytes) => format!("send   {:?}", decode_sent(bytes, dialect)),
        ClientOutput::SendDatagram(bytes) => format!("audio  {} bytes", bytes.len()),
        ClientOutput::Close { reason } => format!("close  {reason}"),
        ClientOutput::Event(event) => format!("event  {event}"),
    }
}
