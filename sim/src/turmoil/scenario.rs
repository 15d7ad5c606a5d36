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

use voicemcu_quic::DialectChoice;

use super::link_faults::{LossModel, SendFaults};
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
    /// How datagrams are lost. Applied by each host's sending socket.
    pub loss: LossModel,
    /// The probability, from 0 to 1, that a datagram is delivered twice.
    /// Applied by each host's sending socket.
    pub duplicate: f64,
    /// turmoil's own `fail_rate`: the probability, per datagram sent, that
    /// the link breaks, dropping that datagram and every other one then in
    /// flight on the link in both directions. It models bursts, not
    /// independent loss, so the built-in scenarios leave it at 0.
    pub link_fail_rate: f64,
}

impl NetworkConfig {
    /// Returns the faults each host's socket applies to what it sends.
    pub fn send_faults(&self) -> SendFaults {
        SendFaults {
            loss: self.loss,
            duplicate: self.duplicate,
        }
    }
}

/// How a participant's session must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedExit {
    /// The scenario stops it and it leaves the room.
    Stopped,
    /// It loses its connection (its link is cut, or the server restarts).
    ConnectionLost,
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
    /// When it leaves, or `None` to stay until the scenario's `leave_at`.
    pub leaves_at: Option<Duration>,
    /// The dialect its client offers.
    pub dialect: DialectChoice,
    /// Lines it types, such as `/block bob`, with the simulated time of
    /// each.
    pub commands: Vec<(Duration, &'static str)>,
    /// Spans of simulated time, from and until, in which its microphone
    /// sends silence.
    pub silent: Vec<(Duration, Duration)>,
    /// When its client moves to a new UDP port mid-call, which QUIC
    /// carries over as a connection migration.
    pub rebinds_at: Option<Duration>,
    /// Its sound card clock's rate against true time, in parts per million
    /// (see `SenderFaults::clock_skew_ppm`).
    pub clock_skew_ppm: i32,
    /// When its sender starts its sequence numbers over, and at which
    /// sequence, in simulated time.
    pub sequence_restarts: Vec<(Duration, u32)>,
    pub expected_exit: ExpectedExit,
}

impl Participant {
    /// A participant that joins at `joins_at`, stays to the end, types
    /// nothing and talks all the time.
    pub fn new(name: &'static str, tone_hz: f32, joins_at: Duration) -> Participant {
        Participant {
            name,
            tone_hz,
            joins_at,
            leaves_at: None,
            dialect: DialectChoice::Auto,
            commands: Vec::new(),
            silent: Vec::new(),
            rebinds_at: None,
            clock_skew_ppm: 0,
            sequence_restarts: Vec::new(),
            expected_exit: ExpectedExit::Stopped,
        }
    }
}

/// The audio quality a scenario's invariants expect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expectations {
    /// From when every participant must hear every other one.
    pub settled_from: Duration,
    /// The fraction of settled 100 ms windows in which each other
    /// participant's tone must be present.
    pub min_heard_fraction: f32,
    /// How long after a fault ends (a repaired partition, the end of a
    /// silence, an unmute or unblock, a port change) audio must flow again.
    pub recovery_bound: Duration,
    /// The largest mouth-to-ear delay allowed for any marker: the jitter
    /// buffers on both sides, the mixer tick and the network together.
    pub max_delay: Duration,
}

/// A fault a scenario body injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every datagram between the server and the participant is dropped.
    Partition { participant: String },
    /// The link between the server and the participant works again.
    Repair { participant: String },
    /// The participant's link is cut for good, without a close: its
    /// machine crashed or lost its network.
    Vanish { participant: String },
    /// The server host restarts: its process dies and starts again with no
    /// state.
    ServerRestart,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { participant } => {
                write!(f, "partition {SERVER_HOST} <-> {participant}")
            }
            Fault::Repair { participant } => write!(f, "repair {SERVER_HOST} <-> {participant}"),
            Fault::Vanish { participant } => {
                write!(f, "partition {SERVER_HOST} <-> {participant} for good")
            }
            Fault::ServerRestart => write!(f, "restart {SERVER_HOST}"),
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

    /// Cuts the link between the server and `participant` for good, so
    /// that its client vanishes without closing its connection.
    pub fn vanish(&mut self, participant: &str) {
        self.sim.partition(SERVER_HOST, participant);
        self.record(Fault::Vanish {
            participant: participant.to_owned(),
        });
    }

    /// Kills the server's software and starts it again with no state. Only
    /// for scenarios with `restartable_server` set.
    pub fn restart_server(&mut self) {
        self.sim.bounce(SERVER_HOST);
        self.record(Fault::ServerRestart);
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
    /// The QUIC idle timeout the server advertises. The connection uses the
    /// smaller of this and the client's 30 s.
    pub server_idle_timeout: Duration,
    /// Whether the server runs as a turmoil host that the body may restart.
    /// A restartable server is not waited for at the end.
    pub restartable_server: bool,
    /// Whether a run takes minutes rather than seconds. `sim soak` runs
    /// such a scenario only when it is named.
    pub long: bool,
    /// Whether every run must break an invariant: a scenario that shows
    /// what a failure and its reproduction look like. `sim soak` runs it
    /// only when it is named.
    pub fails_on_purpose: bool,
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
            .field("server_idle_timeout", &self.server_idle_timeout)
            .field("restartable_server", &self.restartable_server)
            .field("long", &self.long)
            .field("fails_on_purpose", &self.fails_on_purpose)
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

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.fault, format_sim_time(self.at))
    }
}
