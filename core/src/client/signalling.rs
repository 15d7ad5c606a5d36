//! Signalling from the server: reassembling frames from the bidirectional
//! stream and from legacy push streams, and applying each message to the
//! client's state and roster.
//!
//! Malformed input never ends the session, with one exception: a frame
//! length over the limit on the bidirectional stream, because the framing
//! of everything after it is lost.

use super::roster::{clean_text, AddOutcome, MuteOutcome};
use super::{Client, ClientEvent, ClientState};
use crate::ids::ClientId;
use crate::wire::{self, ClientInfo, Dialect, FrameDecoder, SignalMessage, MAX_FRAME_LEN};

impl Client {
    pub(super) fn handle_stream_data(&mut self, bytes: &[u8]) {
        let Some(dialect) = self.signalling_dialect("the bidirectional stream") else {
            return;
        };
        self.stream.push(bytes);

        while self.state != ClientState::Closed {
            let body = match self.stream.next_frame() {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(error) => {
                    let detail = format!("bidirectional stream: {error}");
                    tracing::warn!(%detail, "closing after an unrecoverable framing error");
                    self.protocol_error(detail.clone());
                    self.close(format!("protocol error on the {detail}"));
                    return;
                }
            };
            match wire::decode_message(&body, dialect) {
                Ok(message) => self.handle_server_message(message),
                Err(error) => {
                    self.protocol_error(format!(
                        "malformed message on the bidirectional stream ignored: {error}"
                    ));
                }
            }
        }
    }

    /// Handles one complete legacy push stream, which must hold exactly one
    /// frame. Anything else is reported and the stream ignored.
    pub(super) fn handle_push_stream(&mut self, bytes: &[u8]) {
        let Some(dialect) = self.signalling_dialect("a push stream") else {
            return;
        };
        if dialect == Dialect::Native {
            self.protocol_error(format!(
                "a native server must not open push streams; ignored one of {} bytes",
                bytes.len()
            ));
            return;
        }

        let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
        decoder.push(bytes);
        let body = match decoder.next_frame() {
            Ok(Some(body)) => body,
            Ok(None) => {
                self.protocol_error(format!(
                    "push stream ignored: it ends inside its frame after {} bytes",
                    bytes.len()
                ));
                return;
            }
            Err(error) => {
                self.protocol_error(format!("push stream ignored: {error}"));
                return;
            }
        };
        if decoder.has_partial_frame() {
            self.protocol_error(format!(
                "push stream ignored: {} bytes follow its one frame",
                decoder.buffered_len()
            ));
            return;
        }

        match wire::decode_message(&body, dialect) {
            Ok(message) => self.handle_server_message(message),
            Err(error) => {
                self.protocol_error(format!(
                    "malformed message on a push stream ignored: {error}"
                ));
            }
        }
    }

    /// Returns the dialect when signalling may be processed now. Before the
    /// handshake there is no stream, so data then is an adapter bug and is
    /// reported. After the session closed, data is dropped quietly.
    fn signalling_dialect(&mut self, source: &str) -> Option<Dialect> {
        if self.state == ClientState::Closed {
            return None;
        }
        if self.dialect.is_none() {
            self.warn(format!(
                "ignored data on {source} that arrived before the connection was established"
            ));
        }
        self.dialect
    }

