//! The invariants every scenario must keep, checked after the run against
//! an [`Observation`]: what each participant played out, measured per tone,
//! the markers in it, the rosters each side reported and the server's log.
//!
//! A participant is *present* from shortly after it joins until it leaves,
//! vanishes or loses the server. An *outage* ([`Outage`]) is a span in which
//! a scenario stops some audio on purpose: a partition, a vanished client,
//! a silence, a mute or force-mute, a block, a move to a new port, a
//! sender starting its sequence numbers over.
//!
//! - `joined`: every participant joined the room.
//! - `no-self-hearing`: no listener's playback ever contains its own tone
//!   (the server mixes everyone but the listener).
//! - `hears-others`: while two participants are both present and no outage
//!   affects them (up to the recovery bound after it ends), each hears the
//!   other's tone in most 100 ms windows.
//! - `partition-cuts-audio`, `vanish-cuts-audio`: while a participant is
//!   cut off, no other participant hears it. This proves the fault took
//!   effect.
//! - `silence-is-silent`, `muted-inaudible`, `blocked-inaudible`: a silent
//!   or muted (by itself or by the host) speaker is audible to nobody, and
//!   a blocked one to nobody who blocked it, not even faintly.
//! - `recovers-after-partition`, `resumes-after-silence`,
//!   `resumes-after-unmute`, `resumes-after-unblock`,
//!   `resumes-after-rebind`, `resumes-after-sequence-restart`: when an
//!   outage ends, audio flows again within the scenario's recovery bound.
//! - `server-resyncs-after-restart`: after a sender starts its sequence
//!   numbers over far from where they were ([`FAR_RESTART_FRAMES`]), the
//!   server's mixer resynchronises on the new sequence within the
//!   recovery bound, which proves the restart reached it.
//! - `delay-ceiling`: markers reach listeners within the scenario's maximum
//!   delay, so no buffer grows without bound. The delay must stay over the
//!   ceiling to count: the same listener hears three of the speaker's
//!   markers in a row late, or two listeners each hear two markers in a
//!   row late. One late marker alone is not enough, because loss on one
//!   listener's link, concealed by PLC, can look like a dip after the real
//!   one was missed, and a burst of loss can delay a marker or two while
//!   congestion control recovers. A marker whose dip is not found at all is
//!   not judged.
//! - `rosters-agree`: when the participants leave, every native-dialect
//!   client's roster, rebuilt from its events, equals the server's,
//!   rebuilt from its log.
//! - `one-host`: the server's room has exactly one host, a member, and
//!   every native-dialect client names the same one.
//! - `server-times-out-vanished`: the server drops a vanished client within
//!   its idle timeout plus [`TIMEOUT_MARGIN`].
//! - `server-state-bounded`: the server's open connections, rooms and
//!   mixer members match the participants present when they leave, and
//!   are all zero once everyone has left.
//! - `expected-exit`: every session ended the way the scenario expects: a
//!   clean stop, or a lost connection within the idle timeout plus
//!   [`TIMEOUT_MARGIN`] of the fault ([`RESTART_NOTICE`] for a server
//!   restart, which the new server signals with a stateless reset).
//!
//! A tone must be absent in `no-self-hearing` and the cut invariants. It
//! counts as heard there only where it also rises [`ABOVE_FLOOR_DB`] above
//! the distortion floor beside it ([`super::tones`]). Packet loss
//! concealment in the listener's client can cover every frequency near the
//! mix, the absent tone's included, with distortion for about 100 ms. The
//! listener then hears that distortion, not the absent speaker.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use voicemcu_quic::DialectChoice;

use super::delay::MarkerDelay;
use super::divergence::Divergence;
use super::roster::{ClientView, RosterView, ServerFact};
use super::scenario::{Expectations, ExpectedExit, Fault, FaultRecord};
use super::server_state::ServerCounts;
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

/// The margin, in dB, by which a tone that must be absent has to rise
/// above the distortion floor beside it to count as heard. A tone that
/// really leaked into a mix is 25 dB or more above that floor, because it
/// is mixed at -12 to -20 dBFS over Opus coding noise at -45 dBFS or below.
/// Distortion from packet loss concealment puts the absent tone within a
/// few dB of the floor (3.4 dB below it, at -30.7 dBFS, in one `host-churn`
/// run). 10 dB leaves a wide margin to both.
pub const ABOVE_FLOOR_DB: f32 = 10.0;

/// Consecutive windows in which a tone must be present again for audio to
/// count as resumed.
const RESUMED_WINDOWS: usize = 3;

