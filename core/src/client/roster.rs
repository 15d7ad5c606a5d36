//! The client's view of who is in the room.
//!
//! A native server sends every roster message on one ordered stream, so
//! applying them in arrival order is enough. A legacy (0.1) server pushes
//! each `ClientJoined`, `ClientLeft`, `PeerMuted` and host-change `RoomInfo`
//! on its own unidirectional stream, so they can arrive in any order. The
//! roster copes with that as follows:
//!
//! - Departed ids are remembered as tombstones. Client ids are unique for a
//!   server's lifetime, so a departed id can never come back: a late
//!   `ClientJoined` for it is ignored, and so is its entry in a stale
//!   `RoomInfo`.
//! - A `PeerMuted` for an id not yet seen is held until its `ClientJoined`
//!   arrives (legacy only; a native server never sends one).
//! - A `RoomInfo` replaces the roster, except that in the legacy dialect a
//!   peer added by a `ClientJoined` that no `RoomInfo` has listed yet is
//!   kept. Either it joined after the server took the `RoomInfo` snapshot,
//!   or it left before and its `ClientLeft` is still in flight and will
//!   remove it.
//!
//! What can still go wrong with a legacy server, because its pushes carry no
//! sequence number:
//!
//! - Two host-change `RoomInfo` pushes that arrive swapped leave the older
//!   one in place until the next `RoomInfo`, so flags and the host can be
//!   stale for a while.
//! - A `PeerMuted` sent after a `RoomInfo` but received before it is
//!   overwritten by the older flags in that `RoomInfo`.
//! - Two quick `PeerMuted` changes for the same peer that arrive swapped
//!   leave the older state.
//! - A peer removed by a stale `RoomInfo` stays absent until a later
//!   `RoomInfo` lists it again.
//! - Tombstones and held mutes are capped ([`MAX_TOMBSTONES`],
//!   [`MAX_EARLY_MUTES`]). Past the cap the oldest tombstone is forgotten
//!   and new early mutes are dropped.
//!
//! A native server also reports which peers its VAD hears talking
//! (`TalkingPeers`). The roster keeps the last report. It shows a peer as
//! talking only while the report lists it and it is neither muted,
//! force-muted nor blocked by this client, so a stale report never lights
//! up a peer this client cannot hear.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use crate::ids::ClientId;
use crate::wire::ClientInfo;

/// Departed ids remembered at most. A room contains far fewer people, so
/// the cap only matters against a server that invents ids.
pub const MAX_TOMBSTONES: usize = 4096;

/// Mute changes held at most for peers whose `ClientJoined` has not arrived.
pub const MAX_EARLY_MUTES: usize = 256;

/// One participant as this client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    pub client_id: ClientId,
    /// The name the server reported, with control and format characters
    /// removed.
    pub display_name: String,
    /// Muted by the participant.
    pub muted: bool,
    /// Muted by the host (force-mute).
    pub server_muted: bool,
    pub is_host: bool,
    /// This entry is the local client.
    pub is_self: bool,
    /// The local client blocked this participant. Only this client and the
    /// server know.
    pub blocked: bool,
    /// The server's VAD hears this peer talking, as of its last
    /// `TalkingPeers`. Always false for the local client, whose own level
    /// is measured locally.
    pub talking: bool,
}

impl RosterEntry {
    fn new(client_id: ClientId, display_name: String) -> Self {
        RosterEntry {
            client_id,
            display_name,
            muted: false,
            server_muted: false,
            is_host: false,
            is_self: false,
            blocked: false,
            talking: false,
        }
    }

    /// Returns whether this client can hear the peer at all: not itself,
    /// not muted, not force-muted and not blocked.
    fn is_audible_to_self(&self) -> bool {
        !self.is_self && !self.muted && !self.server_muted && !self.blocked
    }
}

