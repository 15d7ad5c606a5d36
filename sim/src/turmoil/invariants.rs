//! The invariants every scenario must keep, checked after the run against
//! an [`Observation`]: what each participant played out, measured per tone,
//! and the rosters each side reported.
//!
//! - `joined`: every participant joined the room.
//! - `no-self-hearing`: no listener's playback ever contains its own tone
//!   (the server mixes everyone but the listener).
//! - `hears-others`: once traffic has settled, every listener hears every
//!   other participant's tone in most 100 ms windows. Spans disturbed by an
//!   injected partition, up to the recovery bound after its repair, are
//!   left out for the pairs it cut.
//! - `partition-cuts-audio`: while a participant is partitioned, no other
//!   participant hears it. This proves the fault took effect.
//! - `recovers-after-partition`: after a repair, audio flows both ways
//!   between the partitioned participant and every other one within the
//!   scenario's recovery bound.
//! - `rosters-agree`: when the participants leave, every client's roster,
//!   rebuilt from its events, equals the server's, rebuilt from its log.
//! - `one-host`: the server's room has exactly one host, a member, and
//!   every client names the same one.
//! - `clean-exit`: every session ended because the scenario stopped it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::roster::{ClientView, RosterView};
use super::scenario::{Expectations, Fault, FaultRecord};
use super::tones::{ToneWindow, WINDOW_FRAMES};
use super::trace::format_sim_time;
use super::world::ROOM;

/// A tone at or above this level, in dBFS, is present in a window. Each
/// tone is sent at -12 dBFS; the mixer and limiter may lower it by a few
/// dB.
pub const PRESENT_DBFS: f32 = -30.0;

/// A tone at or above this level, in dBFS, counts as heard where it must
/// be absent. Opus coding noise and tone onsets reach about -45 dBFS at
/// the other participants' frequencies (measured in the `clean` scenario),
/// while a listener's own tone mixed back in would be near -12 dBFS.
pub const ABSENT_DBFS: f32 = -35.0;

/// Consecutive windows in which a tone must be present again for audio to
/// count as resumed.
const RESUMED_WINDOWS: usize = 3;

/// How long the session end is left out of the `hears-others` check, for
/// the frames still in flight when the clients leave.
const END_MARGIN: Duration = Duration::from_millis(300);

/// How long after a partition starts the audio already in jitter buffers
/// may still play out before `partition-cuts-audio` applies.
const CUT_MARGIN: Duration = Duration::from_millis(500);

/// The clean ending of a session stopped by the scenario, as
/// `ClientExit::Stopped` displays it.
pub const STOPPED_EXIT: &str = "stopped; left the room";

/// One participant's playback levels, view of the room and session end.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticipantReport {
    pub name: String,
    pub tone_hz: f32,
    /// Its view of the room when the participants leave.
    pub view: ClientView,
    /// The session's end, as `ClientExit` displays it, or the error that
    /// ended it.
    pub exit: Option<String>,
    /// Levels of every participant's tone in its playback.
    pub windows: Vec<ToneWindow>,
}

/// Everything the invariants are checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// In the scenario's participant order.
    pub participants: Vec<ParticipantReport>,
    /// Each room as the server reported it when the participants leave.
    pub server_rooms: BTreeMap<String, RosterView>,
    /// When the participants leave; the rosters are taken just before.
    pub leave_at: Duration,
    pub faults: Vec<FaultRecord>,
    pub expectations: Expectations,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name, as listed in this module's documentation.
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// A participant's partition: from when to when it was cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSpan {
    pub participant: String,
    pub from: Duration,
    /// When the link was repaired, if it was.
    pub until: Option<Duration>,
}

/// Pairs each partition with the repair that ended it.
pub fn partition_spans(faults: &[FaultRecord]) -> Vec<PartitionSpan> {
    let mut spans: Vec<PartitionSpan> = Vec::new();
    for record in faults {
        match &record.fault {
            Fault::Partition { participant } => spans.push(PartitionSpan {
                participant: participant.clone(),
                from: record.at,
                until: None,
            }),
            Fault::Repair { participant } => {
                if let Some(span) = spans
                    .iter_mut()
                    .find(|span| &span.participant == participant && span.until.is_none())
                {
                    span.until = Some(record.at);
                }
            }
        }
    }
    spans
}

