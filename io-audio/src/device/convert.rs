//! Conversion between a sound card's format and voicemcu's 48 kHz mono
//! 20 ms frames, split into the half that runs inside the audio callback and
//! the half that runs on the client's 20 ms clock.
//!
//! Capture: the callback ([`CaptureConverter::process`]) turns any sample
//! format into `f32`, averages the channels to mono, resamples the device
//! rate to 48 kHz and pushes the result into a lock-free ring buffer. The
//! client side ([`CaptureReader::read_frame`]) pops exactly 960 samples per
//! frame, whatever sizes the callbacks had.
//!
//! Playback: the client side ([`PlaybackWriter::write_frame`]) pushes each
//! 48 kHz frame into a ring buffer, and the callback
//! ([`PlaybackConverter::fill`]) resamples it to the device rate and copies
//! the mono signal to every output channel in the device's sample format.
//!
//! The callback halves never lock, allocate or block: every buffer is
//! allocated in `new`, rubato's `process_into_buffer` writes into a buffer
//! allocated up front, and the ring buffers are single-producer,
//! single-consumer and wait-free. The resampler keeps its state between
//! callbacks, so chunk boundaries leave no trace in the signal.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use cpal::{FromSample, Sample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use rubato::{FftFixedInOut, Resampler};
use voicemcu_core::audio::{PcmFrame, FRAME_SAMPLES, SAMPLE_RATE};

/// Length of the resampler's chunk at the device rate, in milliseconds.
/// rubato may round it up to a whole number of its FFT blocks.
const RESAMPLER_CHUNK_MS: u32 = 10;

/// Largest FFT block accepted, in input samples. Device rates with a small
/// greatest common divisor with 48 kHz (such as 44 101 Hz) would need a
/// block of about a second, and add that much delay.
const MAX_FFT_BLOCK: usize = 4_800;

/// Capacity of the capture ring buffer, in milliseconds at 48 kHz. It is
/// large because a device may deliver one callback of 4097 frames at 8 kHz
/// (512 ms) at once.
pub const CAPTURE_RING_MS: u32 = 1_000;

/// Capture backlog above which the reader drops the oldest samples, in
/// milliseconds, unless the device's largest callback is longer. It bounds
/// the delay that clock drift between the device and the client's 20 ms
/// tick can build up.
pub const CAPTURE_MAX_BACKLOG_MS: u32 = 120;

/// Backlog the reader keeps after dropping samples, in milliseconds.
pub const CAPTURE_TARGET_BACKLOG_MS: u32 = 40;

/// Capacity of the playback ring buffer, in milliseconds at 48 kHz.
pub const PLAYBACK_RING_MS: u32 = 200;

/// Queued playback above which new frames are dropped, in milliseconds.
pub const PLAYBACK_MAX_QUEUE_MS: u32 = 150;

/// Queued playback the callback waits for before it starts (and restarts
/// after running dry), in milliseconds. It absorbs the jitter between the
/// client's tick and the device's callbacks.
pub const PLAYBACK_PREBUFFER_MS: u32 = 40;

/// Returns the number of 48 kHz samples in `ms` milliseconds.
pub fn samples_for_ms(ms: u32) -> usize {
    (SAMPLE_RATE as usize * ms as usize) / 1000
}

/// An invalid device format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("invalid channel count 0; a device stream needs at least one channel")]
    NoChannels,
    #[error("invalid device sample rate 0 Hz")]
    ZeroRate,
    #[error(
        "unsupported device sample rate {rate} Hz: converting it to 48000 Hz needs blocks of \
         {block} samples (more than {MAX_FFT_BLOCK}); choose a standard rate such as 44100 or 48000 Hz"
    )]
    RateTooOdd { rate: u32, block: usize },
    #[error("failed to create a resampler from {from} Hz to {to} Hz: {detail}")]
    Resampler { from: u32, to: u32, detail: String },
}

/// Counters shared by both halves of a conversion path, readable from any
/// thread without locks.
#[derive(Debug, Default)]
pub struct PathStats {
    /// Callbacks run so far; the device manager watches it to notice a
    /// device that stopped calling back.
    pub callbacks: AtomicU64,
    /// Samples dropped because the ring buffer was full or the backlog was
    /// over its bound.
    pub dropped: AtomicU64,
    /// Samples of silence inserted because the ring buffer ran dry.
    pub underrun: AtomicU64,
    /// Most 48 kHz samples one callback produced or consumed.
    pub largest_callback: AtomicUsize,
    /// RMS level of the last 20 ms frame read or written, as `f32` bits.
    pub level_bits: AtomicU32,
}

