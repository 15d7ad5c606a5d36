//! Events the client reports to its user and its log. Each event renders as
//! one plain English line, which the headless CLI prints as is.

use std::fmt;
use std::time::Duration;

use super::roster::RosterEntry;
use crate::ids::ClientId;

/// Something the user or the log should see.
///
/// Names and messages that came from the server have had control and format
/// characters removed before they reach an event.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server accepted the join.
    Joined {
        room_code: String,
        display_name: String,
        client_id: ClientId,
    },
    /// A `RoomInfo` replaced the roster. Holds the new roster in id order.
    RosterChanged {
        entries: Vec<RosterEntry>,
    },
    PeerJoined {
        client_id: ClientId,
        name: String,
    },
    PeerLeft {
        client_id: ClientId,
        name: String,
    },
    /// Another participant's mute changed, by themselves or by the host.
    PeerMuted {
        client_id: ClientId,
        name: String,
        muted: bool,
        by_host: bool,
    },
    /// The local client's own mute changed after `/mute`.
    SelfMuted {
        muted: bool,
    },
    /// The host force-muted or force-unmuted the local client.
    ForceMuted {
        muted: bool,
    },
    YouAreHost,
    /// Another participant became the host.
    HostChanged {
        client_id: ClientId,
        name: String,
    },
    PeerBlocked {
        client_id: ClientId,
        name: String,
    },
    PeerUnblocked {
        client_id: ClientId,
        name: String,
    },
    /// The set of peers shown as talking changed (native dialect). Holds
    /// every peer talking now, as (id, name) in id order. Emitted only when
    /// [`super::ClientConfig::report_talking`] is set.
    TalkingChanged {
        talking: Vec<(ClientId, String)>,
    },
    /// The host removed the local client. The session is over.
    Kicked {
        reason: String,
    },
    /// The server rejected a command.
    ServerError {
        message: String,
    },
    /// The server rejected the join, or the client did not send it because
    /// a room password was set and the server speaks the legacy dialect.
    /// The session is over.
    JoinRejected {
        message: String,
    },
    /// The server did not accept the join in time. The session is over.
    JoinTimedOut {
        after: Duration,
    },
    /// The server is going away (native dialect). The session is over.
    ShuttingDown {
        reason: String,
    },
    /// The transport reported the connection closed. The session is over.
    ConnectionLost {
        reason: String,
    },
    /// The server sent something malformed or out of place.
    ProtocolError {
        detail: String,
    },
    /// A typed line could not be run: unknown command, missing argument,
    /// unknown or ambiguous peer.
    CommandFailed {
        message: String,
    },
    /// Local feedback: help text, the participant list, a request sent.
    Notice {
        text: String,
    },
    /// Something the user should act on.
    Warning {
        text: String,
    },
    /// The local client left with `/leave`. The session is over.
    Left,
}

impl ClientEvent {
    /// Returns whether this event ends the session.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            ClientEvent::Kicked { .. }
                | ClientEvent::JoinRejected { .. }
                | ClientEvent::JoinTimedOut { .. }
                | ClientEvent::ShuttingDown { .. }
                | ClientEvent::ConnectionLost { .. }
                | ClientEvent::Left
        )
    }
}

/// Formats a participant as `bob (id 7)`.
struct Peer<'a>(&'a str, ClientId);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {})", self.0, self.1)
    }
}

fn muted_word(muted: bool) -> &'static str {
    if muted {
        "muted"
    } else {
        "unmuted"
    }
}

