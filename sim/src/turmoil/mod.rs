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
//! - [`scenario`] describes conferences and the faults injected into them;
//!   [`invariants`] judges what happened from decoded audio ([`tones`])
//!   and from the rosters each side reported ([`roster`]).
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

pub mod identity;
pub mod invariants;
pub mod roster;
pub mod runtime;
pub mod scenario;
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
use invariants::{heard_fraction, partition_spans, resumed_at};
use roster::{server_rosters, ClientView};
use scenario::Latency;
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
    scenario::all()
        .iter()
        .map(|scenario| scenario.name)
        .collect()
}

/// Runs the built-in scenario `name` with `seed` and checks its
/// invariants. A broken invariant is an error whose message names the seed
/// and the command that reproduces it.
pub fn run_scenario(name: &str, seed: u64) -> Result<ScenarioOutcome, SimError> {
    let scenario = scenario::find(name).ok_or_else(|| SimError::UnknownScenario {
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
    let facts: Vec<_> = records
        .server_log
        .iter()
        .filter(|entry| entry.at < leave_at)
        .filter_map(|entry| roster::parse_server_fact(&entry.message))
        .collect();
    let server_rooms = server_rosters(&facts);

    let frequencies: Vec<f32> = scenario.participants.iter().map(|p| p.tone_hz).collect();
    let no_events = Vec::new();
    let no_times = Vec::new();
    let participants = scenario
        .participants
        .iter()
        .zip(sinks)
        .map(|(participant, sink)| {
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
            ParticipantReport {
                name: participant.name.to_owned(),
                tone_hz: participant.tone_hz,
                view,
                exit: records.exits.get(participant.name).cloned(),
                windows: tones::measure_windows(&sink.samples(), frame_times, &frequencies),
            }
        })
        .collect();

    Observation {
        participants,
        server_rooms,
        leave_at,
        faults,
        expectations: scenario.expectations,
    }
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
    format!("{latency}, {:.0} % loss", scenario.network.loss * 100.0)
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
            .map(|window| window.levels_dbfs[l])
            .fold(tones::FLOOR_DBFS, f32::max);
        let _ = writeln!(
            text,
            "{} heard {}; own tone at most {own_loudest:.1} dBFS",
            listener.name,
            heard.join(", ")
        );
    }

    for span in partition_spans(&observation.faults) {
        let Some(repaired) = span.until else {
            continue;
        };
        let Some(cut) = observation
            .participants
            .iter()
            .position(|p| p.name == span.participant)
        else {
            continue;
        };
        let mut slowest: Option<Duration> = None;
        let mut all_resumed = true;
        for other in (0..observation.participants.len()).filter(|other| *other != cut) {
            for (listener, speaker) in [(cut, other), (other, cut)] {
                match resumed_at(observation, listener, speaker, repaired) {
                    Some(at) => {
                        let delay = at.saturating_sub(repaired);
                        slowest = Some(slowest.map_or(delay, |s| s.max(delay)));
                    }
                    None => all_resumed = false,
                }
            }
        }
        let recovery = match (all_resumed, slowest) {
            (true, Some(delay)) => format!("audio flowed both ways again {delay:?} after repair"),
            _ => "audio did not resume both ways".to_owned(),
        };
        let _ = writeln!(
            text,
            "partition of {} from {} to {}: {recovery}",
            span.participant,
            format_sim_time(span.from),
            format_sim_time(repaired)
        );
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
