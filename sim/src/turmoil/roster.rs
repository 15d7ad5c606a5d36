//! Rosters rebuilt from what each side reported: the server's truth from
//! its logged events, and each client's view from its `ClientEvent`s.
//!
//! The server's events reach the simulation only as log lines (see
//! [`super::trace`]), formatted by `ServerEvent`'s `Display`. The parsers here
//! read the formats that change membership, the host, mutes or blocks:
//!
//! - `"NAME" (id ID, CONN from PEER, DIALECT) joined room "ROOM"[ as host]`
//! - `"NAME" (id ID) left room "ROOM": REASON`
//! - `id ID is now host of room "ROOM"`
//! - `id ID in room "ROOM" muted|unmuted[ by the host]`
//! - `id ID in room "ROOM" blocked|unblocked id TARGET`
//!
//! A line in none of these formats is kept verbatim in the trace and
//! changes no roster.

use std::collections::BTreeMap;
use std::fmt;

use voicemcu_core::client::ClientEvent;
use voicemcu_core::ids::ClientId;

/// A membership change the server logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFact {
    Joined {
        client: ClientId,
        name: String,
        room: String,
        host: bool,
    },
    Left {
        client: ClientId,
        name: String,
        room: String,
        reason: String,
    },
    HostChanged {
        client: ClientId,
        room: String,
    },
    MuteChanged {
        client: ClientId,
        room: String,
        muted: bool,
        by_host: bool,
    },
    BlockChanged {
        client: ClientId,
        room: String,
        target: ClientId,
        blocked: bool,
    },
}

impl fmt::Display for ServerFact {
    /// Formats the fact without the connection id and peer address, which
    /// are not behaviour.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerFact::Joined {
                client,
                name,
                room,
                host,
            } => {
                let role = if *host { " as host" } else { "" };
                write!(f, "{name:?} (id {client}) joined room {room:?}{role}")
            }
            ServerFact::Left {
                client,
                name,
                room,
                reason,
            } => write!(f, "{name:?} (id {client}) left room {room:?}: {reason}"),
            ServerFact::HostChanged { client, room } => {
                write!(f, "id {client} is now host of room {room:?}")
            }
            ServerFact::MuteChanged {
                client,
                room,
                muted,
                by_host,
            } => {
                let action = if *muted { "muted" } else { "unmuted" };
                let by = if *by_host { " by the host" } else { "" };
                write!(f, "id {client} in room {room:?} {action}{by}")
            }
            ServerFact::BlockChanged {
                client,
                room,
                target,
                blocked,
            } => {
                let action = if *blocked { "blocked" } else { "unblocked" };
                write!(f, "id {client} in room {room:?} {action} id {target}")
            }
        }
    }
}

/// Reads a quoted name or room code at the start of `text` and returns it
/// with the rest of the text. Simulated participants' names contain no
/// quotes or escapes.
fn quoted(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some((rest[..end].to_owned(), &rest[end + 1..]))
}

/// Reads a client id at the start of `text` and returns it with the rest.
fn client_id(text: &str) -> Option<(ClientId, &str)> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let id = text[..digits].parse().ok()?;
    Some((id, &text[digits..]))
}

/// Parses one of the server's membership log lines.
pub fn parse_server_fact(line: &str) -> Option<ServerFact> {
    if let Some(rest) = line.strip_prefix("id ") {
        let (client, rest) = client_id(rest)?;
        if let Some(rest) = rest.strip_prefix(" is now host of room ") {
            let (room, rest) = quoted(rest)?;
            return rest
                .is_empty()
                .then_some(ServerFact::HostChanged { client, room });
        }
        let (room, rest) = quoted(rest.strip_prefix(" in room ")?)?;
        return parse_moderation(client, room, rest);
    }

    let (name, rest) = quoted(line)?;
    let (client, rest) = client_id(rest.strip_prefix(" (id ")?)?;
    if let Some(rest) = rest.strip_prefix(") left room ") {
        let (room, rest) = quoted(rest)?;
        let reason = rest.strip_prefix(": ")?.to_owned();
        return Some(ServerFact::Left {
            client,
            name,
            room,
            reason,
        });
    }

    let after_peer = rest.find(") joined room ")?;
    let (room, rest) = quoted(&rest[after_peer + ") joined room ".len()..])?;
    let host = match rest {
        "" => false,
        " as host" => true,
        _ => return None,
    };
    Some(ServerFact::Joined {
        client,
        name,
        room,
        host,
    })
}

