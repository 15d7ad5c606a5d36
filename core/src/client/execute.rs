//! Running the slash commands a user types.
//!
//! A command that cannot run (unknown, missing argument, unknown or
//! ambiguous peer, aimed at oneself where that means nothing) produces a
//! [`ClientEvent::CommandFailed`] and sends nothing. A command typed before
//! the join completed waits until the first roster has arrived, at most
//! [`MAX_QUEUED_COMMANDS`] of them. Host-only commands are sent even by a participant who is not the
//! host: the server decides and replies with an `Error`, and the local
//! feedback reports only that the request was sent.

use super::command::{parse_command, Command, MuteChange, HELP_LINES};
use super::{Client, ClientEvent, ClientOutput, ClientState};
use crate::ids::ClientId;
use crate::wire::SignalMessage;

/// Commands held while joining at most; further ones are rejected.
pub const MAX_QUEUED_COMMANDS: usize = 32;

/// The host-only commands that name a peer.
/// Whether `line` is `/help` or `/leave`, which run at once in any state.
fn is_local(line: &str) -> bool {
    matches!(
        parse_command(line),
        Ok(Some(Command::Help | Command::Leave)) | Err(_)
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moderation {
    Kick,
    ForceMute,
    ForceUnmute,
}

impl Client {
    pub(super) fn handle_command(&mut self, line: &str) {
        if self.is_waiting_for_room() && !is_local(line) {
            if self.queued_commands.len() >= MAX_QUEUED_COMMANDS {
                self.command_failed(format!(
                    "not in the room yet and {MAX_QUEUED_COMMANDS} commands are already waiting; try again once joined"
                ));
            } else {
                self.queued_commands.push(line.to_string());
            }
            return;
        }

        let command = match parse_command(line) {
            Ok(Some(command)) => command,
            Ok(None) => return,
            Err(error) => {
                self.command_failed(error.to_string());
                return;
            }
        };

        match command {
            Command::Help => {
                for line in HELP_LINES {
                    self.notice((*line).to_string());
                }
            }
            Command::Who => {
                let text = format!(
                    "in room \"{}\": {}",
                    self.config.room_code,
                    self.roster.describe()
                );
                self.notice(text);
            }
            Command::Leave => self.leave(),
            in_room => {
                if self.require_joined() {
                    self.run_in_room(in_room);
                }
            }
        }
    }

    /// Runs the commands typed while joining, once the room is known.
    pub(super) fn run_queued_commands(&mut self) {
        if self.queued_commands.is_empty() || self.is_waiting_for_room() {
            return;
        }
        for line in std::mem::take(&mut self.queued_commands) {
            self.handle_command(&line);
        }
    }

    /// Whether the join is still under way, or accepted but without a
    /// roster to resolve names against yet.
    fn is_waiting_for_room(&self) -> bool {
        match self.state {
            ClientState::Connecting | ClientState::Joining => true,
            ClientState::Joined => !self.seen_room_info,
            ClientState::Closed => false,
        }
    }

    /// Runs a command that needs a joined session.
    fn run_in_room(&mut self, command: Command) {
        match command {
            Command::Mute(change) => self.set_own_mute(change),
            Command::Kick(query) => self.moderate(&query, Moderation::Kick),
            Command::ForceMute(query) => self.moderate(&query, Moderation::ForceMute),
            Command::ForceUnmute(query) => self.moderate(&query, Moderation::ForceUnmute),
            Command::Block(query) => self.set_blocked(&query, true),
            Command::Unblock(query) => self.set_blocked(&query, false),
            Command::Help | Command::Who | Command::Leave => {
                tracing::debug!(?command, "command needs no room and was run earlier");
            }
        }
    }

    /// Reports why an in-room command cannot run yet, or returns `true`.
    fn require_joined(&mut self) -> bool {
        let reason = match self.state {
            ClientState::Joined => return true,
            ClientState::Connecting | ClientState::Joining => {
                "not in the room yet; wait until the server accepts the join"
            }
            ClientState::Closed => "the session has ended",
        };
        self.command_failed(reason.to_string());
        false
    }

    fn leave(&mut self) {
        match self.state {
            ClientState::Closed => {
                self.command_failed("the session has already ended".to_string());
                return;
            }
            // No connection yet, so there is nobody to tell.
            ClientState::Connecting => {}
            ClientState::Joining | ClientState::Joined => {
                self.send_message(&SignalMessage::Leave);
            }
        }
        self.emit(ClientEvent::Left);
        self.close("left the room".to_string());
    }

    fn set_own_mute(&mut self, change: MuteChange) {
        let muted = match change {
            MuteChange::Toggle => !self.muted,
            MuteChange::On => true,
            MuteChange::Off => false,
        };
        if muted == self.muted {
            let state = if muted { "muted" } else { "unmuted" };
            self.notice(format!("you are already {state}"));
            return;
        }

        self.muted = muted;
        self.send_message(&SignalMessage::Mute { muted });
        self.sync_self();
        self.emit(ClientEvent::SelfMuted { muted });
        if !muted && self.server_muted {
            self.warn(
                "the host still mutes you, so nobody hears you until the host unmutes you"
                    .to_string(),
            );
        }
    }

    fn moderate(&mut self, query: &str, action: Moderation) {
        let Some((target, name)) = self.resolve_peer(query) else {
            return;
        };
        if Some(target) == self.client_id {
            // Force-unmuting oneself is meaningful: a host whom the previous
            // host force-muted may lift it.
            let refusal = match action {
                Moderation::Kick => Some("you cannot kick yourself; use /leave to leave"),
                Moderation::ForceMute => Some("you cannot force-mute yourself; use /mute"),
                Moderation::ForceUnmute => None,
            };
            if let Some(message) = refusal {
                self.command_failed(message.to_string());
                return;
            }
        }

        let peer = format!("{name} (id {target})");
        let (message, request) = match action {
            Moderation::Kick => (SignalMessage::Kick { target }, format!("kick {peer}")),
            Moderation::ForceMute => (
                SignalMessage::ServerMute {
                    target,
                    muted: true,
                },
                format!("mute {peer} for everyone"),
            ),
            Moderation::ForceUnmute => (
                SignalMessage::ServerMute {
                    target,
                    muted: false,
                },
                format!("unmute {peer} for everyone"),
            ),
        };
        if !self.send_message(&message) {
            return;
        }
        let caveat = if self.is_host {
            ""
        } else {
            "; you are not the host, so it will probably refuse"
        };
        self.notice(format!("asked the server to {request}{caveat}"));
    }

    fn set_blocked(&mut self, query: &str, blocked: bool) {
        let Some((target, name)) = self.resolve_peer(query) else {
            return;
        };
        if Some(target) == self.client_id {
            let verb = if blocked { "block" } else { "unblock" };
            self.command_failed(format!("you cannot {verb} yourself"));
            return;
        }

        if blocked {
            if !self.roster.block(target) {
                self.notice(format!("{name} (id {target}) is already blocked"));
                return;
            }
            self.send_message(&SignalMessage::BlockPeer { target });
            self.emit(ClientEvent::PeerBlocked {
                client_id: target,
                name,
            });
        } else {
            if !self.roster.unblock(target) {
                self.notice(format!("{name} (id {target}) is not blocked"));
                return;
            }
            self.send_message(&SignalMessage::UnblockPeer { target });
            self.emit(ClientEvent::PeerUnblocked {
                client_id: target,
                name,
            });
        }
    }

    /// Looks a typed peer up in the roster, reporting a failed lookup.
    fn resolve_peer(&mut self, query: &str) -> Option<(ClientId, String)> {
        match self.roster.find(query) {
            Ok(entry) => Some((entry.client_id, entry.display_name.clone())),
            Err(error) => {
                self.command_failed(error.to_string());
                None
            }
        }
    }

    fn command_failed(&mut self, message: String) {
        self.outputs
            .push_back(ClientOutput::Event(ClientEvent::CommandFailed { message }));
    }
}
