//! Reading WAV files of every supported format into 48 kHz mono, and the
//! errors for files that cannot be read.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavSpec};
use voicemcu_audio::wav::WavRecorder;
use voicemcu_audio::{read_wav_48k_mono, read_wav_mono, write_wav_48k_mono, WavError};

const FREQUENCY: f64 = 1000.0;
const AMPLITUDE: f64 = 0.5;

/// Value of the test sine at frame `n` of a file at `rate`.
fn sine_at(n: usize, rate: u32) -> f64 {
    AMPLITUDE * (TAU * FREQUENCY * n as f64 / f64::from(rate)).sin()
}

/// Writes one second of the test sine at `rate`, in every channel for which
/// `channel_gain` is non-zero, scaled by that gain.
fn write_sine(path: &Path, spec: WavSpec, channel_gains: &[f64]) {
    assert_eq!(channel_gains.len(), usize::from(spec.channels));
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let full_scale = f64::from(1u32 << (spec.bits_per_sample - 1));
    for n in 0..spec.sample_rate as usize {
        for &gain in channel_gains {
            let value = sine_at(n, spec.sample_rate) * gain;
            match (spec.sample_format, spec.bits_per_sample) {
                (SampleFormat::Float, _) => writer.write_sample(value as f32).unwrap(),
                (SampleFormat::Int, 8) => writer
                    .write_sample((value * full_scale).round() as i8)
                    .unwrap(),
                (SampleFormat::Int, 16) => writer
                    .write_sample((value * full_scale).round() as i16)
                    .unwrap(),
                (SampleFormat::Int, _) => writer
                    .write_sample((value * full_scale).round() as i32)
                    .unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
}

fn spec(channels: u16, sample_rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
    WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

/// Fits `a * sin(2 pi f t + phase)` to 48 kHz samples, skipping 10 ms at
/// each end, and returns the amplitude, the time offset in seconds relative
/// to the written sine, and the largest deviation from the fit.
fn fit_sine(samples: &[f32]) -> (f64, f64, f64) {
    let w = TAU * FREQUENCY / 48_000.0;
    let body = 480..samples.len() - 480;
    let (mut in_phase, mut quadrature) = (0.0, 0.0);
    for n in body.clone() {
        in_phase += f64::from(samples[n]) * (w * n as f64).sin();
        quadrature += f64::from(samples[n]) * (w * n as f64).cos();
    }
    let count = body.len() as f64;
    let amplitude = 2.0 * in_phase.hypot(quadrature) / count;
    let phase = quadrature.atan2(in_phase);
    let deviation = body
        .map(|n| (f64::from(samples[n]) - amplitude * (w * n as f64 + phase).sin()).abs())
        .fold(0.0, f64::max);
    (amplitude, -phase / w / 48_000.0, deviation)
}

/// Counts upward zero crossings.
fn upward_crossings(samples: &[f32]) -> usize {
    samples
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count()
}

struct Case {
    name: &'static str,
    spec: WavSpec,
    gains: Vec<f64>,
    /// Expected amplitude after averaging the channels.
    amplitude: f64,
    /// Allowed amplitude error, larger for 8-bit quantization.
    tolerance: f64,
}

fn cases() -> Vec<Case> {
    let int = SampleFormat::Int;
    let float = SampleFormat::Float;
    let mono = |name, spec| Case {
        name,
        spec,
        gains: vec![1.0],
        amplitude: AMPLITUDE,
        tolerance: 0.002,
    };
    vec![
        Case {
            tolerance: 0.01,
            ..mono("8-bit 48 kHz", spec(1, 48_000, 8, int))
        },
        mono("16-bit 48 kHz", spec(1, 48_000, 16, int)),
        mono("24-bit 48 kHz (extensible)", spec(1, 48_000, 24, int)),
        mono("32-bit int 48 kHz (extensible)", spec(1, 48_000, 32, int)),
        mono("32-bit float 48 kHz", spec(1, 48_000, 32, float)),
        mono("16-bit 44.1 kHz", spec(1, 44_100, 16, int)),
        mono("16-bit 8 kHz", spec(1, 8_000, 16, int)),
        mono("16-bit 22.05 kHz", spec(1, 22_050, 16, int)),
        mono("24-bit 96 kHz", spec(1, 96_000, 24, int)),
        Case {
            name: "16-bit stereo, right channel silent",
            spec: spec(2, 44_100, 16, int),
            gains: vec![1.0, 0.0],
            amplitude: AMPLITUDE / 2.0,
            tolerance: 0.002,
        },
        Case {
            name: "float 5.1, four channels carry the sine (extensible)",
            spec: spec(6, 48_000, 32, float),
            gains: vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0],
            amplitude: AMPLITUDE * 4.0 / 6.0,
            tolerance: 0.002,
        },
        Case {
            name: "24-bit 5.1 at 96 kHz (extensible)",
            spec: spec(6, 96_000, 24, int),
            gains: vec![1.0; 6],
            amplitude: AMPLITUDE,
            tolerance: 0.002,
        },
    ]
}

#[test]
fn every_format_reads_as_48k_mono_sine() {
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let path = dir.path().join("sine.wav");
        write_sine(&path, case.spec, &case.gains);

        let (native, info) = read_wav_mono(&path).unwrap();
        assert_eq!(info.sample_rate, case.spec.sample_rate, "{}", case.name);
        assert_eq!(info.channels, case.spec.channels, "{}", case.name);
        assert_eq!(info.frames, case.spec.sample_rate as usize, "{}", case.name);
        assert_eq!(
            native.len(),
            case.spec.sample_rate as usize,
            "{}",
            case.name
        );

        let samples = read_wav_48k_mono(&path).unwrap();
        assert_eq!(samples.len(), 48_000, "{}: length", case.name);

        let (amplitude, offset_secs, deviation) = fit_sine(&samples);
        assert!(
            (amplitude - case.amplitude).abs() < case.tolerance,
            "{}: amplitude {amplitude}, expected {}",
            case.name,
            case.amplitude
        );
        assert!(
            offset_secs.abs() < 0.001,
            "{}: offset {:.3} ms",
            case.name,
            offset_secs * 1000.0
        );
        // Below one output sample of delay, which would be 20.8 us.
        assert!(
            offset_secs.abs() < 1.0 / 96_000.0,
            "{}: offset {:.2} us",
            case.name,
            offset_secs * 1e6
        );
        assert!(deviation < 0.02, "{}: deviation {deviation}", case.name);

        let crossings = upward_crossings(&samples);
        assert!(
            (999..=1000).contains(&crossings),
            "{}: {crossings} crossings",
            case.name
        );
    }
}

#[test]
fn odd_length_keeps_rounded_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.wav");
    let mut writer =
        hound::WavWriter::create(&path, spec(1, 44_100, 16, SampleFormat::Int)).unwrap();
    for _ in 0..1_001 {
        writer.write_sample(1000i16).unwrap();
    }
    writer.finalize().unwrap();
    // 1001 * 48000 / 44100 = 1089.52, rounded to 1090.
    assert_eq!(read_wav_48k_mono(&path).unwrap().len(), 1_090);
}

#[test]
fn write_then_read_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("round.wav");
    let samples: Vec<f32> = (0..4_800).map(|n| sine_at(n, 48_000) as f32).collect();
    write_wav_48k_mono(&path, &samples).unwrap();
    let read = read_wav_48k_mono(&path).unwrap();
    assert_eq!(read.len(), samples.len());
    let max_error = read
        .iter()
        .zip(&samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_error <= 1.0 / 32_768.0, "error {max_error}");
}