    fn handle_server_message(&mut self, message: SignalMessage) {
        tracing::debug!(message = message.name(), "received");
        match message {
            SignalMessage::Join { .. }
            | SignalMessage::Leave
            | SignalMessage::Mute { .. }
            | SignalMessage::Kick { .. }
            | SignalMessage::ServerMute { .. }
            | SignalMessage::BlockPeer { .. }
            | SignalMessage::UnblockPeer { .. }
            | SignalMessage::JoinWithPassword { .. } => {
                self.protocol_error(format!(
                    "the server sent {}, which only clients send; ignored",
                    message.name()
                ));
            }
            SignalMessage::Joined { client_id } => self.on_joined(client_id),
            SignalMessage::RoomInfo { clients } => self.on_room_info(&clients),
            SignalMessage::ClientJoined {
                client_id,
                display_name,
            } => self.on_client_joined(client_id, &display_name),
            SignalMessage::ClientLeft { client_id } => self.on_client_left(client_id),
            SignalMessage::YouAreHost => self.on_you_are_host(),
            SignalMessage::Kicked { reason } => {
                let reason = clean_text(&reason, "no reason given");
                self.emit(ClientEvent::Kicked {
                    reason: reason.clone(),
                });
                self.close(format!("kicked: {reason}"));
            }
            SignalMessage::PeerMuted {
                client_id,
                muted,
                by_server,
            } => self.on_peer_muted(client_id, muted, by_server),
            SignalMessage::Error { message } => self.on_error(&message),
            SignalMessage::ShuttingDown { reason } => {
                let reason = clean_text(&reason, "no reason given");
                self.emit(ClientEvent::ShuttingDown {
                    reason: reason.clone(),
                });
                self.close(format!("the server is shutting down: {reason}"));
            }
            SignalMessage::TalkingPeers { client_ids } => self.on_talking_peers(&client_ids),
        }
    }

    fn on_talking_peers(&mut self, client_ids: &[ClientId]) {
        let (changed, ignored) = self.roster.apply_talking(client_ids);
        if !ignored.is_empty() {
            tracing::debug!(
                ?ignored,
                "TalkingPeers ids that are not listed peers ignored"
            );
        }
        if !changed {
            return;
        }

        let talking: Vec<ClientId> = self.roster.talking();
        tracing::trace!(?talking, "talking peers changed");
        if self.config.report_talking {
            let talking = talking
                .into_iter()
                .filter_map(|id| self.roster.get(id))
                .map(|entry| (entry.client_id, entry.display_name.clone()))
                .collect();
            self.emit(ClientEvent::TalkingChanged { talking });
        }
    }

    fn on_joined(&mut self, client_id: ClientId) {
        if self.state != ClientState::Joining {
            self.protocol_error(format!(
                "the server sent Joined (id {client_id}) after the join was already accepted; \
                 ignored"
            ));
            return;
        }

        tracing::debug!(client_id, "joined");
        self.client_id = Some(client_id);
        self.state = ClientState::Joined;
        self.join_deadline = None;

        // A host-change RoomInfo pushed before Joined could already list
        // this client; its flags are the server's view.
        if let Some(entry) = self.roster.get(client_id) {
            self.server_muted = entry.server_muted;
            self.is_host = self.is_host || entry.is_host;
        }
        // Show the name and room code as the server stores them, without
        // the control and format characters it removes.
        let name = visible(&self.config.display_name);
        self.roster.set_self(client_id, &name);

        self.emit(ClientEvent::Joined {
            room_code: visible(&self.config.room_code),
            display_name: name,
            client_id,
        });

        // A force-mute pushed before Joined was held under this id.
        if let Some(early) = self.roster.take_early_mute(client_id) {
            if let Some(server_muted) = early.server_muted {
                self.set_server_muted(server_muted);
            }
        }
        self.sync_self();
    }

    fn on_room_info(&mut self, clients: &[ClientInfo]) {
        let first = !self.seen_room_info;
        self.seen_room_info = true;
        let keep_unconfirmed = self.dialect == Some(Dialect::Legacy);
        let changes = self.roster.apply_room_info(clients, keep_unconfirmed);

        if !first {
            for (client_id, name) in changes.left {
                self.emit(ClientEvent::PeerLeft { client_id, name });
            }
            for (client_id, name) in changes.joined {
                self.emit(ClientEvent::PeerJoined { client_id, name });
            }
        }

        // The list's flags for this client are the server's view, except
        // the self-mute, which this client owns.
        let listed_self = clients
            .iter()
            .find(|info| Some(info.client_id) == self.client_id);
        let was_host = self.is_host;
        match listed_self {
            Some(info) => {
                self.is_host = info.is_host;
                let server_muted = info.server_muted;
                self.set_server_muted(server_muted);
            }
            None if changes.new_host.is_some() => self.is_host = false,
            None => {}
        }

        if self.is_host && !was_host {
            self.emit(ClientEvent::YouAreHost);
        } else if !first && changes.new_host != changes.old_host {
            if let Some(entry) = changes.new_host.and_then(|id| self.roster.get(id)) {
                if !entry.is_self {
                    let event = ClientEvent::HostChanged {
                        client_id: entry.client_id,
                        name: entry.display_name.clone(),
                    };
                    self.emit(event);
                }
            }
        }

        self.sync_self();
        let entries = self.roster.iter().cloned().collect();
        self.emit(ClientEvent::RosterChanged { entries });
    }