/// Parses the end of a mute or block line, after the room.
fn parse_moderation(client: ClientId, room: String, rest: &str) -> Option<ServerFact> {
    let mute = |muted: bool, by: &str| {
        let by_host = match by {
            "" => false,
            " by the host" => true,
            _ => return None,
        };
        Some(ServerFact::MuteChanged {
            client,
            room: room.clone(),
            muted,
            by_host,
        })
    };
    if let Some(by) = rest.strip_prefix(" unmuted") {
        return mute(false, by);
    }
    if let Some(by) = rest.strip_prefix(" muted") {
        return mute(true, by);
    }

    let (blocked, target) = if let Some(target) = rest.strip_prefix(" unblocked id ") {
        (false, target)
    } else {
        (true, rest.strip_prefix(" blocked id ")?)
    };
    let (target, rest) = client_id(target)?;
    rest.is_empty().then_some(ServerFact::BlockChanged {
        client,
        room,
        target,
        blocked,
    })
}

/// The members of one room and its host, as one side reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosterView {
    /// Display names by client id.
    pub members: BTreeMap<ClientId, String>,
    pub host: Option<ClientId>,
}

impl fmt::Display for RosterView {
    /// Formats as `alice (id 3, host), bob (id 4)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.members.is_empty() {
            return f.write_str("nobody");
        }
        for (index, (id, name)) in self.members.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            let role = if self.host == Some(*id) { ", host" } else { "" };
            write!(f, "{name} (id {id}{role})")?;
        }
        if let Some(host) = self.host.filter(|id| !self.members.contains_key(id)) {
            write!(f, "; host id {host} is not a member")?;
        }
        Ok(())
    }
}

/// Replays the server's facts and returns each room's roster as it stood
/// after the last fact.
pub fn server_rosters<'a>(
    facts: impl IntoIterator<Item = &'a ServerFact>,
) -> BTreeMap<String, RosterView> {
    let mut rooms: BTreeMap<String, RosterView> = BTreeMap::new();
    for fact in facts {
        match fact {
            ServerFact::Joined {
                client,
                name,
                room,
                host,
            } => {
                let roster = rooms.entry(room.clone()).or_default();
                roster.members.insert(*client, name.clone());
                if *host {
                    roster.host = Some(*client);
                }
            }
            ServerFact::Left { client, room, .. } => {
                if let Some(roster) = rooms.get_mut(room) {
                    roster.members.remove(client);
                    if roster.host == Some(*client) {
                        roster.host = None;
                    }
                }
            }
            ServerFact::HostChanged { client, room } => {
                rooms.entry(room.clone()).or_default().host = Some(*client);
            }
            ServerFact::MuteChanged { .. } | ServerFact::BlockChanged { .. } => {}
        }
    }
    rooms.retain(|_, roster| !roster.members.is_empty());
    rooms
}

/// A client's view of its room, rebuilt from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientView {
    /// The id the server gave this client, once joined.
    pub own_id: Option<ClientId>,
    pub roster: RosterView,
}

