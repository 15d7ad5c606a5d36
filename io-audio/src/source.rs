//! Frame sources that need no sound card: a WAV file held in memory and a
//! test tone.

use std::f64::consts::TAU;
use std::path::Path;
use std::time::Duration;

use voicemcu_core::audio::{FrameSource, PcmFrame, FRAME_SAMPLES, SAMPLE_RATE};

use crate::wav::{read_wav_48k_mono, WavError};

/// Plays 48 kHz mono samples as 20 ms frames. The last frame is padded with
/// zeros, and after it [`FrameSource::next_frame`] returns `false`, so a
/// signal of `n` samples gives `ceil(n / 960)` frames.
#[derive(Clone, Debug)]
pub struct WavSource {
    samples: Vec<f32>,
    position: usize,
}

impl WavSource {
    /// Reads a WAV file of any supported format into memory as 48 kHz mono.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WavError> {
        Ok(Self::from_samples(read_wav_48k_mono(path)?))
    }

    /// Plays samples that are already 48 kHz mono.
    pub fn from_samples(samples: Vec<f32>) -> Self {
        WavSource {
            samples,
            position: 0,
        }
    }

    /// Returns the whole signal.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// Returns the number of frames the source yields in total.
    pub fn total_frames(&self) -> usize {
        self.samples.len().div_ceil(FRAME_SAMPLES)
    }

    /// Returns the signal's length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(SAMPLE_RATE))
    }
}

impl FrameSource for WavSource {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        let remaining = &self.samples[self.position.min(self.samples.len())..];
        if remaining.is_empty() {
            return false;
        }
        let taken = remaining.len().min(FRAME_SAMPLES);
        frame[..taken].copy_from_slice(&remaining[..taken]);
        frame[taken..].fill(0.0);
        self.position += taken;
        true
    }
}

/// Invalid test tone settings.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ToneError {
    #[error("invalid tone frequency {0} Hz; use a frequency above 0 and below 24000 Hz (the Nyquist frequency at 48 kHz)")]
    Frequency(f32),
    #[error("invalid tone level {0} dBFS; use a finite level at or below 0 dBFS, such as -12")]
    Level(f32),
}

/// A sine test tone, such as 440 Hz at -12 dBFS, endless or of fixed
/// length. The level is the sine's peak relative to full scale, so its RMS
/// level is 3.01 dB lower. The phase runs on across frames without jumps.
#[derive(Clone, Debug)]
pub struct ToneSource {
    /// Phase step per sample, in radians.
    step: f64,
    amplitude: f64,
    /// Samples produced so far.
    position: u64,
    /// Total samples, or `None` for an endless tone.
    length: Option<u64>,
}

impl ToneSource {
    /// Creates an endless tone.
    pub fn new(frequency_hz: f32, level_dbfs: f32) -> Result<Self, ToneError> {
        if !(frequency_hz.is_finite() && frequency_hz > 0.0 && frequency_hz < 24_000.0) {
            return Err(ToneError::Frequency(frequency_hz));
        }
        if !(level_dbfs.is_finite() && level_dbfs <= 0.0) {
            return Err(ToneError::Level(level_dbfs));
        }
        Ok(ToneSource {
            step: TAU * f64::from(frequency_hz) / f64::from(SAMPLE_RATE),
            amplitude: 10f64.powf(f64::from(level_dbfs) / 20.0),
            position: 0,
            length: None,
        })
    }

    /// Ends the tone after `duration`, rounded to the nearest sample. The
    /// last frame is padded with zeros.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        let samples = (duration.as_secs_f64() * f64::from(SAMPLE_RATE)).round();
        self.length = Some(samples as u64);
        self
    }

    /// Returns the peak amplitude as a fraction of full scale.
    pub fn amplitude(&self) -> f32 {
        self.amplitude as f32
    }
}

impl FrameSource for ToneSource {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        let remaining = match self.length {
            Some(length) if self.position >= length => return false,
            Some(length) => (length - self.position).min(FRAME_SAMPLES as u64) as usize,
            None => FRAME_SAMPLES,
        };
        for (offset, sample) in frame[..remaining].iter_mut().enumerate() {
            // Computing the phase from the sample index keeps it exact over
            // hours, where summing steps would drift.
            let phase = self.step * (self.position + offset as u64) as f64;
            *sample = (self.amplitude * phase.sin()) as f32;
        }
        frame[remaining..].fill(0.0);
        self.position += remaining as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicemcu_core::audio::SILENCE;