/// How long the session end is left out of the `hears-others` check, for
/// the frames still in flight when the clients leave.
const END_MARGIN: Duration = Duration::from_millis(300);

/// How long after an outage starts the audio already in jitter buffers
/// may still play out before the cut invariants apply.
const CUT_MARGIN: Duration = Duration::from_millis(500);

/// How long after joining a participant's audio is judged: the handshake,
/// the join and the jitter buffers filling.
const JOIN_SETTLE: Duration = Duration::from_millis(1500);

/// Slack on top of the idle timeout for noticing a dead peer: the last
/// packet's flight, timers and one mixer tick.
pub const TIMEOUT_MARGIN: Duration = Duration::from_secs(3);

/// The time a client may take to notice that the server restarted. The
/// restarted server replies to its next packet with a stateless reset,
/// because it derives the reset key from its private key.
pub const RESTART_NOTICE: Duration = Duration::from_secs(2);

/// The clean ending of a session stopped by the scenario, as
/// `ClientExit::Stopped` displays it.
pub const STOPPED_EXIT: &str = "stopped; left the room";

/// The start of `ClientExit::ConnectionLost` as displayed, before the reason.
pub const CONNECTION_LOST_EXIT: &str = "connection lost: ";

/// One participant's playback levels, view of the room and session end.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticipantReport {
    pub name: String,
    pub tone_hz: f32,
    pub joins_at: Duration,
    /// When the scenario makes it leave, if before the others.
    pub leaves_at: Option<Duration>,
    pub dialect: DialectChoice,
    pub expected_exit: ExpectedExit,
    /// Spans, from and until, in which it sent silence.
    pub silent: Vec<(Duration, Duration)>,
    /// When it moved to a new UDP port.
    pub rebinds_at: Option<Duration>,
    /// When its sender started its sequence numbers over, and at which
    /// sequence.
    pub sequence_restarts: Vec<(Duration, u32)>,
    /// Its audio clock's rate against true time, in parts per million.
    pub clock_skew_ppm: i32,
    /// When the server's mixer started over on a new sequence from it.
    pub server_resyncs: Vec<Duration>,
    /// Its view of the room when the participants leave.
    pub view: ClientView,
    /// The session's end, as `ClientExit` displays it, or the error that
    /// ended it.
    pub exit: Option<String>,
    /// When the session ended.
    pub exit_at: Option<Duration>,
    /// Its roster's divergence from the server's over its session.
    pub divergence: Divergence,
    /// Levels of every participant's tone in its playback.
    pub windows: Vec<ToneWindow>,
}

/// Everything the invariants are checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// In the scenario's participant order.
    pub participants: Vec<ParticipantReport>,
    /// Each room as the server reported it when the participants leave,
    /// since the server's last restart.
    pub server_rooms: BTreeMap<String, RosterView>,
    /// Every membership and moderation change the server logged, with its
    /// time, since the start.
    pub server_facts: Vec<(Duration, ServerFact)>,
    /// The server's state at the moments the invariants look at.
    pub server_counts: ServerCounts,
    /// When the participants leave; the rosters are taken just before.
    pub leave_at: Duration,
    pub faults: Vec<FaultRecord>,
    pub expectations: Expectations,
    /// The idle timeout the connections negotiated.
    pub idle_timeout: Duration,
    /// Every marker each listener was sent, heard or not.
    pub delays: Vec<MarkerDelay>,
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

/// The cause of an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutageKind {
    Partition,
    Vanish,
    Silence,
    Muted,
    Blocked,
    Rebind,
    SequenceRestart,
}

impl OutageKind {
    /// Returns the invariant that the audio is really cut, and the level
    /// from which a tone counts as leaking through, if the kind has one.
    fn cut_invariant(self) -> Option<(&'static str, f32)> {
        match self {
            OutageKind::Partition => Some(("partition-cuts-audio", PRESENT_DBFS)),
            OutageKind::Vanish => Some(("vanish-cuts-audio", PRESENT_DBFS)),
            OutageKind::Silence => Some(("silence-is-silent", ABSENT_DBFS)),
            OutageKind::Muted => Some(("muted-inaudible", ABSENT_DBFS)),
            OutageKind::Blocked => Some(("blocked-inaudible", ABSENT_DBFS)),
            OutageKind::Rebind | OutageKind::SequenceRestart => None,
        }
    }