impl ClientView {
    /// Replays `events` in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a ClientEvent>) -> ClientView {
        let mut view = ClientView::default();
        for event in events {
            view.apply(event);
        }
        view
    }

    /// Applies one event to the view.
    pub fn apply(&mut self, event: &ClientEvent) {
        let roster = &mut self.roster;
        match event {
            ClientEvent::Joined {
                client_id,
                display_name,
                ..
            } => {
                self.own_id = Some(*client_id);
                roster.members.insert(*client_id, display_name.clone());
            }
            ClientEvent::RosterChanged { entries } => {
                roster.members = entries
                    .iter()
                    .map(|entry| (entry.client_id, entry.display_name.clone()))
                    .collect();
                roster.host = entries
                    .iter()
                    .find(|entry| entry.is_host)
                    .map(|entry| entry.client_id);
            }
            ClientEvent::PeerJoined { client_id, name } => {
                roster.members.insert(*client_id, name.clone());
            }
            ClientEvent::PeerLeft { client_id, .. } => {
                roster.members.remove(client_id);
                if roster.host == Some(*client_id) {
                    roster.host = None;
                }
            }
            ClientEvent::HostChanged { client_id, .. } => roster.host = Some(*client_id),
            ClientEvent::YouAreHost => roster.host = self.own_id,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_join_as_host() {
        let line =
            r#""alice" (id 42, conn-0 from 192.168.0.2:49152, native) joined room "r" as host"#;
        assert_eq!(
            parse_server_fact(line),
            Some(ServerFact::Joined {
                client: 42,
                name: "alice".into(),
                room: "r".into(),
                host: true,
            })
        );
    }

    #[test]
    fn parses_join_and_leave() {
        let join = r#""bob" (id 43, conn-1 from 192.168.0.3:49152, legacy) joined room "r""#;
        let leave = r#""bob" (id 43) left room "r": disconnected"#;
        assert!(matches!(
            parse_server_fact(join),
            Some(ServerFact::Joined {
                host: false,
                client: 43,
                ..
            })
        ));
        assert_eq!(
            parse_server_fact(leave),
            Some(ServerFact::Left {
                client: 43,
                name: "bob".into(),
                room: "r".into(),
                reason: "disconnected".into(),
            })
        );
    }

    #[test]
    fn parses_host_change() {
        assert_eq!(
            parse_server_fact(r#"id 43 is now host of room "r""#),
            Some(ServerFact::HostChanged {
                client: 43,
                room: "r".into(),
            })
        );
    }

    #[test]
    fn parses_mutes_and_blocks() {
        assert_eq!(
            parse_server_fact(r#"id 7 in room "r" muted by the host"#),
            Some(ServerFact::MuteChanged {
                client: 7,
                room: "r".into(),
                muted: true,
                by_host: true,
            })
        );
        assert_eq!(
            parse_server_fact(r#"id 7 in room "r" unmuted"#),
            Some(ServerFact::MuteChanged {
                client: 7,
                room: "r".into(),
                muted: false,
                by_host: false,
            })
        );
        assert_eq!(
            parse_server_fact(r#"id 7 in room "r" unblocked id 9"#),
            Some(ServerFact::BlockChanged {
                client: 7,
                room: "r".into(),
                target: 9,
                blocked: false,
            })
        );
        assert_eq!(parse_server_fact(r#"id 7 in room "r" blocked id 9x"#), None);
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse_server_fact("voicemcu server listening"), None);
        assert_eq!(parse_server_fact(r#"room "r" created"#), None);
    }

    #[test]
    fn server_roster_follows_host_handover() {
        let facts = [
            parse_server_fact(r#""a" (id 1, conn-0 from x:1, native) joined room "r" as host"#),
            parse_server_fact(r#""b" (id 2, conn-1 from x:2, native) joined room "r""#),
            parse_server_fact(r#""a" (id 1) left room "r": left"#),
            parse_server_fact(r#"id 2 is now host of room "r""#),
        ];
        let facts: Vec<ServerFact> = facts.into_iter().map(Option::unwrap).collect();
        let rooms = server_rosters(&facts);
        let roster = &rooms["r"];
        assert_eq!(roster.members.len(), 1);
        assert_eq!(roster.members[&2], "b");
        assert_eq!(roster.host, Some(2));
    }
}
