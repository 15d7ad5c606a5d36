//! Tone levels in decoded audio, measured with the Goertzel algorithm.
//!
//! Each simulated participant sends a sine at its own frequency, so whom a
//! listener hears can be read off its playback: the level of each
//! participant's frequency, window by window. A Hann window keeps the
//! leakage from the other tones (300 Hz or more away) far below the
//! thresholds the invariants use.
//!
//! Leakage is not the only energy at a frequency no participant sends. When
//! a listener's client conceals a lost or late packet, Opus's packet loss
//! concealment and the decoder's recovery over the next few frames spread
//! the mix into distortion for about 100 ms. The catalog's tones are all
//! multiples of 100 Hz, so every mix of them repeats every 10 ms, and that
//! distortion lands on the same 100 Hz grid, at the frequencies of
//! participants who are not in the mix too. In one `host-churn` run, h2's
//! client concealed two frames of a 500, 1100 and 1700 Hz mix. The 100 ms
//! from the second of them on contained -29 dBFS at h2's own 1400 Hz, next
//! to -28 dBFS at 1200 Hz and -27 dBFS at 1600 Hz, which no participant
//! sends. Each window therefore also records the distortion floor beside
//! every tone ([`ToneWindow::floors_dbfs`]), so that the invariants can
//! tell a tone from distortion that merely covers its frequency.

use std::f64::consts::TAU;
use std::time::Duration;

use voicemcu_core::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// The length of one analysis window in 20 ms frames: 100 ms, a 10 Hz
/// frequency resolution.
pub const WINDOW_FRAMES: usize = 5;

/// The level reported for a window with no energy at all, in dBFS.
pub const FLOOR_DBFS: f32 = -120.0;

/// Offsets from a tone, in Hz, of the frequencies at which the distortion
/// floor beside it is measured. They stay on the catalog's 100 Hz grid,
/// where distortion of a mix of its tones lands. They are also ten
/// frequency bins from the tone, where a clean tone's Hann leakage is more
/// than 110 dB below the tone (computed for a 1400 Hz sine in one window).
const FLOOR_OFFSETS_HZ: [f32; 4] = [-200.0, -100.0, 100.0, 200.0];

/// A floor frequency closer than this to any participant's tone, in Hz, is
/// left out, because that tone may be heard there legitimately.
const FLOOR_CLEARANCE_HZ: f32 = 50.0;

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
    /// One distortion floor per participant, in the same order, in dBFS:
    /// the highest level at the frequencies 100 Hz and 200 Hz on either
    /// side of its tone that no participant sends. [`FLOOR_DBFS`] when
    /// every such frequency is taken.
    pub floors_dbfs: Vec<f32>,
}

impl ToneWindow {
    /// Returns how far participant `index`'s tone rises above the
    /// distortion floor beside it, in dB.
    pub fn above_floor_db(&self, index: usize) -> f32 {
        self.levels_dbfs[index] - self.floors_dbfs[index]
    }
}

/// Returns, for each of `frequencies`, the frequencies at which the
/// distortion floor beside it is measured: [`FLOOR_OFFSETS_HZ`] away from
/// it, and at least [`FLOOR_CLEARANCE_HZ`] from every one of
/// `frequencies`.
pub fn floor_frequencies(frequencies: &[f32]) -> Vec<Vec<f32>> {
    frequencies
        .iter()
        .map(|tone| {
            FLOOR_OFFSETS_HZ
                .iter()
                .map(|offset| tone + offset)
                .filter(|candidate| *candidate > 0.0)
                .filter(|candidate| {
                    frequencies
                        .iter()
                        .all(|other| (candidate - other).abs() >= FLOOR_CLEARANCE_HZ)
                })
                .collect()
        })
        .collect()
}

/// Cuts a recording into [`WINDOW_FRAMES`]-frame windows and measures each
/// of `frequencies`, and the distortion floor beside each, in each.
/// `frame_times` gives the simulated time each frame was played out. A
/// trailing part window is left out.
pub fn measure_windows(
    samples: &[f32],
    frame_times: &[Duration],
    frequencies: &[f32],
) -> Vec<ToneWindow> {
    let window_samples = WINDOW_FRAMES * FRAME_SAMPLES;
    let floor_frequencies = floor_frequencies(frequencies);
    samples
        .chunks_exact(window_samples)
        .zip(frame_times.chunks_exact(WINDOW_FRAMES))
        .map(|(window, times)| ToneWindow {
            start: times[0],
            levels_dbfs: frequencies
                .iter()
                .map(|frequency| tone_level_dbfs(window, *frequency))
                .collect(),
            floors_dbfs: floor_frequencies
                .iter()
                .map(|beside| {
                    beside
                        .iter()
                        .map(|frequency| tone_level_dbfs(window, *frequency))
                        .fold(FLOOR_DBFS, f32::max)
                })
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

    fn add(mix: &mut [f32], other: &[f32]) {
        for (sample, other) in mix.iter_mut().zip(other) {
            *sample += other;
        }
    }

    #[test]
    fn floor_skips_frequencies_of_other_tones() {
        let floors = floor_frequencies(&[1100.0, 1400.0, 1700.0, 1210.0]);
        assert_eq!(floors[1], vec![1300.0, 1500.0, 1600.0]);
        assert_eq!(floors[0], vec![900.0, 1000.0, 1300.0]);
    }

    #[test]
    fn own_tone_rises_above_its_floor() {
        let mut mix = sine(1100.0, 0.1, 4800);
        add(&mut mix, &sine(1700.0, 0.1, 4800));
        add(&mut mix, &sine(1400.0, 0.03, 4800));
        let times: Vec<Duration> = (0..5).map(|i| Duration::from_millis(20 * i)).collect();
        let windows = measure_windows(&mix, &times, &[1100.0, 1400.0, 1700.0]);
        assert_eq!(windows.len(), 1);
        assert!((windows[0].levels_dbfs[1] - (-30.5)).abs() < 0.5);
        assert!(windows[0].above_floor_db(1) > 40.0, "{:?}", windows[0]);
    }

    #[test]
    fn harmonic_distortion_sets_the_floor() {
        // Distortion of a mix that repeats every 10 ms: every harmonic of
        // 100 Hz from 1000 to 1800 Hz at the same level, 1400 Hz included.
        let mut mix = vec![0.0; 4800];
        for harmonic in 10..=18 {
            add(&mut mix, &sine(100.0 * harmonic as f32, 0.03, 4800));
        }
        let times: Vec<Duration> = (0..5).map(|i| Duration::from_millis(20 * i)).collect();
        let windows = measure_windows(&mix, &times, &[1100.0, 1400.0, 1700.0]);
        assert!(windows[0].levels_dbfs[1] > -35.0, "{:?}", windows[0]);
        assert!(windows[0].above_floor_db(1).abs() < 1.0, "{:?}", windows[0]);
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
