//! Scenarios: who joins, over what network, which faults are injected and
//! when, and what the invariants may expect.
//!
//! A [`Scenario`] is data plus a body. The data configures turmoil for a
//! seed ([`Scenario::turmoil_builder`]) and the participants' hosts; the
//! body drives the simulation through a [`Conference`], injecting faults
//! between steps. Every fault the body injects is recorded with its
//! simulated time, so the invariants know which spans to judge differently.

use std::fmt;
use std::time::Duration;

use super::trace::{format_sim_time, Recorder};
use super::world::{self, SERVER_HOST};

/// How long each datagram takes to cross a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Every datagram takes exactly this long, so none are reordered.
    Fixed(Duration),
    /// Each datagram's latency is drawn independently between `min` and
    /// `max` (turmoil's exponential curve, mean near `min + (max - min) / 5`),
    /// so a datagram can overtake one sent a few milliseconds before it.
    Reordering { min: Duration, max: Duration },
}

/// The simulated network's behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkConfig {
    pub latency: Latency,
    /// The probability, from 0 to 1, that each datagram is lost,
    /// independently of every other. Applied by each host's sending socket.
    pub loss: f64,
    /// turmoil's own `fail_rate`: the probability, per datagram sent, that
    /// the link breaks, dropping that datagram and every other one then in
    /// flight on the link in both directions. It models bursts, not
    /// independent loss, so the built-in scenarios leave it at 0.
    pub link_fail_rate: f64,
}

/// One participant: a client host that joins the room and sends a tone.
#[derive(Clone, Debug, PartialEq)]
pub struct Participant {
    /// The display name, also the turmoil host name.
    pub name: &'static str,
    /// The frequency of the sine it sends, in Hz.
    pub tone_hz: f32,
    /// When its client starts connecting, in simulated time.
    pub joins_at: Duration,
}

/// The audio quality a scenario's invariants expect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expectations {
    /// From when every participant must hear every other one.
    pub settled_from: Duration,
    /// The fraction of settled 100 ms windows in which each other
    /// participant's tone must be present.
    pub min_heard_fraction: f32,
    /// How long after a repaired partition audio must flow again both ways.
    pub recovery_bound: Duration,
}

/// A fault a scenario body injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every datagram between the server and the participant is dropped.
    Partition { participant: String },
    /// The link between the server and the participant works again.
    Repair { participant: String },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { participant } => {
                write!(f, "partition {SERVER_HOST} <-> {participant}")
            }
            Fault::Repair { participant } => write!(f, "repair {SERVER_HOST} <-> {participant}"),
        }
    }
}

/// A fault and the simulated time it was injected at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    pub at: Duration,
    pub fault: Fault,
}

/// A failure of the simulation itself: turmoil reported an error from a
/// host's software, or the run did not finish in time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

/// A running simulation, as a scenario body drives it.
pub struct Conference<'a> {
    sim: ::turmoil::Sim<'a>,
    recorder: Recorder,
    faults: Vec<FaultRecord>,
}

impl<'a> Conference<'a> {
    pub(crate) fn new(sim: ::turmoil::Sim<'a>, recorder: Recorder) -> Conference<'a> {
        Conference {
            sim,
            recorder,
            faults: Vec::new(),
        }
    }

    /// Returns the simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// Steps the simulation until its clock reads `at`, or until every host
    /// has finished.
    pub fn run_until(&mut self, at: Duration) -> Result<(), RunError> {
        while self.sim.elapsed() < at {
            let finished = self
                .sim
                .step()
                .map_err(|error| RunError(error.to_string()))?;
            if finished {
                break;
            }
        }
        Ok(())
    }

    /// Steps the simulation until every host has finished.
    pub fn run_to_end(&mut self) -> Result<(), RunError> {
        self.sim.run().map_err(|error| RunError(error.to_string()))
    }

    /// Cuts the link between the server and `participant` in both
    /// directions; datagrams in flight on it are lost.
    pub fn partition(&mut self, participant: &str) {
        self.sim.partition(SERVER_HOST, participant);
        self.record(Fault::Partition {
            participant: participant.to_owned(),
        });
    }

    /// Restores the link between the server and `participant`.
    pub fn repair(&mut self, participant: &str) {
        self.sim.repair(SERVER_HOST, participant);
        self.record(Fault::Repair {
            participant: participant.to_owned(),
        });
    }

    fn record(&mut self, fault: Fault) {
        let at = self.sim.elapsed();
        self.recorder.line_at(at, "network", fault.to_string());
        self.faults.push(FaultRecord { at, fault });
    }

    pub(crate) fn into_faults(self) -> Vec<FaultRecord> {
        self.faults
    }
}

/// Drives a simulation from start to end, injecting the scenario's faults.
pub type ScenarioBody = fn(&mut Conference<'_>) -> Result<(), RunError>;

/// A named, seeded conference with its network, participants and faults.
#[derive(Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// One line on what it exercises.
    pub summary: &'static str,
    pub network: NetworkConfig,
    pub participants: Vec<Participant>,
    /// When every participant leaves, in simulated time. The server shuts
    /// down [`world::SERVER_GRACE`] later.
    pub leave_at: Duration,
    pub expectations: Expectations,
    pub body: ScenarioBody,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("network", &self.network)
            .field("participants", &self.participants)
            .field("leave_at", &self.leave_at)
            .field("expectations", &self.expectations)
            .finish_non_exhaustive()
    }
}