    /// Returns the invariant that audio resumes once the outage ends.
    pub fn recovery_invariant(self) -> Option<&'static str> {
        match self {
            OutageKind::Partition => Some("recovers-after-partition"),
            OutageKind::Silence => Some("resumes-after-silence"),
            OutageKind::Muted => Some("resumes-after-unmute"),
            OutageKind::Blocked => Some("resumes-after-unblock"),
            OutageKind::Rebind => Some("resumes-after-rebind"),
            OutageKind::SequenceRestart => Some("resumes-after-sequence-restart"),
            OutageKind::Vanish => None,
        }
    }
}

/// A span in which the audio from some speakers to some listeners is
/// stopped on purpose. `None` for speaker or listener means every one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub kind: OutageKind,
    pub speaker: Option<usize>,
    pub listener: Option<usize>,
    pub from: Duration,
    /// When it ended, if it did.
    pub until: Option<Duration>,
    /// The outage's description in messages, such as "bob's silence".
    pub subject: String,
}

impl Outage {
    fn affects(&self, listener: usize, speaker: usize) -> bool {
        self.speaker.is_none_or(|s| s == speaker) && self.listener.is_none_or(|l| l == listener)
    }
}

fn index_of(observation: &Observation, name: &str) -> Option<usize> {
    observation
        .participants
        .iter()
        .position(|participant| participant.name == name)
}

/// Returns when the fault that costs `participant` its connection happened:
/// its vanishing, or the server's restart while it was connected.
fn lost_at(observation: &Observation, participant: &ParticipantReport) -> Option<Duration> {
    if participant.expected_exit != ExpectedExit::ConnectionLost {
        return None;
    }
    observation
        .faults
        .iter()
        .find(|record| match &record.fault {
            Fault::Vanish { participant: name } => *name == participant.name,
            Fault::ServerRestart => record.at > participant.joins_at,
            _ => false,
        })
        .map(|record| record.at)
}

/// Returns whether the server restarted while `participant` was connected.
fn restarted_under(observation: &Observation, participant: &ParticipantReport) -> bool {
    observation.faults.iter().any(|record| {
        record.fault == Fault::ServerRestart
            && record.at > participant.joins_at
            && participant.exit_at.is_none_or(|exit| record.at <= exit)
    })
}

/// Returns the span in which `participant`'s audio is judged: from
/// [`JOIN_SETTLE`] after it joins (and no earlier than the scenario's
/// settling time) until it leaves or loses its connection.
pub fn presence(observation: &Observation, participant: usize) -> (Duration, Duration) {
    let report = &observation.participants[participant];
    let from = observation
        .expectations
        .settled_from
        .max(report.joins_at + JOIN_SETTLE);
    let mut until = report.leaves_at.unwrap_or(observation.leave_at);
    if let Some(lost) = lost_at(observation, report) {
        until = until.min(lost);
    }
    (from, until)
}

/// Returns whether `participant` is in the room when the participants
/// leave, and so in the final rosters.
fn present_at_end(participant: &ParticipantReport) -> bool {
    participant.leaves_at.is_none() && participant.expected_exit == ExpectedExit::Stopped
}

/// Collects every outage: the faults the body injected, the participants'
/// scripted silences and port moves, and the mutes and blocks the server
/// logged.
pub fn outages(observation: &Observation) -> Vec<Outage> {
    let mut outages = Vec::new();
    let both_ways = |outages: &mut Vec<Outage>, kind, participant, from, until, subject: &str| {
        for (speaker, listener) in [(Some(participant), None), (None, Some(participant))] {
            outages.push(Outage {
                kind,
                speaker,
                listener,
                from,
                until,
                subject: subject.to_owned(),
            });
        }
    };

    for (index, record) in observation.faults.iter().enumerate() {
        match &record.fault {
            Fault::Partition { participant } => {
                let Some(cut) = index_of(observation, participant) else {
                    continue;
                };
                let until = observation.faults[index + 1..]
                    .iter()
                    .find(|later| {
                        matches!(&later.fault, Fault::Repair { participant: p } if p == participant)
                    })
                    .map(|later| later.at);
                let subject = format!("the partition of {participant}");
                both_ways(
                    &mut outages,
                    OutageKind::Partition,
                    cut,
                    record.at,
                    until,
                    &subject,
                );
            }
            Fault::Vanish { participant } => {
                let Some(cut) = index_of(observation, participant) else {
                    continue;
                };
                let subject = format!("the vanishing of {participant}");
                both_ways(
                    &mut outages,
                    OutageKind::Vanish,
                    cut,
                    record.at,
                    None,
                    &subject,
                );
            }
            Fault::Repair { .. } | Fault::ServerRestart => {}
        }
    }

    for (index, participant) in observation.participants.iter().enumerate() {
        for (from, until) in &participant.silent {
            outages.push(Outage {
                kind: OutageKind::Silence,
                speaker: Some(index),
                listener: None,
                from: *from,
                until: Some(*until),
                subject: format!("{}'s silence", participant.name),
            });
        }
        if let Some(at) = participant.rebinds_at {
            let subject = format!("{}'s move to a new port", participant.name);
            both_ways(
                &mut outages,
                OutageKind::Rebind,
                index,
                at,
                Some(at),
                &subject,
            );
        }
        for (at, _) in &participant.sequence_restarts {
            outages.push(Outage {
                kind: OutageKind::SequenceRestart,
                speaker: Some(index),
                listener: None,
                from: *at,
                until: Some(*at),
                subject: format!("{}'s sequence restart", participant.name),
            });
        }
    }

    moderation_outages(observation, &mut outages);
    outages
}

