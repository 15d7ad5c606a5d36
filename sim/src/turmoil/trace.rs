//! The record of a simulated conference, taken as it runs: the event trace
//! that is hashed to check determinism, and the raw observations the
//! invariants are checked against.
//!
//! Every entry carries the simulated time at which it happened, read with
//! `turmoil::sim_elapsed` on the host that produced it. Entries hold nothing
//! that differs between two runs with the same seed: no wall-clock time, no
//! addresses or ports, no key material.
//!
//! The production server hands its core's events only to its log (io-quic's
//! `QuicServer::run` logs each `ServerEvent` through `tracing` and returns
//! nothing else). [`ServerLogCapture`] is a `tracing` subscriber, installed
//! on the simulation's thread only, that records those log events from the
//! server's module, and the mixer's, at debug level and above. Only
//! info-level lines and membership or moderation changes go into the
//! trace; the debug lines (connections opening and closing, mixer members)
//! are kept for the invariants.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use voicemcu_core::client::ClientEvent;
use voicemcu_core::mixer::RESYNC_MESSAGE;

use super::roster::parse_server_fact;

/// The `tracing` target of io-quic's server module, whose info-level events
/// include every notable `ServerEvent`.
pub const SERVER_LOG_TARGET: &str = "voicemcu_quic::server";

/// The `tracing` target of the core's mixer, which logs at debug level each
/// member it adds or removes. Only the server runs a mixer.
pub const MIXER_LOG_TARGET: &str = "voicemcu_core::mixer";

/// The trace's name for lines from the server's log.
const SERVER_TRACE_SOURCE: &str = "server";

/// Log fields left out of the trace: they hold addresses or the
/// certificate fingerprint, not behaviour.
const UNTRACED_FIELDS: [&str; 3] = ["addr", "peer", "fingerprint"];

/// Returns the current simulated time, or zero outside a turmoil host.
pub(crate) fn sim_now() -> Duration {
    ::turmoil::sim_elapsed().unwrap_or_default()
}

/// Formats a simulated time as seconds with microseconds, `12.345678s`.
pub fn format_sim_time(at: Duration) -> String {
    format!("{}.{:06}s", at.as_secs(), at.subsec_micros())
}

/// One line of the event trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Simulated time since the simulation started.
    pub at: Duration,
    /// The host or component that reported it: `server`, a participant's
    /// name, or `network`.
    pub source: String,
    pub text: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>12} {:<8} {}",
            format_sim_time(self.at),
            self.source,
            self.text
        )
    }
}

