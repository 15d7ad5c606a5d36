//! Deterministic network simulation: whole conferences, with io-quic's
//! production server and clients, real quinn and the real core, run inside
//! turmoil hosts over simulated UDP in simulated time.
//!
//! - [`socket`] and [`runtime`] let quinn run inside a turmoil host:
//!   [`SimUdpSocket`] implements quinn's `AsyncUdpSocket` over
//!   `turmoil::net::UdpSocket`, and [`SimRuntime`] gives quinn the host's
//!   tokio timers, spawn and clock, which turmoil advances.
//! - [`world`] puts io-quic's `QuicServer` on a `server` host and
//!   `run_client_on` on one host per participant, each sending a tone.
//! - [`scenario`] describes conferences and the faults injected into them,
//!   [`catalog`] contains the built-in ones and [`link_faults`] the loss and
//!   duplication each socket applies. [`invariants`] judges what happened
//!   from decoded audio ([`tones`], and the markers of [`marked_tone`]
//!   for [`delay`]), from the rosters each side reported ([`roster`],
//!   [`divergence`]) and from the server's log ([`server_state`]).
//! - [`trace`] records a simulated-time-stamped event trace whose hash is
//!   the same every time a scenario runs with the same seed.
//!
//! # Determinism
//!
//! turmoil runs every host on one thread, in a fixed order, on tokio
//! runtimes with paused clocks. Every random choice the simulation makes
//! is seeded from the run's seed (see [`world`]); the server's key is
//! derived from it too ([`identity`]). What stays random is of no
//! consequence to the trace: TLS randoms, ephemeral key shares, connection
//! ids and tokens come from the operating system, but always have the same
//! sizes.
//!
//! One gap is known. `tokio::select!` without `biased;` starts polling at a
//! branch drawn from a per-runtime RNG that turmoil can seed only when
//! tokio is built with `--cfg tokio_unstable`. io-quic's server has one such
//! `select!` (reading a connection's stream and datagrams), so a stream
//! chunk and a datagram of the same connection that are both ready in the
//! same poll may reach the core in either order. Neither the trace nor the
//! invariants depend on that order; `sim_determinism` checks that the
//! trace hash repeats.

pub mod catalog;
pub mod delay;
pub mod divergence;
pub mod identity;
pub mod invariants;
pub mod link_faults;
pub mod marked_tone;
pub mod roster;
pub mod runtime;
pub mod scenario;
pub mod server_state;
pub mod socket;
pub mod tones;
pub mod trace;
pub mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

pub use invariants::{Observation, ParticipantReport, Violation};
pub use runtime::SimRuntime;
pub use scenario::{Conference, Scenario};
pub use socket::SimUdpSocket;

use crate::memory::MemorySink;
use delay::{measure_markers, FrameLevels, MarkerDelay};
use invariants::{heard_fraction, judged_delays, outages};
use link_faults::LossModel;
use roster::{server_rosters, ClientView};
use scenario::{Fault, Latency};
use trace::{format_sim_time, hash_trace, Recorder, ServerLogCapture};

/// Returns the command that reruns `scenario` with `seed`.
pub fn reproduce_command(scenario: &str, seed: u64) -> String {
    format!("cargo run -p voicemcu -- sim run {scenario} --seed {seed}")
}

fn list_violations(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|violation| format!("  - {violation}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An error from running a scenario: unknown, failed to run, or broken.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown scenario {name:?}; the scenarios are: {known}")]
    UnknownScenario { name: String, known: String },

    #[error(
        "scenario {scenario} with seed {seed} could not run: {reason}\nreproduce: {}",
        reproduce_command(.scenario, *.seed)
    )]
    Failed {
        scenario: String,
        seed: u64,
        reason: String,
    },

    #[error(
        "scenario {scenario} with seed {seed} broke {} invariant(s):\n{}\nreproduce: {}",
        .violations.len(),
        list_violations(.violations),
        reproduce_command(.scenario, *.seed)
    )]
    InvariantsBroken {
        scenario: String,
        seed: u64,
        violations: Vec<Violation>,
        /// The whole run, for its trace and summary.
        outcome: Box<ScenarioOutcome>,
    },
}