/// Adds an outage for each span in which the server had a participant
/// muted (by itself or the host) or blocked by another.
fn moderation_outages(observation: &Observation, outages: &mut Vec<Outage>) {
    let mut names: BTreeMap<u64, usize> = BTreeMap::new();
    // Per speaker: since when it is muted, and whether by itself, by the
    // host, or both.
    let mut muted: BTreeMap<usize, (Duration, bool, bool)> = BTreeMap::new();
    let mut blocked: BTreeMap<(usize, usize), Duration> = BTreeMap::new();

    for (at, fact) in &observation.server_facts {
        match fact {
            ServerFact::Joined { client, name, .. } => {
                if let Some(index) = index_of(observation, name) {
                    names.insert(*client, index);
                }
            }
            ServerFact::MuteChanged {
                client,
                muted: now_muted,
                by_host,
                ..
            } => {
                let Some(&speaker) = names.get(client) else {
                    continue;
                };
                let (since, by_self, by_the_host) =
                    muted.get(&speaker).copied().unwrap_or((*at, false, false));
                let (by_self, by_the_host) = if *by_host {
                    (by_self, *now_muted)
                } else {
                    (*now_muted, by_the_host)
                };
                if by_self || by_the_host {
                    muted.insert(speaker, (since, by_self, by_the_host));
                } else if muted.remove(&speaker).is_some() {
                    outages.push(Outage {
                        kind: OutageKind::Muted,
                        speaker: Some(speaker),
                        listener: None,
                        from: since,
                        until: Some(*at),
                        subject: format!("the mute of {}", observation.participants[speaker].name),
                    });
                }
            }
            ServerFact::BlockChanged {
                client,
                target,
                blocked: now_blocked,
                ..
            } => {
                let (Some(&listener), Some(&speaker)) = (names.get(client), names.get(target))
                else {
                    continue;
                };
                if *now_blocked {
                    blocked.entry((listener, speaker)).or_insert(*at);
                } else if let Some(since) = blocked.remove(&(listener, speaker)) {
                    outages.push(blocked_outage(
                        observation,
                        listener,
                        speaker,
                        since,
                        Some(*at),
                    ));
                }
            }
            _ => {}
        }
    }

    for (speaker, (since, _, _)) in muted {
        outages.push(Outage {
            kind: OutageKind::Muted,
            speaker: Some(speaker),
            listener: None,
            from: since,
            until: None,
            subject: format!("the mute of {}", observation.participants[speaker].name),
        });
    }
    for ((listener, speaker), since) in blocked {
        outages.push(blocked_outage(observation, listener, speaker, since, None));
    }
}

fn blocked_outage(
    observation: &Observation,
    listener: usize,
    speaker: usize,
    from: Duration,
    until: Option<Duration>,
) -> Outage {
    Outage {
        kind: OutageKind::Blocked,
        speaker: Some(speaker),
        listener: Some(listener),
        from,
        until,
        subject: format!(
            "{}'s block of {}",
            observation.participants[listener].name, observation.participants[speaker].name
        ),
    }
}