/// Checks every invariant and returns the broken ones, most basic first.
pub fn check(observation: &Observation) -> Vec<Violation> {
    let mut violations = Vec::new();
    check_joined(observation, &mut violations);
    check_no_self_hearing(observation, &mut violations);
    check_hears_others(observation, &mut violations);
    check_partitions(observation, &mut violations);
    check_rosters(observation, &mut violations);
    check_one_host(observation, &mut violations);
    check_exits(observation, &mut violations);
    violations
}

fn check_joined(observation: &Observation, violations: &mut Vec<Violation>) {
    for participant in &observation.participants {
        if participant.view.own_id.is_none() {
            violations.push(Violation {
                invariant: "joined",
                detail: format!("{} never reported joining the room", participant.name),
            });
        }
    }
}

fn check_no_self_hearing(observation: &Observation, violations: &mut Vec<Violation>) {
    for (index, listener) in observation.participants.iter().enumerate() {
        let loudest = listener
            .windows
            .iter()
            .map(|window| (window.start, window.levels_dbfs[index]))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((at, level)) = loudest.filter(|(_, level)| *level >= ABSENT_DBFS) {
            violations.push(Violation {
                invariant: "no-self-hearing",
                detail: format!(
                    "{} heard its own {} Hz tone at {level:.1} dBFS at {} (limit {ABSENT_DBFS} dBFS)",
                    listener.name,
                    listener.tone_hz,
                    format_sim_time(at)
                ),
            });
        }
    }
}

/// Returns whether the window starting at `start` may be judged for the
/// pair `listener`, `speaker` under `hears-others`.
fn is_settled_for(
    observation: &Observation,
    spans: &[PartitionSpan],
    listener: &str,
    speaker: &str,
    start: Duration,
) -> bool {
    let window_end = start + Duration::from_millis(20 * WINDOW_FRAMES as u64);
    if start < observation.expectations.settled_from
        || window_end + END_MARGIN > observation.leave_at
    {
        return false;
    }
    spans
        .iter()
        .filter(|span| span.participant == listener || span.participant == speaker)
        .all(|span| {
            let disturbed_until = span.until.map_or(Duration::MAX, |until| {
                until + observation.expectations.recovery_bound
            });
            window_end <= span.from || start >= disturbed_until
        })
}

/// Returns the fraction of `listener`'s judged windows in which `speaker`'s
/// tone is present, and how many windows were judged.
pub fn heard_fraction(observation: &Observation, listener: usize, speaker: usize) -> (f32, usize) {
    let spans = partition_spans(&observation.faults);
    let listener_report = &observation.participants[listener];
    let speaker_name = &observation.participants[speaker].name;
    let judged: Vec<f32> = listener_report
        .windows
        .iter()
        .filter(|window| {
            is_settled_for(
                observation,
                &spans,
                &listener_report.name,
                speaker_name,
                window.start,
            )
        })
        .map(|window| window.levels_dbfs[speaker])
        .collect();
    if judged.is_empty() {
        return (0.0, 0);
    }
    let present = judged
        .iter()
        .filter(|level| **level >= PRESENT_DBFS)
        .count();
    (present as f32 / judged.len() as f32, judged.len())
}

fn check_hears_others(observation: &Observation, violations: &mut Vec<Violation>) {
    let minimum = observation.expectations.min_heard_fraction;
    for (l, listener) in observation.participants.iter().enumerate() {
        for (s, speaker) in observation.participants.iter().enumerate() {
            if l == s {
                continue;
            }
            let (fraction, judged) = heard_fraction(observation, l, s);
            if judged == 0 || fraction < minimum {
                violations.push(Violation {
                    invariant: "hears-others",
                    detail: format!(
                        "{} heard {}'s {} Hz tone in {:.0} % of {judged} settled windows (at least {:.0} % required)",
                        listener.name,
                        speaker.name,
                        speaker.tone_hz,
                        fraction * 100.0,
                        minimum * 100.0
                    ),
                });
            }
        }
    }
}

/// Returns when `speaker`'s tone is first present in `listener`'s playback
/// for [`RESUMED_WINDOWS`] windows in a row, starting at or after `from`.
pub fn resumed_at(
    observation: &Observation,
    listener: usize,
    speaker: usize,
    from: Duration,
) -> Option<Duration> {
    let windows: Vec<&ToneWindow> = observation.participants[listener]
        .windows
        .iter()
        .filter(|window| window.start >= from)
        .collect();
    windows
        .windows(RESUMED_WINDOWS)
        .find(|run| {
            run.iter()
                .all(|window| window.levels_dbfs[speaker] >= PRESENT_DBFS)
        })
        .map(|run| run[0].start)
}