/// The result of one run of a scenario.
#[derive(Clone, Debug)]
pub struct ScenarioOutcome {
    pub scenario: String,
    pub seed: u64,
    /// The event trace, one line per event, in simulated-time order.
    pub trace: Vec<String>,
    /// SHA-256 of the trace, in hex.
    pub trace_hash: String,
    /// Simulated time from the start to the last host's end.
    pub simulated: Duration,
    /// A few lines on what happened: who heard whom, rosters, recovery.
    pub summary: String,
    pub observation: Observation,
}

/// Returns the names of the built-in scenarios.
pub fn list_scenarios() -> Vec<&'static str> {
    catalog::all()
        .iter()
        .map(|scenario| scenario.name)
        .collect()
}

/// Returns the name and one-line summary of every built-in scenario.
pub fn describe_scenarios() -> Vec<(&'static str, &'static str)> {
    catalog::all()
        .iter()
        .map(|scenario| (scenario.name, scenario.summary))
        .collect()
}

/// Returns the names of the built-in scenarios that take seconds per run
/// and should pass, which `sim soak` runs when no scenario is named.
pub fn soak_scenarios() -> Vec<&'static str> {
    catalog::all()
        .iter()
        .filter(|scenario| !scenario.long && !scenario.fails_on_purpose)
        .map(|scenario| scenario.name)
        .collect()
}

/// Runs the built-in scenario `name` with `seed` and checks its
/// invariants. A broken invariant is an error whose message names the seed
/// and the command that reproduces it.
pub fn run_scenario(name: &str, seed: u64) -> Result<ScenarioOutcome, SimError> {
    let scenario = catalog::find(name).ok_or_else(|| SimError::UnknownScenario {
        name: name.to_owned(),
        known: list_scenarios().join(", "),
    })?;
    let outcome = run_on_own_thread(scenario, seed)?;
    check_outcome(&outcome)?;
    Ok(outcome)
}

/// Checks the invariants against `outcome`'s observation.
pub fn check_outcome(outcome: &ScenarioOutcome) -> Result<(), SimError> {
    let violations = invariants::check(&outcome.observation);
    if violations.is_empty() {
        return Ok(());
    }
    Err(SimError::InvariantsBroken {
        scenario: outcome.scenario.clone(),
        seed: outcome.seed,
        violations,
        outcome: Box::new(outcome.clone()),
    })
}

/// Runs `scenario` on a new thread. turmoil builds tokio runtimes of its
/// own, which tokio forbids inside another runtime, and the log capture is
/// installed per thread. A fresh thread is free of both.
fn run_on_own_thread(scenario: Scenario, seed: u64) -> Result<ScenarioOutcome, SimError> {
    let name = scenario.name;
    let failed = |reason: String| SimError::Failed {
        scenario: name.to_owned(),
        seed,
        reason,
    };
    let thread = std::thread::Builder::new()
        .name(format!("sim-{name}-{seed}"))
        .spawn(move || simulate(&scenario, seed))
        .map_err(|error| failed(format!("failed to start the simulation thread: {error}")))?;
    match thread.join() {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "no message".to_owned());
            Err(failed(format!("the simulation panicked: {message}")))
        }
    }
}

