//! The analysis functions on synthetic signals and on the speech fixtures
//! mixed without a codec. `opus_presence.rs` repeats the presence checks
//! through Opus.

use std::f64::consts::TAU;

use voicemcu_audio::analysis::{
    active_spans, clipped_samples, estimate_delay, merge_spans, peak, presence, rms_dbfs,
    summarize, windows_within, PresenceConfig, Span, ABSENT_SCORE, HEARD_SCORE,
};
use voicemcu_audio::fixtures::{SpeechFixture, ALICE, BOB, CAROL, TOGETHER};
use voicemcu_audio::read_wav_48k_mono;

fn sine(frequency: f64, amplitude: f64, len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| (amplitude * (TAU * frequency * n as f64 / 48_000.0).sin()) as f32)
        .collect()
}

/// Shifts `signal` later by `lag` samples by prepending silence, or
/// earlier when `lag` is negative by dropping its start.
fn shifted(signal: &[f32], lag: i64) -> Vec<f32> {
    if lag >= 0 {
        let mut out = vec![0.0; lag as usize];
        out.extend_from_slice(signal);
        out
    } else {
        signal[(-lag) as usize..].to_vec()
    }
}

fn mix(signals: &[&[f32]]) -> Vec<f32> {
    let len = signals.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0.0; len];
    for signal in signals {
        for (slot, &sample) in out.iter_mut().zip(signal.iter()) {
            *slot += sample;
        }
    }
    out
}

fn load(fixture: &SpeechFixture) -> Vec<f32> {
    read_wav_48k_mono(fixture.absolute_path()).unwrap()
}

/// Returns deterministic pseudo-random noise in [-amplitude, amplitude].
fn noise(len: usize, amplitude: f32, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            amplitude * (2.0 * unit - 1.0)
        })
        .collect()
}

// ---- levels ----

#[test]
fn rms_dbfs_of_known_signals() {
    let full_sine = sine(1000.0, 1.0, 48_000);
    assert!(
        (rms_dbfs(&full_sine) + 3.0103).abs() < 0.01,
        "{}",
        rms_dbfs(&full_sine)
    );
    assert!((rms_dbfs(&[0.5; 100]) + 6.0206).abs() < 0.001);
    assert_eq!(rms_dbfs(&[1.0, -1.0, 1.0, -1.0]), 0.0);
    assert_eq!(rms_dbfs(&[]), f32::NEG_INFINITY);
    assert_eq!(rms_dbfs(&[0.0; 10]), f32::NEG_INFINITY);
}

#[test]
fn peak_and_clipping_counts() {
    let samples = [0.5f32, -1.0, 0.99999, 1.2, -0.25, 32_766.0 / 32_768.0];
    assert_eq!(peak(&samples), 1.2);
    assert_eq!(clipped_samples(&samples), 3);
    assert_eq!(peak(&[]), 0.0);
    assert_eq!(clipped_samples(&[]), 0);
}

// ---- activity ----

#[test]
fn active_spans_find_tone_bursts() {
    let mut signal = vec![0.0f32; 3 * 48_000];
    let burst = sine(440.0, 0.25, 24_000);
    signal[24_000..48_000].copy_from_slice(&burst);
    signal[96_000..120_000].copy_from_slice(&burst);
    let spans = active_spans(&signal, 480, -40.0);
    assert_eq!(
        spans,
        vec![
            Span {
                start: 24_000,
                end: 48_000
            },
            Span {
                start: 96_000,
                end: 120_000
            }
        ]
    );
    assert_eq!(spans[0].start_secs(), 0.5);
    assert_eq!(spans[1].end_secs(), 2.5);
}

#[test]
fn active_spans_threshold_and_edge_cases() {
    let quiet = sine(440.0, 0.001, 4_800); // about -63 dBFS
    assert!(active_spans(&quiet, 480, -50.0).is_empty());
    assert_eq!(active_spans(&quiet, 480, -70.0).len(), 1);
    assert!(active_spans(&quiet, 0, -70.0).is_empty());
    assert!(active_spans(&[], 480, -70.0).is_empty());
    // A shorter last window still counts, with its true end.
    let tail = sine(440.0, 0.5, 1_000);
    assert_eq!(
        active_spans(&tail, 480, -40.0),
        vec![Span {
            start: 0,
            end: 1_000
        }]
    );
}

#[test]
fn merge_spans_joins_small_gaps() {
    let spans = [
        Span { start: 0, end: 100 },
        Span {
            start: 150,
            end: 200,
        },
        Span {
            start: 400,
            end: 500,
        },
    ];
    assert_eq!(
        merge_spans(&spans, 50),
        vec![
            Span { start: 0, end: 200 },
            Span {
                start: 400,
                end: 500
            }
        ]
    );
    assert_eq!(merge_spans(&spans, 10).len(), 3);
    assert!(merge_spans(&[], 10).is_empty());
}

// ---- delay ----

#[test]
fn delay_of_shifted_speech_is_exact() {
    let alice = load(&ALICE);
    for lag in [1_920i64, 19_200, 62_400, 150_000, -48_000] {
        let recording = shifted(&alice, lag);
        let estimate = estimate_delay(&alice, &recording, 240_000).unwrap();
        assert_eq!(estimate.lag_samples, lag, "lag {lag}");
        // A negative lag cuts the reference's first second out of the
        // recording, which the score counts as missing.
        assert!(estimate.score > 0.9, "lag {lag}: score {}", estimate.score);
    }
}

