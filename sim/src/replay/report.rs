//! The replay report: for every participant, whom it heard and when, how
//! loud, what was lost or concealed, and what its client reported.
//!
//! Who was audible to whom comes from the server's mix log, so it states
//! exactly which speakers each mix contained, with no audio analysis.
//! Levels are measured on the audio the participant played out. The delay
//! is the one measurement taken from audio: the lag at which what the
//! speaker sent best matches what the listener played
//! ([`voicemcu_audio::estimate_delay`]).

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use voicemcu_audio::{clipped_samples, estimate_delay, peak, rms_dbfs};
use voicemcu_core::audio::{FRAME_DURATION, SAMPLE_RATE};

use super::engine::{ParticipantRun, ReplayRun, TimedLine};
use super::impairment::LinkStats;
use super::session::Session;

/// Gaps in a peer's audibility up to this long are bridged when spans are
/// listed, so that pauses between words do not split a turn. The frame
/// counts stay exact.
pub const SPAN_MERGE_GAP: Duration = Duration::from_millis(300);

/// Lowest correlation score at which a measured delay is reported. The
/// Opus round trip through two codecs and a limiter keeps a clearly heard
/// peer above it; a lower score means the lag is a guess.
pub const MIN_DELAY_SCORE: f32 = 0.3;

/// Largest lag searched when measuring the delay.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// The whole report, written as `report.json` and `report.txt`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayReport {
    /// The session file's name, without its folder.
    pub session: String,
    pub room: String,
    pub seed: u64,
    #[serde(serialize_with = "serialize_secs")]
    pub duration: Duration,
    pub participants: Vec<ParticipantReport>,
    /// Every event the server reported, with its session time.
    pub server_events: Vec<TimedLine>,
}

/// One participant, as listener and as sender.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParticipantReport {
    pub name: String,
    pub dialect: String,
    pub client_id: Option<u64>,
    #[serde(serialize_with = "serialize_secs")]
    pub joined: Duration,
    /// When the server removed it from the room, if it did.
    #[serde(serialize_with = "serialize_optional_secs")]
    pub left: Option<Duration>,
    /// Why it left: "left", "kicked", "disconnected", ...
    pub left_reason: Option<String>,
    /// Levels of what it played out while in the room.
    pub heard: Levels,
    /// Frames its client encoded and sent.
    pub frames_sent: u64,
    /// Its datagrams on the way to the server.
    pub uplink: LinkStats,
    /// Frames of this participant the server concealed (lost or late on the
    /// uplink), as last counted while it was in the room.
    pub concealed_by_server: u64,
    /// The server's mixes on the way to it, when the downlink is impaired.
    pub downlink: Option<LinkStats>,
    /// Mixes its client received.
    pub mixes_received: u64,
    /// Frames its client concealed because a mix was lost or late.
    pub concealed_by_client: u64,
    /// Mixes that arrived after their playout time.
    pub late_mixes: u64,
    /// Every other participant, in session file order.
    pub peers: Vec<PeerReport>,
    /// Every event its client reported, and each command typed into it.
    pub events: Vec<TimedLine>,
}

/// Levels of one recording.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Levels {
    /// RMS in dB relative to full scale, rounded to 0.1 dB; `None` for
    /// digital silence.
    pub rms_dbfs: Option<f64>,
    /// Largest sample magnitude as a fraction of full scale, rounded to
    /// 0.001.
    pub peak: f64,
    /// Samples at full scale in the 16-bit output.
    pub clipped_samples: usize,
}

/// What one listener heard of one peer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeerReport {
    pub peer: String,
    /// Mixes sent to the listener that contained this peer.
    pub audible_frames: u64,
    /// When the server mixed this peer into the listener's audio, with gaps
    /// up to [`SPAN_MERGE_GAP`] bridged. The listener plays each mix about
    /// `delay_ms` after the peer spoke it.
    pub spans: Vec<SpanSecs>,
    /// Mouth-to-ear delay in milliseconds, when the peer was audible and
    /// its audio was found in the listener's recording.
    pub delay_ms: Option<f64>,
}

/// A span of session time, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SpanSecs {
    #[serde(serialize_with = "serialize_secs")]
    pub start: Duration,
    #[serde(serialize_with = "serialize_secs")]
    pub end: Duration,
}

/// Builds the report of `run`, a replay of `session`.
pub fn build(session: &Session, run: &ReplayRun) -> ReplayReport {
    let participants = run
        .participants
        .iter()
        .enumerate()
        .map(|(index, participant)| participant_report(run, index, participant))
        .collect();
    ReplayReport {
        session: session
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        room: session.room.clone(),
        seed: session.seed,
        duration: run.duration,
        participants,
        server_events: run.server_events.clone(),
    }
}

fn participant_report(run: &ReplayRun, index: usize, me: &ParticipantRun) -> ParticipantReport {
    let end = me.left.map_or(run.duration, |(at, _)| at);
    let in_room =
        &me.heard[to_sample(me.joined_at).min(me.heard.len())..to_sample(end).min(me.heard.len())];

    let peers = run
        .participants
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, peer)| peer_report(run, me, peer))
        .collect();

    ParticipantReport {
        name: me.name.clone(),
        dialect: me.dialect.to_string(),
        client_id: me.client_id,
        joined: me.joined_at,
        left: me.left.map(|(at, _)| at),
        left_reason: me.left.map(|(_, reason)| reason.to_string()),
        heard: levels(in_room),
        frames_sent: me.frames_sent,
        uplink: me.uplink,
        concealed_by_server: me.server_stats.map_or(0, |stats| stats.jitter.concealed),
        downlink: me.downlink,
        mixes_received: me.client_stats.jitter.received,
        concealed_by_client: me.client_stats.jitter.concealed,
        late_mixes: me.client_stats.jitter.late,
        peers,
        events: me.events.clone(),
    }
}