/// Runs `scenario` with `seed` on the current thread, which must not be
/// inside a tokio runtime, and returns what happened without judging it.
pub fn simulate(scenario: &Scenario, seed: u64) -> Result<ScenarioOutcome, SimError> {
    let failed = |reason: String| SimError::Failed {
        scenario: scenario.name.to_owned(),
        seed,
        reason,
    };

    let identity = identity::seeded_identity(world::derive_seed(seed, "identity"))
        .map_err(|error| failed(error.to_string()))?;
    let recorder = Recorder::default();
    let sinks: Vec<MemorySink> = scenario
        .participants
        .iter()
        .map(|_| MemorySink::new())
        .collect();

    let capture = ServerLogCapture::new(recorder.clone());
    let (faults, simulated) = tracing::subscriber::with_default(capture, || {
        let mut sim = scenario.turmoil_builder(seed).build();
        world::populate(&mut sim, scenario, seed, identity, &recorder, &sinks);
        let mut conference = Conference::new(sim, recorder.clone());
        (scenario.body)(&mut conference)?;
        let simulated = conference.elapsed();
        Ok((conference.into_faults(), simulated))
    })
    .map_err(|error: scenario::RunError| failed(error.0))?;

    let records = recorder.take();
    let observation = observe(scenario, &records, &sinks, faults);

    let mut trace_lines = records.trace;
    trace_lines.sort_by_key(|line| line.at);
    let trace: Vec<String> = trace_lines.iter().map(ToString::to_string).collect();
    let trace_hash = hash_trace(&trace);

    let mut outcome = ScenarioOutcome {
        scenario: scenario.name.to_owned(),
        seed,
        trace,
        trace_hash,
        simulated,
        summary: String::new(),
        observation,
    };
    outcome.summary = summarize(scenario, &outcome);
    Ok(outcome)
}

/// Builds the observation the invariants judge from the run's records.
fn observe(
    scenario: &Scenario,
    records: &trace::Records,
    sinks: &[MemorySink],
    faults: Vec<scenario::FaultRecord>,
) -> Observation {
    let leave_at = scenario.leave_at;
    let restart_times: Vec<Duration> = faults
        .iter()
        .filter(|record| record.fault == Fault::ServerRestart)
        .map(|record| record.at)
        .collect();
    let started_at = restart_times
        .iter()
        .copied()
        .filter(|at| *at < leave_at)
        .max()
        .unwrap_or_default();
    let server_facts: Vec<(Duration, roster::ServerFact)> = records
        .server_log
        .iter()
        .filter_map(|entry| roster::parse_server_fact(&entry.message).map(|fact| (entry.at, fact)))
        .collect();
    let current_facts: Vec<(Duration, roster::ServerFact)> = server_facts
        .iter()
        .filter(|(at, _)| *at >= started_at)
        .cloned()
        .collect();
    let server_rooms = server_rosters(
        current_facts
            .iter()
            .filter(|(at, _)| *at < leave_at)
            .map(|(_, fact)| fact),
    );
    let server_counts = server_state::count(&records.server_log, started_at, leave_at);

    let frequencies: Vec<f32> = scenario.participants.iter().map(|p| p.tone_hz).collect();
    let no_events = Vec::new();
    let no_times = Vec::new();
    let mut delays: Vec<MarkerDelay> = Vec::new();
    // Up to 200 ms before the next marker, so a missed marker is never
    // matched with the next one's dip.
    let search = Duration::from_millis(20 * marked_tone::MARKER_PERIOD_FRAMES - 200);
    let participants = scenario
        .participants
        .iter()
        .zip(sinks)
        .enumerate()
        .map(|(listener, (participant, sink))| {
            let events = records
                .client_events
                .get(participant.name)
                .unwrap_or(&no_events);
            let view = ClientView::from_events(
                events
                    .iter()
                    .filter(|(at, _)| *at < leave_at)
                    .map(|(_, event)| event),
            );
            let frame_times = records
                .frame_times
                .get(participant.name)
                .unwrap_or(&no_times);
            let samples = sink.samples();

            for (speaker, other) in scenario.participants.iter().enumerate() {
                if speaker == listener {
                    continue;
                }
                let sent = records.markers.get(other.name).unwrap_or(&no_times);
                let levels = FrameLevels::measure(&samples, frame_times, other.tone_hz);
                delays.extend(measure_markers(listener, speaker, &levels, sent, search));
            }

            let (exit_at, exit) = match records.exits.get(participant.name) {
                Some((at, exit)) => (Some(*at), Some(exit.clone())),
                None => (None, None),
            };
            // The roster is compared with the server instance the client
            // joined, until the client leaves or loses it.
            let instance_start = restart_times
                .iter()
                .copied()
                .filter(|at| *at <= participant.joins_at)
                .max()
                .unwrap_or_default();
            let lost_at = faults
                .iter()
                .filter(|record| record.at > participant.joins_at)
                .find(|record| match &record.fault {
                    Fault::Vanish { participant: name } => name == participant.name,
                    Fault::ServerRestart => true,
                    _ => false,
                })
                .map(|record| record.at);
            let session_end = participant
                .leaves_at
                .unwrap_or(leave_at)
                .min(leave_at)
                .min(lost_at.unwrap_or(Duration::MAX));
            let instance_facts: Vec<(Duration, roster::ServerFact)> = server_facts
                .iter()
                .filter(|(at, _)| *at >= instance_start)
                .cloned()
                .collect();
            let joined_at = events
                .iter()
                .find(|(_, event)| {
                    matches!(event, voicemcu_core::client::ClientEvent::Joined { .. })
                })
                .map_or(participant.joins_at, |(at, _)| *at);
            ParticipantReport {
                name: participant.name.to_owned(),
                tone_hz: participant.tone_hz,
                joins_at: participant.joins_at,
                leaves_at: participant.leaves_at,
                dialect: participant.dialect,
                expected_exit: participant.expected_exit,
                silent: participant.silent.clone(),
                rebinds_at: participant.rebinds_at,
                sequence_restarts: participant.sequence_restarts.clone(),
                clock_skew_ppm: participant.clock_skew_ppm,
                server_resyncs: server_resyncs(records, &server_facts, participant.name),
                view,
                exit,
                exit_at,
                divergence: divergence::measure(&instance_facts, events, joined_at, session_end),
                windows: tones::measure_windows(&samples, frame_times, &frequencies),
            }
        })
        .collect();

    Observation {
        participants,
        server_rooms,
        server_facts,
        server_counts,
        leave_at,
        faults,
        expectations: scenario.expectations,
        idle_timeout: scenario
            .server_idle_timeout
            .min(voicemcu_quic::endpoint::IDLE_TIMEOUT),
        delays,
    }
}