impl fmt::Display for RosterEntry {
    /// Formats as `bob (id 7, host, muted)`, listing only the flags that
    /// are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {}", self.display_name, self.client_id)?;
        let flags = [
            (self.is_self, "you"),
            (self.is_host, "host"),
            (self.muted, "muted"),
            (self.server_muted, "muted by host"),
            (self.blocked, "blocked"),
        ];
        for (set, label) in flags {
            if set {
                write!(f, ", {label}")?;
            }
        }
        f.write_str(")")
    }
}

/// The reason a typed peer name or id matched no single participant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerLookupError {
    #[error("missing peer: give a name or an id")]
    Empty,
    #[error("no participant has the name or id \"{query}\"; type /who to list them")]
    NotFound { query: String },
    #[error("\"{query}\" matches {} participants (ids {}); use the id instead", ids.len(), join_ids(ids))]
    Ambiguous { query: String, ids: Vec<ClientId> },
}

fn join_ids(ids: &[ClientId]) -> String {
    let strings: Vec<String> = ids.iter().map(ClientId::to_string).collect();
    strings.join(", ")
}

/// A mute change for a peer whose `ClientJoined` has not arrived yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EarlyMute {
    pub muted: Option<bool>,
    pub server_muted: Option<bool>,
}

/// The result of [`Roster::add_peer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AddOutcome {
    /// The peer is new. `early` contains mute changes that arrived before it.
    Added { early: EarlyMute },
    /// The peer is already listed, from a `RoomInfo` or a duplicate push.
    AlreadyPresent,
    /// The id has departed, so this is a late push.
    Departed,
    /// The id is the local client's.
    IsSelf,
}

/// The result of [`Roster::set_peer_muted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MuteOutcome {
    /// The flag changed on this entry.
    Changed { name: String },
    /// The flag already had this value.
    Unchanged,
    /// The peer is unknown and the change is held until it joins.
    Held,
    /// The peer is unknown and the change was not held.
    Unknown,
    /// The id has departed.
    Departed,
}

/// The changes a `RoomInfo` made to the roster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RoomInfoChanges {
    /// Peers listed now and not before, as (id, name).
    pub joined: Vec<(ClientId, String)>,
    /// Peers listed before and not now, as (id, name).
    pub left: Vec<(ClientId, String)>,
    pub old_host: Option<ClientId>,
    pub new_host: Option<ClientId>,
}

/// Ids of departed participants, oldest first, capped at [`MAX_TOMBSTONES`].
#[derive(Clone, Debug, Default)]
struct Tombstones {
    order: VecDeque<ClientId>,
    ids: BTreeSet<ClientId>,
}

impl Tombstones {
    fn insert(&mut self, id: ClientId) {
        if !self.ids.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > MAX_TOMBSTONES {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }

    fn contains(&self, id: ClientId) -> bool {
        self.ids.contains(&id)
    }
}

/// The participants of the room, ordered by id.
#[derive(Clone, Debug, Default)]
pub struct Roster {
    entries: BTreeMap<ClientId, RosterEntry>,
    self_id: Option<ClientId>,
    blocked: BTreeSet<ClientId>,
    departed: Tombstones,
    /// Peers added by `ClientJoined` that no `RoomInfo` has listed since.
    unconfirmed: BTreeSet<ClientId>,
    early_mutes: BTreeMap<ClientId, EarlyMute>,
    /// Listed peers in the server's last `TalkingPeers`.
    reported_talking: BTreeSet<ClientId>,
}

impl Roster {
    /// Iterates over the participants in id order.
    pub fn iter(&self) -> impl Iterator<Item = &RosterEntry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: ClientId) -> Option<&RosterEntry> {
        self.entries.get(&id)
    }

    /// The local client's entry, once joined.
    pub fn self_entry(&self) -> Option<&RosterEntry> {
        self.self_id.and_then(|id| self.entries.get(&id))
    }

    /// The host's entry, if the roster lists one.
    pub fn host(&self) -> Option<&RosterEntry> {
        self.entries.values().find(|entry| entry.is_host)
    }

