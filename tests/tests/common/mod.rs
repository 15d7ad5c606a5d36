//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::time::Duration;

use voicemcu_core::audio::SAMPLE_RATE;

/// Amplitude of the `frequency` component of `samples` (a Goertzel filter),
/// as a fraction of full scale: a sine of amplitude A gives about A.
pub fn tone_level(samples: &[f32], frequency: f32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let omega = 2.0 * std::f32::consts::PI * frequency / SAMPLE_RATE as f32;
    let coefficient = 2.0 * omega.cos();
    let (mut previous, mut before_previous) = (0.0f32, 0.0f32);
    for sample in samples {
        let current = sample + coefficient * previous - before_previous;
        before_previous = previous;
        previous = current;
    }
    let power = previous * previous + before_previous * before_previous
        - coefficient * previous * before_previous;
    2.0 * power.max(0.0).sqrt() / samples.len() as f32
}

/// The last `duration` of `samples`.
pub fn tail(samples: &[f32], duration: Duration) -> &[f32] {
    let len = (duration.as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
    &samples[samples.len().saturating_sub(len)..]
}

#[test]
fn tone_level_measures_a_sine() {
    let samples: Vec<f32> = (0..9600)
        .map(|n| 0.25 * (2.0 * std::f32::consts::PI * 500.0 * n as f32 / 48_000.0).sin())
        .collect();
    assert!((tone_level(&samples, 500.0) - 0.25).abs() < 0.01);
    assert!(tone_level(&samples, 1300.0) < 0.01);
}