#[test]
fn delay_found_under_other_speakers_and_noise() {
    let (alice, bob, carol) = (load(&ALICE), load(&BOB), load(&CAROL));
    // 1.3 s of start offset plus 120 ms of network and mixing delay.
    let lag = 62_400 + 5_760;
    let carol_lag = lag + 2_000;
    let recording = mix(&[
        &shifted(&alice, lag),
        &shifted(&carol, carol_lag),
        &noise(alice.len() + carol_lag as usize, 0.01, 7),
    ]);

    let alice_estimate = estimate_delay(&alice, &recording, 240_000).unwrap();
    assert!(
        (alice_estimate.lag_samples - lag).abs() <= 240,
        "{alice_estimate:?}"
    );
    let carol_estimate = estimate_delay(&carol, &recording, 240_000).unwrap();
    assert!(
        (carol_estimate.lag_samples - carol_lag).abs() <= 240,
        "{carol_estimate:?}"
    );

    // Bob is not in the recording: a lag comes back, with a low score.
    let bob_estimate = estimate_delay(&bob, &recording, 240_000).unwrap();
    assert!(bob_estimate.score < ABSENT_SCORE, "{bob_estimate:?}");
    assert!(alice_estimate.score > HEARD_SCORE, "{alice_estimate:?}");
}

#[test]
fn delay_of_silence_is_none() {
    let alice = load(&ALICE);
    assert!(estimate_delay(&alice, &vec![0.0; 48_000], 1_000).is_none());
    assert!(estimate_delay(&vec![0.0; 48_000], &alice, 1_000).is_none());
    assert!(estimate_delay(&[], &alice, 1_000).is_none());
    assert!(estimate_delay(&alice[..100], &alice, 1_000).is_none());
}

// ---- presence ----

#[test]
fn presence_separates_heard_from_absent_speakers() {
    let (alice, bob, carol) = (load(&ALICE), load(&BOB), load(&CAROL));
    // Bob's recording: Alice and Carol at equal level, never Bob.
    let lag = 48_000 + 9_600;
    let recording = mix(&[&shifted(&alice, lag), &shifted(&carol, lag + 480)]);
    let config = PresenceConfig::default();

    for (fixture, heard) in [(ALICE, &alice), (CAROL, &carol)] {
        let estimate = estimate_delay(heard, &recording, 240_000).unwrap();
        let windows = presence(heard, &recording, estimate.lag_samples, &config);
        let summary = summarize(&windows);
        assert!(summary.windows >= 9, "{}: {summary:?}", fixture.name);

        let solo = windows_within(&windows, fixture.solo.to_samples());
        assert!(solo.len() >= 5, "{}: {solo:#?}", fixture.name);
        assert!(
            solo.iter().all(|w| w.score > 0.99),
            "{}: {solo:#?}",
            fixture.name
        );

        // While the other one talks too, a quiet stretch of this speaker
        // can fall below HEARD_SCORE, but never to ABSENT_SCORE.
        let together = windows_within(&windows, TOGETHER.to_samples());
        let heard_count = together.iter().filter(|w| w.score >= HEARD_SCORE).count();
        assert!(
            heard_count * 10 >= together.len() * 7,
            "{}: {together:#?}",
            fixture.name
        );
        assert!(
            together.iter().all(|w| w.score >= ABSENT_SCORE),
            "{}: {together:#?}",
            fixture.name
        );
    }

    let estimate = estimate_delay(&bob, &recording, 240_000).unwrap();
    let windows = presence(&bob, &recording, estimate.lag_samples, &config);
    let summary = summarize(&windows);
    assert!(summary.windows >= 9, "{summary:?}");
    assert_eq!(summary.absent, summary.windows, "{windows:#?}");

    // The windows where Alice and Carol talk over Bob's speech are the
    // hard case for absence; check them on their own.
    let together = windows_within(&windows, TOGETHER.to_samples());
    assert!(together.len() >= 4, "{together:?}");
    assert!(
        together.iter().all(|w| w.score < ABSENT_SCORE),
        "{together:#?}"
    );
}

#[test]
fn presence_follows_lag_drift_within_search() {
    let alice = load(&ALICE);
    // The lag grows by one 20 ms frame at 2 s, as when a jitter buffer
    // stretches.
    let lag = 4_800;
    let mut recording = shifted(&alice, lag);
    recording.splice(96_000 + lag as usize..96_000 + lag as usize, vec![0.0; 960]);

    let windows = presence(&alice, &recording, lag, &PresenceConfig::default());
    let summary = summarize(&windows);
    assert!(summary.heard >= summary.windows - 1, "{windows:#?}");
    let last = windows.last().unwrap();
    assert_eq!(last.lag_samples, lag + 960, "{last:?}");
}

#[test]
fn presence_skips_quiet_windows_and_handles_edges() {
    let alice = load(&ALICE);
    let windows = presence(&alice, &alice, 0, &PresenceConfig::default());
    for window in &windows {
        assert!(window.reference_dbfs >= -45.0);
        assert!(window.score > 0.999, "{window:?}");
        assert_eq!(window.lag_samples, 0);
    }
    // A lag pointing past the recording's end scores zero, not a panic.
    let outside = presence(&alice, &alice[..1_000], 500_000, &PresenceConfig::default());
    assert!(outside.iter().all(|w| w.score == 0.0));
    let no_windows = PresenceConfig {
        window: 0,
        ..PresenceConfig::default()
    };
    assert!(presence(&alice, &alice, 0, &no_windows).is_empty());
}

#[test]
fn summary_counts_against_thresholds() {
    let alice = load(&ALICE);
    let windows = presence(&alice, &alice, 0, &PresenceConfig::default());
    let summary = summarize(&windows);
    assert_eq!(summary.heard_fraction(), 1.0);
    assert_eq!(summary.absent_fraction(), 0.0);
    assert!(summary.median_score > 0.999);
    let empty = summarize(&[]);
    assert_eq!(empty.windows, 0);
    assert_eq!(empty.heard_fraction(), 0.0);
    assert_eq!(empty.median_score, 0.0);
}