// ---- damaged and unsupported files ----

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// Writes a valid 16-bit file with `frames` frames of `channels` channels
/// and returns its bytes.
fn valid_file_bytes(dir: &Path, channels: u16, frames: usize) -> Vec<u8> {
    let path = dir.join("valid.wav");
    let mut writer =
        hound::WavWriter::create(&path, spec(channels, 48_000, 16, SampleFormat::Int)).unwrap();
    for n in 0..frames * usize::from(channels) {
        writer.write_sample((n % 1000) as i16).unwrap();
    }
    writer.finalize().unwrap();
    std::fs::read(&path).unwrap()
}

/// Offset of the data chunk's length field in a file hound wrote with a
/// 16-byte fmt chunk (mono or stereo 16-bit).
const DATA_LENGTH_OFFSET: usize = 40;

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.wav");
    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::NotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path_text(&path)), "{message}");
    assert!(message.contains("not found"), "{message}");
    assert_eq!(error.path(), path);
}

#[test]
fn directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = read_wav_48k_mono(dir.path()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, WavError::Io { .. }), "{error:?}");
    assert!(message.contains(&path_text(dir.path())), "{message}");
}

#[test]
fn text_file_is_not_wav() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_bytes(dir.path(), "notes.wav", b"hello, this is not audio\n");
    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::NotWav { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path_text(&path)), "{message}");
    assert!(message.contains("is not a RIFF/WAVE file"), "{message}");
    assert!(message.contains("hello, this"), "{message}");
}