    fn drain(source: &mut impl FrameSource) -> Vec<PcmFrame> {
        let mut frames = Vec::new();
        let mut frame = SILENCE;
        while source.next_frame(&mut frame) {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn wav_source_frame_count_is_ceiling() {
        for len in [0usize, 1, 959, 960, 961, 1920, 10_000] {
            let samples: Vec<f32> = (0..len).map(|n| n as f32 / 20_000.0).collect();
            let mut source = WavSource::from_samples(samples.clone());
            assert_eq!(source.total_frames(), len.div_ceil(FRAME_SAMPLES));
            let frames = drain(&mut source);
            assert_eq!(frames.len(), len.div_ceil(FRAME_SAMPLES), "length {len}");

            let flat: Vec<f32> = frames.iter().flatten().copied().collect();
            assert_eq!(&flat[..len], &samples[..], "length {len}");
            assert!(
                flat[len..].iter().all(|&s| s == 0.0),
                "padding for length {len}"
            );
        }
    }

    #[test]
    fn wav_source_stays_ended() {
        let mut source = WavSource::from_samples(vec![0.5; 100]);
        let mut frame = SILENCE;
        assert!(source.next_frame(&mut frame));
        assert!(!source.next_frame(&mut frame));
        assert!(!source.next_frame(&mut frame));
    }

    #[test]
    fn tone_has_requested_level_and_frequency() {
        let mut tone = ToneSource::new(440.0, -12.0)
            .unwrap()
            .with_duration(Duration::from_secs(1));
        let samples: Vec<f32> = drain(&mut tone).iter().flatten().copied().collect();
        assert_eq!(samples.len(), 48_000);

        let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
        let expected_peak = 10f32.powf(-12.0 / 20.0);
        assert!((peak - expected_peak).abs() < 1e-3, "peak {peak}");

        // 440 full cycles in one second cross zero upwards 440 times.
        let upward_crossings = samples
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!(
            (439..=440).contains(&upward_crossings),
            "crossings {upward_crossings}"
        );
    }

    #[test]
    fn tone_duration_pads_last_frame() {
        let mut tone = ToneSource::new(1000.0, -6.0)
            .unwrap()
            .with_duration(Duration::from_millis(30));
        let frames = drain(&mut tone);
        assert_eq!(frames.len(), 2);
        assert!(frames[1][480..].iter().all(|&s| s == 0.0));
        assert!(frames[1][..480].iter().any(|&s| s != 0.0));
    }

    #[test]
    fn tone_phase_is_continuous_across_frames() {
        let mut tone = ToneSource::new(1000.0, 0.0).unwrap();
        let frames: Vec<PcmFrame> = (0..3)
            .map(|_| {
                let mut frame = SILENCE;
                assert!(tone.next_frame(&mut frame));
                frame
            })
            .collect();
        let flat: Vec<f32> = frames.iter().flatten().copied().collect();
        // The largest step of a full-scale 1 kHz sine at 48 kHz is
        // 2 * pi * 1000 / 48000 = 0.131.
        let max_step = flat
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_step < 0.132, "step {max_step}");
    }

    #[test]
    fn tone_rejects_invalid_settings() {
        assert_eq!(
            ToneSource::new(0.0, -12.0).unwrap_err(),
            ToneError::Frequency(0.0)
        );
        assert_eq!(
            ToneSource::new(24_000.0, -12.0).unwrap_err(),
            ToneError::Frequency(24_000.0)
        );
        assert!(matches!(
            ToneSource::new(f32::NAN, -12.0),
            Err(ToneError::Frequency(_))
        ));
        assert_eq!(
            ToneSource::new(440.0, 3.0).unwrap_err(),
            ToneError::Level(3.0)
        );
        let message = ToneSource::new(440.0, 3.0).unwrap_err().to_string();
        assert!(message.contains("3 dBFS"), "{message}");
    }
}
