//! The server's log of core events. Joins, leaves, kicks and host changes
//! go to info with room, client id and peer address as fields, and the rest
//! to debug. Events a hostile or broken client can repeat at will (rejected
//! joins, protocol errors) are rate-limited, so a flood of them cannot fill
//! the disk or bury the lines an operator needs.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};
use voicemcu_core::server::ServerEvent;

/// The `tracing` target of every line here: the server module's, so that a
/// filter such as `RUST_LOG=voicemcu_quic::server=debug` covers them.
const TARGET: &str = "voicemcu_quic::server";

/// The window over which repeated events are counted.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Repeated events of one kind logged per [`WINDOW`]; the rest are counted
/// and summarised in one line when the next window starts.
pub const PER_WINDOW: u32 = 20;

/// A budget of log lines for one kind of repeated event.
#[derive(Debug)]
struct Budget {
    what: &'static str,
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Budget {
    const fn new(what: &'static str) -> Budget {
        Budget {
            what,
            window_start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Returns whether one more line may be logged at `now`. Starting a new window
    /// logs how many the previous one suppressed.
    fn allow(&mut self, now: Instant) -> bool {
        let expired = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if expired {
            if self.suppressed > 0 {
                info!(
                    target: TARGET,
                    suppressed = self.suppressed,
                    "{} more {} were not logged in the last {} s",
                    self.suppressed,
                    self.what,
                    WINDOW.as_secs()
                );
            }
            self.window_start = Some(now);
            self.logged = 0;
            self.suppressed = 0;
        }

        if self.logged < PER_WINDOW {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Logs server events at their level, within the budgets.
#[derive(Debug)]
pub struct EventLog {
    rejected_joins: Budget,
    protocol_errors: Budget,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            rejected_joins: Budget::new("rejected joins"),
            protocol_errors: Budget::new("protocol errors"),
        }
    }
}

impl EventLog {
    /// Logs `event`, unless it is a repeated kind over its budget. Returns
    /// whether a line was written.
    pub fn log(&mut self, now: Instant, event: &ServerEvent) -> bool {
        let budget = match event {
            ServerEvent::JoinRejected { .. } => Some(&mut self.rejected_joins),
            ServerEvent::ProtocolError { .. } => Some(&mut self.protocol_errors),
            _ => None,
        };
        if let Some(budget) = budget {
            if !budget.allow(now) {
                return false;
            }
        }

        let (room, client, peer) = fields(event);
        let peer = peer.map(tracing::field::display);
        if event.is_notable() {
            info!(target: TARGET, room, client, peer, "{event}");
        } else {
            debug!(target: TARGET, room, client, peer, "{event}");
        }
        true
    }
}

/// Returns the room, client id and peer address an event names, where it
/// names them.
fn fields(event: &ServerEvent) -> (Option<&str>, Option<u64>, Option<std::net::SocketAddr>) {
    match event {
        ServerEvent::ConnectionOpened { peer, .. } => (None, None, Some(*peer)),
        ServerEvent::RoomCreated { room } | ServerEvent::RoomClosed { room } => {
            (Some(room), None, None)
        }
        ServerEvent::ClientJoined {
            room, client, peer, ..
        } => (Some(room), Some(*client), Some(*peer)),
        ServerEvent::ClientLeft { room, client, .. }
        | ServerEvent::HostChanged { room, client }
        | ServerEvent::MuteChanged { room, client, .. }
        | ServerEvent::BlockChanged { room, client, .. } => (Some(room), Some(*client), None),
        ServerEvent::Kicked { room, target, .. } => (Some(room), Some(*target), None),
        ServerEvent::JoinRejected { peer, .. } => (None, None, Some(*peer)),
        ServerEvent::CommandRejected { client, .. } => (None, *client, None),
        ServerEvent::ProtocolError { .. } => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use voicemcu_core::ids::ConnectionId;

    use super::*;

    fn rejected() -> ServerEvent {
        ServerEvent::JoinRejected {
            conn: ConnectionId(1),
            peer: "192.0.2.1:4000".parse().unwrap(),
            reason: "wrong password".to_string(),
        }
    }

    #[test]
    fn repeated_events_limited_per_window() {
        let mut log = EventLog::default();
        let start = Instant::now();

        let written = (0..100).filter(|_| log.log(start, &rejected())).count();
        assert_eq!(written, PER_WINDOW as usize);
        assert_eq!(log.rejected_joins.suppressed, 100 - u64::from(PER_WINDOW));

        // Other kinds keep their own budget.
        let error = ServerEvent::ProtocolError {
            conn: ConnectionId(2),
            error: "malformed frame".to_string(),
        };
        assert!(log.log(start, &error));

        // A new window starts the count again.
        assert!(log.log(start + WINDOW, &rejected()));
        assert_eq!(log.rejected_joins.suppressed, 0);
    }

    #[test]
    fn joins_never_limited() {
        let mut log = EventLog::default();
        let start = Instant::now();
        let joined = ServerEvent::RoomCreated {
            room: "r".to_string(),
        };
        assert!((0..1_000).all(|_| log.log(start, &joined)));
    }
}