#[test]
fn empty_file_is_not_wav() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_bytes(dir.path(), "empty.wav", b"");
    let message = read_wav_48k_mono(&path).unwrap_err().to_string();
    assert!(message.contains("the file is empty"), "{message}");
    assert!(message.contains(&path_text(&path)), "{message}");
}

#[test]
fn truncated_header_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_file_bytes(dir.path(), 1, 100);
    for cut in [6usize, 20, 30, 43] {
        let path = write_bytes(dir.path(), "cut.wav", &bytes[..cut]);
        let error = read_wav_48k_mono(&path).unwrap_err();
        assert!(
            matches!(error, WavError::Truncated { .. }),
            "cut at {cut}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&path_text(&path)), "{message}");
        assert!(message.contains("is truncated"), "{message}");
    }
}

#[test]
fn data_cut_short_keeps_whole_frames() {
    // The header declares 1000 frames, but the file was cut after 250 whole
    // stereo frames and 2 bytes of the next, as when a copy stops early or
    // the writer died after a header update.
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_file_bytes(dir.path(), 2, 1_000);
    let cut = 44 + 250 * 4 + 2;
    let path = write_bytes(dir.path(), "short.wav", &bytes[..cut]);
    let (samples, info) = read_wav_mono(&path).unwrap();
    assert_eq!(info.frames, 250);
    assert_eq!(samples.len(), 250);
    // Frame n holds samples 2n and 2n + 1, averaged.
    let expected = (498.0 + 499.0) / 2.0 / 32_768.0;
    assert!((samples[249] - expected).abs() < 1e-6, "{}", samples[249]);
}

#[test]
fn cut_inside_first_frame_has_no_samples() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_file_bytes(dir.path(), 2, 1_000);
    let path = write_bytes(dir.path(), "tiny.wav", &bytes[..44 + 3]);
    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::NoSamples { .. }), "{error:?}");
}

#[test]
fn zero_length_data_has_no_samples() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_file_bytes(dir.path(), 1, 0);
    let path = write_bytes(dir.path(), "silent.wav", &bytes);
    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::NoSamples { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path_text(&path)), "{message}");
    assert!(message.contains("contains no samples"), "{message}");
}

#[test]
fn unfinalised_header_is_recovered() {
    // A writer that died before its first header update leaves a data
    // length of 0 (and a RIFF length of 36) followed by audio; this one
    // also died in the middle of a sample.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = valid_file_bytes(dir.path(), 1, 100);
    bytes[DATA_LENGTH_OFFSET..DATA_LENGTH_OFFSET + 4].copy_from_slice(&0u32.to_le_bytes());
    bytes[4..8].copy_from_slice(&36u32.to_le_bytes());
    bytes.push(0x7f);
    let path = write_bytes(dir.path(), "unfinalised.wav", &bytes);
    let (samples, info) = read_wav_mono(&path).unwrap();
    assert_eq!(info.frames, 100);
    let expected: Vec<f32> = (0..100).map(|n| n as f32 / 32_768.0).collect();
    assert_eq!(samples, expected);
}