/// Checks every invariant and returns the broken ones, most basic first.
pub fn check(observation: &Observation) -> Vec<Violation> {
    let outages = outages(observation);
    let mut violations = Vec::new();
    check_joined(observation, &mut violations);
    check_no_self_hearing(observation, &mut violations);
    check_hears_others(observation, &outages, &mut violations);
    check_outages(observation, &outages, &mut violations);
    check_restarts_resynced(observation, &mut violations);
    check_delays(observation, &outages, &mut violations);
    check_rosters(observation, &mut violations);
    check_one_host(observation, &mut violations);
    check_vanished_dropped(observation, &mut violations);
    check_server_state(observation, &mut violations);
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

/// Returns whether participant `index`'s tone is heard in `window` where
/// it must be absent: at or above `limit`, and [`ABOVE_FLOOR_DB`] above
/// the distortion floor beside it.
pub fn heard_where_absent(window: &ToneWindow, index: usize, limit: f32) -> bool {
    window.levels_dbfs[index] >= limit && window.above_floor_db(index) >= ABOVE_FLOOR_DB
}

fn check_no_self_hearing(observation: &Observation, violations: &mut Vec<Violation>) {
    for (index, listener) in observation.participants.iter().enumerate() {
        let loudest = listener
            .windows
            .iter()
            .filter(|window| heard_where_absent(window, index, ABSENT_DBFS))
            .max_by(|a, b| a.levels_dbfs[index].total_cmp(&b.levels_dbfs[index]));
        if let Some(window) = loudest {
            violations.push(Violation {
                invariant: "no-self-hearing",
                detail: format!(
                    "{} heard its own {} Hz tone at {:.1} dBFS, {:.1} dB above the distortion floor beside it, at {} (limits {ABSENT_DBFS} dBFS and {ABOVE_FLOOR_DB} dB)",
                    listener.name,
                    listener.tone_hz,
                    window.levels_dbfs[index],
                    window.above_floor_db(index),
                    format_sim_time(window.start)
                ),
            });
        }
    }
}

/// Returns whether the span from `start` to `end` may be judged for the
/// pair `listener`, `speaker`: both are present and no outage of theirs,
/// or the recovery after it, overlaps the span.
pub fn is_judged(
    observation: &Observation,
    outages: &[Outage],
    listener: usize,
    speaker: usize,
    start: Duration,
    end: Duration,
) -> bool {
    let (listener_from, listener_until) = presence(observation, listener);
    let (speaker_from, speaker_until) = presence(observation, speaker);
    if start < listener_from.max(speaker_from)
        || end + END_MARGIN > listener_until.min(speaker_until)
    {
        return false;
    }
    outages
        .iter()
        .filter(|outage| outage.affects(listener, speaker))
        .all(|outage| {
            let disturbed_until = outage.until.map_or(Duration::MAX, |until| {
                until + observation.expectations.recovery_bound
            });
            end <= outage.from || start >= disturbed_until
        })
}

/// Returns the fraction of `listener`'s judged windows in which `speaker`'s
/// tone is present, and how many windows were judged.
pub fn heard_fraction(observation: &Observation, listener: usize, speaker: usize) -> (f32, usize) {
    heard_fraction_with(observation, &outages(observation), listener, speaker)
}

fn heard_fraction_with(
    observation: &Observation,
    outages: &[Outage],
    listener: usize,
    speaker: usize,
) -> (f32, usize) {
    let window_length = Duration::from_millis(20 * WINDOW_FRAMES as u64);
    let judged: Vec<f32> = observation.participants[listener]
        .windows
        .iter()
        .filter(|window| {
            is_judged(
                observation,
                outages,
                listener,
                speaker,
                window.start,
                window.start + window_length,
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

/// How long two participants must be present together before the pair
/// must have judged windows at all.
const MIN_OVERLAP: Duration = Duration::from_secs(2);

/// Judged windows a pair needs before its heard fraction is held to the
/// minimum: with fewer, one window is a large share.
const MIN_JUDGED_WINDOWS: usize = 10;

fn check_hears_others(
    observation: &Observation,
    outages: &[Outage],
    violations: &mut Vec<Violation>,
) {
    let minimum = observation.expectations.min_heard_fraction;
    for (l, listener) in observation.participants.iter().enumerate() {
        for (s, speaker) in observation.participants.iter().enumerate() {
            if l == s {
                continue;
            }
            let (fraction, judged) = heard_fraction_with(observation, outages, l, s);
            let (listener_from, listener_until) = presence(observation, l);
            let (speaker_from, speaker_until) = presence(observation, s);
            let overlap = listener_until
                .min(speaker_until)
                .saturating_sub(listener_from.max(speaker_from));
            let expected_some = overlap >= MIN_OVERLAP + END_MARGIN
                && outages.iter().all(|outage| !outage.affects(l, s));
            if (judged == 0 && expected_some)
                || (judged >= MIN_JUDGED_WINDOWS && fraction < minimum)
            {
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

/// Returns the pairs, listener and speaker, that `outage` affects among
/// participants present around it.
pub fn affected_pairs(observation: &Observation, outage: &Outage) -> Vec<(usize, usize)> {
    let count = observation.participants.len();
    let mut pairs = Vec::new();
    for listener in 0..count {
        for speaker in (0..count).filter(|speaker| *speaker != listener) {
            if outage.affects(listener, speaker) {
                pairs.push((listener, speaker));
            }
        }
    }
    pairs
}

fn check_outages(observation: &Observation, outages: &[Outage], violations: &mut Vec<Violation>) {
    let names: Vec<&str> = observation
        .participants
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    for outage in outages {
        let pairs = affected_pairs(observation, outage);

        if let Some((invariant, limit)) = outage.kind.cut_invariant() {
            let cut_until = outage.until.unwrap_or(observation.leave_at);
            for &(listener, speaker) in &pairs {
                let leaked = observation.participants[listener]
                    .windows
                    .iter()
                    .find(|window| {
                        window.start >= outage.from + CUT_MARGIN
                            && window.start + Duration::from_millis(100) <= cut_until
                            && heard_where_absent(window, speaker, limit)
                    });
                if let Some(window) = leaked {
                    violations.push(Violation {
                        invariant,
                        detail: format!(
                            "{} heard {} at {} ({:.1} dBFS, {:.1} dB above the distortion floor beside it) during {}",
                            names[listener],
                            names[speaker],
                            format_sim_time(window.start),
                            window.levels_dbfs[speaker],
                            window.above_floor_db(speaker),
                            outage.subject
                        ),
                    });
                }
            }
        }

        let (Some(invariant), Some(ended)) = (outage.kind.recovery_invariant(), outage.until)
        else {
            continue;
        };
        let deadline = ended + observation.expectations.recovery_bound;
        for &(listener, speaker) in &pairs {
            // Only pairs still present well after the deadline can show
            // whether audio came back.
            let (_, listener_until) = presence(observation, listener);
            let (_, speaker_until) = presence(observation, speaker);
            if deadline + END_MARGIN + Duration::from_millis(300)
                > listener_until.min(speaker_until)
            {
                continue;
            }
            let resumed = resumed_at(observation, listener, speaker, ended);
            let late = resumed.is_none_or(|at| at > deadline);
            if late {
                let when = resumed.map_or("never".to_owned(), |at| {
                    format!("only at {}", format_sim_time(at))
                });
                violations.push(Violation {
                    invariant,
                    detail: format!(
                        "{} heard {} again {when}, after the end of {} at {} (bound {} s)",
                        names[listener],
                        names[speaker],
                        outage.subject,
                        format_sim_time(ended),
                        observation.expectations.recovery_bound.as_secs_f32()
                    ),
                });
            }
        }
    }
}

/// The jump, in frames, from which a sequence restart must make the
/// server's jitter buffer start over. It is twice the default capacity of
/// 50 frames, so the estimate of where the sequence stood may be off by a
/// second.
pub const FAR_RESTART_FRAMES: u32 = 100;

/// Checks that the server noticed each far sequence restart: its mixer
/// started over on the new sequence within the recovery bound. Without
/// this, a restart that never reached the wire would pass unnoticed. A
/// restart to a sequence close behind looks like late packets followed by
/// a resumed stream, which the buffer may rightly follow without starting
/// over, and only `resumes-after-sequence-restart` judges it.
fn check_restarts_resynced(observation: &Observation, violations: &mut Vec<Violation>) {
    let bound = observation.expectations.recovery_bound;
    for participant in &observation.participants {
        // Senders start at sequence 0 and count one frame per 20 ms.
        let mut last = (participant.joins_at, 0u32);
        for &(at, sequence) in &participant.sequence_restarts {
            let frames = (at.saturating_sub(last.0).as_millis() / 20) as u32;
            let expected = last.1.wrapping_add(frames);
            last = (at, sequence);
            let jump = expected
                .wrapping_sub(sequence)
                .min(sequence.wrapping_sub(expected));
            if jump < FAR_RESTART_FRAMES {
                continue;
            }
            let resynced = participant
                .server_resyncs
                .iter()
                .any(|resync| *resync >= at && *resync <= at + bound);
            if !resynced {
                violations.push(Violation {
                    invariant: "server-resyncs-after-restart",
                    detail: format!(
                        "the server did not resynchronise on {}'s stream within {} ms of its \
                         sequence restart at {}, about {jump} frames away",
                        participant.name,
                        bound.as_millis(),
                        format_sim_time(at)
                    ),
                });
            }
        }
    }
}

/// Returns the markers that `delay-ceiling` judges: sent while both sides
/// were present and undisturbed for the whole search span.
pub fn judged_delays<'a>(observation: &'a Observation, outages: &[Outage]) -> Vec<&'a MarkerDelay> {
    let ceiling = observation.expectations.max_delay;
    observation
        .delays
        .iter()
        .filter(|marker| marker.tone_present)
        .filter(|marker| {
            is_judged(
                observation,
                outages,
                marker.listener,
                marker.speaker,
                marker.sent,
                marker.sent + ceiling,
            )
        })
        .collect()
}

fn check_delays(observation: &Observation, outages: &[Outage], violations: &mut Vec<Violation>) {
    let ceiling = observation.expectations.max_delay;
    let judged = judged_delays(observation, outages);
    let is_late = |marker: &MarkerDelay| marker.delay().is_some_and(|delay| delay > ceiling);

    // Late markers by pair, and how many listeners heard each sent marker
    // late.
    let mut by_pair: BTreeMap<(usize, usize), Vec<&MarkerDelay>> = BTreeMap::new();
    let mut late_listeners: BTreeMap<(usize, Duration), usize> = BTreeMap::new();
    for marker in &judged {
        by_pair
            .entry((marker.listener, marker.speaker))
            .or_default()
            .push(marker);
        if is_late(marker) {
            *late_listeners
                .entry((marker.speaker, marker.sent))
                .or_default() += 1;
        }
    }

    let shared_late = |marker: &MarkerDelay| {
        late_listeners
            .get(&(marker.speaker, marker.sent))
            .is_some_and(|count| *count >= 2)
    };
    for markers in by_pair.values() {
        let in_a_row = markers
            .windows(3)
            .find(|run| run.iter().all(|marker| is_late(marker)))
            .map(|run| run[0]);
        let shared = markers
            .windows(2)
            .find(|run| {
                run.iter()
                    .all(|marker| is_late(marker) && shared_late(marker))
            })
            .map(|run| run[0]);
        let Some(marker) = in_a_row.or(shared) else {
            continue;
        };
        let how = if in_a_row.is_some() {
            "and the next two too"
        } else {
            "and the next one too, as did another listener"
        };
        violations.push(Violation {
            invariant: "delay-ceiling",
            detail: format!(
                "{} heard the marker {} sent at {} {} ms later, {how} (ceiling {} ms)",
                observation.participants[marker.listener].name,
                observation.participants[marker.speaker].name,
                format_sim_time(marker.sent),
                marker.delay().unwrap_or_default().as_millis(),
                ceiling.as_millis()
            ),
        });
    }
}

fn server_room(observation: &Observation) -> Option<&RosterView> {
    observation.server_rooms.get(ROOM)
}

/// Returns whether the participant's roster must match the server's at the
/// end: it is still in the room and speaks the native dialect, whose
/// pushes arrive in order.
fn roster_must_agree(participant: &ParticipantReport) -> bool {
    present_at_end(participant) && participant.dialect != DialectChoice::Legacy
}

fn check_rosters(observation: &Observation, violations: &mut Vec<Violation>) {
    let empty = RosterView::default();
    let server = server_room(observation).unwrap_or(&empty);
    for participant in observation
        .participants
        .iter()
        .filter(|p| roster_must_agree(p))
    {
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
    if !observation.participants.iter().any(present_at_end) {
        return;
    }
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
        .filter(|p| roster_must_agree(p))
        .filter(|p| p.view.own_id.is_some() && p.view.roster.host == p.view.own_id)
        .map(|p| p.name.as_str())
        .collect();
    let native_present = observation
        .participants
        .iter()
        .filter(|p| roster_must_agree(p))
        .count();
    if native_present > 0 && claiming.len() > 1 {
        violations.push(Violation {
            invariant: "one-host",
            detail: format!(
                "{} clients believe they are the host ({}), expected at most one",
                claiming.len(),
                claiming.join(", ")
            ),
        });
    }
}

fn check_vanished_dropped(observation: &Observation, violations: &mut Vec<Violation>) {
    let bound = observation.idle_timeout + TIMEOUT_MARGIN;
    for record in &observation.faults {
        let Fault::Vanish { participant } = &record.fault else {
            continue;
        };
        let dropped = observation
            .server_facts
            .iter()
            .find(|(at, fact)| {
                *at >= record.at
                    && matches!(fact, ServerFact::Left { name, .. } if name == participant)
            })
            .map(|(at, _)| *at);
        let late = dropped.is_none_or(|at| at > record.at + bound);
        if late {
            let when = dropped.map_or("never".to_owned(), |at| {
                format!("only at {}", format_sim_time(at))
            });
            violations.push(Violation {
                invariant: "server-times-out-vanished",
                detail: format!(
                    "the server dropped {participant} {when}; it vanished at {} and the bound is {} s",
                    format_sim_time(record.at),
                    bound.as_secs_f32()
                ),
            });
        }
    }
}

fn check_server_state(observation: &Observation, violations: &mut Vec<Violation>) {
    let present = observation
        .participants
        .iter()
        .filter(|p| present_at_end(p))
        .count() as i64;
    let counts = &observation.server_counts;
    let expected_rooms = i64::from(present > 0);
    let checks = [
        (
            "before the participants leave",
            counts.at_leave,
            present,
            expected_rooms,
        ),
        ("after everyone left", counts.at_end, 0, 0),
    ];
    for (moment, state, members, rooms) in checks {
        let wrong = [
            ("open connections", state.connections, members),
            ("rooms", state.rooms, rooms),
            ("mixer members", state.mixer_members, members),
        ];
        for (what, got, expected) in wrong {
            if got != expected {
                violations.push(Violation {
                    invariant: "server-state-bounded",
                    detail: format!("the server had {got} {what} {moment}, expected {expected}"),
                });
            }
        }
    }
}

fn check_exits(observation: &Observation, violations: &mut Vec<Violation>) {
    let bound = observation.idle_timeout + TIMEOUT_MARGIN;
    for participant in &observation.participants {
        let Some(exit) = participant.exit.as_deref() else {
            violations.push(Violation {
                invariant: "expected-exit",
                detail: format!("{}'s session never ended", participant.name),
            });
            continue;
        };
        let detail = match participant.expected_exit {
            ExpectedExit::Stopped if exit != STOPPED_EXIT => Some(format!(
                "{}'s session ended with \"{exit}\", expected \"{STOPPED_EXIT}\"",
                participant.name
            )),
            ExpectedExit::Stopped => None,
            ExpectedExit::ConnectionLost if !exit.starts_with(CONNECTION_LOST_EXIT) => {
                Some(format!(
                    "{}'s session ended with \"{exit}\", expected a lost connection",
                    participant.name
                ))
            }
            ExpectedExit::ConnectionLost => {
                let fault = lost_at(observation, participant);
                let bound = if restarted_under(observation, participant) {
                    RESTART_NOTICE
                } else {
                    bound
                };
                match (fault, participant.exit_at) {
                    (Some(fault), Some(at)) if at > fault + bound => Some(format!(
                        "{} noticed the lost connection only at {}, {} s after the fault (bound {} s)",
                        participant.name,
                        format_sim_time(at),
                        (at - fault).as_secs_f32(),
                        bound.as_secs_f32()
                    )),
                    _ => None,
                }
            }
        };
        if let Some(detail) = detail {
            violations.push(Violation {
                invariant: "expected-exit",
                detail,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(level_dbfs: f32, floor_dbfs: f32) -> ToneWindow {
        ToneWindow {
            start: Duration::ZERO,
            levels_dbfs: vec![level_dbfs],
            floors_dbfs: vec![floor_dbfs],
        }
    }

    #[test]
    fn tone_above_its_floor_is_heard() {
        assert!(heard_where_absent(&window(-20.0, -60.0), 0, ABSENT_DBFS));
        assert!(heard_where_absent(&window(-35.0, -45.0), 0, ABSENT_DBFS));
    }

    #[test]
    fn tone_within_distortion_is_not_heard() {
        // Concealment distortion measured in a `host-churn` run: the absent
        // tone at -30.7 dBFS, 3.4 dB below the floor beside it.
        assert!(!heard_where_absent(&window(-30.7, -27.3), 0, ABSENT_DBFS));
        assert!(!heard_where_absent(&window(-30.0, -39.0), 0, ABSENT_DBFS));
    }

    #[test]
    fn quiet_tone_is_not_heard() {
        assert!(!heard_where_absent(&window(-36.0, -90.0), 0, ABSENT_DBFS));
        assert!(!heard_where_absent(&window(-31.0, -90.0), 0, PRESENT_DBFS));
    }
}
