//! Identifiers shared by the server and the client state machines.

/// A participant's id, unique on one server for its lifetime. The server
/// allocates ids from a seeded random offset so they are not guessable from
/// the join order alone.
pub type ClientId = u64;

/// An adapter's handle for one transport connection. The adapter chooses the
/// values; the core only compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}
