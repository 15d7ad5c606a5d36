//! Mock devices: the conversion code the cpal callbacks run, driven with
//! the formats, rates and callback sizes real sound cards produce.

use std::f64::consts::TAU;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use cpal::{FromSample, Sample};
use voicemcu_core::audio::{FrameSink, FrameSource, PcmFrame, FRAME_SAMPLES, SILENCE};

use super::convert::{
    capture_path, playback_path, samples_for_ms, CaptureConverter, CaptureReader,
    CAPTURE_MAX_BACKLOG_MS, PLAYBACK_MAX_QUEUE_MS,
};
use super::{CaptureFallback, DeviceSink, DeviceSource, Handoff};
use crate::ToneSource;

/// Callback sizes, in device frames, that a mock device cycles through.
const CALLBACK_SIZES: [usize; 5] = [3, 441, 960, 1024, 4097];

fn sine(frequency: f64, rate: u32, len: usize, amplitude: f64) -> Vec<f64> {
    (0..len)
        .map(|n| amplitude * (TAU * frequency * n as f64 / f64::from(rate)).sin())
        .collect()
}

/// Interleaves `mono` into `channels` channels of sample type `T`.
fn interleave<T: Sample + FromSample<f32>>(mono: &[f64], channels: usize) -> Vec<T> {
    mono.iter()
        .flat_map(|&s| std::iter::repeat_n(T::from_sample(s as f32), channels))
        .collect()
}

/// Feeds `data` through the capture converter in callbacks of
/// [`CALLBACK_SIZES`], reading every complete frame after each callback,
/// as the client's tick would. Returns the frames read, flattened.
fn run_capture<T>(
    converter: &mut CaptureConverter,
    reader: &mut CaptureReader,
    data: &[T],
    channels: usize,
) -> Vec<f32>
where
    T: Sample,
    f32: FromSample<T>,
{
    let mut out = Vec::new();
    let mut frame = SILENCE;
    let mut offset = 0;
    for size in CALLBACK_SIZES.iter().cycle() {
        if offset >= data.len() {
            break;
        }
        let end = (offset + size * channels).min(data.len());
        converter.process(&data[offset..end]);
        offset = end;
        while reader.read_frame(&mut frame) {
            out.extend_from_slice(&frame);
        }
    }
    out
}

fn rms(samples: &[f32]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Returns the frequency estimated from upward zero crossings at 48 kHz.
fn frequency(samples: &[f32], rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(index, _)| index)
        .collect();
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
}

/// Returns the largest difference between consecutive samples, which a
/// glitch at a chunk boundary would raise far above a clean sine's.
fn max_step(samples: &[f32]) -> f32 {
    samples
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max)
}

