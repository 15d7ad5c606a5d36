//! A soft limiter for mixed audio.
//!
//! Summing several speakers can exceed full scale. The limiter keeps the mix
//! within [-1.0, 1.0] in two stages:
//!
//! 1. A peak limiter with gain `THRESHOLD / envelope` whenever the envelope
//!    is above [`THRESHOLD`] (-3 dBFS). The envelope follows the absolute
//!    sample value and rises at once with every new peak (instant attack).
//!    It keeps a peak for 10 ms, so that the gain does not ripple between
//!    the peaks of low voices, then decays with a 100 ms time constant
//!    (release). The
//!    gain therefore changes smoothly except at the rising edge of a peak,
//!    and no sample leaves this stage above the threshold (up to float
//!    rounding) unless the gain has hit its floor.
//! 2. A soft clipper as a safety net for inputs so large that the gain hits
//!    its floor. It is the identity up to the threshold, and above it bends
//!    the signal along a `tanh` curve that approaches full scale but never
//!    passes it.
//!
//! The 3 dB left between the threshold and full scale is headroom for the
//! Opus encoder that follows, whose decoded output overshoots its input. In
//! the mixer's test of three loud tones at 32 kbit/s the decoded peak was
//! 0.82, 16% above the threshold. Signals that stay below the
//! threshold pass bit for bit. NaN and infinite samples become 0 before
//! either stage, so they cannot reach the envelope.

use crate::audio::{PcmFrame, SAMPLE_RATE};

/// The level above which the limiter reduces gain: -3 dBFS.
pub const THRESHOLD: f32 = 0.707_945_8;

/// How long the envelope keeps a peak before it starts to decay.
const HOLD_SECONDS: f32 = 0.01;

/// Time for the envelope to decay by a factor of e.
const RELEASE_SECONDS: f32 = 0.1;

/// The lowest gain the limiter applies. It keeps the gain out of subnormal
/// floats on absurd inputs, and the soft clipper still bounds the output.
const MIN_GAIN: f32 = 1e-4;

#[derive(Debug, Clone)]
pub struct Limiter {
    /// The peak envelope; zero whenever it is at or below the threshold,
    /// because only its excess over the threshold matters.
    envelope: f32,
    /// Samples left before the envelope starts to decay.
    hold_left: u32,
    hold_samples: u32,
    /// Per-sample decay factor of the envelope.
    release: f32,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Self {
        let samples_per_second = SAMPLE_RATE as f32;
        Limiter {
            envelope: 0.0,
            hold_left: 0,
            hold_samples: (HOLD_SECONDS * samples_per_second) as u32,
            release: (-1.0 / (RELEASE_SECONDS * samples_per_second)).exp(),
        }
    }

    /// Limits `frame` in place so that every sample lies within [-1.0, 1.0].
    pub fn process(&mut self, frame: &mut PcmFrame) {
        for sample in frame.iter_mut() {
            let input = if sample.is_finite() { *sample } else { 0.0 };
            self.follow(input.abs());
            *sample = soft_clip(input * self.gain());
        }
    }

    /// Moves the envelope on by one sample of level `level`.
    fn follow(&mut self, level: f32) {
        if level >= self.envelope {
            self.envelope = level;
            self.hold_left = self.hold_samples;
        } else if self.hold_left > 0 {
            self.hold_left -= 1;
        } else {
            self.envelope = (self.envelope * self.release).max(level);
        }

        if self.envelope <= THRESHOLD {
            self.envelope = 0.0;
            self.hold_left = 0;
        }
    }

    /// The gain the limiter applies now: 1.0 when it is idle.
    pub fn gain(&self) -> f32 {
        if self.envelope > THRESHOLD {
            (THRESHOLD / self.envelope).max(MIN_GAIN)
        } else {
            1.0
        }
    }
}

