//! The codec seam: encoder and decoder traits, and their Opus implementation.
//!
//! Every Opus stream in voicemcu is 48 kHz mono with 20 ms frames (960
//! samples), carried as `f32`. Encoders write at most
//! [`MAX_AUDIO_PAYLOAD`] bytes per packet whatever bitrate is requested, so
//! that every packet fits one audio datagram. Decoders accept only packets
//! that hold exactly one 20 ms of audio and report anything else, including
//! malformed bytes from the network, as [`CodecError::Decode`].

use std::convert::TryFrom;

use audiopus::coder::{Decoder as RawDecoder, Encoder as RawEncoder};
use audiopus::packet::Packet;
use audiopus::{Bitrate, Channels, MutSignals, SampleRate, Signal};

use crate::audio::{PcmFrame, FRAME_SAMPLES};
use crate::wire::MAX_AUDIO_PAYLOAD;

/// Opus's audio bandwidth cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Bandwidth {
    /// Audio up to 4 kHz.
    Narrowband,
    /// Audio up to 6 kHz.
    Mediumband,
    /// Audio up to 8 kHz.
    Wideband,
    /// Audio up to 12 kHz.
    Superwideband,
    /// Audio up to 20 kHz.
    Fullband,
}

impl Bandwidth {
    fn to_opus(self) -> audiopus::Bandwidth {
        match self {
            Bandwidth::Narrowband => audiopus::Bandwidth::Narrowband,
            Bandwidth::Mediumband => audiopus::Bandwidth::Mediumband,
            Bandwidth::Wideband => audiopus::Bandwidth::Wideband,
            Bandwidth::Superwideband => audiopus::Bandwidth::Superwideband,
            Bandwidth::Fullband => audiopus::Bandwidth::Fullband,
        }
    }
}

/// Opus's application mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Application {
    /// Tuned for speech intelligibility (`OPUS_APPLICATION_VOIP`).
    Voip,
    /// Tuned for fidelity to the input (`OPUS_APPLICATION_AUDIO`).
    Audio,
}

/// Encoder settings. Every encoder in voicemcu is 48 kHz mono, 20 ms frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpusSettings {
    /// Target bitrate in bits per second, from [`MIN_BITRATE`] to
    /// [`MAX_BITRATE`].
    pub bitrate: u32,
    /// The widest audio bandwidth the encoder may use.
    pub max_bandwidth: Bandwidth,
    pub application: Application,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            bitrate: 32_000,
            max_bandwidth: Bandwidth::Fullband,
            application: Application::Voip,
        }
    }
}

/// The lowest bitrate, in bits per second, that Opus accepts.
pub const MIN_BITRATE: u32 = 500;

/// The highest bitrate, in bits per second, that `opus_defines.h` documents
/// as meaningful. The 480-byte packet limit caps the real rate at
/// 192 kbit/s anyway.
pub const MAX_BITRATE: u32 = 512_000;

/// Why the codec failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("invalid Opus setting {setting}: {detail}")]
    InvalidSetting {
        setting: &'static str,
        detail: String,
    },
    #[error("Opus encoding failed: {0}")]
    Encode(String),
    #[error("Opus packet could not be decoded: {0}")]
    Decode(String),
}

/// Turns 20 ms frames into packets.
pub trait Encoder: Send {
    /// Encodes one frame into `out` and returns the packet length.
    fn encode(&mut self, pcm: &PcmFrame, out: &mut [u8]) -> Result<usize, CodecError>;
}

/// Turns packets back into 20 ms frames, and conceals lost ones.
pub trait Decoder: Send {
    /// Decodes one packet holding exactly one 20 ms frame.
    fn decode(&mut self, packet: &[u8], out: &mut PcmFrame) -> Result<(), CodecError>;

    /// Fills `out` with packet loss concealment for one missing frame.
    fn conceal(&mut self, out: &mut PcmFrame) -> Result<(), CodecError>;
}

