//! Voice activity detection (VAD): an energy gate with hangover.
//!
//! A frame whose RMS reaches the threshold opens the gate at once. The gate
//! then stays open for a hangover of [`DEFAULT_HANGOVER_FRAMES`] frames
//! (300 ms) after the last loud frame, so that quiet word endings and short
//! pauses between words are not cut.

use crate::audio::PcmFrame;

/// Frames the gate stays open after the last frame at or above the
/// threshold: 15 frames of 20 ms.
pub const DEFAULT_HANGOVER_FRAMES: u32 = 15;

#[derive(Debug, Clone)]
pub struct VoiceActivityDetector {
    threshold: f32,
    hangover_frames: u32,
    /// Frames of hangover left; zero when the gate is closed.
    remaining: u32,
}

impl VoiceActivityDetector {
    /// `threshold` is the frame RMS, as a fraction of full scale, at or above
    /// which a frame counts as speech. Zero lets everything through, and so
    /// does a negative or NaN threshold.
    pub fn new(threshold: f32) -> Self {
        Self::with_hangover(threshold, DEFAULT_HANGOVER_FRAMES)
    }

    /// Like [`VoiceActivityDetector::new`], with a hangover of
    /// `hangover_frames` 20 ms frames instead of the default.
    pub fn with_hangover(threshold: f32, hangover_frames: u32) -> Self {
        let threshold = if threshold > 0.0 { threshold } else { 0.0 };
        VoiceActivityDetector {
            threshold,
            hangover_frames,
            remaining: 0,
        }
    }

    /// Feeds one frame and returns whether the sender counts as talking.
    pub fn update(&mut self, frame: &PcmFrame) -> bool {
        if self.threshold == 0.0 {
            return true;
        }

        if frame_rms(frame) >= self.threshold {
            self.remaining = self.hangover_frames;
            true
        } else if self.remaining > 0 {
            self.remaining -= 1;
            true
        } else {
            false
        }
    }

    /// Closes the gate, dropping any hangover left, for example when the
    /// sender's stream stops.
    pub fn reset(&mut self) {
        self.remaining = 0;
    }

    /// The threshold in force, as a fraction of full scale.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
}

/// The RMS of `frame` as a fraction of full scale. Non-finite samples count
/// as silence.
pub fn frame_rms(frame: &PcmFrame) -> f32 {
    let energy: f64 = frame
        .iter()
        .filter(|sample| sample.is_finite())
        .map(|&sample| f64::from(sample) * f64::from(sample))
        .sum();
    (energy / frame.len() as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{FRAME_SAMPLES, SILENCE};

    fn constant(level: f32) -> PcmFrame {
        [level; FRAME_SAMPLES]
    }

    #[test]
    fn loud_frame_opens_gate_at_once() {
        let mut vad = VoiceActivityDetector::new(0.1);
        assert!(!vad.update(&SILENCE));
        assert!(vad.update(&constant(0.2)));
    }

    #[test]
    fn threshold_is_inclusive() {
        let mut vad = VoiceActivityDetector::new(0.25);
        assert!(vad.update(&constant(0.25)));
        let mut vad = VoiceActivityDetector::new(0.25);
        assert!(!vad.update(&constant(0.2499)));
    }

    #[test]
    fn hangover_keeps_gate_open_for_300ms() {
        let mut vad = VoiceActivityDetector::new(0.1);
        assert!(vad.update(&constant(0.5)));
        for frame in 0..DEFAULT_HANGOVER_FRAMES {
            assert!(vad.update(&SILENCE), "frame {frame} of the hangover");
        }
        assert!(!vad.update(&SILENCE));
    }

    #[test]
    fn speech_during_hangover_restarts_it() {
        let mut vad = VoiceActivityDetector::with_hangover(0.1, 3);
        assert!(vad.update(&constant(0.5)));
        assert!(vad.update(&SILENCE));
        assert!(vad.update(&SILENCE));
        assert!(vad.update(&constant(0.5)));
        for _ in 0..3 {
            assert!(vad.update(&SILENCE));
        }
        assert!(!vad.update(&SILENCE));
    }

    #[test]
    fn zero_threshold_passes_silence() {
        for threshold in [0.0, -1.0, f32::NAN] {
            let mut vad = VoiceActivityDetector::new(threshold);
            assert!(vad.update(&SILENCE), "threshold {threshold}");
            assert_eq!(vad.threshold(), 0.0);
        }
    }

    #[test]
    fn reset_closes_gate() {
        let mut vad = VoiceActivityDetector::new(0.1);
        vad.update(&constant(0.5));
        vad.reset();
        assert!(!vad.update(&SILENCE));
    }

    #[test]
    fn rms_of_sine_and_bad_samples() {
        let sine: PcmFrame =
            std::array::from_fn(|n| (std::f32::consts::TAU * 1_000.0 * n as f32 / 48_000.0).sin());
        assert!((frame_rms(&sine) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3);

        let mut frame = constant(0.5);
        frame[0] = f32::NAN;
        frame[1] = f32::INFINITY;
        let rms = frame_rms(&frame);
        assert!(rms.is_finite());
        assert!(rms < 0.5);

        let mut vad = VoiceActivityDetector::new(0.1);
        assert!(!vad.update(&[f32::NAN; FRAME_SAMPLES]));
    }
}