#[test]
fn header_past_end_of_file_is_recovered() {
    // A streaming writer's placeholder length: far past the end of the file.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = valid_file_bytes(dir.path(), 1, 100);
    bytes[DATA_LENGTH_OFFSET..DATA_LENGTH_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let path = write_bytes(dir.path(), "streamed.wav", &bytes);
    let (samples, info) = read_wav_mono(&path).unwrap();
    assert_eq!(info.frames, 100);
    assert_eq!(samples[99], 99.0 / 32_768.0);
}

#[test]
fn empty_data_chunk_before_other_chunks_stays_empty() {
    // An empty data chunk followed by a LIST chunk is not an unfinalised
    // header: the bytes after it are metadata, not audio.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = valid_file_bytes(dir.path(), 1, 0);
    bytes.extend_from_slice(b"LIST");
    bytes.extend_from_slice(&4u32.to_le_bytes());
    bytes.extend_from_slice(b"INFO");
    let riff_len = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff_len.to_le_bytes());
    let path = write_bytes(dir.path(), "tagged.wav", &bytes);
    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::NoSamples { .. }), "{error:?}");
}

#[test]
fn writer_saturates_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loud.wav");
    let inputs = [
        1.5f32,
        -1.5,
        1.0,
        -1.0,
        0.999_99,
        1.000_01,
        -1.000_01,
        100.0,
        -100.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.5,
    ];
    let expected: [i16; 13] = [
        32_767, -32_768, 32_767, -32_768, 32_767, 32_767, -32_768, 32_767, -32_768, 32_767,
        -32_768, 0, 16_384,
    ];
    write_wav_48k_mono(&path, &inputs).unwrap();
    let written: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(written, expected);

    let recorded = dir.path().join("recorded.wav");
    let mut recorder = WavRecorder::create(&recorded).unwrap();
    recorder.write(&inputs).unwrap();
    recorder.finish().unwrap();
    let written: Vec<i16> = hound::WavReader::open(&recorded)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(written, expected);
}

#[test]
fn recorder_file_is_valid_at_every_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.wav");
    let mut recorder = WavRecorder::create(&path).unwrap();
    recorder.write(&[0.25; 960]).unwrap();
    recorder.write_silence(960).unwrap();
    recorder.flush().unwrap();

    // The file as a killed process would leave it: readable up to the
    // flush, with the header declaring exactly what was flushed.
    let (samples, _) = read_wav_mono(&path).unwrap();
    assert_eq!(samples.len(), 1_920);
    assert_eq!(samples[0], 0.25);
    assert_eq!(samples[1_919], 0.0);
    assert_eq!(
        hound::WavReader::open(&path).unwrap().duration(),
        1_920,
        "the header was updated"
    );

    // More audio after the flush: a copy taken now (the header still
    // declares the flushed part) reads at least that.
    recorder.write(&[-0.5; 960]).unwrap();
    let (samples, _) = read_wav_mono(&path).unwrap();
    assert!(samples.len() >= 1_920);

    recorder.finish().unwrap();
    let (samples, _) = read_wav_mono(&path).unwrap();
    assert_eq!(samples.len(), 2_880);
    assert_eq!(samples[2_879], -0.5);
    assert_eq!(recorder.samples_written(), 2_880);
    assert!(recorder.write(&[0.0]).is_err(), "writes after finish fail");
}

#[test]
fn data_ending_mid_frame_keeps_whole_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = valid_file_bytes(dir.path(), 2, 1_000);
    // Declare and keep 3 bytes of a 1001st stereo frame: one whole left
    // sample and half of the right one.
    bytes.extend_from_slice(&[0x10, 0x00, 0x20]);
    let declared = 1_000 * 4 + 3u32;
    bytes[DATA_LENGTH_OFFSET..DATA_LENGTH_OFFSET + 4].copy_from_slice(&declared.to_le_bytes());
    let riff_len = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff_len.to_le_bytes());
    let path = write_bytes(dir.path(), "partial.wav", &bytes);

    let (samples, info) = read_wav_mono(&path).unwrap();
    assert_eq!(info.frames, 1_000);
    assert_eq!(samples.len(), 1_000);
    // Frame n contains samples 2n and 2n + 1 (mod 1000), averaged.
    let expected = (998.0 + 999.0) / 2.0 / 32_768.0;
    assert!((samples[499] - expected).abs() < 1e-6, "{}", samples[499]);
}

