//! Who heard whom, measured from audio alone.
//!
//! Each speaker's reference (what it sent) is located in each listener's
//! recording (what it played out) by cross-correlation, and then scored
//! window by window with [`voicemcu_audio::analysis::presence`]. A peer is
//! *heard* when most of its speech windows score as present, and *absent*
//! when nearly all score as missing. A listener's own voice must always be
//! absent: the server mixes everyone except the listener (mix-minus).

use std::fmt;

use voicemcu_audio::analysis::{
    clipped_samples, estimate_delay, peak, presence, summarize, PresenceConfig, WindowPresence,
};
use voicemcu_core::audio::SAMPLE_RATE;

/// The largest lag searched for between a reference and a recording: the
/// network and jitter buffers add well under a second, and clients of one
/// conference start within a second of each other.
const MAX_LAG_SECS: usize = 3;

/// Time after a recording starts before its listener can hear anyone.
pub const LISTENER_SETTLE_SECS: f64 = 0.3;

/// Fraction of a peer's speech windows that must score as present for the
/// peer to count as heard.
pub const HEARD_FRACTION: f32 = 0.7;

/// Fraction of a speaker's windows that must score as missing for it to
/// count as absent.
pub const ABSENT_FRACTION: f32 = 0.9;

/// The conclusion for one speaker in one listener's recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    Heard,
    Absent,
    /// Neither clearly heard nor clearly absent.
    Unclear,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Heard => "heard",
            Verdict::Absent => "absent",
            Verdict::Unclear => "unclear",
        })
    }
}

/// One speaker as measured in one listener's recording.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SpeakerInRecording {
    pub speaker: String,
    /// Whether the speaker is the listener itself.
    pub is_self: bool,
    /// Lag of the speaker's reference in the recording, in milliseconds,
    /// when one was found. It includes the difference between the moments
    /// the two clients started, so it is not the delay people notice.
    pub lag_ms: Option<f64>,
    /// Mouth-to-ear delay in milliseconds: the mean of this lag and the
    /// opposite one (this listener in the speaker's recording), in which
    /// the start offsets cancel. Known only when both were measured.
    pub delay_ms: Option<f64>,
    /// Active speech windows of the reference that were scored.
    pub windows: usize,
    /// Windows that scored as present.
    pub heard_windows: usize,
    /// Windows that scored as missing.
    pub absent_windows: usize,
    pub median_score: f32,
    pub verdict: Verdict,
    /// Every scored window, for callers that check time spans.
    #[serde(skip)]
    pub detail: Vec<WindowPresence>,
}

/// What one listener heard.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ListenerReport {
    pub listener: String,
    pub seconds: f64,
    /// Largest sample magnitude, as a fraction of full scale.
    pub peak: f32,
    /// Samples at full scale, which a 16-bit file holds only when clipped.
    pub clipped_samples: usize,
    pub speakers: Vec<SpeakerInRecording>,
}

impl ListenerReport {
    /// The measurement of `speaker`, if it was one of the speakers.
    pub fn speaker(&self, speaker: &str) -> Option<&SpeakerInRecording> {
        self.speakers.iter().find(|s| s.speaker == speaker)
    }
}

/// Who heard whom in a whole conference.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HearingReport {
    pub listeners: Vec<ListenerReport>,
}

impl HearingReport {
    pub fn listener(&self, name: &str) -> Option<&ListenerReport> {
        self.listeners.iter().find(|l| l.listener == name)
    }

    /// Every way the conference differs from "everyone heard every other
    /// speaker, nobody heard themselves, nothing clipped", one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for listener in &self.listeners {
            if listener.clipped_samples > 0 {
                problems.push(format!(
                    "{} has {} clipped samples",
                    listener.listener, listener.clipped_samples
                ));
            }
            for speaker in &listener.speakers {
                let expected = if speaker.is_self {
                    Verdict::Absent
                } else {
                    Verdict::Heard
                };
                if speaker.verdict != expected {
                    problems.push(format!(
                        "{} should have {} {} but the measurement says {} ({} of {} windows heard, {} absent)",
                        listener.listener,
                        if speaker.is_self { "not heard" } else { "heard" },
                        if speaker.is_self { "their own voice".to_string() } else { speaker.speaker.clone() },
                        speaker.verdict,
                        speaker.heard_windows,
                        speaker.windows,
                        speaker.absent_windows,
                    ));
                }
            }
        }
        problems
    }
}