#[test]
fn capture_framing_loses_and_duplicates_nothing() {
    // At 48 kHz mono f32 there is no resampling, so the frames must be the
    // input exactly, whatever the callback sizes.
    let (mut converter, mut reader) = capture_path(48_000, 1).unwrap();
    let input: Vec<f32> = (0..60_000)
        .map(|n| (n % 20_011) as f32 / 20_011.0)
        .collect();
    let out = run_capture(&mut converter, &mut reader, &input, 1);

    assert_eq!(out.len(), input.len() / FRAME_SAMPLES * FRAME_SAMPLES);
    assert_eq!(&out[..], &input[..out.len()]);
    assert_eq!(reader.queued(), input.len() - out.len());
    assert_eq!(reader.stats().dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn capture_44k1_stereo_i16_keeps_level_and_frequency() {
    let rate = 44_100;
    let mono = sine(1_000.0, rate, 2 * rate as usize, 0.5);
    let data: Vec<i16> = interleave(&mono, 2);
    let (mut converter, mut reader) = capture_path(rate, 2).unwrap();
    let out = run_capture(&mut converter, &mut reader, &data, 2);

    // Two seconds in, two seconds out, less what is still in flight.
    let expected = 96_000;
    let in_flight = expected - out.len();
    assert!(in_flight < samples_for_ms(40), "{in_flight} samples late");

    let body = &out[samples_for_ms(50)..];
    let level = rms(body);
    assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.005, "rms {level}");
    let hz = frequency(body, 48_000);
    assert!((hz - 1_000.0).abs() < 1.0, "frequency {hz}");
    // A 0.5-amplitude 1 kHz sine at 48 kHz moves at most 0.066 per sample.
    assert!(max_step(body) < 0.07, "step {}", max_step(body));
}

#[test]
fn capture_192k_stereo_downmixes_to_mono() {
    let rate = 192_000;
    let left = sine(440.0, rate, rate as usize, 0.8);
    // The right channel is silent: the mono mix is half the left.
    let data: Vec<f32> = left.iter().flat_map(|&l| [l as f32, 0.0]).collect();
    let (mut converter, mut reader) = capture_path(rate, 2).unwrap();
    let out = run_capture(&mut converter, &mut reader, &data, 2);

    assert!(48_000 - out.len() < samples_for_ms(40), "{}", out.len());
    let body = &out[samples_for_ms(50)..];
    let level = rms(body);
    assert!((level - 0.4 / 2f64.sqrt()).abs() < 0.004, "rms {level}");
    let hz = frequency(body, 48_000);
    assert!((hz - 440.0).abs() < 1.0, "frequency {hz}");
}

#[test]
fn capture_8k_mono_u8_upsamples() {
    let rate = 8_000;
    let mono = sine(300.0, rate, 2 * rate as usize, 0.5);
    let data: Vec<u8> = interleave(&mono, 1);
    let (mut converter, mut reader) = capture_path(rate, 1).unwrap();
    let out = run_capture(&mut converter, &mut reader, &data, 1);

    assert!(96_000 - out.len() < samples_for_ms(40), "{}", out.len());
    let body = &out[samples_for_ms(50)..];
    let level = rms(body);
    // 8-bit quantization adds noise of about 0.002 RMS.
    assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.01, "rms {level}");
    let hz = frequency(body, 48_000);
    assert!((hz - 300.0).abs() < 1.0, "frequency {hz}");
    assert!(max_step(body) < 0.03, "step {}", max_step(body));
}

#[test]
fn capture_backlog_is_bounded() {
    // A reader that falls behind (the device clock runs fast) drops the
    // oldest samples instead of letting the delay grow.
    let (mut converter, mut reader) = capture_path(48_000, 1).unwrap();
    let second = vec![0.25f32; 48_000];
    for chunk in second.chunks(480) {
        converter.process(chunk);
    }
    let mut frame = SILENCE;
    assert!(reader.read_frame(&mut frame));
    assert!(reader.queued() <= samples_for_ms(CAPTURE_MAX_BACKLOG_MS));
    assert!(reader.stats().dropped.load(Ordering::Relaxed) > 0);
}

/// Writes `frames` and pulls them through the playback converter in
/// callbacks of [`CALLBACK_SIZES`] device frames, keeping the ring fed as
/// a client tick would. Returns the interleaved device samples.
fn run_playback<T>(rate: u32, channels: usize, input: &[f32]) -> Vec<T>
where
    T: Sample + FromSample<f32>,
{
    let (mut writer, mut converter) = playback_path(rate, channels).unwrap();
    let frames: Vec<PcmFrame> = input
        .chunks_exact(FRAME_SAMPLES)
        .map(|chunk| chunk.try_into().unwrap())
        .collect();
    let mut next = 0;
    let mut out = Vec::new();
    // Stop before the input runs out, so the end plays no silence.
    let playable = input.len() - samples_for_ms(PLAYBACK_MAX_QUEUE_MS);
    let total_device_frames = playable * rate as usize / 48_000;
    let mut produced = 0;
    for size in CALLBACK_SIZES.iter().cycle() {
        if produced >= total_device_frames {
            break;
        }
        // Queue what this callback needs plus one resampler chunk, as a
        // client whose tick keeps ahead of the device would.
        let demand = size * 48_000 / rate as usize + samples_for_ms(10) + FRAME_SAMPLES;
        let demand = demand.min(samples_for_ms(PLAYBACK_MAX_QUEUE_MS) - FRAME_SAMPLES);
        while next < frames.len() && writer.queued() < demand {
            writer.write_frame(&frames[next]);
            next += 1;
        }
        let mut buffer = vec![T::EQUILIBRIUM; size * channels];
        converter.fill(&mut buffer);
        out.extend_from_slice(&buffer);
        produced += size;
    }
    assert_eq!(writer.stats().dropped.load(Ordering::Relaxed), 0);
    // Only the start, before the prebuffer filled, may play silence.
    let underrun = writer.stats().underrun.load(Ordering::Relaxed) as usize;
    assert!(
        underrun <= samples_for_ms(10),
        "{underrun} samples of underrun"
    );
    out
}