    /// Ids this client has blocked, including blocked peers that a stale
    /// `RoomInfo` dropped from the list.
    pub fn blocked(&self) -> &BTreeSet<ClientId> {
        &self.blocked
    }

    pub fn is_blocked(&self, id: ClientId) -> bool {
        self.blocked.contains(&id)
    }

    /// Whether `id` left the room during this session.
    pub fn has_departed(&self, id: ClientId) -> bool {
        self.departed.contains(id)
    }

    /// Finds one participant by id or by name.
    ///
    /// The query is trimmed. When it parses as an id that is in the roster,
    /// the id wins, even if another participant is named that number.
    /// Otherwise names are compared case-insensitively, and a name shared by
    /// several participants is an error listing their ids.
    pub fn find(&self, query: &str) -> Result<&RosterEntry, PeerLookupError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(PeerLookupError::Empty);
        }

        if let Ok(id) = query.parse::<ClientId>() {
            if let Some(entry) = self.entries.get(&id) {
                return Ok(entry);
            }
        }

        let lowered = query.to_lowercase();
        let matches: Vec<&RosterEntry> = self
            .entries
            .values()
            .filter(|entry| entry.display_name.to_lowercase() == lowered)
            .collect();
        match matches.as_slice() {
            [] => Err(PeerLookupError::NotFound {
                query: query.to_string(),
            }),
            [only] => Ok(only),
            several => Err(PeerLookupError::Ambiguous {
                query: query.to_string(),
                ids: several.iter().map(|entry| entry.client_id).collect(),
            }),
        }
    }

    /// Lists the participants on one line: `bob (id 7, host), alice (id 9,
    /// you)`.
    pub fn describe(&self) -> String {
        if self.entries.is_empty() {
            return "nobody".to_string();
        }
        let parts: Vec<String> = self.entries.values().map(RosterEntry::to_string).collect();
        parts.join(", ")
    }

    /// Records the local client's id once the server accepted the join, and
    /// makes sure it has an entry. An entry that an early `RoomInfo` already
    /// created keeps its flags.
    pub(crate) fn set_self(&mut self, id: ClientId, name: &str) {
        self.self_id = Some(id);
        self.unconfirmed.remove(&id);
        let entry = self
            .entries
            .entry(id)
            .or_insert_with(|| RosterEntry::new(id, name.to_string()));
        entry.is_self = true;
        entry.talking = false;
        self.reported_talking.remove(&id);
    }

    /// Takes the mute change held for `id` before its id was known, if any.
    pub(crate) fn take_early_mute(&mut self, id: ClientId) -> Option<EarlyMute> {
        self.early_mutes.remove(&id)
    }

    /// Copies the local client's own flags into its entry.
    pub(crate) fn sync_self(&mut self, muted: bool, server_muted: bool, is_host: bool) {
        let Some(id) = self.self_id else {
            return;
        };
        if is_host {
            self.mark_host(id);
        }
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.muted = muted;
            entry.server_muted = server_muted;
            entry.is_host = is_host;
        }
    }

    /// Replaces the roster with a `RoomInfo` list.
    ///
    /// Departed ids in the list are dropped. The local client's entry is
    /// kept even when the list lacks it. With `keep_unconfirmed`, peers that
    /// a `ClientJoined` added and no `RoomInfo` has listed yet survive.
    pub(crate) fn apply_room_info(
        &mut self,
        clients: &[ClientInfo],
        keep_unconfirmed: bool,
    ) -> RoomInfoChanges {
        let old_host = self.host().map(|entry| entry.client_id);
        let old_ids: BTreeSet<ClientId> = self.entries.keys().copied().collect();
        let mut old_entries = std::mem::take(&mut self.entries);

        for info in clients {
            if self.departed.contains(info.client_id) {
                continue;
            }
            let entry = RosterEntry {
                client_id: info.client_id,
                display_name: clean_name(&info.display_name),
                muted: info.muted,
                server_muted: info.server_muted,
                is_host: info.is_host,
                is_self: Some(info.client_id) == self.self_id,
                blocked: self.blocked.contains(&info.client_id),
                talking: false,
            };
            self.unconfirmed.remove(&info.client_id);
            self.early_mutes.remove(&info.client_id);
            self.entries.insert(info.client_id, entry);
        }

        let mut survivors = Vec::new();
        if let Some(id) = self.self_id {
            survivors.push(id);
        }
        if keep_unconfirmed {
            survivors.extend(self.unconfirmed.iter().copied());
        } else {
            self.unconfirmed.clear();
        }
        for id in survivors {
            if self.entries.contains_key(&id) {
                continue;
            }
            if let Some(mut entry) = old_entries.remove(&id) {
                // Only the list's host is the host now.
                entry.is_host = false;
                self.entries.insert(id, entry);
            }
        }

        self.reported_talking
            .retain(|id| self.entries.contains_key(id));
        self.refresh_talking();

        let mut changes = RoomInfoChanges {
            old_host,
            new_host: self.host().map(|entry| entry.client_id),
            ..RoomInfoChanges::default()
        };
        for (id, entry) in &old_entries {
            if !self.entries.contains_key(id) {
                changes.left.push((*id, entry.display_name.clone()));
            }
        }
        for (id, entry) in &self.entries {
            if !old_ids.contains(id) && Some(*id) != self.self_id {
                changes.joined.push((*id, entry.display_name.clone()));
            }
        }
        changes
    }

    /// Adds a peer announced by `ClientJoined`.
    pub(crate) fn add_peer(&mut self, id: ClientId, name: &str) -> AddOutcome {
        if Some(id) == self.self_id {
            return AddOutcome::IsSelf;
        }
        if self.departed.contains(id) {
            return AddOutcome::Departed;
        }
        if self.entries.contains_key(&id) {
            return AddOutcome::AlreadyPresent;
        }

        let mut entry = RosterEntry::new(id, clean_name(name));
        entry.blocked = self.blocked.contains(&id);
        let early = self.early_mutes.remove(&id).unwrap_or_default();
        if let Some(muted) = early.muted {
            entry.muted = muted;
        }
        if let Some(server_muted) = early.server_muted {
            entry.server_muted = server_muted;
        }
        self.entries.insert(id, entry);
        self.unconfirmed.insert(id);
        AddOutcome::Added { early }
    }

    /// Removes a peer announced by `ClientLeft` and remembers its id as
    /// departed. Returns the removed entry, or `None` when the peer was not
    /// listed (a push that overtook its `ClientJoined`, or a duplicate).
    pub(crate) fn remove_peer(&mut self, id: ClientId) -> Option<RosterEntry> {
        self.departed.insert(id);
        self.unconfirmed.remove(&id);
        self.early_mutes.remove(&id);
        self.blocked.remove(&id);
        self.reported_talking.remove(&id);
        self.entries.remove(&id)
    }

    /// Applies a `PeerMuted` for another participant. With `hold_unknown`,
    /// a change for an unknown id is held until the peer's `ClientJoined`.
    pub(crate) fn set_peer_muted(
        &mut self,
        id: ClientId,
        muted: bool,
        by_server: bool,
        hold_unknown: bool,
    ) -> MuteOutcome {
        if self.departed.contains(id) {
            return MuteOutcome::Departed;
        }

        let Some(entry) = self.entries.get_mut(&id) else {
            return self.hold_early_mute(id, muted, by_server, hold_unknown);
        };
        let flag = if by_server {
            &mut entry.server_muted
        } else {
            &mut entry.muted
        };
        if *flag == muted {
            return MuteOutcome::Unchanged;
        }
        *flag = muted;
        entry.talking = entry.is_audible_to_self() && self.reported_talking.contains(&id);
        MuteOutcome::Changed {
            name: entry.display_name.clone(),
        }
    }

    fn hold_early_mute(
        &mut self,
        id: ClientId,
        muted: bool,
        by_server: bool,
        hold_unknown: bool,
    ) -> MuteOutcome {
        if !hold_unknown {
            return MuteOutcome::Unknown;
        }
        if !self.early_mutes.contains_key(&id) && self.early_mutes.len() >= MAX_EARLY_MUTES {
            return MuteOutcome::Unknown;
        }
        let early = self.early_mutes.entry(id).or_default();
        if by_server {
            early.server_muted = Some(muted);
        } else {
            early.muted = Some(muted);
        }
        MuteOutcome::Held
    }

    /// Makes `id` the only host. Returns the previous host's id when it was
    /// someone else.
    pub(crate) fn mark_host(&mut self, id: ClientId) -> Option<ClientId> {
        let mut previous = None;
        for entry in self.entries.values_mut() {
            if entry.is_host && entry.client_id != id {
                previous = Some(entry.client_id);
            }
            entry.is_host = entry.client_id == id;
        }
        previous
    }

    /// Records that this client blocked `id`. Returns `false` when it
    /// already was.
    pub(crate) fn block(&mut self, id: ClientId) -> bool {
        self.set_blocked(id, true)
    }

    /// Records that this client unblocked `id`. Returns `false` when it was
    /// not blocked.
    pub(crate) fn unblock(&mut self, id: ClientId) -> bool {
        self.set_blocked(id, false)
    }

    fn set_blocked(&mut self, id: ClientId, blocked: bool) -> bool {
        let changed = if blocked {
            self.blocked.insert(id)
        } else {
            self.blocked.remove(&id)
        };
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.blocked = blocked;
            entry.talking = entry.is_audible_to_self() && self.reported_talking.contains(&id);
        }
        changed
    }

    /// Replaces the set of peers the server hears talking with `ids`, from
    /// a `TalkingPeers`. Ids that are not listed peers (this client, or an
    /// id the roster does not contain) are ignored and returned. Returns
    /// whether any entry's talking flag changed, and the ignored ids.
    pub(crate) fn apply_talking(&mut self, ids: &[ClientId]) -> (bool, Vec<ClientId>) {
        let mut ignored = Vec::new();
        self.reported_talking.clear();
        for &id in ids {
            let listed = self.entries.contains_key(&id) && Some(id) != self.self_id;
            if listed {
                self.reported_talking.insert(id);
            } else {
                ignored.push(id);
            }
        }
        (self.refresh_talking(), ignored)
    }

    /// Ids of the peers shown as talking, in ascending order.
    pub fn talking(&self) -> Vec<ClientId> {
        self.entries
            .values()
            .filter(|entry| entry.talking)
            .map(|entry| entry.client_id)
            .collect()
    }

    /// Sets every entry's talking flag from the last report and the
    /// entry's own flags. Returns whether any flag changed.
    fn refresh_talking(&mut self) -> bool {
        let mut changed = false;
        for (id, entry) in &mut self.entries {
            let talking = entry.is_audible_to_self() && self.reported_talking.contains(id);
            changed |= entry.talking != talking;
            entry.talking = talking;
        }
        changed
    }
}

