//! The client state machine: joins a room, keeps the roster, turns typed
//! slash commands into signalling, encodes captured audio and plays out the
//! server's mix through a jitter buffer.
//!
//! The adapter drives it with one loop:
//!
//! 1. hand in one [`ClientInput`] with [`Client::handle_input`] (or call
//!    [`Client::send_audio`] or [`Client::playout`] from the audio clock);
//! 2. drain [`Client::poll_output`] until it returns `None`, writing frames,
//!    sending datagrams, showing events, and closing the connection on
//!    [`ClientOutput::Close`];
//! 3. when [`Client::poll_timeout`] passes, hand in [`ClientInput::Timeout`].
//!
//! A session moves through [`ClientState`] once: `Connecting`, `Joining`
//! after the handshake, `Joined` after the server's `Joined`, and `Closed`
//! for good after a kick, a rejection, a timeout, `/leave`, a fatal protocol
//! error or a lost connection. Once closed, the client ignores network input
//! and rejects commands.

mod command;
mod event;
mod execute;
mod media;
mod roster;
mod signalling;

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::audio::PcmFrame;
use crate::codec::{CodecError, OpusSettings};
use crate::ids::ClientId;
use crate::jitter::JitterConfig;
use crate::time::Instant;
use crate::wire::{self, Dialect, FrameDecoder, SignalMessage, MAX_FRAME_LEN};

pub use command::{parse_command, Command, CommandError, MuteChange, HELP_LINES};
pub use event::{shutdown_detail, ClientEvent};
pub use execute::MAX_QUEUED_COMMANDS;
pub use media::ClientStats;
pub use roster::{PeerLookupError, Roster, RosterEntry, MAX_EARLY_MUTES, MAX_TOMBSTONES};

use media::{AudioPath, PlayoutFailure};

/// How long the client waits for `Joined` after sending `Join` before it
/// gives up and closes the connection.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client needs to join.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    pub room_code: String,
    pub display_name: String,
    pub jitter: JitterConfig,
    pub opus: OpusSettings,
    /// Room password, sent with `JoinWithPassword` in the native dialect.
    /// The first joiner's password becomes the room's. A legacy server
    /// cannot take one, so the client closes instead of joining without it.
    pub password: Option<String>,
    /// Emit [`ClientEvent::TalkingChanged`] when the peers the server hears
    /// talking change. Off by default, because it can fire several times a
    /// second. The roster keeps its talking flags either way.
    pub report_talking: bool,
}

impl ClientConfig {
    /// A configuration with default jitter buffer and Opus settings and no
    /// room password.
    pub fn new(room_code: impl Into<String>, display_name: impl Into<String>) -> Self {
        ClientConfig {
            room_code: room_code.into(),
            display_name: display_name.into(),
            jitter: JitterConfig::default(),
            opus: OpusSettings::default(),
            password: None,
            report_talking: false,
        }
    }
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

/// The stage a session is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Waiting for the handshake.
    Connecting,
    /// `Join` sent, waiting for `Joined`.
    Joining,
    /// In the room.
    Joined,
    /// The session is over.
    Closed,
}

pub struct Client {
    config: ClientConfig,
    state: ClientState,
    dialect: Option<Dialect>,
    client_id: Option<ClientId>,
    roster: Roster,
    /// Whether a `RoomInfo` arrived yet. The first one lists everyone
    /// already present, so it is not reported as a series of arrivals.
    seen_room_info: bool,
    /// Own mute, set only by `/mute`. The server's echoes are not applied,
    /// because legacy pushes can arrive swapped and this client is the
    /// source of the flag anyway.
    muted: bool,
    /// Force-mute by the host, as the server last reported it.
    server_muted: bool,
    is_host: bool,
    stream: FrameDecoder,
    join_deadline: Option<Instant>,
    outputs: VecDeque<ClientOutput>,
    audio: AudioPath,
    warned_encode_error: bool,
    /// Commands typed before the join completed, run once the first roster
    /// arrives (a script may pipe them in before the server has answered).
    queued_commands: Vec<String>,
}