/// Returns when the server's mixer resynchronised on a new sequence from
/// the participant called `name`, under any of its client ids.
fn server_resyncs(
    records: &trace::Records,
    server_facts: &[(Duration, roster::ServerFact)],
    name: &str,
) -> Vec<Duration> {
    let ids: Vec<String> = server_facts
        .iter()
        .filter_map(|(_, fact)| match fact {
            roster::ServerFact::Joined {
                client, name: who, ..
            } if who == name => Some(client.to_string()),
            _ => None,
        })
        .collect();
    records
        .server_log
        .iter()
        .filter(|entry| entry.message == voicemcu_core::mixer::RESYNC_MESSAGE)
        .filter(|entry| {
            entry
                .fields
                .iter()
                .any(|(field, value)| field == "member" && ids.contains(value))
        })
        .map(|entry| entry.at)
        .collect()
}

fn describe_network(scenario: &Scenario) -> String {
    let latency = match scenario.network.latency {
        Latency::Fixed(latency) => format!("fixed {} ms latency", latency.as_millis()),
        Latency::Reordering { min, max } => format!(
            "{}-{} ms latency with reordering",
            min.as_millis(),
            max.as_millis()
        ),
    };
    let loss = match scenario.network.loss {
        LossModel::None => "no loss".to_owned(),
        LossModel::Independent(probability) => format!("{:.0} % random loss", probability * 100.0),
        LossModel::Bursty(model) => format!(
            "{:.1} % bursty loss (mean bad run {:.1} datagrams)",
            model.mean_loss() * 100.0,
            model.mean_bad_run()
        ),
    };
    let duplicate = if scenario.network.duplicate > 0.0 {
        format!(", {:.0} % duplicated", scenario.network.duplicate * 100.0)
    } else {
        String::new()
    };
    format!("{latency}, {loss}{duplicate}")
}