/// Removes control and format characters from text the server sent, so
/// that a hostile name or message cannot move the terminal cursor or hide
/// itself, and trims it. Returns `fallback` when nothing is left.
pub(crate) fn clean_text(text: &str, fallback: &str) -> String {
    // With no length limit, the only error `sanitize` returns is `Empty`.
    crate::text::sanitize(text, usize::MAX, "text").unwrap_or_else(|_| fallback.to_string())
}

/// [`clean_text`] for a display name.
fn clean_name(name: &str) -> String {
    clean_text(name, "(no name)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: ClientId, name: &str) -> ClientInfo {
        ClientInfo {
            client_id: id,
            display_name: name.to_string(),
            muted: false,
            server_muted: false,
            is_host: false,
        }
    }

    fn roster_of(names: &[(ClientId, &str)]) -> Roster {
        let mut roster = Roster::default();
        let clients: Vec<ClientInfo> = names.iter().map(|(id, name)| info(*id, name)).collect();
        roster.apply_room_info(&clients, false);
        roster
    }

    fn ids(roster: &Roster) -> Vec<ClientId> {
        roster.iter().map(|entry| entry.client_id).collect()
    }

    #[test]
    fn entries_ordered_by_id() {
        let roster = roster_of(&[(30, "c"), (10, "a"), (20, "b")]);
        assert_eq!(ids(&roster), [10, 20, 30]);
    }

    #[test]
    fn find_by_id_and_case_insensitive_name() {
        let roster = roster_of(&[(7, "Bob"), (9, "Zoë")]);
        assert_eq!(roster.find("7").map(|e| e.client_id), Ok(7));
        assert_eq!(roster.find(" bob ").map(|e| e.client_id), Ok(7));
        assert_eq!(roster.find("ZOË").map(|e| e.client_id), Ok(9));
    }

    #[test]
    fn find_unknown_peer() {
        let roster = roster_of(&[(7, "bob")]);
        assert_eq!(
            roster.find("carol"),
            Err(PeerLookupError::NotFound {
                query: "carol".to_string()
            })
        );
        assert_eq!(
            roster.find("8"),
            Err(PeerLookupError::NotFound {
                query: "8".to_string()
            })
        );
        assert_eq!(roster.find("  "), Err(PeerLookupError::Empty));
    }

    #[test]
    fn ambiguous_name_lists_ids() {
        let roster = roster_of(&[(7, "bob"), (3, "BOB"), (9, "alice")]);
        let error = roster.find("Bob").unwrap_err();
        assert_eq!(
            error,
            PeerLookupError::Ambiguous {
                query: "Bob".to_string(),
                ids: vec![3, 7]
            }
        );
        assert_eq!(
            error.to_string(),
            "\"Bob\" matches 2 participants (ids 3, 7); use the id instead"
        );
    }

    #[test]
    fn numeric_id_wins_over_numeric_name() {
        // Participant 5 is named "7", and participant 7 is named "bob".
        let roster = roster_of(&[(5, "7"), (7, "bob")]);
        assert_eq!(roster.find("7").map(|e| e.client_id), Ok(7));
        // With no participant 42, the name "42" is looked up instead.
        let roster = roster_of(&[(5, "42")]);
        assert_eq!(roster.find("42").map(|e| e.client_id), Ok(5));
    }

    #[test]
    fn late_join_after_leave_ignored() {
        let mut roster = roster_of(&[(1, "me")]);
        assert_eq!(roster.remove_peer(7), None);
        assert_eq!(roster.add_peer(7, "bob"), AddOutcome::Departed);
        assert_eq!(ids(&roster), [1]);
    }

    #[test]
    fn room_info_drops_departed_ids() {
        let mut roster = Roster::default();
        roster.remove_peer(7);
        roster.apply_room_info(&[info(1, "me"), info(7, "bob")], false);
        assert_eq!(ids(&roster), [1]);
    }

    #[test]
    fn early_mute_applied_on_join() {
        let mut roster = roster_of(&[(1, "me")]);
        assert_eq!(
            roster.set_peer_muted(7, true, true, true),
            MuteOutcome::Held
        );
        let outcome = roster.add_peer(7, "bob");
        assert_eq!(
            outcome,
            AddOutcome::Added {
                early: EarlyMute {
                    muted: None,
                    server_muted: Some(true)
                }
            }
        );
        assert!(roster.get(7).unwrap().server_muted);
        assert!(!roster.get(7).unwrap().muted);
    }

    #[test]
    fn early_mute_not_held_when_asked() {
        let mut roster = roster_of(&[(1, "me")]);
        assert_eq!(
            roster.set_peer_muted(7, true, false, false),
            MuteOutcome::Unknown
        );
        assert_eq!(
            roster.add_peer(7, "bob"),
            AddOutcome::Added {
                early: EarlyMute::default()
            }
        );
    }

    #[test]
    fn early_mutes_capped() {
        let mut roster = Roster::default();
        for id in 0..MAX_EARLY_MUTES as ClientId {
            assert_eq!(
                roster.set_peer_muted(id, true, false, true),
                MuteOutcome::Held
            );
        }
        assert_eq!(
            roster.set_peer_muted(9999, true, false, true),
            MuteOutcome::Unknown
        );
        // An id already held may still change.
        assert_eq!(
            roster.set_peer_muted(0, false, false, true),
            MuteOutcome::Held
        );
    }

    #[test]
    fn tombstones_capped_oldest_forgotten() {
        let mut roster = Roster::default();
        for id in 0..=MAX_TOMBSTONES as ClientId {
            roster.remove_peer(id);
        }
        assert!(!roster.has_departed(0));
        assert!(roster.has_departed(1));
        assert!(roster.has_departed(MAX_TOMBSTONES as ClientId));
    }

    #[test]
    fn unconfirmed_join_survives_legacy_room_info() {
        let mut roster = Roster::default();
        roster.set_self(1, "me");
        roster.add_peer(7, "bob");
        let changes = roster.apply_room_info(&[info(1, "me"), info(3, "carol")], true);
        assert_eq!(ids(&roster), [1, 3, 7]);
        assert_eq!(changes.joined, [(3, "carol".to_string())]);
        assert!(changes.left.is_empty());
    }

    #[test]
    fn native_room_info_replaces_wholesale() {
        let mut roster = Roster::default();
        roster.set_self(1, "me");
        roster.add_peer(7, "bob");
        let changes = roster.apply_room_info(&[info(1, "me")], false);
        assert_eq!(ids(&roster), [1]);
        assert_eq!(changes.left, [(7, "bob".to_string())]);
    }

    #[test]
    fn confirmed_peer_removed_by_later_room_info() {
        let mut roster = Roster::default();
        roster.set_self(1, "me");
        roster.add_peer(7, "bob");
        roster.apply_room_info(&[info(1, "me"), info(7, "bob")], true);
        let changes = roster.apply_room_info(&[info(1, "me")], true);
        assert_eq!(ids(&roster), [1]);
        assert_eq!(changes.left, [(7, "bob".to_string())]);
    }

    #[test]
    fn self_kept_when_room_info_lacks_it() {
        let mut roster = Roster::default();
        roster.set_self(1, "me");
        roster.apply_room_info(&[info(2, "other")], false);
        assert_eq!(ids(&roster), [1, 2]);
        assert!(roster.self_entry().unwrap().is_self);
    }

    #[test]
    fn room_info_reports_host_change() {
        let mut host = info(2, "old");
        host.is_host = true;
        let mut roster = Roster::default();
        roster.apply_room_info(&[info(1, "me"), host], false);
        let mut new_host = info(1, "me");
        new_host.is_host = true;
        let changes = roster.apply_room_info(&[new_host], false);
        assert_eq!(changes.old_host, Some(2));
        assert_eq!(changes.new_host, Some(1));
    }

    #[test]
    fn block_flag_follows_entries() {
        let mut roster = roster_of(&[(7, "bob")]);
        assert!(roster.block(7));
        assert!(!roster.block(7));
        assert!(roster.get(7).unwrap().blocked);
        roster.apply_room_info(&[info(7, "bob")], false);
        assert!(roster.get(7).unwrap().blocked);
        assert!(roster.unblock(7));
        assert!(!roster.get(7).unwrap().blocked);
        assert!(!roster.unblock(7));
    }

    #[test]
    fn departure_forgets_block() {
        let mut roster = roster_of(&[(7, "bob")]);
        roster.block(7);
        roster.remove_peer(7);
        assert!(roster.blocked().is_empty());
    }

    #[test]
    fn names_lose_control_characters() {
        let roster = roster_of(&[(7, "\u{1b}[2Jbob\u{202e}"), (8, "\u{200b}")]);
        assert_eq!(roster.get(7).unwrap().display_name, "[2Jbob");
        assert_eq!(roster.get(8).unwrap().display_name, "(no name)");
    }

    #[test]
    fn describe_lists_flags() {
        let mut host = info(2, "bob");
        host.is_host = true;
        host.server_muted = true;
        let mut roster = Roster::default();
        roster.set_self(1, "alice");
        roster.apply_room_info(&[info(1, "alice"), host], false);
        roster.block(2);
        assert_eq!(
            roster.describe(),
            "alice (id 1, you), bob (id 2, host, muted by host, blocked)"
        );
    }

    fn talking_of(roster: &Roster) -> Vec<ClientId> {
        roster.talking()
    }

    #[test]
    fn talking_follows_reports() {
        let mut roster = roster_of(&[(1, "me"), (7, "bob"), (9, "carol")]);
        roster.set_self(1, "me");

        assert_eq!(roster.apply_talking(&[9, 7]), (true, vec![]));
        assert_eq!(talking_of(&roster), [7, 9]);
        assert!(roster.get(7).unwrap().talking);

        assert_eq!(roster.apply_talking(&[7, 9]), (false, vec![]));
        assert_eq!(roster.apply_talking(&[9]), (true, vec![]));
        assert_eq!(talking_of(&roster), [9]);
        assert_eq!(roster.apply_talking(&[]), (true, vec![]));
        assert!(talking_of(&roster).is_empty());
    }

    #[test]
    fn talking_ignores_self_and_unknown_ids() {
        let mut roster = roster_of(&[(1, "me"), (7, "bob")]);
        roster.set_self(1, "me");

        let (changed, ignored) = roster.apply_talking(&[1, 7, 42]);
        assert!(changed);
        assert_eq!(ignored, [1, 42]);
        assert_eq!(talking_of(&roster), [7]);
        assert!(!roster.self_entry().unwrap().talking);
    }

    #[test]
    fn muted_or_blocked_peer_never_talking() {
        let mut roster = roster_of(&[(1, "me"), (7, "bob"), (9, "carol")]);
        roster.set_self(1, "me");
        roster.apply_talking(&[7, 9]);

        roster.set_peer_muted(7, true, false, false);
        assert_eq!(talking_of(&roster), [9]);
        roster.block(9);
        assert!(talking_of(&roster).is_empty());

        // A report that still lists them, sent before the server saw the
        // change, lights neither up.
        assert_eq!(roster.apply_talking(&[7, 9]), (false, vec![]));
        roster.set_peer_muted(7, true, true, false);
        roster.set_peer_muted(7, false, false, false);
        assert!(talking_of(&roster).is_empty(), "force-muted");

        // Unmuted and unblocked, they show as talking again while the last
        // report lists them.
        roster.set_peer_muted(7, false, true, false);
        roster.unblock(9);
        assert_eq!(talking_of(&roster), [7, 9]);
    }

    #[test]
    fn talking_survives_room_info_and_departure() {
        let mut roster = roster_of(&[(1, "me"), (7, "bob"), (9, "carol")]);
        roster.set_self(1, "me");
        roster.apply_talking(&[7, 9]);

        roster.apply_room_info(&[info(1, "me"), info(7, "bob"), info(9, "carol")], false);
        assert_eq!(talking_of(&roster), [7, 9]);

        roster.remove_peer(9);
        assert_eq!(talking_of(&roster), [7]);
        roster.apply_room_info(&[info(1, "me")], false);
        assert!(talking_of(&roster).is_empty());
        // Bob comes back in a later list without a new report: not talking.
        roster.apply_room_info(&[info(1, "me"), info(7, "bob")], false);
        assert!(talking_of(&roster).is_empty());
    }
}
