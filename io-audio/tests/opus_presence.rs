//! The analysis on speech that went through Opus twice, as it does in a
//! call: each speaker's client encodes, the server decodes, mixes the
//! others for one listener and encodes that mix, and the listener decodes.

use std::sync::OnceLock;

use voicemcu_audio::analysis::{
    estimate_delay, presence, summarize, windows_within, PresenceConfig, PresenceSummary,
    WindowPresence, ABSENT_SCORE, HEARD_SCORE,
};
use voicemcu_audio::fixtures::{SpeechFixture, ALICE, BOB, CAROL, SPEAKERS};
use voicemcu_audio::read_wav_48k_mono;
use voicemcu_core::audio::{PcmFrame, FRAME_SAMPLES, SILENCE};
use voicemcu_core::codec::{Decoder, Encoder, OpusDecoder, OpusEncoder, OpusSettings};

/// Largest lag searched: 5 s, for a start offset of a few seconds plus the
/// network, jitter buffer and codec delays.
const MAX_LAG: usize = 240_000;

/// Encodes and decodes `signal` with Opus at the default settings (32 kb/s,
/// VOIP), frame by frame. The output is as long as the input rounded up to
/// whole frames.
fn opus_round_trip(signal: &[f32]) -> Vec<f32> {
    let mut encoder = OpusEncoder::new(OpusSettings::default()).unwrap();
    let mut decoder = OpusDecoder::new().unwrap();
    let mut packet = [0u8; 1500];
    let mut output = Vec::with_capacity(signal.len() + FRAME_SAMPLES);
    for chunk in signal.chunks(FRAME_SAMPLES) {
        let mut frame: PcmFrame = SILENCE;
        frame[..chunk.len()].copy_from_slice(chunk);
        let len = encoder.encode(&frame, &mut packet).unwrap();
        let mut decoded: PcmFrame = SILENCE;
        decoder.decode(&packet[..len], &mut decoded).unwrap();
        output.extend_from_slice(&decoded);
    }
    output
}

/// Delays `signal` by `lag` samples by prepending silence.
fn delayed(signal: &[f32], lag: usize) -> Vec<f32> {
    let mut out = vec![0.0; lag];
    out.extend_from_slice(signal);
    out
}

fn mix(signals: &[Vec<f32>]) -> Vec<f32> {
    let len = signals.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![0.0; len];
    for signal in signals {
        for (slot, &sample) in out.iter_mut().zip(signal) {
            *slot += sample;
        }
    }
    out
}

/// Opus's algorithmic delay at 48 kHz: the decoder's output lags the
/// encoder's input by 6.5 ms (libopus `OPUS_GET_LOOKAHEAD` for the VOIP
/// application).
const OPUS_DELAY: i64 = 312;

struct Call {
    references: Vec<Vec<f32>>,
    /// What each listener records; listener `i` hears everyone but `i`.
    recordings: Vec<Vec<f32>>,
    /// Samples of silence before each speaker's audio in each recording.
    start_offsets: Vec<Vec<usize>>,
}

/// Returns the simulated call, computed once for all tests in this file.
fn call() -> &'static Call {
    static CALL: OnceLock<Call> = OnceLock::new();
    CALL.get_or_init(simulate_call)
}

/// Simulates a three-way call on the fixtures: every speaker's audio is
/// Opus-coded, offset by a speaker-specific start delay, summed for each
/// listener without the listener's own voice, Opus-coded again, and then
/// delayed by a listener-specific network delay.
fn simulate_call() -> Call {
    let references: Vec<Vec<f32>> = SPEAKERS
        .iter()
        .map(|fixture| read_wav_48k_mono(fixture.absolute_path()).unwrap())
        .collect();
    let uplinks: Vec<Vec<f32>> = references.iter().map(|r| opus_round_trip(r)).collect();
    // Speakers started 0, 130 and 410 ms after the server's first tick.
    // Listeners started recording 1.2, 0.0 and 2.6 s before that tick, and
    // their network and jitter buffer delays are 45, 120 and 380 ms.
    let speaker_starts = [0usize, 6_240, 19_680];
    let listener_leads = [57_600usize, 0, 124_800];
    let network = [2_160usize, 5_760, 18_240];

    let mut recordings = Vec::new();
    let mut start_offsets = Vec::new();
    for listener in 0..SPEAKERS.len() {
        let others: Vec<Vec<f32>> = (0..SPEAKERS.len())
            .filter(|&speaker| speaker != listener)
            .map(|speaker| delayed(&uplinks[speaker], speaker_starts[speaker]))
            .collect();
        let downlink = opus_round_trip(&mix(&others));
        recordings.push(delayed(
            &downlink,
            listener_leads[listener] + network[listener],
        ));
        start_offsets.push(
            speaker_starts
                .iter()
                .map(|start| listener_leads[listener] + network[listener] + start)
                .collect(),
        );
    }
    Call {
        references,
        recordings,
        start_offsets,
    }
}