impl Client {
    /// A client that has not connected yet. Fails when the Opus settings
    /// are invalid or libopus cannot build an encoder or decoder.
    pub fn new(config: ClientConfig, _now: Instant) -> Result<Self, CodecError> {
        let audio = AudioPath::new(config.opus, config.jitter)?;
        Ok(Client {
            config,
            state: ClientState::Connecting,
            dialect: None,
            client_id: None,
            roster: Roster::default(),
            seen_room_info: false,
            muted: false,
            server_muted: false,
            is_host: false,
            stream: FrameDecoder::new(MAX_FRAME_LEN),
            join_deadline: None,
            outputs: VecDeque::new(),
            audio,
            warned_encode_error: false,
            queued_commands: Vec::new(),
        })
    }

    pub fn handle_input(&mut self, now: Instant, input: ClientInput<'_>) {
        match input {
            ClientInput::Connected { dialect } => self.handle_connected(now, dialect),
            ClientInput::StreamData(bytes) => self.handle_stream_data(bytes),
            ClientInput::PushStream(bytes) => self.handle_push_stream(bytes),
            ClientInput::Datagram(bytes) => self.handle_datagram(bytes),
            ClientInput::Command(line) => self.handle_command(line),
            ClientInput::ConnectionLost { reason } => self.handle_connection_lost(reason),
            ClientInput::Timeout => self.handle_timeout(now),
        }
        self.run_queued_commands();
    }

