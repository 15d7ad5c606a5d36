//! How long each client's roster differs from the server's, over a run.
//!
//! The native dialect delivers every push on one ordered stream, so a
//! native client's roster differs from the server's only while a change is
//! in flight. The legacy 0.1 dialect sends each push on its own
//! unidirectional stream, so two pushes can arrive in either order: a
//! `ClientLeft` that overtakes the `ClientJoined` it follows leaves a
//! departed peer in the roster. This module measures both, for the
//! summary and for the numbers in `docs/simulation.md`.

use std::time::Duration;

use voicemcu_core::client::ClientEvent;

use super::roster::{server_rosters, ClientView, RosterView, ServerFact};
use super::world::ROOM;

/// A divergence at least this long counts as lasting: longer than any
/// change takes to cross the simulated network.
pub const LASTING: Duration = Duration::from_millis(500);

/// One client's divergence from the server over its session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Divergence {
    /// Spans in which the rosters differed.
    pub episodes: usize,
    /// Of those, the ones at least [`LASTING`] long.
    pub lasting: usize,
    pub total: Duration,
    pub longest: Duration,
    /// Whether the rosters still differed at the end of the span.
    pub at_end: bool,
}

/// Measures how `events` (a client's, with times) diverge from the
/// server's `facts` between `from` and `until`.
pub fn measure(
    facts: &[(Duration, ServerFact)],
    events: &[(Duration, ClientEvent)],
    from: Duration,
    until: Duration,
) -> Divergence {
    let mut changes: Vec<Duration> = facts
        .iter()
        .map(|(at, _)| *at)
        .chain(events.iter().map(|(at, _)| *at))
        .filter(|at| (from..until).contains(at))
        .collect();
    changes.push(from);
    changes.sort();
    changes.dedup();

    let mut divergence = Divergence::default();
    let mut open_since: Option<Duration> = None;
    for (index, at) in changes.iter().enumerate() {
        let differs = server_roster_at(facts, *at) != client_roster_at(events, *at);
        match (differs, open_since) {
            (true, None) => open_since = Some(*at),
            (false, Some(since)) => {
                close_episode(&mut divergence, *at - since);
                open_since = None;
            }
            _ => {}
        }
        if index + 1 == changes.len() {
            if let Some(since) = open_since {
                close_episode(&mut divergence, until - since);
                divergence.at_end = true;
            }
        }
    }
    divergence
}

fn close_episode(divergence: &mut Divergence, length: Duration) {
    divergence.episodes += 1;
    divergence.total += length;
    divergence.longest = divergence.longest.max(length);
    if length >= LASTING {
        divergence.lasting += 1;
    }
}

fn server_roster_at(facts: &[(Duration, ServerFact)], at: Duration) -> RosterView {
    let applied: Vec<&ServerFact> = facts
        .iter()
        .filter(|(time, _)| *time <= at)
        .map(|(_, fact)| fact)
        .collect();
    server_rosters(applied).remove(ROOM).unwrap_or_default()
}

fn client_roster_at(events: &[(Duration, ClientEvent)], at: Duration) -> RosterView {
    ClientView::from_events(
        events
            .iter()
            .filter(|(time, _)| *time <= at)
            .map(|(_, event)| event),
    )
    .roster
}