fn measure(reference: &[f32], recording: &[f32]) -> (i64, Vec<WindowPresence>, PresenceSummary) {
    let estimate = estimate_delay(reference, recording, MAX_LAG).unwrap();
    let windows = presence(
        reference,
        recording,
        estimate.lag_samples,
        &PresenceConfig::default(),
    );
    let summary = summarize(&windows);
    (estimate.lag_samples, windows, summary)
}

fn name(index: usize) -> &'static str {
    SPEAKERS[index].name
}

#[test]
fn opus_delay_is_lookahead() {
    let alice = read_wav_48k_mono(ALICE.absolute_path()).unwrap();
    let coded = opus_round_trip(&alice);
    let estimate = estimate_delay(&alice, &coded, 4_800).unwrap();
    assert!(
        (estimate.lag_samples - OPUS_DELAY).abs() <= 48,
        "{estimate:?}"
    );
    assert!(estimate.score > 0.8, "{estimate:?}");
}

#[test]
fn call_delays_are_within_five_ms() {
    let call = call();
    for listener in 0..3 {
        for speaker in (0..3).filter(|&s| s != listener) {
            let estimate = estimate_delay(
                &call.references[speaker],
                &call.recordings[listener],
                MAX_LAG,
            )
            .unwrap();
            let expected = call.start_offsets[listener][speaker] as i64 + 2 * OPUS_DELAY;
            assert!(
                (estimate.lag_samples - expected).abs() <= 240,
                "{} in {}'s recording: lag {} expected {expected}",
                name(speaker),
                name(listener),
                estimate.lag_samples
            );
        }
    }
}

#[test]
fn listeners_hear_others_in_their_windows() {
    let call = call();
    for listener in 0..3 {
        for speaker in (0..3).filter(|&s| s != listener) {
            let (_, windows, summary) =
                measure(&call.references[speaker], &call.recordings[listener]);
            let context = format!("{} in {}'s recording", name(speaker), name(listener));
            assert!(summary.windows >= 9, "{context}: {summary:?}");
            assert!(
                summary.median_score >= HEARD_SCORE,
                "{context}: {summary:?}"
            );

            // Alone, the speaker is heard in every window.
            let solo = windows_within(&windows, SPEAKERS[speaker].solo.to_samples());
            assert!(solo.len() >= 5, "{context}: {solo:#?}");
            for window in &solo {
                assert!(window.score >= HEARD_SCORE, "{context}, solo: {window:?}");
            }

            // Over another talker, most windows are still heard and none
            // looks absent.
            let together = windows_within(&windows, SPEAKERS[speaker].together.to_samples());
            let heard = together.iter().filter(|w| w.score >= HEARD_SCORE).count();
            assert!(
                heard * 10 >= together.len() * 7,
                "{context}, together: {together:#?}"
            );
            for window in &together {
                assert!(
                    window.score >= ABSENT_SCORE,
                    "{context}, together: {window:?}"
                );
            }
        }
    }
}

#[test]
fn listeners_never_hear_themselves() {
    let call = call();
    for (listener, fixture) in SPEAKERS.iter().enumerate() {
        let (_, windows, summary) = measure(&call.references[listener], &call.recordings[listener]);
        let context = format!("{} in own recording", fixture.name);
        assert!(summary.windows >= 9, "{context}: {summary:?}");
        for window in &windows {
            assert!(window.score < ABSENT_SCORE, "{context}: {window:?}");
        }
        // The hard case, own speech while the other two talk, must be
        // among the windows checked above.
        let together = windows_within(&windows, fixture.together.to_samples());
        assert!(together.len() >= 4, "{context}: {together:#?}");
    }
}

/// Prints window scores for choosing thresholds:
/// `cargo test -p voicemcu-audio --test opus_presence score_table -- --ignored --nocapture`
#[test]
#[ignore = "prints a table; run by hand when tuning the thresholds"]
fn score_table() {
    let call = call();
    let fixtures: [SpeechFixture; 3] = [ALICE, BOB, CAROL];
    for listener in 0..3 {
        for speaker in 0..3 {
            let (lag, windows, summary) =
                measure(&call.references[speaker], &call.recordings[listener]);
            let scores: Vec<String> = windows.iter().map(|w| format!("{:.2}", w.score)).collect();
            println!(
                "{} in {}'s recording (lag {lag}): median {:.2}, heard {}/{}, absent {}/{}: {}",
                fixtures[speaker].name,
                fixtures[listener].name,
                summary.median_score,
                summary.heard,
                summary.windows,
                summary.absent,
                summary.windows,
                scores.join(" ")
            );
        }
    }
}
