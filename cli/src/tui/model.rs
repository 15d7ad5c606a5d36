//! The terminal UI's view model: everything a screen shows, built only from
//! the client's events, device notices and level readings, so rendering is
//! a pure function of it and tests can build any screen without a network.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use voicemcu_audio::device::{DeviceNotice, NoticeKind};
use voicemcu_core::client::{ClientEvent, RosterEntry};
use voicemcu_core::ids::ClientId;

/// Event lines kept by default.
pub const DEFAULT_EVENT_CAP: usize = 500;

/// How an event line is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    pub kind: EventKind,
    pub text: String,
}

/// What a key press asks the session to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Run this line as a slash command.
    Command(String),
    /// Leave the room and quit.
    Leave,
}

/// The state the screen is drawn from.
#[derive(Clone, Debug)]
pub struct ViewModel {
    pub name: String,
    pub room: String,
    pub self_id: Option<ClientId>,
    pub is_host: bool,
    pub muted: bool,
    /// Force-muted by the host.
    pub silenced: bool,
    /// Participants in id order, this client included once joined.
    pub peers: Vec<RosterEntry>,
    pub events: VecDeque<EventLine>,
    pub event_cap: usize,
    /// Event lines scrolled back from the newest.
    pub scroll: usize,
    pub input: String,
    /// RMS level of what this client sends, as a fraction of full scale.
    pub send_level: f32,
    /// RMS level of the mix this client hears.
    pub hear_level: f32,
    /// The last device line for the microphone and for the speakers.
    pub input_device: String,
    pub output_device: String,
}

impl ViewModel {
    pub fn new(name: &str, room: &str, event_cap: usize) -> Self {
        ViewModel {
            name: name.to_string(),
            room: room.to_string(),
            self_id: None,
            is_host: false,
            muted: false,
            silenced: false,
            peers: Vec::new(),
            events: VecDeque::new(),
            event_cap: event_cap.max(1),
            scroll: 0,
            input: String::new(),
            send_level: 0.0,
            hear_level: 0.0,
            input_device: String::new(),
            output_device: String::new(),
        }
    }

    /// Adds a line to the event log, dropping the oldest past the cap.
    pub fn push_event(&mut self, kind: EventKind, text: String) {
        self.events.push_back(EventLine { kind, text });
        while self.events.len() > self.event_cap {
            self.events.pop_front();
        }
        self.scroll = self.scroll.min(self.events.len().saturating_sub(1));
    }