fn peer_report(run: &ReplayRun, listener: &ParticipantRun, peer: &ParticipantRun) -> PeerReport {
    let ticks: Vec<Duration> = match (listener.client_id, peer.client_id) {
        (Some(listener_id), Some(peer_id)) => run
            .mixes
            .iter()
            .filter(|mix| mix.listener == listener_id && mix.speakers.contains(&peer_id))
            .map(|mix| mix.at.since_epoch())
            .collect(),
        _ => Vec::new(),
    };

    let mut spans: Vec<SpanSecs> = Vec::new();
    for &tick in &ticks {
        let end = tick + FRAME_DURATION;
        match spans.last_mut() {
            Some(last) if tick <= last.end + SPAN_MERGE_GAP => last.end = end,
            _ => spans.push(SpanSecs { start: tick, end }),
        }
    }

    let delay_ms = if ticks.is_empty() {
        None
    } else {
        // Only what the listener could hear is searched for, so that a
        // peer heard for part of the session still correlates well. The
        // spans are mix times, which trail the peer's sending, so each one
        // is widened backwards by the search range.
        let mut reference = vec![0.0; peer.sent.len()];
        for span in &spans {
            let start = to_sample(span.start.saturating_sub(MAX_DELAY)).min(reference.len());
            let end = to_sample(span.end).min(reference.len());
            reference[start..end].copy_from_slice(&peer.sent[start..end]);
        }
        estimate_delay(&reference, &listener.heard, to_sample(MAX_DELAY))
            .filter(|estimate| estimate.score >= MIN_DELAY_SCORE)
            .map(|estimate| round_to(estimate.lag_secs() * 1000.0, 0.1))
    };

    PeerReport {
        peer: peer.name.clone(),
        audible_frames: ticks.len() as u64,
        spans,
        delay_ms,
    }
}

/// Measures the levels of `samples`.
pub fn levels(samples: &[f32]) -> Levels {
    let rms = rms_dbfs(samples);
    Levels {
        rms_dbfs: rms.is_finite().then(|| round_to(f64::from(rms), 0.1)),
        peak: round_to(f64::from(peak(samples)), 0.001),
        clipped_samples: clipped_samples(samples),
    }
}

fn round_to(value: f64, step: f64) -> f64 {
    (value / step).round() * step
}

fn to_sample(at: Duration) -> usize {
    (at.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as usize
}

/// Writes a duration as seconds with millisecond precision.
pub(crate) fn serialize_secs<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(secs(*duration))
}

fn serialize_optional_secs<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&secs(*duration)),
        None => serializer.serialize_none(),
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replay of {}: room {:?}, {} participants, {:.2} s, seed {}",
            self.session,
            self.room,
            self.participants.len(),
            secs(self.duration),
            self.seed
        )?;
        for participant in &self.participants {
            writeln!(f)?;
            write!(f, "{participant}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ParticipantReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self
            .client_id
            .map_or_else(|| "no id".to_string(), |id| format!("id {id}"));
        let stay = match (self.left, &self.left_reason) {
            (Some(left), Some(reason)) => format!(
                "{:.2} s to {:.2} s ({reason})",
                secs(self.joined),
                secs(left)
            ),
            _ => format!("{:.2} s to the end", secs(self.joined)),
        };
        writeln!(
            f,
            "{} ({id}, {} dialect), in the room {stay}",
            self.name, self.dialect
        )?;

        let rms = self
            .heard
            .rms_dbfs
            .map_or_else(|| "silence".to_string(), |rms| format!("{rms:.1} dBFS"));
        writeln!(
            f,
            "  heard: rms {rms}, peak {:.3}, {} clipped samples",
            self.heard.peak, self.heard.clipped_samples
        )?;
        writeln!(
            f,
            "  sent {} frames, {} lost on the way, {} concealed by the server",
            self.frames_sent, self.uplink.lost, self.concealed_by_server
        )?;
        let downlink_lost = self.downlink.map_or_else(String::new, |link| {
            format!(", {} lost on the way", link.lost)
        });
        writeln!(
            f,
            "  received {} mixes{downlink_lost}, {} late, {} frames concealed",
            self.mixes_received, self.late_mixes, self.concealed_by_client
        )?;

        for peer in &self.peers {
            let spans = if peer.spans.is_empty() {
                "never audible".to_string()
            } else {
                peer.spans
                    .iter()
                    .map(|span| format!("{:.2}-{:.2} s", secs(span.start), secs(span.end)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let delay = peer
                .delay_ms
                .map_or_else(String::new, |ms| format!(", delay {ms:.1} ms"));
            writeln!(
                f,
                "  hears {:<12} {spans} ({} frames{delay})",
                peer.peer, peer.audible_frames
            )?;
        }

        writeln!(f, "  events:")?;
        for event in &self.events {
            writeln!(f, "    {:>7.2} s  {}", secs(event.at), event.text)?;
        }
        Ok(())
    }
}