/// Writes the outcome's summary: settings, who heard whom, the loudest
/// own tone, recovery after each partition and the server's roster.
fn summarize(scenario: &Scenario, outcome: &ScenarioOutcome) -> String {
    let observation = &outcome.observation;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "scenario {}, seed {}: {}",
        outcome.scenario, outcome.seed, scenario.summary
    );
    let _ = writeln!(
        text,
        "network: {}; {} participants; {} simulated",
        describe_network(scenario),
        observation.participants.len(),
        format_sim_time(outcome.simulated)
    );
    let _ = writeln!(
        text,
        "trace: {} lines, sha256 {}",
        outcome.trace.len(),
        outcome.trace_hash
    );

    for (l, listener) in observation.participants.iter().enumerate() {
        let heard: Vec<String> = observation
            .participants
            .iter()
            .enumerate()
            .filter(|(s, _)| *s != l)
            .map(|(s, speaker)| {
                let (fraction, judged) = heard_fraction(observation, l, s);
                format!("{} {:.0} % of {judged}", speaker.name, fraction * 100.0)
            })
            .collect();
        let own_loudest = listener
            .windows
            .iter()
            .max_by(|a, b| a.levels_dbfs[l].total_cmp(&b.levels_dbfs[l]))
            .map_or("no playback".to_owned(), |window| {
                format!(
                    "{:.1} dBFS, {:.1} dB above the distortion floor beside it",
                    window.levels_dbfs[l],
                    window.above_floor_db(l)
                )
            });
        let clock = match listener.clock_skew_ppm {
            0 => String::new(),
            ppm => format!("; audio clock {:+.2} %", f64::from(ppm) / 10_000.0),
        };
        let _ = writeln!(
            text,
            "{} heard {}; own tone at most {own_loudest}{clock}",
            listener.name,
            heard.join(", ")
        );
    }

    write_delays(&mut text, observation);
    write_recoveries(&mut text, observation);
    write_divergence(&mut text, observation);
    let counts = &observation.server_counts;
    let _ = writeln!(
        text,
        "server state before leaving: connections {}, rooms {}, mixer members {}; after: {}, {}, {}",
        counts.at_leave.connections,
        counts.at_leave.rooms,
        counts.at_leave.mixer_members,
        counts.at_end.connections,
        counts.at_end.rooms,
        counts.at_end.mixer_members
    );
    for participant in &observation.participants {
        if let (Some(exit), Some(at)) = (&participant.exit, participant.exit_at) {
            if exit != invariants::STOPPED_EXIT {
                let _ = writeln!(
                    text,
                    "{} ended at {}: {exit}",
                    participant.name,
                    format_sim_time(at)
                );
            }
        }
    }

    let rooms: BTreeMap<_, _> = observation.server_rooms.iter().collect();
    for (room, roster) in rooms {
        let _ = writeln!(text, "server roster of {room:?}: {roster}");
    }
    let violations = invariants::check(observation);
    if violations.is_empty() {
        let _ = write!(text, "invariants: all held");
    } else {
        let _ = write!(
            text,
            "invariants: {} broken\n{}",
            violations.len(),
            list_violations(&violations)
        );
    }
    text
}

/// Writes the median and largest judged mouth-to-ear delay.
fn write_delays(text: &mut String, observation: &Observation) {
    let outages = outages(observation);
    let judged = judged_delays(observation, &outages);
    let missed = judged
        .iter()
        .filter(|marker| marker.heard.is_none())
        .count();
    let mut delays: Vec<Duration> = judged.iter().filter_map(|marker| marker.delay()).collect();
    delays.sort();
    let slowest = judged
        .iter()
        .filter(|marker| marker.delay().is_some())
        .max_by_key(|marker| marker.delay());
    let (Some(median), Some(largest)) = (delays.get(delays.len() / 2), delays.last()) else {
        let _ = writeln!(text, "mouth-to-ear delay: no markers judged");
        return;
    };
    let slowest = slowest.map_or(String::new(), |marker| {
        format!(
            ", {} hearing {} at {}",
            observation.participants[marker.listener].name,
            observation.participants[marker.speaker].name,
            format_sim_time(marker.sent)
        )
    });
    let _ = writeln!(
        text,
        "mouth-to-ear delay over {} markers ({missed} not found): median {} ms, max {} ms{slowest} (ceiling {} ms, judged on late markers in a row)",
        delays.len(),
        median.as_millis(),
        largest.as_millis(),
        observation.expectations.max_delay.as_millis()
    );
}