/// Returns what a shutdown reason adds to "the server is shutting down",
/// or `None` when it adds nothing: empty, or the 0.1 server's own "server
/// is shutting down".
pub fn shutdown_detail(reason: &str) -> Option<&str> {
    let reason = reason.trim();
    let repeats = reason.to_ascii_lowercase().contains("shutting down");
    (!reason.is_empty() && !repeats).then_some(reason)
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::Joined {
                room_code,
                display_name,
                client_id,
            } => write!(
                f,
                "joined room \"{room_code}\" as \"{display_name}\" (id {client_id})"
            ),
            ClientEvent::RosterChanged { entries } => {
                f.write_str("roster:")?;
                if entries.is_empty() {
                    return f.write_str(" nobody");
                }
                for (index, entry) in entries.iter().enumerate() {
                    let separator = if index == 0 { " " } else { ", " };
                    write!(f, "{separator}{entry}")?;
                }
                Ok(())
            }
            ClientEvent::PeerJoined { client_id, name } => {
                write!(f, "{} joined", Peer(name, *client_id))
            }
            ClientEvent::PeerLeft { client_id, name } => {
                write!(f, "{} left", Peer(name, *client_id))
            }
            ClientEvent::PeerMuted {
                client_id,
                name,
                muted,
                by_host,
            } => {
                let peer = Peer(name, *client_id);
                let word = muted_word(*muted);
                if *by_host {
                    write!(f, "{peer} was {word} by the host")
                } else {
                    write!(f, "{peer} {word} themselves")
                }
            }
            ClientEvent::SelfMuted { muted } => write!(f, "you are now {}", muted_word(*muted)),
            ClientEvent::ForceMuted { muted } => {
                write!(f, "you were {} by the host", muted_word(*muted))
            }
            ClientEvent::YouAreHost => f.write_str("you are now the host"),
            ClientEvent::HostChanged { client_id, name } => {
                write!(f, "{} is now the host", Peer(name, *client_id))
            }
            ClientEvent::PeerBlocked { client_id, name } => write!(
                f,
                "blocked {}: you no longer hear them, and nobody is told",
                Peer(name, *client_id)
            ),
            ClientEvent::PeerUnblocked { client_id, name } => {
                write!(
                    f,
                    "unblocked {}: you hear them again",
                    Peer(name, *client_id)
                )
            }
            ClientEvent::TalkingChanged { talking } => {
                if talking.is_empty() {
                    return f.write_str("nobody is talking");
                }
                f.write_str("talking:")?;
                for (index, (client_id, name)) in talking.iter().enumerate() {
                    let separator = if index == 0 { " " } else { ", " };
                    write!(f, "{separator}{}", Peer(name, *client_id))?;
                }
                Ok(())
            }
            ClientEvent::Kicked { reason } => write!(f, "kicked: {reason}"),
            ClientEvent::ServerError { message } => write!(f, "error from server: {message}"),
            ClientEvent::JoinRejected { message } => {
                write!(f, "join rejected by the server: {message}")
            }
            ClientEvent::JoinTimedOut { after } => write!(
                f,
                "join timed out: no reply from the server within {} s",
                after.as_secs()
            ),
            ClientEvent::ShuttingDown { reason } => match shutdown_detail(reason) {
                Some(reason) => write!(f, "the server is shutting down: {reason}"),
                None => f.write_str("the server is shutting down"),
            },
            ClientEvent::ConnectionLost { reason } => write!(f, "connection lost: {reason}"),
            ClientEvent::ProtocolError { detail } => write!(f, "protocol error: {detail}"),
            ClientEvent::CommandFailed { message } => f.write_str(message),
            ClientEvent::Notice { text } => f.write_str(text),
            ClientEvent::Warning { text } => write!(f, "warning: {text}"),
            ClientEvent::Left => f.write_str("left the room"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> (ClientId, String) {
        (7, "bob".to_string())
    }

    #[test]
    fn display_lines() {
        let (id, name) = bob();
        let cases = vec![
            (
                ClientEvent::Joined {
                    room_code: "abc".to_string(),
                    display_name: "alice".to_string(),
                    client_id: 123,
                },
                "joined room \"abc\" as \"alice\" (id 123)",
            ),
            (
                ClientEvent::RosterChanged { entries: vec![] },
                "roster: nobody",
            ),
            (
                ClientEvent::PeerJoined {
                    client_id: id,
                    name: name.clone(),
                },
                "bob (id 7) joined",
            ),
            (
                ClientEvent::PeerLeft {
                    client_id: id,
                    name: name.clone(),
                },
                "bob (id 7) left",
            ),
            (
                ClientEvent::PeerMuted {
                    client_id: id,
                    name: name.clone(),
                    muted: true,
                    by_host: true,
                },
                "bob (id 7) was muted by the host",
            ),
            (
                ClientEvent::PeerMuted {
                    client_id: id,
                    name: name.clone(),
                    muted: false,
                    by_host: true,
                },
                "bob (id 7) was unmuted by the host",
            ),
            (
                ClientEvent::PeerMuted {
                    client_id: id,
                    name: name.clone(),
                    muted: true,
                    by_host: false,
                },
                "bob (id 7) muted themselves",
            ),
            (ClientEvent::SelfMuted { muted: true }, "you are now muted"),
            (
                ClientEvent::SelfMuted { muted: false },
                "you are now unmuted",
            ),
            (
                ClientEvent::ForceMuted { muted: true },
                "you were muted by the host",
            ),
            (ClientEvent::YouAreHost, "you are now the host"),
            (
                ClientEvent::HostChanged {
                    client_id: id,
                    name: name.clone(),
                },
                "bob (id 7) is now the host",
            ),
            (
                ClientEvent::PeerBlocked {
                    client_id: id,
                    name: name.clone(),
                },
                "blocked bob (id 7): you no longer hear them, and nobody is told",
            ),
            (
                ClientEvent::PeerUnblocked {
                    client_id: id,
                    name,
                },
                "unblocked bob (id 7): you hear them again",
            ),
            (
                ClientEvent::TalkingChanged {
                    talking: vec![(7, "bob".to_string()), (9, "carol".to_string())],
                },
                "talking: bob (id 7), carol (id 9)",
            ),
            (
                ClientEvent::TalkingChanged { talking: vec![] },
                "nobody is talking",
            ),
            (
                ClientEvent::Kicked {
                    reason: "spam".to_string(),
                },
                "kicked: spam",
            ),
            (
                ClientEvent::ServerError {
                    message: "not the host".to_string(),
                },
                "error from server: not the host",
            ),
            (
                ClientEvent::JoinRejected {
                    message: "room full".to_string(),
                },
                "join rejected by the server: room full",
            ),
            (
                ClientEvent::JoinTimedOut {
                    after: Duration::from_secs(10),
                },
                "join timed out: no reply from the server within 10 s",
            ),
            (
                ClientEvent::ShuttingDown {
                    reason: "maintenance".to_string(),
                },
                "the server is shutting down: maintenance",
            ),
            (
                ClientEvent::ShuttingDown {
                    reason: "server is shutting down".to_string(),
                },
                "the server is shutting down",
            ),
            (
                ClientEvent::ConnectionLost {
                    reason: "idle timeout".to_string(),
                },
                "connection lost: idle timeout",
            ),
            (
                ClientEvent::ProtocolError {
                    detail: "bad frame".to_string(),
                },
                "protocol error: bad frame",
            ),
            (
                ClientEvent::Notice {
                    text: "hello".to_string(),
                },
                "hello",
            ),
            (
                ClientEvent::Warning {
                    text: "careful".to_string(),
                },
                "warning: careful",
            ),
            (ClientEvent::Left, "left the room"),
        ];
        for (event, line) in cases {
            assert_eq!(event.to_string(), line, "{event:?}");
        }
    }
}