    /// Updates the model from one client event.
    pub fn apply(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::Joined {
                room_code,
                display_name,
                client_id,
            } => {
                self.room = room_code.clone();
                self.name = display_name.clone();
                self.self_id = Some(*client_id);
            }
            ClientEvent::RosterChanged { entries } => {
                self.peers = entries.clone();
                if let Some(me) = entries.iter().find(|entry| entry.is_self) {
                    self.name = me.display_name.clone();
                    self.is_host = me.is_host;
                    self.silenced = me.server_muted;
                }
                // The roster is in the panel; no need to log it.
                return;
            }
            ClientEvent::PeerJoined { client_id, name }
                if !self.peers.iter().any(|p| p.client_id == *client_id) =>
            {
                self.peers.push(new_entry(*client_id, name));
                self.peers.sort_by_key(|p| p.client_id);
            }
            ClientEvent::TalkingChanged { talking } => {
                for peer in &mut self.peers {
                    peer.talking = talking.iter().any(|(id, _)| *id == peer.client_id);
                }
                // The peers panel shows it; logging it would flood the log.
                return;
            }
            ClientEvent::PeerLeft { client_id, .. } => {
                self.peers.retain(|p| p.client_id != *client_id);
            }
            ClientEvent::PeerMuted {
                client_id,
                muted,
                by_host,
                ..
            } => {
                if let Some(peer) = self.peer_mut(*client_id) {
                    if *by_host {
                        peer.server_muted = *muted;
                    } else {
                        peer.muted = *muted;
                    }
                    // The server reports the peer again if it still talks
                    // once it may be heard.
                    peer.talking = false;
                }
            }
            ClientEvent::SelfMuted { muted } => {
                self.muted = *muted;
                self.update_self(|me| me.muted = *muted);
            }
            ClientEvent::ForceMuted { muted } => {
                self.silenced = *muted;
                self.update_self(|me| me.server_muted = *muted);
            }
            ClientEvent::YouAreHost => {
                self.is_host = true;
                for peer in &mut self.peers {
                    peer.is_host = peer.is_self;
                }
            }
            ClientEvent::HostChanged { client_id, .. } => {
                self.is_host = false;
                for peer in &mut self.peers {
                    peer.is_host = peer.client_id == *client_id;
                }
            }
            ClientEvent::PeerBlocked { client_id, .. } => {
                if let Some(peer) = self.peer_mut(*client_id) {
                    peer.blocked = true;
                    peer.talking = false;
                }
            }
            ClientEvent::PeerUnblocked { client_id, .. } => {
                if let Some(peer) = self.peer_mut(*client_id) {
                    peer.blocked = false;
                }
            }
            _ => {}
        }
        self.push_event(kind_of(event), event.to_string());
    }

    /// Records a device change: the status line and the event log.
    pub fn apply_device(&mut self, notice: &DeviceNotice) {
        let kind = match notice.kind {
            NoticeKind::Opened(direction) => {
                self.set_device_line(direction, notice.message.clone());
                EventKind::Info
            }
            NoticeKind::Unavailable(direction) => {
                self.set_device_line(direction, notice.message.clone());
                EventKind::Warning
            }
            NoticeKind::LibraryOutput => EventKind::Info,
        };
        self.push_event(kind, notice.message.clone());
    }

    fn set_device_line(&mut self, direction: voicemcu_audio::device::Direction, line: String) {
        match direction {
            voicemcu_audio::device::Direction::Input => self.input_device = line,
            voicemcu_audio::device::Direction::Output => self.output_device = line,
        }
    }

    fn peer_mut(&mut self, client_id: ClientId) -> Option<&mut RosterEntry> {
        self.peers.iter_mut().find(|p| p.client_id == client_id)
    }

    fn update_self(&mut self, change: impl FnOnce(&mut RosterEntry)) {
        if let Some(me) = self.peers.iter_mut().find(|p| p.is_self) {
            change(me);
        }
    }

    /// Returns whether another participant has the same name as `entry`,
    /// compared case-insensitively as `/kick NAME` compares them.
    pub fn has_duplicate_name(&self, entry: &RosterEntry) -> bool {
        let name = entry.display_name.to_lowercase();
        self.peers
            .iter()
            .any(|p| p.client_id != entry.client_id && p.display_name.to_lowercase() == name)
    }

    /// Applies one key press and returns what the session should do.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') if ctrl => Action::Leave,
            KeyCode::Esc => Action::Leave,
            KeyCode::Char('m') if self.input.is_empty() && !ctrl => {
                Action::Command("/mute".to_string())
            }
            KeyCode::Char(c) if !ctrl => {
                self.input.push(c);
                Action::None
            }
            KeyCode::Backspace => {
                self.input.pop();
                Action::None
            }
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.input);
                let line = line.trim();
                if line.is_empty() {
                    Action::None
                } else {
                    Action::Command(line.to_string())
                }
            }
            KeyCode::Up => self.scroll_by(1),
            KeyCode::Down => self.scroll_by(-1),
            KeyCode::PageUp => self.scroll_by(10),
            KeyCode::PageDown => self.scroll_by(-10),
            KeyCode::End => {
                self.scroll = 0;
                Action::None
            }
            _ => Action::None,
        }
    }

    fn scroll_by(&mut self, lines: isize) -> Action {
        let max = self.events.len().saturating_sub(1);
        self.scroll = self.scroll.saturating_add_signed(lines).min(max);
        Action::None
    }
}

fn new_entry(client_id: ClientId, name: &str) -> RosterEntry {
    RosterEntry {
        client_id,
        display_name: name.to_string(),
        muted: false,
        server_muted: false,
        is_host: false,
        is_self: false,
        blocked: false,
        talking: false,
    }
}

fn kind_of(event: &ClientEvent) -> EventKind {
    match event {
        ClientEvent::Warning { .. } | ClientEvent::CommandFailed { .. } => EventKind::Warning,
        ClientEvent::ServerError { .. }
        | ClientEvent::ProtocolError { .. }
        | ClientEvent::Kicked { .. }
        | ClientEvent::JoinRejected { .. }
        | ClientEvent::JoinTimedOut { .. }
        | ClientEvent::ConnectionLost { .. } => EventKind::Error,
        _ => EventKind::Info,
    }
}