#[test]
fn unsupported_format_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = valid_file_bytes(dir.path(), 1, 100);
    // Format tag 0x0055: MP3.
    bytes[20..22].copy_from_slice(&0x0055u16.to_le_bytes());
    let path = write_bytes(dir.path(), "song.wav", &bytes);
    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::Unsupported { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("format tag 0x0055 (MP3)"), "{message}");
    assert!(message.contains(&path_text(&path)), "{message}");
    assert!(message.contains("sox"), "{message}");
}

#[test]
fn float64_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = valid_file_bytes(dir.path(), 1, 100);
    // Rewrite the fmt chunk as IEEE float, 64 bits, 8-byte frames.
    bytes[20..22].copy_from_slice(&3u16.to_le_bytes());
    bytes[28..32].copy_from_slice(&(48_000u32 * 8).to_le_bytes());
    bytes[32..34].copy_from_slice(&8u16.to_le_bytes());
    bytes[34..36].copy_from_slice(&64u16.to_le_bytes());
    let path = write_bytes(dir.path(), "double.wav", &bytes);
    let message = read_wav_48k_mono(&path).unwrap_err().to_string();
    assert!(message.contains("64-bit floating-point"), "{message}");
}

/// Rewrites the sample rate and byte rate of a mono 16-bit file.
fn with_rate(mut bytes: Vec<u8>, rate: u32) -> Vec<u8> {
    bytes[24..28].copy_from_slice(&rate.to_le_bytes());
    bytes[28..32].copy_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    bytes
}

#[test]
fn zero_and_absurd_rates_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_file_bytes(dir.path(), 1, 100);
    for rate in [0u32, 10, 1_000_000, 2_000_000_000] {
        let path = write_bytes(dir.path(), "rate.wav", &with_rate(bytes.clone(), rate));
        let error = read_wav_48k_mono(&path).unwrap_err();
        assert!(
            matches!(error, WavError::InvalidSampleRate { .. }),
            "{rate}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("{rate} Hz")), "{message}");
        assert!(message.contains(&path_text(&path)), "{message}");
    }
}

#[test]
fn garbage_after_riff_header_does_not_panic() {
    // Every prefix of a valid file, and a few corrupted variants, must give
    // a result or an error, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_file_bytes(dir.path(), 2, 10);
    for cut in 0..bytes.len() {
        let path = write_bytes(dir.path(), "prefix.wav", &bytes[..cut]);
        let _ = read_wav_48k_mono(&path);
    }
    for position in 12..44 {
        for value in [0x00u8, 0xFF, 0x7F] {
            let mut corrupted = bytes.clone();
            corrupted[position] = value;
            let path = write_bytes(dir.path(), "corrupt.wav", &corrupted);
            let _ = read_wav_48k_mono(&path);
        }
    }
}

#[test]
fn file_over_four_hours_is_too_long() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    let writer = hound::WavWriter::create(&path, spec(1, 1_000, 8, SampleFormat::Int)).unwrap();
    writer.finalize().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // Four hours and one second of 8-bit samples at 1 kHz.
    let data_len = (4 * 3600 + 1) * 1_000u32;
    bytes.resize(bytes.len() + data_len as usize, 128);
    bytes[DATA_LENGTH_OFFSET..DATA_LENGTH_OFFSET + 4].copy_from_slice(&data_len.to_le_bytes());
    let riff_len = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff_len.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let error = read_wav_48k_mono(&path).unwrap_err();
    assert!(matches!(error, WavError::TooLong { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("14401 s long"), "{message}");
    assert!(message.contains(&path_text(&path)), "{message}");
}