/// An Opus encoder for 48 kHz mono 20 ms frames.
///
/// It runs at a constant bitrate, as voicemcu 0.1 does, which also keeps
/// packet sizes from revealing when and how someone speaks. In VOIP mode the
/// signal type is set to voice.
pub struct OpusEncoder {
    inner: RawEncoder,
    settings: OpusSettings,
    /// The input with non-finite samples replaced by silence.
    clean: Box<PcmFrame>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Creates an encoder, or returns [`CodecError::InvalidSetting`] when the
    /// bitrate lies outside [`MIN_BITRATE`]..=[`MAX_BITRATE`] or libopus
    /// rejects a setting.
    pub fn new(settings: OpusSettings) -> Result<Self, CodecError> {
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&settings.bitrate) {
            return Err(CodecError::InvalidSetting {
                setting: "bitrate",
                detail: format!(
                    "{} bit/s is outside {MIN_BITRATE}..={MAX_BITRATE} bit/s",
                    settings.bitrate
                ),
            });
        }

        let application = match settings.application {
            Application::Voip => audiopus::Application::Voip,
            Application::Audio => audiopus::Application::Audio,
        };
        let mut inner = RawEncoder::new(SampleRate::Hz48000, Channels::Mono, application)
            .map_err(|error| setting_error("encoder", error))?;

        // The range check above keeps the bitrate far below i32::MAX.
        let bitrate = i32::try_from(settings.bitrate).unwrap_or(i32::MAX);
        inner
            .set_bitrate(Bitrate::BitsPerSecond(bitrate))
            .map_err(|error| setting_error("bitrate", error))?;
        inner
            .disable_vbr()
            .map_err(|error| setting_error("vbr", error))?;
        // OPUS_SET_MAX_BANDWIDTH: the encoder still picks a narrower band
        // when the bitrate is too low for the cap.
        inner
            .set_max_bandwidth(settings.max_bandwidth.to_opus())
            .map_err(|error| setting_error("max_bandwidth", error))?;
        if settings.application == Application::Voip {
            inner
                .set_signal(Signal::Voice)
                .map_err(|error| setting_error("signal", error))?;
        }

        Ok(OpusEncoder {
            inner,
            settings,
            clean: Box::new([0.0; FRAME_SAMPLES]),
        })
    }

    /// The settings this encoder was created with.
    pub fn settings(&self) -> OpusSettings {
        self.settings
    }
}

fn setting_error(setting: &'static str, error: audiopus::Error) -> CodecError {
    CodecError::InvalidSetting {
        setting,
        detail: error.to_string(),
    }
}

impl Encoder for OpusEncoder {
    /// Encodes one frame into at most `min(out.len(), MAX_AUDIO_PAYLOAD)`
    /// bytes. A smaller `out` lowers the quality of this packet, and an
    /// empty one is an error.
    fn encode(&mut self, pcm: &PcmFrame, out: &mut [u8]) -> Result<usize, CodecError> {
        let limit = out.len().min(MAX_AUDIO_PAYLOAD);
        if limit == 0 {
            return Err(CodecError::Encode("the output buffer is empty".to_string()));
        }

        for (clean, &sample) in self.clean.iter_mut().zip(pcm.iter()) {
            *clean = if sample.is_finite() { sample } else { 0.0 };
        }

        let written = self
            .inner
            .encode_float(&self.clean[..], &mut out[..limit])
            .map_err(|error| CodecError::Encode(error.to_string()))?;
        if written > limit {
            // libopus never writes past the limit it is given.
            return Err(CodecError::Encode(format!(
                "libopus reported {written} bytes for a {limit}-byte buffer"
            )));
        }
        Ok(written)
    }
}

/// An Opus decoder for 48 kHz mono 20 ms frames.
pub struct OpusDecoder {
    inner: RawDecoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    pub fn new() -> Result<Self, CodecError> {
        let inner = RawDecoder::new(SampleRate::Hz48000, Channels::Mono)
            .map_err(|error| setting_error("decoder", error))?;
        Ok(OpusDecoder { inner })
    }

    /// Runs the decoder once into `out`, with `packet` or, when it is
    /// `None`, with packet loss concealment.
    fn run(&mut self, packet: Option<Packet<'_>>, out: &mut PcmFrame) -> Result<(), CodecError> {
        let signals = MutSignals::try_from(&mut out[..])
            .map_err(|error| CodecError::Decode(error.to_string()))?;
        let decoded = self
            .inner
            .decode_float(packet, signals, false)
            .map_err(|error| CodecError::Decode(error.to_string()))?;
        if decoded != FRAME_SAMPLES {
            out.fill(0.0);
            return Err(CodecError::Decode(format!(
                "decoded {decoded} samples, expected {FRAME_SAMPLES}"
            )));
        }

        // The float decoder does not clip and should never produce NaN, but
        // the mixer sums these samples, so one bad value must not spread.
        for sample in out.iter_mut() {
            if !sample.is_finite() {
                *sample = 0.0;
            }
        }
        Ok(())
    }
}