/// Returns the SHA-256, in hex, of the trace's lines joined by newlines.
pub fn hash_trace(lines: &[String]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A message the server logged, with its fields other than the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLogEntry {
    pub at: Duration,
    pub target: String,
    pub level: String,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// Everything recorded during one run, shared by the hosts' tasks and the
/// runner.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub trace: Vec<TraceLine>,
    pub server_log: Vec<ServerLogEntry>,
    pub client_events: BTreeMap<String, Vec<(Duration, ClientEvent)>>,
    /// Simulated time at which each participant wrote each 20 ms frame of
    /// playback.
    pub frame_times: BTreeMap<String, Vec<Duration>>,
    /// Each participant's session end, and when it ended.
    pub exits: BTreeMap<String, (Duration, String)>,
    /// Simulated time at which each participant sent each marker.
    pub markers: BTreeMap<String, Vec<Duration>>,
}

/// A cloneable handle on the [`Records`] of one run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorder(Arc<Mutex<Records>>);

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Records) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a trace line at the current host's simulated time.
    pub fn line(&self, source: &str, text: impl Into<String>) {
        self.line_at(sim_now(), source, text);
    }

    /// Records a trace line at `at`, for code that runs between steps,
    /// outside any host.
    pub fn line_at(&self, at: Duration, source: &str, text: impl Into<String>) {
        let line = TraceLine {
            at,
            source: source.to_owned(),
            text: text.into(),
        };
        self.with(|records| records.trace.push(line));
    }

    pub fn client_event(&self, participant: &str, event: ClientEvent) {
        let at = sim_now();
        self.line(participant, event.to_string());
        self.with(|records| {
            records
                .client_events
                .entry(participant.to_owned())
                .or_default()
                .push((at, event));
        });
    }

    pub fn frame_written(&self, participant: &str) {
        let at = sim_now();
        self.with(|records| {
            records
                .frame_times
                .entry(participant.to_owned())
                .or_default()
                .push(at);
        });
    }

    pub fn exit(&self, participant: &str, exit: String) {
        let at = sim_now();
        self.line(participant, format!("session ended: {exit}"));
        self.with(|records| records.exits.insert(participant.to_owned(), (at, exit)));
    }

    pub fn marker_sent(&self, participant: &str, at: Duration) {
        self.with(|records| {
            records
                .markers
                .entry(participant.to_owned())
                .or_default()
                .push(at);
        });
    }

    /// Records a server log entry, and its trace line: a membership or
    /// moderation change in a fixed form without addresses, any other
    /// info-level entry and the mixer's resynchronisations as the message
    /// followed by its fields, and no line for other debug entries.
    fn server_log(&self, entry: ServerLogEntry) {
        let fact = parse_server_fact(&entry.message);
        let above_debug = entry.level != Level::DEBUG.to_string();
        let resync = entry.message == RESYNC_MESSAGE;
        if !above_debug && fact.is_none() && !resync {
            self.with(|records| records.server_log.push(entry));
            return;
        }
        let mut text = match fact {
            Some(fact) => fact.to_string(),
            None => entry.message.clone(),
        };
        for (name, value) in &entry.fields {
            let _ = write!(text, " {name}={value}");
        }
        if entry.level != Level::INFO.to_string() && above_debug {
            text = format!("{}: {text}", entry.level);
        }
        let line = TraceLine {
            at: entry.at,
            source: SERVER_TRACE_SOURCE.to_owned(),
            text,
        };
        self.with(|records| {
            records.trace.push(line);
            records.server_log.push(entry);
        });
    }

    /// Takes the records out, leaving this handle empty.
    pub fn take(&self) -> Records {
        self.with(std::mem::take)
    }
}

/// A `tracing` subscriber that records the server's and the mixer's log
/// events at debug level and above, and ignores everything else.
pub(crate) struct ServerLogCapture {
    recorder: Recorder,
}

impl ServerLogCapture {
    pub fn new(recorder: Recorder) -> ServerLogCapture {
        ServerLogCapture { recorder }
    }
}

impl Subscriber for ServerLogCapture {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && [SERVER_LOG_TARGET, MIXER_LOG_TARGET].contains(&metadata.target())
            && *metadata.level() <= Level::DEBUG
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are never enabled, so this id is never used.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = FieldCollector::default();
        event.record(&mut fields);
        self.recorder.server_log(ServerLogEntry {
            at: sim_now(),
            target: event.metadata().target().to_owned(),
            level: event.metadata().level().to_string(),
            message: fields.message,
            fields: fields.others,
        });
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    others: Vec<(String, String)>,
}

impl FieldCollector {
    fn store(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else if !UNTRACED_FIELDS.contains(&field.name()) {
            self.others.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.store(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.store(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_time_has_microseconds() {
        assert_eq!(
            format_sim_time(Duration::from_micros(3_000_250)),
            "3.000250s"
        );
    }

    #[test]
    fn hash_changes_with_any_line() {
        let lines = vec!["a".to_owned(), "b".to_owned()];
        let changed = vec!["a".to_owned(), "c".to_owned()];
        assert_eq!(hash_trace(&lines), hash_trace(&lines.clone()));
        assert_ne!(hash_trace(&lines), hash_trace(&changed));
        assert_eq!(hash_trace(&lines).len(), 64);
    }
}
