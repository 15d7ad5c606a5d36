//! The server's state, counted from its log: open connections, rooms and
//! mixer members.
//!
//! io-quic's server exposes no state while it runs, so the simulation
//! counts what its log reports: the owner task logs each connection it
//! opens and closes (debug), the core each room it creates and closes
//! (info), and the mixer each member it adds and removes (debug). A count
//! that does not return to zero once everyone has left is state the server
//! keeps for nobody.
//!
//! NOTE: the mixer's shared encoders are not logged, so they are not
//! counted. They belong to the room's mixer, which is dropped with the
//! room, and within a room the mixer keeps at most two per member.

use std::time::Duration;

use super::trace::{ServerLogEntry, MIXER_LOG_TARGET, SERVER_LOG_TARGET};

/// The server's state at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerState {
    pub connections: i64,
    pub rooms: i64,
    pub mixer_members: i64,
}

/// The server's state when the participants leave and after they all left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounts {
    pub at_leave: ServerState,
    pub at_end: ServerState,
}

/// The message with which the server starts shutting down.
const SHUTDOWN_MESSAGE: &str = "shutting down";

impl ServerState {
    fn apply(&mut self, entry: &ServerLogEntry) {
        let message = entry.message.as_str();
        if entry.target == MIXER_LOG_TARGET {
            match message {
                "member added to mixer" => self.mixer_members += 1,
                "member removed from mixer" => self.mixer_members -= 1,
                _ => {}
            }
        } else if entry.target == SERVER_LOG_TARGET {
            match message {
                "connection opened" => self.connections += 1,
                "connection closed" => self.connections -= 1,
                _ if message.starts_with("room ") && message.ends_with(" created") => {
                    self.rooms += 1;
                }
                _ if message.starts_with("room ") && message.ends_with(" closed") => {
                    self.rooms -= 1;
                }
                _ => {}
            }
        }
    }
}

/// Counts the server's state from `log`, starting over at `started_at`
/// (the last restart, or zero), when the participants leave at `leave_at`
/// and at the last entry before the server starts shutting down.
pub fn count(log: &[ServerLogEntry], started_at: Duration, leave_at: Duration) -> ServerCounts {
    let mut state = ServerState::default();
    let mut at_leave = None;
    for entry in log.iter().filter(|entry| entry.at >= started_at) {
        if entry.at >= leave_at && at_leave.is_none() {
            at_leave = Some(state);
        }
        if entry.target == SERVER_LOG_TARGET && entry.message == SHUTDOWN_MESSAGE {
            break;
        }
        state.apply(entry);
    }
    ServerCounts {
        at_leave: at_leave.unwrap_or(state),
        at_end: state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: u64, target: &str, message: &str) -> ServerLogEntry {
        ServerLogEntry {
            at: Duration::from_millis(at_ms),
            target: target.to_owned(),
            level: "DEBUG".to_owned(),
            message: message.to_owned(),
            fields: Vec::new(),
        }
    }

    #[test]
    fn counts_up_and_back_down() {
        let log = [
            entry(1, SERVER_LOG_TARGET, "connection opened"),
            entry(2, SERVER_LOG_TARGET, r#"room "r" created"#),
            entry(3, MIXER_LOG_TARGET, "member added to mixer"),
            entry(10, MIXER_LOG_TARGET, "member removed from mixer"),
            entry(11, SERVER_LOG_TARGET, r#"room "r" closed"#),
            entry(12, SERVER_LOG_TARGET, "connection closed"),
            entry(20, SERVER_LOG_TARGET, "shutting down"),
            entry(21, SERVER_LOG_TARGET, "connection opened"),
        ];
        let counts = count(&log, Duration::ZERO, Duration::from_millis(5));
        assert_eq!(
            counts.at_leave,
            ServerState {
                connections: 1,
                rooms: 1,
                mixer_members: 1
            }
        );
        assert_eq!(counts.at_end, ServerState::default());
    }
}