impl Decoder for OpusDecoder {
    /// Decodes one packet. An empty packet, a malformed one, or one whose
    /// duration is not exactly 960 samples at 48 kHz is rejected before
    /// decoding, and the decoder state stays as it was.
    fn decode(&mut self, packet: &[u8], out: &mut PcmFrame) -> Result<(), CodecError> {
        let checked =
            Packet::try_from(packet).map_err(|error| CodecError::Decode(error.to_string()))?;
        let samples = self
            .inner
            .nb_samples(checked)
            .map_err(|error| CodecError::Decode(format!("invalid packet: {error}")))?;
        if samples != FRAME_SAMPLES {
            return Err(CodecError::Decode(format!(
                "packet holds {samples} samples, expected {FRAME_SAMPLES} (20 ms at 48 kHz)"
            )));
        }

        let checked =
            Packet::try_from(packet).map_err(|error| CodecError::Decode(error.to_string()))?;
        self.run(Some(checked), out)
    }

    fn conceal(&mut self, out: &mut PcmFrame) -> Result<(), CodecError> {
        self.run(None, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::SAMPLE_RATE;
    use proptest::prelude::*;
    use std::f32::consts::TAU;

    fn tone(frequency: f32, amplitude: f32, frames: usize) -> Vec<f32> {
        (0..frames * FRAME_SAMPLES)
            .map(|n| amplitude * (TAU * frequency * n as f32 / SAMPLE_RATE as f32).sin())
            .collect()
    }

    /// Encodes and decodes `input` frame by frame and returns the output.
    fn round_trip(settings: OpusSettings, input: &[f32]) -> Vec<f32> {
        let mut encoder = OpusEncoder::new(settings).unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let mut output = Vec::with_capacity(input.len());
        let mut packet = [0u8; MAX_AUDIO_PAYLOAD];
        let mut frame = [0.0f32; FRAME_SAMPLES];
        for chunk in input.chunks_exact(FRAME_SAMPLES) {
            let pcm: &PcmFrame = chunk.try_into().unwrap();
            let len = encoder.encode(pcm, &mut packet).unwrap();
            decoder.decode(&packet[..len], &mut frame).unwrap();
            output.extend_from_slice(&frame);
        }
        output
    }

    /// Amplitude of the `frequency` component of `samples` (Goertzel).
    fn tone_amplitude(samples: &[f32], frequency: f32) -> f32 {
        let omega = TAU * frequency / SAMPLE_RATE as f32;
        let coefficient = 2.0 * omega.cos();
        let (mut previous, mut before_previous) = (0.0f64, 0.0f64);
        for &sample in samples {
            let current = f64::from(sample) + f64::from(coefficient) * previous - before_previous;
            before_previous = previous;
            previous = current;
        }
        let power = previous * previous + before_previous * before_previous
            - f64::from(coefficient) * previous * before_previous;
        (2.0 * power.sqrt() / samples.len() as f64) as f32
    }

    /// Normalised cross-correlation of `output[lag..]` against `input`.
    fn correlation(input: &[f32], output: &[f32], lag: usize) -> f32 {
        let len = input.len().min(output.len() - lag);
        let (mut dot, mut input_energy, mut output_energy) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..len {
            let a = f64::from(input[i]);
            let b = f64::from(output[i + lag]);
            dot += a * b;
            input_energy += a * a;
            output_energy += b * b;
        }
        (dot / (input_energy * output_energy).sqrt()) as f32
    }

    #[test]
    fn swept_sine_round_trip_keeps_waveform() {
        for application in [Application::Voip, Application::Audio] {
            let settings = OpusSettings {
                bitrate: 64_000,
                application,
                ..OpusSettings::default()
            };
            // A sine swept from 200 Hz to 1 kHz: a steady tone would also
            // correlate well one period away from the true codec delay.
            let delay = OpusEncoder::new(settings)
                .unwrap()
                .inner
                .lookahead()
                .unwrap() as usize;
            let input: Vec<f32> = (0..50 * FRAME_SAMPLES)
                .map(|n| {
                    let t = n as f32 / SAMPLE_RATE as f32;
                    0.5 * (TAU * (200.0 * t + 400.0 * t * t)).sin()
                })
                .collect();
            let output = round_trip(settings, &input);

            // Skip the first 10 frames while the encoder settles.
            let start = 10 * FRAME_SAMPLES;
            let reference = &input[start..input.len() - FRAME_SAMPLES];
            let decoded = &output[start..];
            let (best_lag, best) = (0..FRAME_SAMPLES)
                .map(|lag| (lag, correlation(reference, decoded, lag)))
                .fold((0, f32::MIN), |best, candidate| {
                    if candidate.1 > best.1 {
                        candidate
                    } else {
                        best
                    }
                });
            assert!(
                best > 0.95,
                "{application:?}: correlation {best} at lag {best_lag}"
            );
            assert!(
                best_lag.abs_diff(delay) <= 16,
                "{application:?}: codec delay {best_lag} samples, encoder look-ahead {delay}"
            );
        }
    }

    #[test]
    fn bandwidth_cap_removes_high_tone() {
        let input = tone(6_000.0, 0.5, 50);
        let steady = 10 * FRAME_SAMPLES..49 * FRAME_SAMPLES;
        let input_amplitude = tone_amplitude(&input[steady.clone()], 6_000.0);

        for application in [Application::Voip, Application::Audio] {
            for (max_bandwidth, should_pass) in [
                (Bandwidth::Fullband, true),
                (Bandwidth::Wideband, true),
                (Bandwidth::Narrowband, false),
            ] {
                let settings = OpusSettings {
                    bitrate: 64_000,
                    max_bandwidth,
                    application,
                };
                let output = round_trip(settings, &input);
                let ratio = tone_amplitude(&output[steady.clone()], 6_000.0) / input_amplitude;
                if should_pass {
                    assert!(
                        ratio > 0.5,
                        "{application:?} {max_bandwidth:?}: 6 kHz kept at ratio {ratio}"
                    );
                } else {
                    assert!(
                        ratio < 0.05,
                        "{application:?} {max_bandwidth:?}: 6 kHz leaked at ratio {ratio}"
                    );
                }
            }
        }
    }

    #[test]
    fn packets_fit_datagram_at_max_bitrate() {
        for application in [Application::Voip, Application::Audio] {
            let settings = OpusSettings {
                bitrate: 510_000,
                application,
                ..OpusSettings::default()
            };
            let mut encoder = OpusEncoder::new(settings).unwrap();
            // A larger buffer than the cap must not lead to larger packets.
            let mut packet = [0u8; 1500];
            let noise: Vec<f32> = (0..FRAME_SAMPLES * 10)
                .map(|n| ((n as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / 8_388_608.0 - 1.0)
                .collect();
            for chunk in noise.chunks_exact(FRAME_SAMPLES) {
                let len = encoder
                    .encode(chunk.try_into().unwrap(), &mut packet)
                    .unwrap();
                assert!(len <= MAX_AUDIO_PAYLOAD, "{application:?}: {len} bytes");
                assert!(len > 0);
            }
        }
    }

    #[test]
    fn encoder_rejects_bitrate_out_of_range() {
        for bitrate in [0, MIN_BITRATE - 1, MAX_BITRATE + 1, u32::MAX] {
            let settings = OpusSettings {
                bitrate,
                ..OpusSettings::default()
            };
            assert!(
                matches!(
                    OpusEncoder::new(settings),
                    Err(CodecError::InvalidSetting {
                        setting: "bitrate",
                        ..
                    })
                ),
                "bitrate {bitrate} accepted"
            );
        }
    }

    #[test]
    fn encoder_rejects_empty_output() {
        let mut encoder = OpusEncoder::new(OpusSettings::default()).unwrap();
        let result = encoder.encode(&[0.0; FRAME_SAMPLES], &mut []);
        assert!(matches!(result, Err(CodecError::Encode(_))));
    }

    #[test]
    fn encoder_survives_non_finite_input() {
        let mut encoder = OpusEncoder::new(OpusSettings::default()).unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let mut frame = [0.25f32; FRAME_SAMPLES];
        frame[0] = f32::NAN;
        frame[1] = f32::INFINITY;
        frame[2] = f32::NEG_INFINITY;
        let mut packet = [0u8; MAX_AUDIO_PAYLOAD];
        let len = encoder.encode(&frame, &mut packet).unwrap();
        let mut out = [0.0f32; FRAME_SAMPLES];
        decoder.decode(&packet[..len], &mut out).unwrap();
        assert!(out.iter().all(|sample| sample.is_finite()));
    }

    #[test]
    fn decoder_rejects_malformed_packets() {
        let mut decoder = OpusDecoder::new().unwrap();
        let mut out = [0.0f32; FRAME_SAMPLES];
        let cases: [(&str, &[u8]); 4] = [
            ("empty", &[]),
            // Code 3 (arbitrary frame count) without its frame-count byte.
            ("truncated code 3", &[0x03]),
            // Code 3 claiming 63 frames of 20 ms: over the 120 ms limit.
            ("too many frames", &[0xff, 0xff, 0x00, 0x00]),
            // Code 2 with two 10 ms frames whose first length overruns the packet.
            ("frame length overrun", &[0xf2, 0xfb, 0x01]),
        ];
        for (name, packet) in cases {
            let result = decoder.decode(packet, &mut out);
            assert!(
                matches!(result, Err(CodecError::Decode(_))),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn decoder_rejects_40ms_packet() {
        let mut raw = RawEncoder::new(
            SampleRate::Hz48000,
            Channels::Mono,
            audiopus::Application::Voip,
        )
        .unwrap();
        raw.set_bitrate(Bitrate::BitsPerSecond(32_000)).unwrap();
        let input = tone(440.0, 0.5, 2);
        let mut packet = [0u8; 1500];
        let len = raw.encode_float(&input, &mut packet).unwrap();

        let mut decoder = OpusDecoder::new().unwrap();
        let mut out = [0.0f32; FRAME_SAMPLES];
        let error = decoder.decode(&packet[..len], &mut out).unwrap_err();
        assert!(
            matches!(&error, CodecError::Decode(message) if message.contains("1920")),
            "{error}"
        );

        // Two 20 ms frames in one packet (code 1) are 40 ms too.
        let doubled = [0xf9, 0x00, 0x00];
        assert!(decoder.decode(&doubled, &mut out).is_err());
    }

    #[test]
    fn conceal_output_is_finite_and_bounded() {
        let settings = OpusSettings::default();
        let mut encoder = OpusEncoder::new(settings).unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let input = tone(300.0, 0.8, 10);
        let mut packet = [0u8; MAX_AUDIO_PAYLOAD];
        let mut out = [0.0f32; FRAME_SAMPLES];
        for chunk in input.chunks_exact(FRAME_SAMPLES) {
            let len = encoder
                .encode(chunk.try_into().unwrap(), &mut packet)
                .unwrap();
            decoder.decode(&packet[..len], &mut out).unwrap();
        }

        let mut energies = Vec::new();
        for _ in 0..10 {
            decoder.conceal(&mut out).unwrap();
            assert!(out.iter().all(|sample| sample.is_finite()));
            assert!(out.iter().all(|sample| sample.abs() <= 1.5));
            energies.push(out.iter().map(|sample| sample * sample).sum::<f32>());
        }
        // Concealment fades out instead of sustaining the tone.
        assert!(energies[9] < energies[0], "energies {energies:?}");
    }

    #[test]
    fn conceal_works_before_any_packet() {
        let mut decoder = OpusDecoder::new().unwrap();
        let mut out = [1.0f32; FRAME_SAMPLES];
        decoder.conceal(&mut out).unwrap();
        assert!(out
            .iter()
            .all(|sample| sample.is_finite() && sample.abs() <= 1.0));
    }

    #[test]
    fn codec_types_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<OpusEncoder>();
        assert_send::<OpusDecoder>();
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(
            packets in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..600),
                1..8,
            ),
        ) {
            let mut decoder = OpusDecoder::new().unwrap();
            let mut out = [0.0f32; FRAME_SAMPLES];
            for packet in &packets {
                if decoder.decode(packet, &mut out).is_ok() {
                    prop_assert!(out.iter().all(|sample| sample.is_finite()));
                }
                decoder.conceal(&mut out).unwrap();
                prop_assert!(out.iter().all(|sample| sample.is_finite()));
            }
        }
    }
}