/// Measures every speaker in every listener's recording. `speakers` and
/// `listeners` pair names with 48 kHz mono audio; a name in both is the
/// same participant.
pub fn measure(speakers: &[(&str, &[f32])], listeners: &[(&str, &[f32])]) -> HearingReport {
    let max_lag = MAX_LAG_SECS * SAMPLE_RATE as usize;
    let config = PresenceConfig::default();

    // Lags of every speaker in every recording, found first so that each
    // pair's two directions can be combined into a mouth-to-ear delay.
    let lags: Vec<Vec<Option<i64>>> = listeners
        .iter()
        .map(|(_, recording)| {
            speakers
                .iter()
                .map(|(_, reference)| {
                    estimate_delay(reference, recording, max_lag).map(|d| d.lag_samples)
                })
                .collect()
        })
        .collect();
    let lag_of = |listener: &str, speaker: &str| -> Option<i64> {
        let l = listeners.iter().position(|(name, _)| *name == listener)?;
        let s = speakers.iter().position(|(name, _)| *name == speaker)?;
        lags[l][s]
    };
    let to_ms = |samples: f64| samples * 1000.0 / f64::from(SAMPLE_RATE);

    // Speech that reached a recording's first moments was spoken before that
    // listener could hear it: it joined later, or its jitter buffer was
    // still filling. Such windows say nothing about the mix.
    let settle = (LISTENER_SETTLE_SECS * f64::from(SAMPLE_RATE)) as i64;

    let listeners = listeners
        .iter()
        .zip(&lags)
        .map(|((listener, recording), lags)| {
            let measured = speakers
                .iter()
                .zip(lags)
                .map(|((speaker, reference), lag)| {
                    let is_self = speaker == listener;

                    // A listener's own voice should be missing, so its own
                    // lag estimate is noise. Search at every lag found for
                    // the others too, which are close to where it would be,
                    // and keep the strongest match: absence must hold at all.
                    let candidates: Vec<i64> = if is_self {
                        lags.iter().flatten().copied().collect()
                    } else {
                        lag.iter().copied().collect()
                    };
                    let detail = candidates
                        .iter()
                        .map(|lag| {
                            let mut windows = presence(reference, recording, *lag, &config);
                            windows.retain(|w| w.span.start as i64 + w.lag_samples >= settle);
                            windows
                        })
                        .max_by(|a, b| {
                            summarize(a)
                                .median_score
                                .total_cmp(&summarize(b).median_score)
                        })
                        .unwrap_or_default();

                    let summary = summarize(&detail);
                    let verdict = if summary.windows > 0
                        && summary.heard_fraction() >= HEARD_FRACTION
                    {
                        Verdict::Heard
                    } else if summary.windows == 0 || summary.absent_fraction() >= ABSENT_FRACTION {
                        Verdict::Absent
                    } else {
                        Verdict::Unclear
                    };
                    let opposite = lag_of(speaker, listener);
                    let delay_ms = match (is_self, lag, opposite) {
                        (false, Some(there), Some(back)) => {
                            Some(to_ms((*there + back) as f64 / 2.0))
                        }
                        _ => None,
                    };
                    SpeakerInRecording {
                        speaker: speaker.to_string(),
                        is_self,
                        lag_ms: lag.filter(|_| !is_self).map(|lag| to_ms(lag as f64)),
                        delay_ms,
                        windows: summary.windows,
                        heard_windows: summary.heard,
                        absent_windows: summary.absent,
                        median_score: summary.median_score,
                        verdict,
                        detail,
                    }
                })
                .collect();

            ListenerReport {
                listener: listener.to_string(),
                seconds: recording.len() as f64 / f64::from(SAMPLE_RATE),
                peak: peak(recording),
                clipped_samples: clipped_samples(recording),
                speakers: measured,
            }
        })
        .collect();

    HearingReport { listeners }
}

impl fmt::Display for HearingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:<14} {:<8} {:>9} {:>14} {:>7}",
            "listener", "speaker", "verdict", "delay", "windows heard", "score"
        )?;
        for listener in &self.listeners {
            for speaker in &listener.speakers {
                let name = if speaker.is_self {
                    format!("{} (self)", speaker.speaker)
                } else {
                    speaker.speaker.clone()
                };
                let delay = match (speaker.is_self, speaker.delay_ms) {
                    (false, Some(ms)) => format!("{ms:.0} ms"),
                    _ => "-".to_string(),
                };
                writeln!(
                    f,
                    "{:<10} {:<14} {:<8} {:>9} {:>14} {:>7.2}",
                    listener.listener,
                    name,
                    speaker.verdict,
                    delay,
                    format!("{}/{}", speaker.heard_windows, speaker.windows),
                    speaker.median_score
                )?;
            }
            writeln!(
                f,
                "{:<10} {:.1} s recorded, peak {:.2} of full scale, {} clipped samples",
                "", listener.seconds, listener.peak, listener.clipped_samples
            )?;
        }
        Ok(())
    }
}