#[test]
fn playback_44k1_stereo_i16_copies_to_every_channel() {
    let input: Vec<f32> = sine(1_000.0, 48_000, 96_000, 0.5)
        .into_iter()
        .map(|s| s as f32)
        .collect();
    let out: Vec<i16> = run_playback(44_100, 2, &input);

    let left: Vec<f32> = out
        .chunks_exact(2)
        .map(|f| f32::from_sample(f[0]))
        .collect();
    let right: Vec<f32> = out
        .chunks_exact(2)
        .map(|f| f32::from_sample(f[1]))
        .collect();
    assert_eq!(left, right);

    // Skip the prebuffer and the resampler's start; stop before the end.
    let body = &left[4_410..75_000];
    let level = rms(body);
    assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.005, "rms {level}");
    let hz = frequency(body, 44_100);
    assert!((hz - 1_000.0).abs() < 1.0, "frequency {hz}");
    // A 0.5-amplitude 1 kHz sine at 44.1 kHz moves at most 0.072 per sample.
    assert!(max_step(body) < 0.075, "step {}", max_step(body));
}

#[test]
fn playback_waits_for_prebuffer_then_plays() {
    let (mut writer, mut converter) = playback_path(48_000, 1).unwrap();
    let mut buffer = vec![1.0f32; 480];
    converter.fill(&mut buffer);
    assert!(buffer.iter().all(|&s| s == 0.0), "silence before any frame");

    for _ in 0..3 {
        writer.write_frame(&[0.5; FRAME_SAMPLES]);
    }
    let mut buffer = vec![0.0f32; 480];
    converter.fill(&mut buffer);
    assert!(buffer.iter().all(|&s| s == 0.5));
}

#[test]
fn playback_queue_is_bounded() {
    let (mut writer, _converter) = playback_path(48_000, 1).unwrap();
    for _ in 0..20 {
        writer.write_frame(&[0.1; FRAME_SAMPLES]);
    }
    let max_frames = samples_for_ms(PLAYBACK_MAX_QUEUE_MS) / FRAME_SAMPLES;
    let dropped = writer.stats().dropped.load(Ordering::Relaxed) as usize;
    assert_eq!(dropped, (20 - max_frames) * FRAME_SAMPLES);
}

#[test]
fn source_falls_back_until_attached() {
    let (handoff, receiver) = mpsc::channel();
    let tone = ToneSource::new(440.0, -12.0).unwrap();
    let mut source = DeviceSource::new(receiver, CaptureFallback::Tone(tone));
    let mut frame = SILENCE;

    assert!(source.next_frame(&mut frame));
    assert!(frame.iter().any(|&s| s != 0.0), "tone while detached");

    let (mut converter, reader) = capture_path(48_000, 1).unwrap();
    handoff.send(Handoff::Attach(reader)).unwrap();
    converter.process(&[0.25f32; FRAME_SAMPLES]);
    assert!(source.next_frame(&mut frame));
    assert!(source.is_attached());
    assert!(frame.iter().all(|&s| s == 0.25), "device frame");

    // Too little captured: a silence frame, and the source goes on.
    assert!(source.next_frame(&mut frame));
    assert_eq!(frame, SILENCE);

    handoff.send(Handoff::Detach).unwrap();
    assert!(source.next_frame(&mut frame));
    assert!(!source.is_attached());
}

#[test]
fn sink_discards_while_detached() {
    let (handoff, receiver) = mpsc::channel();
    let mut sink = DeviceSink::new(receiver);
    sink.write_frame(&SILENCE).unwrap();
    assert_eq!(sink.discarded_frames(), 1);

    let (writer, _converter) = playback_path(48_000, 2).unwrap();
    handoff.send(Handoff::Attach(writer)).unwrap();
    sink.write_frame(&SILENCE).unwrap();
    assert!(sink.is_attached());
    assert_eq!(sink.discarded_frames(), 1);
    sink.finish().unwrap();
}

#[test]
fn odd_rates_are_rejected() {
    assert!(capture_path(44_101, 1).is_err());
    assert!(capture_path(48_000, 0).is_err());
    assert!(playback_path(0, 2).is_err());
}
