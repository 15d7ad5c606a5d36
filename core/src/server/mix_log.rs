//! An opt-in record of what every listener's mix contained, for the
//! offline replay and for tests that need to know exactly who was audible
//! to whom without analysing audio.
//!
//! The log is off by default and costs nothing then. When enabled with
//! [`super::Server::set_mix_log`], every mixer tick appends one
//! [`MixRecord`] per mix that was encoded and sent, and the caller drains
//! them with [`super::Server::take_mix_log`].

use crate::ids::ClientId;
use crate::time::Instant;

/// One listener's mix in one mixer tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixRecord {
    /// The instant the tick was scheduled for.
    pub at: Instant,
    pub room: String,
    pub listener: ClientId,
    /// The senders audible in this mix, in ascending id order.
    pub speakers: Vec<ClientId>,
}
