//! What the server reports to its logs and status view.

use std::fmt;
use std::net::SocketAddr;

use crate::ids::{ClientId, ConnectionId};
use crate::wire::Dialect;

/// Why a participant left its room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// Sent `Leave` or finished its stream.
    Left,
    /// Kicked by the host.
    Kicked,
    /// The connection closed or timed out.
    Disconnected,
    /// Closed for breaking the protocol.
    ProtocolError,
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            LeaveReason::Left => "left",
            LeaveReason::Kicked => "kicked",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::ProtocolError => "protocol error",
            LeaveReason::Shutdown => "server shutdown",
        };
        f.write_str(text)
    }
}

/// Something worth logging, emitted as [`super::ServerOutput::Event`].
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    ConnectionOpened {
        conn: ConnectionId,
        peer: SocketAddr,
        dialect: Dialect,
    },
    RoomCreated {
        room: String,
    },
    RoomClosed {
        room: String,
    },
    ClientJoined {
        conn: ConnectionId,
        client: ClientId,
        room: String,
        name: String,
        peer: SocketAddr,
        dialect: Dialect,
        host: bool,
    },
    ClientLeft {
        client: ClientId,
        room: String,
        name: String,
        reason: LeaveReason,
    },
    HostChanged {
        room: String,
        client: ClientId,
    },
    Kicked {
        room: String,
        host: ClientId,
        target: ClientId,
    },
    MuteChanged {
        room: String,
        client: ClientId,
        muted: bool,
        by_host: bool,
    },
    BlockChanged {
        room: String,
        client: ClientId,
        target: ClientId,
        blocked: bool,
    },
    JoinRejected {
        conn: ConnectionId,
        peer: SocketAddr,
        reason: String,
    },
    CommandRejected {
        conn: ConnectionId,
        client: Option<ClientId>,
        reason: String,
    },
    ProtocolError {
        conn: ConnectionId,
        error: String,
    },
}

impl ServerEvent {
    /// Whether an operator wants this at info level: joins, leaves, kicks,
    /// host changes, rooms opening or closing, and connections closed for
    /// breaking the protocol. The rest is debug.
    pub fn is_notable(&self) -> bool {
        matches!(
            self,
            ServerEvent::RoomCreated { .. }
                | ServerEvent::RoomClosed { .. }
                | ServerEvent::ClientJoined { .. }
                | ServerEvent::ClientLeft { .. }
                | ServerEvent::HostChanged { .. }
                | ServerEvent::Kicked { .. }
                | ServerEvent::JoinRejected { .. }
                | ServerEvent::ProtocolError { .. }
        )
    }
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEvent::ConnectionOpened {
                conn,
                peer,
                dialect,
            } => {
                write!(f, "{conn} from {peer} opened ({dialect} dialect)")
            }
            ServerEvent::RoomCreated { room } => write!(f, "room {room:?} created"),
            ServerEvent::RoomClosed { room } => write!(f, "room {room:?} closed"),
            ServerEvent::ClientJoined {
                conn,
                client,
                room,
                name,
                peer,
                dialect,
                host,
            } => {
                let role = if *host { " as host" } else { "" };
                write!(
                    f,
                    "{name:?} (id {client}, {conn} from {peer}, {dialect}) joined room {room:?}{role}"
                )
            }
            ServerEvent::ClientLeft {
                client,
                room,
                name,
                reason,
            } => {
                write!(f, "{name:?} (id {client}) left room {room:?}: {reason}")
            }
            ServerEvent::HostChanged { room, client } => {
                write!(f, "id {client} is now host of room {room:?}")
            }
            ServerEvent::Kicked { room, host, target } => {
                write!(f, "host {host} kicked id {target} from room {room:?}")
            }
            ServerEvent::MuteChanged {
                room,
                client,
                muted,
                by_host,
            } => {
                let action = if *muted { "muted" } else { "unmuted" };
                let by = if *by_host { " by the host" } else { "" };
                write!(f, "id {client} in room {room:?} {action}{by}")
            }
            ServerEvent::BlockChanged {
                room,
                client,
                target,
                blocked,
            } => {
                let action = if *blocked { "blocked" } else { "unblocked" };
                write!(f, "id {client} in room {room:?} {action} id {target}")
            }
            ServerEvent::JoinRejected { conn, peer, reason } => {
                write!(f, "join from {peer} ({conn}) rejected: {reason}")
            }
            ServerEvent::CommandRejected {
                conn,
                client,
                reason,
            } => match client {
                Some(client) => write!(f, "command from id {client} rejected: {reason}"),
                None => write!(f, "command on {conn} rejected: {reason}"),
            },
            ServerEvent::ProtocolError { conn, error } => {
                write!(f, "protocol error on {conn}: {error}")
            }
        }
    }
}