impl Scenario {
    /// Returns a turmoil builder configured for this scenario and `seed`.
    pub fn turmoil_builder(&self, seed: u64) -> ::turmoil::Builder {
        world::turmoil_builder(self, seed)
    }

    /// Returns the participant called `name`.
    pub fn participant(&self, name: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.name == name)
    }
}

/// Three participants joining 200 ms apart, with tones well apart in
/// frequency.
fn three_participants() -> Vec<Participant> {
    [("alice", 500.0), ("bob", 800.0), ("carol", 1300.0)]
        .into_iter()
        .enumerate()
        .map(|(index, (name, tone_hz))| Participant {
            name,
            tone_hz,
            joins_at: Duration::from_millis(200 * (index as u64 + 1)),
        })
        .collect()
}

fn run_without_faults(conference: &mut Conference<'_>) -> Result<(), RunError> {
    conference.run_to_end()
}

/// The participant cut off in the `partition` scenario, and when.
const PARTITIONED: &str = "alice";
const PARTITION_AT: Duration = Duration::from_secs(3);
const REPAIR_AT: Duration = Duration::from_secs(6);

fn partition_one_client(conference: &mut Conference<'_>) -> Result<(), RunError> {
    conference.run_until(PARTITION_AT)?;
    // Models alice's access link going down (a Wi-Fi drop) for 3 s: shorter
    // than QUIC's 30 s idle timeout, so the connection should survive it.
    conference.partition(PARTITIONED);
    conference.run_until(REPAIR_AT)?;
    conference.repair(PARTITIONED);
    conference.run_to_end()
}

/// Three clients on a clean 10 ms network for 10 simulated seconds.
pub fn clean() -> Scenario {
    Scenario {
        name: "clean",
        summary: "three clients on a clean 10 ms network for 10 simulated seconds",
        network: NetworkConfig {
            latency: Latency::Fixed(Duration::from_millis(10)),
            loss: 0.0,
            link_fail_rate: 0.0,
        },
        participants: three_participants(),
        leave_at: Duration::from_secs(10),
        expectations: Expectations {
            settled_from: Duration::from_secs(2),
            min_heard_fraction: 0.95,
            recovery_bound: Duration::ZERO,
        },
        body: run_without_faults,
    }
}

/// Three clients with 5 % independent loss and 20 to 80 ms of reordering
/// latency.
pub fn lossy() -> Scenario {
    Scenario {
        name: "lossy",
        summary: "three clients, 5 % random loss, 20-80 ms latency with reordering",
        network: NetworkConfig {
            latency: Latency::Reordering {
                min: Duration::from_millis(20),
                max: Duration::from_millis(80),
            },
            loss: 0.05,
            link_fail_rate: 0.0,
        },
        participants: three_participants(),
        leave_at: Duration::from_secs(10),
        expectations: Expectations {
            settled_from: Duration::from_secs(3),
            min_heard_fraction: 0.8,
            recovery_bound: Duration::ZERO,
        },
        body: run_without_faults,
    }
}

/// Three clients; alice is cut off from the server for 3 s and must hear
/// and be heard again soon after the link is repaired.
pub fn partition() -> Scenario {
    Scenario {
        name: "partition",
        summary: "alice is partitioned from the server from 3 s to 6 s, then must resume audio",
        network: NetworkConfig {
            latency: Latency::Reordering {
                min: Duration::from_millis(5),
                max: Duration::from_millis(25),
            },
            loss: 0.0,
            link_fail_rate: 0.0,
        },
        participants: three_participants(),
        leave_at: Duration::from_secs(14),
        expectations: Expectations {
            settled_from: Duration::from_secs(2),
            min_heard_fraction: 0.95,
            // Measured over seeds 1 to 8: 0.4 s to 4.8 s. After 3 s without
            // acknowledgements quinn's probe timeout has backed off to
            // seconds, and datagrams wait for the congestion window until a
            // probe is acknowledged. Exponential backoff bounds that wait
            // near the outage's own length, so the bound is twice the
            // outage.
            recovery_bound: Duration::from_secs(6),
        },
        body: partition_one_client,
    }
}

/// Returns every built-in scenario, in the order `sim list` prints them.
pub fn all() -> Vec<Scenario> {
    vec![clean(), lossy(), partition()]
}

/// Returns the built-in scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|scenario| scenario.name == name)
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.fault, format_sim_time(self.at))
    }
}