    fn on_client_joined(&mut self, client_id: ClientId, display_name: &str) {
        let early = match self.roster.add_peer(client_id, display_name) {
            AddOutcome::Added { early } => early,
            AddOutcome::AlreadyPresent => {
                tracing::debug!(client_id, "ClientJoined for a listed peer ignored");
                return;
            }
            AddOutcome::Departed => {
                tracing::debug!(client_id, "late ClientJoined for a departed peer ignored");
                return;
            }
            AddOutcome::IsSelf => {
                tracing::debug!(client_id, "ClientJoined for this client ignored");
                return;
            }
        };

        let name = self
            .roster
            .get(client_id)
            .map(|entry| entry.display_name.clone())
            .unwrap_or_default();
        self.emit(ClientEvent::PeerJoined {
            client_id,
            name: name.clone(),
        });

        // Mutes that overtook the ClientJoined. Unmuted is the default, so
        // only a mute is news.
        for (flag, by_host) in [(early.muted, false), (early.server_muted, true)] {
            if flag == Some(true) {
                self.emit(ClientEvent::PeerMuted {
                    client_id,
                    name: name.clone(),
                    muted: true,
                    by_host,
                });
            }
        }
    }

    fn on_client_left(&mut self, client_id: ClientId) {
        if Some(client_id) == self.client_id {
            self.protocol_error(format!(
                "the server reported this client (id {client_id}) as having left; ignored"
            ));
            return;
        }
        match self.roster.remove_peer(client_id) {
            Some(entry) => self.emit(ClientEvent::PeerLeft {
                client_id,
                name: entry.display_name,
            }),
            None => tracing::debug!(client_id, "ClientLeft for an unlisted peer remembered"),
        }
    }

    fn on_you_are_host(&mut self) {
        if !self.is_host {
            self.is_host = true;
            self.emit(ClientEvent::YouAreHost);
        }
        self.sync_self();
    }

    fn on_peer_muted(&mut self, client_id: ClientId, muted: bool, by_server: bool) {
        if Some(client_id) == self.client_id {
            if by_server {
                self.set_server_muted(muted);
                self.sync_self();
            } else if muted != self.muted {
                tracing::debug!(muted, "stale echo of this client's own mute ignored");
            }
            return;
        }

        let hold_unknown = self.dialect == Some(Dialect::Legacy);
        match self
            .roster
            .set_peer_muted(client_id, muted, by_server, hold_unknown)
        {
            MuteOutcome::Changed { name } => self.emit(ClientEvent::PeerMuted {
                client_id,
                name,
                muted,
                by_host: by_server,
            }),
            MuteOutcome::Unchanged => {}
            MuteOutcome::Held => {
                tracing::debug!(client_id, "mute change held until the peer's ClientJoined");
            }
            MuteOutcome::Unknown if hold_unknown => {
                tracing::debug!(
                    client_id,
                    "mute change for an unknown peer dropped: too many held"
                );
            }
            MuteOutcome::Unknown => self.protocol_error(format!(
                "the server reported a mute change for unknown peer id {client_id}; ignored"
            )),
            MuteOutcome::Departed => {
                tracing::debug!(client_id, "mute change for a departed peer ignored");
            }
        }
    }

    fn on_error(&mut self, message: &str) {
        let message = clean_text(message, "no message given");
        if self.state == ClientState::Joining {
            self.emit(ClientEvent::JoinRejected {
                message: message.clone(),
            });
            self.close(format!("join rejected: {message}"));
        } else {
            self.emit(ClientEvent::ServerError { message });
        }
    }