/// The identity up to [`THRESHOLD`]; above it, a `tanh` knee that meets the
/// identity with the same slope and approaches full scale.
fn soft_clip(sample: f32) -> f32 {
    let level = sample.abs();
    if level <= THRESHOLD {
        return sample;
    }
    let headroom = 1.0 - THRESHOLD;
    let bent = THRESHOLD + headroom * ((level - THRESHOLD) / headroom).tanh();
    bent.min(1.0).copysign(sample)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;
    use proptest::prelude::*;
    use std::f32::consts::TAU;

    fn sine(frequency: f32, amplitude: f32, frame_index: usize) -> PcmFrame {
        std::array::from_fn(|n| {
            let t = (frame_index * FRAME_SAMPLES + n) as f32 / SAMPLE_RATE as f32;
            amplitude * (TAU * frequency * t).sin()
        })
    }

    fn peak(frame: &PcmFrame) -> f32 {
        frame
            .iter()
            .fold(0.0f32, |peak, sample| peak.max(sample.abs()))
    }

    #[test]
    fn quiet_signal_is_bit_exact() {
        let mut limiter = Limiter::new();
        for index in 0..20 {
            let input = sine(440.0, 0.7, index);
            let mut output = input;
            limiter.process(&mut output);
            assert_eq!(output, input, "frame {index}");
        }
        assert_eq!(limiter.gain(), 1.0);
    }

    #[test]
    fn loud_signal_settles_near_threshold() {
        let mut limiter = Limiter::new();
        let mut output = [0.0; FRAME_SAMPLES];
        for index in 0..20 {
            output = sine(300.0, 2.5, index);
            limiter.process(&mut output);
            assert!(peak(&output) <= 1.0);
        }
        let settled = peak(&output);
        assert!(
            (THRESHOLD - 0.01..=THRESHOLD).contains(&settled),
            "settled peak {settled}"
        );
        assert!(limiter.gain() < 0.3);
    }

    #[test]
    fn gain_recovers_after_release() {
        let mut limiter = Limiter::new();
        let mut frame = [2.0; FRAME_SAMPLES];
        limiter.process(&mut frame);
        assert!(limiter.gain() < 0.5);
        // The envelope must fall from 2.0 to the threshold: about 104 ms
        // of release after the 10 ms hold.
        for _ in 0..5 {
            limiter.process(&mut [0.0; FRAME_SAMPLES]);
        }
        assert!(limiter.gain() < 1.0);
        for _ in 0..2 {
            limiter.process(&mut [0.0; FRAME_SAMPLES]);
        }
        assert_eq!(limiter.gain(), 1.0);
    }

    #[test]
    fn limited_peaks_stay_at_threshold() {
        let mut limiter = Limiter::new();
        // A sudden onset: no sample may pass above the threshold.
        let mut frame = sine(1_000.0, 3.0, 0);
        limiter.process(&mut frame);
        assert!(peak(&frame) <= THRESHOLD + 1e-6, "peak {}", peak(&frame));
    }

    #[test]
    fn gain_does_not_ripple_between_low_peaks() {
        let mut limiter = Limiter::new();
        let mut gains = Vec::new();
        for index in 0..10 {
            // 100 Hz: 5 ms between peaks of either sign, within the hold.
            let mut frame = sine(100.0, 1.5, index);
            limiter.process(&mut frame);
            gains.push(limiter.gain());
        }
        let settled = &gains[2..];
        let (low, high) = settled
            .iter()
            .fold((f32::MAX, f32::MIN), |(low, high), &gain| {
                (low.min(gain), high.max(gain))
            });
        assert!(high - low < 1e-3, "gains {gains:?}");
    }

    #[test]
    fn three_speaker_sum_stays_in_range() {
        let mut limiter = Limiter::new();
        for index in 0..50 {
            let a = sine(500.0, 1.0, index);
            let b = sine(1_000.0, 1.0, index);
            let c = sine(1_500.0, 1.0, index);
            let mut mix: PcmFrame = std::array::from_fn(|n| a[n] + b[n] + c[n]);
            limiter.process(&mut mix);
            assert!(peak(&mix) <= 1.0, "frame {index}: peak {}", peak(&mix));
        }
    }

    #[test]
    fn non_finite_samples_become_silence() {
        let mut limiter = Limiter::new();
        let mut frame = [0.1; FRAME_SAMPLES];
        frame[0] = f32::NAN;
        frame[1] = f32::INFINITY;
        frame[2] = f32::NEG_INFINITY;
        limiter.process(&mut frame);
        assert_eq!(&frame[..4], &[0.0, 0.0, 0.0, 0.1]);
        assert_eq!(limiter.gain(), 1.0);
    }

    #[test]
    fn soft_clip_is_continuous_and_bounded() {
        assert_eq!(soft_clip(THRESHOLD), THRESHOLD);
        let just_above = soft_clip(THRESHOLD + 1e-4);
        assert!(just_above > THRESHOLD);
        assert!(just_above < THRESHOLD + 1.1e-4);
        assert!(soft_clip(1.0) < 1.0);
        assert_eq!(soft_clip(f32::MAX), 1.0);
        assert_eq!(soft_clip(-f32::MAX), -1.0);
        assert!(soft_clip(1.5) > soft_clip(1.2));
    }

    fn any_sample() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => -1.0f32..=1.0,
            2 => -3.0f32..=3.0,
            1 => any::<f32>(),
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => Just(f32::NEG_INFINITY),
            1 => Just(f32::MAX),
        ]
    }

    proptest! {
        #[test]
        fn limiter_output_always_in_range(
            frames in proptest::collection::vec(
                proptest::collection::vec(any_sample(), FRAME_SAMPLES),
                1..4,
            ),
        ) {
            let mut limiter = Limiter::new();
            for samples in frames {
                let mut frame: PcmFrame = samples.try_into().unwrap();
                limiter.process(&mut frame);
                for sample in frame {
                    prop_assert!(sample.is_finite());
                    prop_assert!((-1.0..=1.0).contains(&sample), "sample {}", sample);
                }
            }
        }

        #[test]
        fn limiter_bounds_sum_of_three_speakers(
            frequencies in proptest::array::uniform3(50.0f32..8_000.0),
            amplitudes in proptest::array::uniform3(0.5f32..=1.0),
        ) {
            let mut limiter = Limiter::new();
            for index in 0..10 {
                let mut mix = [0.0f32; FRAME_SAMPLES];
                for (frequency, amplitude) in frequencies.iter().zip(amplitudes) {
                    let speaker = sine(*frequency, amplitude, index);
                    for (sum, sample) in mix.iter_mut().zip(speaker) {
                        *sum += sample;
                    }
                }
                limiter.process(&mut mix);
                prop_assert!(mix.iter().all(|sample| (-1.0..=1.0).contains(sample)));
            }
        }

        #[test]
        fn limiter_passes_quiet_signals_unchanged(
            samples in proptest::collection::vec(-THRESHOLD..=THRESHOLD, FRAME_SAMPLES),
        ) {
            let mut limiter = Limiter::new();
            let input: PcmFrame = samples.try_into().unwrap();
            let mut output = input;
            limiter.process(&mut output);
            prop_assert_eq!(output, input);
        }
    }
}