    /// Takes the next queued output, oldest first.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// When the client next wants a [`ClientInput::Timeout`]: the join
    /// deadline while joining, otherwise never.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.join_deadline
    }

    /// Encodes one captured frame and queues it as a datagram, when joined
    /// and not muted.
    pub fn send_audio(&mut self, _now: Instant, pcm: &PcmFrame) {
        let Some(client_id) = self.client_id else {
            return;
        };
        if self.state != ClientState::Joined || self.muted || self.server_muted {
            return;
        }

        match self.audio.encode(client_id, pcm) {
            Ok(datagram) => self.outputs.push_back(ClientOutput::SendDatagram(datagram)),
            Err(error) => {
                tracing::debug!(%error, "frame not sent");
                if !self.warned_encode_error {
                    self.warned_encode_error = true;
                    self.warn(format!("{error}; frames that fail to encode are not sent"));
                }
            }
        }
    }

    /// Starts the outgoing audio stream over at `sequence`, with the
    /// timestamp back at 0, as a sender does that rebuilds its audio
    /// pipeline mid-call. This client never does it on its own; the
    /// simulation calls it to check that the server resynchronises on the
    /// new sequence.
    pub fn restart_sequence(&mut self, sequence: u32) {
        tracing::debug!(sequence, "outgoing audio sequence restarted");
        self.audio.restart_sequence(sequence);
    }

    /// Fills `out` with the next 20 ms of what the server sent, concealing
    /// losses and playing silence when there is nothing. Call once per
    /// 20 ms tick: each call takes one frame from the jitter buffer.
    pub fn playout(&mut self, _now: Instant, out: &mut PcmFrame) {
        if self.state != ClientState::Joined {
            *out = crate::audio::SILENCE;
            return;
        }

        match self.audio.playout(out) {
            Ok(()) => {}
            Err(PlayoutFailure::Decode(error)) => {
                tracing::trace!(%error, "packet concealed after a decode error");
            }
            Err(PlayoutFailure::Conceal(error)) => {
                tracing::trace!(%error, "silence played after a concealment error");
            }
        }
    }

    /// The id the server gave this client, once joined.
    pub fn client_id(&self) -> Option<ClientId> {
        self.client_id
    }

    pub fn room_code(&self) -> &str {
        &self.config.room_code
    }

    /// The display name as the server reported it in the roster, or the
    /// configured one until the roster lists this client.
    pub fn display_name(&self) -> &str {
        match self.roster.self_entry() {
            Some(entry) => &entry.display_name,
            None => &self.config.display_name,
        }
    }

    /// The dialect the connection speaks, once connected.
    pub fn dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn is_host(&self) -> bool {
        self.is_host
    }

    /// Whether this client muted itself.
    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Whether the host force-muted this client.
    pub fn is_server_muted(&self) -> bool {
        self.server_muted
    }

    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Ids this client blocked. Only this client and the server know.
    pub fn blocked(&self) -> &BTreeSet<ClientId> {
        self.roster.blocked()
    }

    /// Audio counters, including the jitter buffer's.
    pub fn stats(&self) -> ClientStats {
        self.audio.stats()
    }

    fn handle_connected(&mut self, now: Instant, dialect: Dialect) {
        if self.state != ClientState::Connecting {
            self.warn(format!(
                "ignored a second Connected input while {:?}",
                self.state
            ));
            return;
        }

        tracing::debug!(%dialect, room = %self.config.room_code, "connected, joining");
        self.dialect = Some(dialect);
        self.state = ClientState::Joining;
        self.join_deadline = Some(now + JOIN_TIMEOUT);

        let room_code = self.config.room_code.clone();
        let display_name = self.config.display_name.clone();
        let join = match (self.config.password.clone(), dialect) {
            (None, _) => SignalMessage::Join {
                room_code,
                display_name,
            },
            (Some(password), Dialect::Native) => SignalMessage::JoinWithPassword {
                room_code,
                display_name,
                password,
            },
            (Some(_), Dialect::Legacy) => {
                let reason = "a room password was given, but the server speaks only the legacy \
                              dialect (voicemcu 0.1), which has no room passwords; \
                              join without a password or use a voicemcu server";
                self.emit(ClientEvent::JoinRejected {
                    message: reason.to_string(),
                });
                self.close(reason.to_string());
                return;
            }
        };
        if !self.send_message(&join) {
            self.close("could not send the join request".to_string());
        }
    }

    fn handle_datagram(&mut self, bytes: &[u8]) {
        if self.state == ClientState::Joined {
            self.audio.receive(bytes);
        } else {
            self.audio.ignore_datagram();
        }
    }

    fn handle_connection_lost(&mut self, reason: String) {
        if self.state == ClientState::Closed {
            return;
        }
        tracing::debug!(%reason, "connection lost");
        self.state = ClientState::Closed;
        self.queued_commands.clear();
        self.join_deadline = None;
        self.emit(ClientEvent::ConnectionLost { reason });
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.join_deadline else {
            return;
        };
        if self.state != ClientState::Joining || now < deadline {
            return;
        }
        tracing::debug!("join timed out");
        self.emit(ClientEvent::JoinTimedOut {
            after: JOIN_TIMEOUT,
        });
        self.close(format!("join timed out after {} s", JOIN_TIMEOUT.as_secs()));
    }

    /// Frames and queues `message` for the bidirectional stream. Returns
    /// `false`, after a warning, when it cannot be encoded for the dialect
    /// or is too long for a frame.
    fn send_message(&mut self, message: &SignalMessage) -> bool {
        // Connected sets the dialect before anything is sent. Legacy is the
        // safe fallback because every client-to-server message is legacy.
        let dialect = self.dialect.unwrap_or(Dialect::Legacy);
        let body = match wire::encode_message(message, dialect) {
            Ok(body) => body,
            Err(error) => {
                self.warn(format!("could not encode {}: {error}", message.name()));
                return false;
            }
        };
        if body.len() > MAX_FRAME_LEN {
            self.warn(format!(
                "{} is {} bytes long, over the frame limit of {MAX_FRAME_LEN} bytes; \
                 shorten the room code or display name",
                message.name(),
                body.len()
            ));
            return false;
        }
        tracing::debug!(message = message.name(), "sending");
        self.outputs
            .push_back(ClientOutput::SendFrame(wire::encode_frame(&body)));
        true
    }

    /// Ends the session and queues a [`ClientOutput::Close`] for the adapter.
    fn close(&mut self, reason: String) {
        tracing::debug!(%reason, "closing");
        self.state = ClientState::Closed;
        self.queued_commands.clear();
        self.join_deadline = None;
        self.outputs.push_back(ClientOutput::Close { reason });
    }

    fn emit(&mut self, event: ClientEvent) {
        self.outputs.push_back(ClientOutput::Event(event));
    }

    fn warn(&mut self, text: String) {
        self.emit(ClientEvent::Warning { text });
    }

    fn notice(&mut self, text: String) {
        self.emit(ClientEvent::Notice { text });
    }

    /// Copies the local client's flags into its roster entry.
    fn sync_self(&mut self) {
        self.roster
            .sync_self(self.muted, self.server_muted, self.is_host);
    }
}