impl PathStats {
    /// Returns the RMS level of the last frame, as a fraction of full scale.
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level_bits.load(Ordering::Relaxed))
    }

    fn set_level(&self, frame: &PcmFrame) {
        let sum: f32 = frame.iter().map(|s| s * s).sum();
        let rms = (sum / FRAME_SAMPLES as f32).sqrt();
        self.level_bits.store(rms.to_bits(), Ordering::Relaxed);
    }
}

/// Builds a resampler from `from` to `to` Hz with chunks of about
/// [`RESAMPLER_CHUNK_MS`] at `from`, or `None` when the rates are equal.
fn build_resampler(from: u32, to: u32) -> Result<Option<FftFixedInOut<f32>>, ConvertError> {
    if from == 0 || to == 0 {
        return Err(ConvertError::ZeroRate);
    }
    if from == to {
        return Ok(None);
    }
    let gcd = gcd(from, to);
    let block = (from / gcd) as usize;
    if block > MAX_FFT_BLOCK {
        return Err(ConvertError::RateTooOdd {
            rate: from.max(to),
            block,
        });
    }
    let chunk = (from * RESAMPLER_CHUNK_MS / 1000).max(1) as usize;
    FftFixedInOut::new(from as usize, to as usize, chunk, 1)
        .map(Some)
        .map_err(|error| ConvertError::Resampler {
            from,
            to,
            detail: error.to_string(),
        })
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Creates the ring buffer between a capture callback and its reader.
pub fn capture_path(
    device_rate: u32,
    channels: usize,
) -> Result<(CaptureConverter, CaptureReader), ConvertError> {
    let stats = Arc::new(PathStats::default());
    let (producer, consumer) = HeapRb::<f32>::new(samples_for_ms(CAPTURE_RING_MS)).split();
    let converter = CaptureConverter::new(device_rate, channels, producer, stats.clone())?;
    let reader = CaptureReader {
        consumer,
        max_backlog: samples_for_ms(CAPTURE_MAX_BACKLOG_MS),
        target_backlog: samples_for_ms(CAPTURE_TARGET_BACKLOG_MS),
        stats,
    };
    Ok((converter, reader))
}

/// Creates the ring buffer between a playback writer and its callback.
pub fn playback_path(
    device_rate: u32,
    channels: usize,
) -> Result<(PlaybackWriter, PlaybackConverter), ConvertError> {
    let stats = Arc::new(PathStats::default());
    let (producer, consumer) = HeapRb::<f32>::new(samples_for_ms(PLAYBACK_RING_MS)).split();
    let converter = PlaybackConverter::new(device_rate, channels, consumer, stats.clone())?;
    let writer = PlaybackWriter {
        producer,
        max_queue: samples_for_ms(PLAYBACK_MAX_QUEUE_MS),
        stats,
    };
    Ok((writer, converter))
}

/// The capture callback's half: device samples in, 48 kHz mono out into
/// the ring buffer.
pub struct CaptureConverter {
    channels: usize,
    resampler: Option<FftFixedInOut<f32>>,
    /// Mono samples at the device rate waiting for a full resampler chunk.
    pending: Vec<f32>,
    pending_len: usize,
    /// The resampler's output, one channel.
    resampled: Vec<Vec<f32>>,
    producer: HeapProd<f32>,
    /// 48 kHz samples pushed during the current callback.
    pushed_this_callback: usize,
    stats: Arc<PathStats>,
}

impl CaptureConverter {
    fn new(
        device_rate: u32,
        channels: usize,
        producer: HeapProd<f32>,
        stats: Arc<PathStats>,
    ) -> Result<Self, ConvertError> {
        if channels == 0 {
            return Err(ConvertError::NoChannels);
        }
        let resampler = build_resampler(device_rate, SAMPLE_RATE)?;
        let (pending_capacity, resampled) = match &resampler {
            Some(resampler) => (
                resampler.input_frames_next(),
                resampler.output_buffer_allocate(true),
            ),
            // Without resampling the pending buffer only batches pushes.
            None => (samples_for_ms(RESAMPLER_CHUNK_MS), vec![Vec::new()]),
        };
        Ok(CaptureConverter {
            channels,
            resampler,
            pending: vec![0.0; pending_capacity],
            pending_len: 0,
            resampled,
            producer,
            pushed_this_callback: 0,
            stats,
        })
    }

    /// Converts one callback's interleaved samples. Runs in the audio
    /// callback: it neither locks, allocates nor blocks.
    pub fn process<T>(&mut self, data: &[T])
    where
        T: Sample,
        f32: FromSample<T>,
    {
        self.stats.callbacks.fetch_add(1, Ordering::Relaxed);
        self.pushed_this_callback = 0;
        let scale = 1.0 / self.channels as f32;
        for frame in data.chunks_exact(self.channels) {
            let sum: f32 = frame.iter().map(|&s| f32::from_sample(s)).sum();
            self.pending[self.pending_len] = sum * scale;
            self.pending_len += 1;
            if self.pending_len == self.pending.len() {
                self.flush_pending();
            }
        }
        // At the device rate nothing needs a full chunk, so hand over what
        // arrived now rather than holding it until the next callback.
        if self.resampler.is_none() && self.pending_len > 0 {
            self.flush_pending();
        }
        self.stats
            .largest_callback
            .fetch_max(self.pushed_this_callback, Ordering::Relaxed);
    }

    fn flush_pending(&mut self) {
        let input = &self.pending[..self.pending_len];
        // `process_into_buffer` fails only on buffers of the wrong size, and
        // both were sized from this resampler in `new`. Should it fail
        // anyway, the chunk counts as dropped.
        let (offered, pushed) = match self.resampler.as_mut() {
            None => (input.len(), self.producer.push_slice(input)),
            Some(resampler) => {
                match resampler.process_into_buffer(&[input], &mut self.resampled, None) {
                    Ok((_, produced)) => {
                        let out = &self.resampled[0][..produced];
                        (produced, self.producer.push_slice(out))
                    }
                    Err(_) => (input.len(), 0),
                }
            }
        };
        self.pending_len = 0;
        self.pushed_this_callback += pushed;
        self.count_dropped(offered - pushed);
    }

    fn count_dropped(&self, samples: usize) {
        if samples > 0 {
            self.stats
                .dropped
                .fetch_add(samples as u64, Ordering::Relaxed);
        }
    }
}

/// The client's half of capture: exact 960-sample frames out of the ring.
pub struct CaptureReader {
    consumer: HeapCons<f32>,
    max_backlog: usize,
    target_backlog: usize,
    stats: Arc<PathStats>,
}

impl CaptureReader {
    /// Pops the next 960 samples into `frame` and returns `true`, or returns
    /// `false`, leaving the ring untouched, when fewer are queued. A backlog
    /// over [`CAPTURE_MAX_BACKLOG_MS`] (or one frame over the device's
    /// largest callback, when that is longer) is first cut to
    /// [`CAPTURE_TARGET_BACKLOG_MS`] (or the largest callback) by dropping
    /// the oldest samples.
    pub fn read_frame(&mut self, frame: &mut PcmFrame) -> bool {
        let queued = self.consumer.occupied_len();
        // A device with long callbacks delivers that much at once, and the
        // reader must not mistake it for drift.
        let burst = self.stats.largest_callback.load(Ordering::Relaxed);
        let max_backlog = self.max_backlog.max(burst + FRAME_SAMPLES);
        if queued > max_backlog {
            let target = self.target_backlog.max(burst);
            let skipped = self.consumer.skip(queued - target);
            self.stats
                .dropped
                .fetch_add(skipped as u64, Ordering::Relaxed);
        }
        if self.consumer.occupied_len() < FRAME_SAMPLES {
            self.stats
                .underrun
                .fetch_add(FRAME_SAMPLES as u64, Ordering::Relaxed);
            return false;
        }
        let popped = self.consumer.pop_slice(frame);
        debug_assert_eq!(popped, FRAME_SAMPLES);
        self.stats.set_level(frame);
        true
    }

    /// Returns the 48 kHz samples queued now.
    pub fn queued(&self) -> usize {
        self.consumer.occupied_len()
    }

    pub fn stats(&self) -> &Arc<PathStats> {
        &self.stats
    }
}

/// The client's half of playback: 960-sample frames into the ring.
pub struct PlaybackWriter {
    producer: HeapProd<f32>,
    max_queue: usize,
    stats: Arc<PathStats>,
}

impl PlaybackWriter {
    /// Queues one frame, or drops it when [`PLAYBACK_MAX_QUEUE_MS`] are
    /// already queued, which bounds the playback delay.
    pub fn write_frame(&mut self, frame: &PcmFrame) {
        self.stats.set_level(frame);
        if self.producer.occupied_len() + FRAME_SAMPLES > self.max_queue {
            self.stats
                .dropped
                .fetch_add(FRAME_SAMPLES as u64, Ordering::Relaxed);
            return;
        }
        let pushed = self.producer.push_slice(frame);
        let lost = FRAME_SAMPLES - pushed;
        if lost > 0 {
            self.stats.dropped.fetch_add(lost as u64, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &Arc<PathStats> {
        &self.stats
    }

    /// Returns the 48 kHz samples queued now.
    pub fn queued(&self) -> usize {
        self.producer.occupied_len()
    }
}

/// The playback callback's half: 48 kHz mono from the ring buffer out to
/// every channel of the device in its rate and format.
pub struct PlaybackConverter {
    channels: usize,
    resampler: Option<FftFixedInOut<f32>>,
    /// One resampler chunk of 48 kHz input.
    chunk: Vec<f32>,
    /// Converted samples at the device rate, one channel.
    converted: Vec<Vec<f32>>,
    converted_len: usize,
    converted_pos: usize,
    consumer: HeapCons<f32>,
    prebuffer: usize,
    /// Whether the prebuffer was reached since the ring last ran dry.
    primed: bool,
    stats: Arc<PathStats>,
}

impl PlaybackConverter {
    fn new(
        device_rate: u32,
        channels: usize,
        consumer: HeapCons<f32>,
        stats: Arc<PathStats>,
    ) -> Result<Self, ConvertError> {
        if channels == 0 {
            return Err(ConvertError::NoChannels);
        }
        let resampler = build_resampler(SAMPLE_RATE, device_rate)?;
        let (chunk_len, converted) = match &resampler {
            Some(resampler) => (
                resampler.input_frames_next(),
                resampler.output_buffer_allocate(true),
            ),
            None => {
                let len = samples_for_ms(RESAMPLER_CHUNK_MS);
                (len, vec![vec![0.0; len]])
            }
        };
        Ok(PlaybackConverter {
            channels,
            resampler,
            chunk: vec![0.0; chunk_len],
            converted,
            converted_len: 0,
            converted_pos: 0,
            consumer,
            prebuffer: samples_for_ms(PLAYBACK_PREBUFFER_MS).max(chunk_len),
            primed: false,
            stats,
        })
    }

    /// Fills one callback's interleaved output buffer. Runs in the audio
    /// callback: it neither locks, allocates nor blocks.
    pub fn fill<T>(&mut self, data: &mut [T])
    where
        T: Sample + FromSample<f32>,
    {
        self.stats.callbacks.fetch_add(1, Ordering::Relaxed);
        for frame in data.chunks_exact_mut(self.channels) {
            if self.converted_pos == self.converted_len {
                self.refill();
            }
            let value = self.converted[0][self.converted_pos];
            self.converted_pos += 1;
            frame.fill(T::from_sample(value));
        }
    }

    /// Converts the next chunk from the ring buffer, or a chunk of silence
    /// while the ring is below the prebuffer.
    fn refill(&mut self) {
        let queued = self.consumer.occupied_len();
        if !self.primed && queued >= self.prebuffer {
            self.primed = true;
        }
        let popped = if self.primed {
            self.consumer.pop_slice(&mut self.chunk)
        } else {
            0
        };
        if popped < self.chunk.len() {
            self.chunk[popped..].fill(0.0);
            self.stats
                .underrun
                .fetch_add((self.chunk.len() - popped) as u64, Ordering::Relaxed);
            if self.primed {
                self.primed = false;
            }
        }

        self.converted_pos = 0;
        self.converted_len = match self.resampler.as_mut() {
            None => {
                let len = self.chunk.len();
                self.converted[0][..len].copy_from_slice(&self.chunk);
                len
            }
            // `process_into_buffer` fails only on buffers of the wrong size,
            // and both were sized from this resampler in `new`. Should it
            // fail anyway, one chunk of silence is played.
            Some(resampler) => {
                match resampler.process_into_buffer(&[&self.chunk[..]], &mut self.converted, None) {
                    Ok((_, produced)) => produced,
                    Err(_) => {
                        let len = resampler.output_frames_next();
                        self.converted[0][..len].fill(0.0);
                        len
                    }
                }
            }
        };
    }
}