fn check_partitions(observation: &Observation, violations: &mut Vec<Violation>) {
    let names: Vec<&str> = observation
        .participants
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    for span in partition_spans(&observation.faults) {
        let Some(cut) = names.iter().position(|name| *name == span.participant) else {
            violations.push(Violation {
                invariant: "partition-cuts-audio",
                detail: format!("partitioned host {} is not a participant", span.participant),
            });
            continue;
        };

        let cut_until = span.until.unwrap_or(observation.leave_at);
        for (other, report) in observation.participants.iter().enumerate() {
            if other == cut {
                continue;
            }
            let leaked = report.windows.iter().find(|window| {
                window.start >= span.from + CUT_MARGIN
                    && window.start + Duration::from_millis(100) <= cut_until
                    && window.levels_dbfs[cut] >= PRESENT_DBFS
            });
            if let Some(window) = leaked {
                violations.push(Violation {
                    invariant: "partition-cuts-audio",
                    detail: format!(
                        "{} heard {} at {} while {} was partitioned from the server",
                        report.name,
                        span.participant,
                        format_sim_time(window.start),
                        span.participant
                    ),
                });
            }
        }

        let Some(repaired) = span.until else {
            continue;
        };
        let deadline = repaired + observation.expectations.recovery_bound;
        for other in (0..names.len()).filter(|other| *other != cut) {
            for (listener, speaker) in [(cut, other), (other, cut)] {
                let resumed = resumed_at(observation, listener, speaker, repaired);
                let late = match resumed {
                    Some(at) => at > deadline,
                    None => true,
                };
                if late {
                    let when = resumed.map_or("never".to_owned(), |at| {
                        format!("only at {}", format_sim_time(at))
                    });
                    violations.push(Violation {
                        invariant: "recovers-after-partition",
                        detail: format!(
                            "{} heard {} again {when}, after the repair at {} (bound {} s)",
                            names[listener],
                            names[speaker],
                            format_sim_time(repaired),
                            observation.expectations.recovery_bound.as_secs_f32()
                        ),
                    });
                }
            }
        }
    }
}

fn server_room(observation: &Observation) -> Option<&RosterView> {
    observation.server_rooms.get(ROOM)
}

fn check_rosters(observation: &Observation, violations: &mut Vec<Violation>) {
    let empty = RosterView::default();
    let server = server_room(observation).unwrap_or(&empty);
    for participant in &observation.participants {
        if participant.view.roster != *server {
            violations.push(Violation {
                invariant: "rosters-agree",
                detail: format!(
                    "{} sees [{}] but the server has [{}]",
                    participant.name, participant.view.roster, server
                ),
            });
        }
    }
}

fn check_one_host(observation: &Observation, violations: &mut Vec<Violation>) {
    let Some(server) = server_room(observation) else {
        violations.push(Violation {
            invariant: "one-host",
            detail: format!("the server reports no room {ROOM:?}"),
        });
        return;
    };
    match server.host {
        Some(host) if server.members.contains_key(&host) => {}
        Some(host) => violations.push(Violation {
            invariant: "one-host",
            detail: format!("the server's host, id {host}, is not in the room"),
        }),
        None => violations.push(Violation {
            invariant: "one-host",
            detail: "the server's room has no host".to_owned(),
        }),
    }

    let claiming: Vec<&str> = observation
        .participants
        .iter()
        .filter(|p| p.view.own_id.is_some() && p.view.roster.host == p.view.own_id)
        .map(|p| p.name.as_str())
        .collect();
    if claiming.len() != 1 {
        violations.push(Violation {
            invariant: "one-host",
            detail: format!(
                "{} clients believe they are the host ({}), expected exactly one",
                claiming.len(),
                claiming.join(", ")
            ),
        });
    }
}

fn check_exits(observation: &Observation, violations: &mut Vec<Violation>) {
    for participant in &observation.participants {
        match participant.exit.as_deref() {
            Some(STOPPED_EXIT) => {}
            Some(other) => violations.push(Violation {
                invariant: "clean-exit",
                detail: format!(
                    "{}'s session ended with \"{other}\", expected \"{STOPPED_EXIT}\"",
                    participant.name
                ),
            }),
            None => violations.push(Violation {
                invariant: "clean-exit",
                detail: format!("{}'s session never ended", participant.name),
            }),
        }
    }
}
