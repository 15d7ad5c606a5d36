//! A room: its members, its host, their mute and block state, and the
//! mixer that serves them.

use std::collections::{BTreeMap, BTreeSet};

use super::talking::TalkingTracker;
use crate::ids::{ClientId, ConnectionId};
use crate::mixer::{MixPolicy, RoomMixer};
use crate::wire::ClientInfo;

/// One participant in a room.
#[derive(Debug)]
pub(crate) struct Member {
    pub conn: ConnectionId,
    pub name: String,
    /// Muted by the participant.
    pub muted: bool,
    /// Muted by the host (force-mute).
    pub server_muted: bool,
    /// Peers this member does not want to hear.
    pub blocked: BTreeSet<ClientId>,
}

/// The membership and media of one room code.
pub(crate) struct Room {
    pub code: String,
    /// Ordered by id, so "the lowest remaining id" is the first entry.
    pub members: BTreeMap<ClientId, Member>,
    pub host: Option<ClientId>,
    pub mixer: RoomMixer,
    /// The password the first joiner set, which every later joiner must
    /// present. `None` for a room anyone who knows the code may join.
    pub password: Option<String>,
    /// Who is talking, and what was last sent to each listener about it.
    pub talking: TalkingTracker,
}

impl Room {
    pub fn new(code: String, mixer: RoomMixer, password: Option<String>) -> Self {
        Room {
            code,
            members: BTreeMap::new(),
            host: None,
            mixer,
            password,
            talking: TalkingTracker::default(),
        }
    }

    pub fn is_host(&self, id: ClientId) -> bool {
        self.host == Some(id)
    }

    /// The roster as `RoomInfo` carries it, ordered by id.
    pub fn roster(&self) -> Vec<ClientInfo> {
        self.members
            .iter()
            .map(|(id, member)| ClientInfo {
                client_id: *id,
                display_name: member.name.clone(),
                muted: member.muted,
                server_muted: member.server_muted,
                is_host: self.is_host(*id),
            })
            .collect()
    }

    /// Removes a member and, when it was the host, hands the role to the
    /// lowest remaining id. Returns the new host if the role moved.
    pub fn remove(&mut self, id: ClientId) -> (Option<Member>, Option<ClientId>) {
        let removed = self.members.remove(&id);
        self.mixer.remove_member(id);
        for member in self.members.values_mut() {
            member.blocked.remove(&id);
        }

        let mut new_host = None;
        if self.host == Some(id) {
            self.host = self.members.keys().next().copied();
            new_host = self.host;
        }
        (removed, new_host)
    }
}

/// The room's answer to the mixer's questions, borrowed from its members.
pub(crate) struct RoomPolicy<'a> {
    pub members: &'a BTreeMap<ClientId, Member>,
}

impl MixPolicy for RoomPolicy<'_> {
    fn is_audible(&self, sender: ClientId) -> bool {
        self.members
            .get(&sender)
            .is_some_and(|member| !member.muted && !member.server_muted)
    }

    fn has_blocked(&self, listener: ClientId, sender: ClientId) -> bool {
        self.members
            .get(&listener)
            .is_some_and(|member| member.blocked.contains(&sender))
    }
}