    /// Applies the host's force-mute of this client, reporting a change.
    fn set_server_muted(&mut self, server_muted: bool) {
        if self.server_muted != server_muted {
            self.server_muted = server_muted;
            self.emit(ClientEvent::ForceMuted {
                muted: server_muted,
            });
        }
    }

    fn protocol_error(&mut self, detail: String) {
        tracing::warn!(%detail, "protocol error from the server");
        self.emit(ClientEvent::ProtocolError { detail });
    }
}

/// `text` with control and format characters removed, as the server cleans
/// it; unchanged when nothing visible would be left.
fn visible(text: &str) -> String {
    crate::text::sanitize(text, usize::MAX, "text").unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientConfig, ClientInput, ClientOutput};
    use crate::time::Instant;

    fn info(client_id: ClientId, name: &str) -> ClientInfo {
        ClientInfo {
            client_id,
            display_name: name.to_string(),
            muted: false,
            server_muted: false,
            is_host: false,
        }
    }

    /// Returns a native client joined as id 1 with bob (7) and carol (9),
    /// its outputs drained.
    fn joined_client(report_talking: bool) -> Client {
        let mut config = ClientConfig::new("room", "me");
        config.report_talking = report_talking;
        let mut client = Client::new(config, Instant::ZERO).unwrap();
        client.handle_input(
            Instant::ZERO,
            ClientInput::Connected {
                dialect: Dialect::Native,
            },
        );
        feed(&mut client, &SignalMessage::Joined { client_id: 1 });
        feed(
            &mut client,
            &SignalMessage::RoomInfo {
                clients: vec![info(1, "me"), info(7, "bob"), info(9, "carol")],
            },
        );
        drain_events(&mut client);
        client
    }

    fn feed(client: &mut Client, message: &SignalMessage) {
        let body = wire::encode_message(message, Dialect::Native).unwrap();
        client.handle_input(
            Instant::ZERO,
            ClientInput::StreamData(&wire::encode_frame(&body)),
        );
    }

    fn talking(client: &mut Client, ids: &[ClientId]) -> Vec<ClientEvent> {
        feed(
            client,
            &SignalMessage::TalkingPeers {
                client_ids: ids.to_vec(),
            },
        );
        drain_events(client)
    }

    fn drain_events(client: &mut Client) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        while let Some(output) = client.poll_output() {
            if let ClientOutput::Event(event) = output {
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn talking_peers_reported_on_change() {
        let mut client = joined_client(true);

        let events = talking(&mut client, &[7]);
        assert_eq!(
            events,
            [ClientEvent::TalkingChanged {
                talking: vec![(7, "bob".to_string())]
            }]
        );
        assert!(client.roster().get(7).unwrap().talking);

        assert!(talking(&mut client, &[7]).is_empty(), "no change, no event");
        let events = talking(&mut client, &[]);
        assert_eq!(events, [ClientEvent::TalkingChanged { talking: vec![] }]);
    }

    #[test]
    fn talking_events_off_by_default() {
        let mut client = joined_client(false);
        assert!(talking(&mut client, &[7, 9]).is_empty());
        assert_eq!(client.roster().talking(), [7, 9]);
    }

    #[test]
    fn blocked_peer_never_reported_talking() {
        let mut client = joined_client(true);
        client.handle_input(Instant::ZERO, ClientInput::Command("/block bob"));
        drain_events(&mut client);

        let events = talking(&mut client, &[7, 9]);
        assert_eq!(
            events,
            [ClientEvent::TalkingChanged {
                talking: vec![(9, "carol".to_string())]
            }]
        );
        assert!(!client.roster().get(7).unwrap().talking);
    }

    #[test]
    fn own_id_and_strangers_in_report_ignored() {
        let mut client = joined_client(true);
        let events = talking(&mut client, &[1, 1234]);
        assert!(events.is_empty(), "{events:?}");
        assert!(client.roster().talking().is_empty());
    }
}