/// Writes, for each outage that ends, how soon audio came back. For a span
/// (a partition, a silence, a mute) that is the time from its end until
/// the tone is heard again. For an instant (a port move, a sequence
/// restart) it is the longest run of windows without the tone around it.
/// Both are the worst over the affected pairs still present afterwards.
fn write_recoveries(text: &mut String, observation: &Observation) {
    let bound = observation.expectations.recovery_bound;
    for outage in outages(observation) {
        let Some(ended) = outage.until else {
            continue;
        };
        if outage.kind.recovery_invariant().is_none() {
            continue;
        }

        let look_until = ended + bound + Duration::from_secs(1);
        let mut worst: Option<(Duration, usize, usize)> = None;
        for (listener, speaker) in invariants::affected_pairs(observation, &outage) {
            let (_, listener_until) = invariants::presence(observation, listener);
            let (_, speaker_until) = invariants::presence(observation, speaker);
            if look_until > listener_until.min(speaker_until) {
                continue;
            }
            let took = if outage.from == ended {
                longest_gap(observation, listener, speaker, outage.from, look_until)
            } else {
                invariants::resumed_at(observation, listener, speaker, ended)
                    .map_or(look_until - ended, |at| at.saturating_sub(ended))
            };
            if worst.is_none_or(|(most, _, _)| took > most) {
                worst = Some((took, listener, speaker));
            }
        }

        let Some((took, listener, speaker)) = worst else {
            continue;
        };
        let measure = if outage.from == ended {
            "longest gap"
        } else {
            "heard again after"
        };
        let _ = writeln!(
            text,
            "{} at {}: {measure} {} ms, {} hearing {} (bound {} ms)",
            outage.subject,
            format_sim_time(outage.from),
            took.as_millis(),
            observation.participants[listener].name,
            observation.participants[speaker].name,
            bound.as_millis()
        );
    }
}

/// Returns the longest run of windows from `from` until `until` in which
/// `listener` did not hear `speaker`.
fn longest_gap(
    observation: &Observation,
    listener: usize,
    speaker: usize,
    from: Duration,
    until: Duration,
) -> Duration {
    let window_length = Duration::from_millis(20 * tones::WINDOW_FRAMES as u64);
    let mut longest = Duration::ZERO;
    let mut run = Duration::ZERO;
    for window in &observation.participants[listener].windows {
        if window.start < from || window.start >= until {
            continue;
        }
        if window.levels_dbfs[speaker] < invariants::PRESENT_DBFS {
            run += window_length;
            longest = longest.max(run);
        } else {
            run = Duration::ZERO;
        }
    }
    longest
}

/// Writes how long each client's roster differed from the server's.
fn write_divergence(text: &mut String, observation: &Observation) {
    for participant in &observation.participants {
        let divergence = &participant.divergence;
        if divergence.episodes == 0 {
            continue;
        }
        let _ = writeln!(
            text,
            "{}'s roster ({:?} dialect) differed from the server's in {} episode(s), {} of them for {} ms or more, {} ms in all, longest {} ms{}",
            participant.name,
            participant.dialect,
            divergence.episodes,
            divergence.lasting,
            divergence::LASTING.as_millis(),
            divergence.total.as_millis(),
            divergence.longest.as_millis(),
            if divergence.at_end { ", still at the end" } else { "" }
        );
    }
}
