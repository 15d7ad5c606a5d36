//! Tone levels in decoded audio, measured with the Goertzel algorithm.
//!
//! Each simulated participant sends a sine at its own frequency, so whom a
//! listener hears can be read off its playback: the level of each
//! participant's frequency, window by window. A Hann window keeps the
//! leakage from the other tones (300 Hz or more away) far below the
//! thresholds the invariants use.

use std::f64::consts::TAU;
use std::time::Duration;

use voicemcu_core::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// The length of one analysis window in 20 ms frames: 100 ms, a 10 Hz
/// frequency resolution.
pub const WINDOW_FRAMES: usize = 5;

/// The level reported for a window with no energy at all, in dBFS.
pub const FLOOR_DBFS: f32 = -120.0;

/// Returns the peak amplitude, in dBFS, of the sine at `frequency_hz` in
/// 48 kHz `samples`, after a Hann window.
pub fn tone_level_dbfs(samples: &[f32], frequency_hz: f32) -> f32 {
    let count = samples.len();
    if count < 2 {
        return FLOOR_DBFS;
    }

    let omega = TAU * f64::from(frequency_hz) / f64::from(SAMPLE_RATE);
    let coefficient = 2.0 * omega.cos();
    let mut previous = 0.0f64;
    let mut before_previous = 0.0f64;
    let mut window_sum = 0.0f64;
    for (index, sample) in samples.iter().enumerate() {
        let hann = 0.5 - 0.5 * (TAU * index as f64 / (count - 1) as f64).cos();
        window_sum += hann;
        let current = f64::from(*sample) * hann + coefficient * previous - before_previous;
        before_previous = previous;
        previous = current;
    }
    let power = previous * previous + before_previous * before_previous
        - coefficient * previous * before_previous;

    // A sine of amplitude A gives |X| = A * sum(w) / 2 at its own bin.
    let amplitude = 2.0 * power.max(0.0).sqrt() / window_sum;
    if amplitude <= 0.0 {
        return FLOOR_DBFS;
    }
    (20.0 * amplitude.log10()).max(f64::from(FLOOR_DBFS)) as f32
}

/// The levels of every participant's tone in one window of a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct ToneWindow {
    /// Simulated time at which the window's first frame was played out.
    pub start: Duration,
    /// One level per participant, in the scenario's participant order, in
    /// dBFS.
    pub levels_dbfs: Vec<f32>,
}

/// Cuts a recording into [`WINDOW_FRAMES`]-frame windows and measures each
/// of `frequencies` in each. `frame_times` gives the simulated time each
/// frame was played out. A trailing part window is left out.
pub fn measure_windows(
    samples: &[f32],
    frame_times: &[Duration],
    frequencies: &[f32],
) -> Vec<ToneWindow> {
    let window_samples = WINDOW_FRAMES * FRAME_SAMPLES;
    samples
        .chunks_exact(window_samples)
        .zip(frame_times.chunks_exact(WINDOW_FRAMES))
        .map(|(window, times)| ToneWindow {
            start: times[0],
            levels_dbfs: frequencies
                .iter()
                .map(|frequency| tone_level_dbfs(window, *frequency))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(frequency: f32, amplitude: f32, samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|n| {
                let phase = TAU * f64::from(frequency) * n as f64 / f64::from(SAMPLE_RATE);
                amplitude * phase.sin() as f32
            })
            .collect()
    }

    #[test]
    fn measures_a_tone_at_its_level() {
        let tone = sine(800.0, 0.25, 4800);
        let level = tone_level_dbfs(&tone, 800.0);
        assert!((level - (-12.04)).abs() < 0.2, "{level}");
    }

    #[test]
    fn other_tones_leak_far_below_threshold() {
        let mut mix = sine(500.0, 0.25, 4800);
        for (sample, other) in mix.iter_mut().zip(sine(1300.0, 0.25, 4800)) {
            *sample += other;
        }
        let level = tone_level_dbfs(&mix, 800.0);
        assert!(level < -70.0, "{level}");
    }

    #[test]
    fn silence_is_at_the_floor() {
        assert_eq!(tone_level_dbfs(&[0.0; 4800], 500.0), FLOOR_DBFS);
    }

    #[test]
    fn windows_start_at_their_first_frame() {
        let samples = vec![0.0; FRAME_SAMPLES * 11];
        let times: Vec<Duration> = (0..11).map(|i| Duration::from_millis(20 * i)).collect();
        let windows = measure_windows(&samples, &times, &[500.0]);
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[1].start, Duration::from_millis(100));
    }
}
