//! Reading any WAV file hound can decode into 48 kHz mono `f32`, and writing
//! 48 kHz mono 16-bit WAV files.
//!
//! Reading accepts 8-, 16-, 24- and 32-bit integer and 32-bit float samples,
//! plain or `WAVE_FORMAT_EXTENSIBLE` headers, any channel count and sample
//! rates from [`MIN_SAMPLE_RATE`] to [`MAX_SAMPLE_RATE`]. Channels are
//! averaged into one, and the result is resampled to 48 kHz.
//!
//! Damaged data chunks are read leniently, keeping every whole frame (one
//! sample of every channel):
//! - a data chunk whose length is not a whole number of frames loses the
//!   partial last frame, with a warning;
//! - a header that was never finalised, because the program writing the
//!   file was killed or the file was cut short, is recovered: when the data
//!   chunk declares 0 bytes yet audio follows it, or declares more bytes
//!   than the file holds, every whole frame the file holds is read, with a
//!   debug log. (`voicemcu server --record` updates its headers every
//!   second, so a killed server loses at most that second.)
//!
//! [`WavRecorder`] writes a file a frame at a time and makes it valid at
//! every [`WavRecorder::flush`].
//!
//! Every error names the file, says what is wrong and what to do about it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Cursor};
use std::path::{Path, PathBuf};

use voicemcu_core::audio::SAMPLE_RATE;

use crate::resample::{resample_to_48k, ResampleError};
use crate::riff;

/// Lowest sample rate accepted from a file. Lower rates carry no usable
/// speech and usually mean a corrupt header.
pub const MIN_SAMPLE_RATE: u32 = 1_000;

/// Highest sample rate accepted from a file.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Longest file accepted, in seconds: 4 hours. Files are read into memory
/// whole, and 4 hours at 48 kHz already take 2.8 GB as `f32`.
pub const MAX_DURATION_SECS: u64 = 4 * 3600;

/// Errors from reading or writing a WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("WAV file {} not found; check the path and the working directory", path.display())]
    NotFound { path: PathBuf },

    #[error("permission denied {action} WAV file {}; check the file's and its directory's permissions", path.display())]
    PermissionDenied { path: PathBuf, action: &'static str },

    #[error("failed {action} WAV file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },

    #[error("{} is not a RIFF/WAVE file: {detail}; pass a .wav file, or convert the audio with `sox INPUT -b 16 OUTPUT.wav`", path.display())]
    NotWav { path: PathBuf, detail: String },

    #[error("WAV file {} uses an unsupported format: {format}; convert it with `sox {} -b 16 -e signed-integer OUTPUT.wav`", path.display(), path.display())]
    Unsupported { path: PathBuf, format: String },

    #[error("WAV file {} has an invalid header: {detail}; re-export the file from the program that made it", path.display())]
    InvalidHeader { path: PathBuf, detail: String },

    #[error("WAV file {} is truncated: {detail}; the program that wrote it probably stopped early, so record or copy it again", path.display())]
    Truncated { path: PathBuf, detail: String },

    #[error("WAV file {} contains no samples{detail}", path.display())]
    NoSamples { path: PathBuf, detail: String },

    #[error("WAV file {} declares a sample rate of {rate} Hz, outside the supported {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz; the header is probably corrupt, or convert the file with `sox {} -r 48000 OUTPUT.wav`", path.display(), path.display())]
    InvalidSampleRate { path: PathBuf, rate: u32 },

    #[error("WAV file {} is {seconds} s long, longer than the supported {MAX_DURATION_SECS} s; cut it into parts, for example with `sox {} OUTPUT.wav trim 0 3600`", path.display(), path.display())]
    TooLong { path: PathBuf, seconds: u64 },

    #[error("failed to resample WAV file {}: {source}", path.display())]
    Resample {
        path: PathBuf,
        source: ResampleError,
    },
}

impl WavError {
    /// Returns the file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            WavError::NotFound { path }
            | WavError::PermissionDenied { path, .. }
            | WavError::Io { path, .. }
            | WavError::NotWav { path, .. }
            | WavError::Unsupported { path, .. }
            | WavError::InvalidHeader { path, .. }
            | WavError::Truncated { path, .. }
            | WavError::NoSamples { path, .. }
            | WavError::InvalidSampleRate { path, .. }
            | WavError::TooLong { path, .. }
            | WavError::Resample { path, .. } => path,
        }
    }

    /// Maps an I/O error while `action` ("reading", "writing", "creating")
    /// to the most specific variant.
    pub(crate) fn from_io(path: &Path, action: &'static str, error: io::Error) -> WavError {
        let path = path.to_path_buf();
        match error.kind() {
            io::ErrorKind::NotFound if action == "reading" => WavError::NotFound { path },
            io::ErrorKind::PermissionDenied => WavError::PermissionDenied { path, action },
            _ => WavError::Io {
                path,
                action,
                source: error,
            },
        }
    }

    /// Maps a hound error raised while `action` a file.
    pub(crate) fn from_hound(path: &Path, action: &'static str, error: hound::Error) -> WavError {
        match error {
            hound::Error::IoError(error) => WavError::from_io(path, action, error),
            other => WavError::Io {
                path: path.to_path_buf(),
                action,
                source: io::Error::other(other.to_string()),
            },
        }
    }
}

/// Facts from a WAV file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    /// Meaningful bits per sample (8, 16, 24 or 32).
    pub bits_per_sample: u16,
    pub sample_format: hound::SampleFormat,
    /// Whole frames read: samples per channel.
    pub frames: usize,
}

/// Reads a WAV file, averages its channels, and resamples it to 48 kHz.
pub fn read_wav_48k_mono(path: impl AsRef<Path>) -> Result<Vec<f32>, WavError> {
    let path = path.as_ref();
    let (samples, info) = read_wav_mono(path)?;
    resample_to_48k(&samples, info.sample_rate).map_err(|source| WavError::Resample {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a WAV file and averages its channels, keeping the file's sample
/// rate. Integer samples are scaled so that full scale maps to [-1.0, 1.0).
/// Float samples are kept as they are, except that NaN and infinity become
/// 0.0 with a warning.
pub fn read_wav_mono(path: impl AsRef<Path>) -> Result<(Vec<f32>, WavInfo), WavError> {
    let path = path.as_ref();
    let mut bytes = fs::read(path).map_err(|error| WavError::from_io(path, "reading", error))?;
    check_riff_wave(path, &bytes)?;

    let layout = riff::scan(&bytes);
    if let Some(fmt) = &layout.fmt {
        if let Some(format) = fmt.unsupported_coding() {
            return Err(WavError::Unsupported {
                path: path.to_path_buf(),
                format,
            });
        }
    }
    if let (Some(fmt), Some(data)) = (&layout.fmt, &layout.data) {
        check_data_length(path, &mut bytes, fmt, data)?;
    }

    let mut reader = hound::WavReader::new(Cursor::new(&bytes[..]))
        .map_err(|error| header_error(path, &bytes, error))?;
    let spec = reader.spec();
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&spec.sample_rate) {
        return Err(WavError::InvalidSampleRate {
            path: path.to_path_buf(),
            rate: spec.sample_rate,
        });
    }

    let seconds = u64::from(reader.duration()) / u64::from(spec.sample_rate);
    if seconds > MAX_DURATION_SECS {
        return Err(WavError::TooLong {
            path: path.to_path_buf(),
            seconds,
        });
    }

    let channels = usize::from(spec.channels);
    let interleaved = read_interleaved(path, &mut reader, channels)?;
    let frames = interleaved.len() / channels;
    if frames == 0 {
        return Err(WavError::NoSamples {
            path: path.to_path_buf(),
            detail: empty_data_detail(&bytes, &layout),
        });
    }

    let mono = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: spec.bits_per_sample,
        sample_format: spec.sample_format,
        frames,
    };
    Ok((mono, info))
}

/// Writes `samples` as a 48 kHz mono 16-bit PCM WAV file, saturating values
/// beyond full scale (see [`crate::WavSink`]).
pub fn write_wav_48k_mono(path: impl AsRef<Path>, samples: &[f32]) -> Result<(), WavError> {
    let path = path.as_ref();
    let mut writer = hound::WavWriter::create(path, wav_spec_48k_mono())
        .map_err(|error| WavError::from_hound(path, "creating", error))?;
    for &sample in samples {
        writer
            .write_sample(f32_to_i16(sample))
            .map_err(|error| WavError::from_hound(path, "writing", error))?;
    }
    writer
        .finalize()
        .map_err(|error| WavError::from_hound(path, "writing", error))
}

/// Largest data chunk a WAV file can describe, leaving room for the header
/// inside the RIFF chunk's 32-bit length: about 12 hours at 48 kHz mono
/// 16-bit.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 1024;

/// Writes a 48 kHz mono 16-bit PCM WAV file piece by piece, for recordings
/// that run for hours and must survive the process being killed.
///
/// Samples beyond full scale saturate at -32768 and 32767 instead of
/// wrapping ([`f32_to_i16`]). Each [`flush`](WavRecorder::flush) writes the
/// header for everything written so far, so the file is a valid WAV file
/// up to the last flush even if [`finish`](WavRecorder::finish) never runs;
/// readers that recover unfinalised headers (as [`read_wav_mono`] does) get
/// the rest too. Dropping the recorder finishes the file, logging any error.
pub struct WavRecorder {
    path: PathBuf,
    /// `None` once finished.
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    samples_written: u64,
    /// Samples written since the last flush.
    unflushed: u64,
}

impl WavRecorder {
    /// Creates or truncates the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<WavRecorder, WavError> {
        let path = path.as_ref();
        let writer = hound::WavWriter::create(path, wav_spec_48k_mono())
            .map_err(|error| WavError::from_hound(path, "creating", error))?;
        Ok(WavRecorder {
            path: path.to_path_buf(),
            writer: Some(writer),
            samples_written: 0,
            unflushed: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples written so far, flushed or not.
    pub fn samples_written(&self) -> u64 {
        self.samples_written
    }

    /// Appends `samples`, saturating those beyond full scale.
    pub fn write(&mut self, samples: &[f32]) -> Result<(), WavError> {
        self.append(samples.len(), samples.iter().copied())
    }

    /// Appends `count` samples of silence.
    pub fn write_silence(&mut self, count: usize) -> Result<(), WavError> {
        self.append(count, std::iter::repeat_n(0.0, count))
    }

    fn append(&mut self, count: usize, samples: impl Iterator<Item = f32>) -> Result<(), WavError> {
        let path = &self.path;
        let Some(writer) = self.writer.as_mut() else {
            return Err(WavError::Io {
                path: path.clone(),
                action: "writing",
                source: io::Error::other("the file is already finished"),
            });
        };
        if (self.samples_written + count as u64) * 2 > MAX_DATA_BYTES {
            return Err(WavError::Io {
                path: path.clone(),
                action: "writing",
                source: io::Error::other(
                    "a WAV data chunk holds at most 4 GiB (about 12 hours at 48 kHz mono \
                     16-bit); start a new file",
                ),
            });
        }
        for sample in samples {
            writer
                .write_sample(f32_to_i16(sample))
                .map_err(|error| WavError::from_hound(path, "writing", error))?;
        }
        self.samples_written += count as u64;
        self.unflushed += count as u64;
        Ok(())
    }

    /// Writes buffered samples to the file and updates its header, so that
    /// the file is valid as it stands. Does nothing when nothing was written
    /// since the last flush.
    pub fn flush(&mut self) -> Result<(), WavError> {
        if self.unflushed == 0 {
            return Ok(());
        }
        if let Some(writer) = self.writer.as_mut() {
            writer
                .flush()
                .map_err(|error| WavError::from_hound(&self.path, "writing", error))?;
        }
        self.unflushed = 0;
        Ok(())
    }

    /// Writes the final header. Later writes fail; finishing again does
    /// nothing.
    pub fn finish(&mut self) -> Result<(), WavError> {
        match self.writer.take() {
            Some(writer) => writer
                .finalize()
                .map_err(|error| WavError::from_hound(&self.path, "writing", error)),
            None => Ok(()),
        }
    }
}

impl Drop for WavRecorder {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            tracing::error!(%error, "failed to finalise a WAV file on drop");
        }
    }
}

/// Returns the format of every file voicemcu writes: 48 kHz, mono, 16-bit PCM.
pub(crate) fn wav_spec_48k_mono() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Converts a sample to 16-bit PCM. Values beyond full scale saturate at
/// -32768 and 32767 instead of wrapping, and NaN becomes 0.
pub fn f32_to_i16(sample: f32) -> i16 {
    // `as` from f32 to i16 saturates and maps NaN to 0, so the clamp only
    // documents the intent.
    (sample * 32_768.0)
        .round()
        .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

fn check_riff_wave(path: &Path, bytes: &[u8]) -> Result<(), WavError> {
    if riff::is_riff_wave(bytes) {
        return Ok(());
    }
    let not_wav = |detail: String| WavError::NotWav {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.is_empty() {
        return Err(not_wav("the file is empty".to_string()));
    }
    if bytes.starts_with(b"RIFX") || bytes.starts_with(b"RF64") {
        let kind = String::from_utf8_lossy(&bytes[0..4]).into_owned();
        return Err(WavError::Unsupported {
            path: path.to_path_buf(),
            format: format!("{kind} container (only little-endian 32-bit RIFF is supported)"),
        });
    }
    if bytes.len() < 12 && b"RIFF".starts_with(&bytes[..bytes.len().min(4)]) {
        return Err(WavError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "the file ends after {} bytes, inside the 12-byte RIFF header",
                bytes.len()
            ),
        });
    }
    let preview = &bytes[..bytes.len().min(12)];
    Err(not_wav(format!(
        "it starts with \"{}\" instead of \"RIFF....WAVE\"",
        preview.escape_ascii()
    )))
}

/// Recovers a data chunk whose header was never finalised (declaring 0
/// bytes with audio after it, or more bytes than the file holds) by
/// declaring the whole frames the file holds, and shortens one that ends
/// mid-frame to its whole frames (logging a warning), because hound 3.5
/// rejects such chunks outright.
fn check_data_length(
    path: &Path,
    bytes: &mut [u8],
    fmt: &riff::FmtChunk,
    data: &riff::DataChunk,
) -> Result<(), WavError> {
    let block_align = usize::from(fmt.block_align);
    if block_align == 0 {
        // hound rejects this header with its own message.
        return Ok(());
    }
    let declared = data.declared_len as usize;
    let available = data.available_len(bytes.len());
    let unfinalised = declared == 0 && available > 0 && !is_chunk_list(bytes, data.body_offset);
    if unfinalised || declared > available {
        // Whole frames only, and no more than a data chunk can declare.
        let limit = (u32::MAX as usize).min(available);
        let whole = limit - limit % block_align;
        let frames = whole / block_align;
        tracing::debug!(
            path = %path.display(),
            declared_bytes = declared,
            available_bytes = available,
            frames,
            seconds = frames as f64 / f64::from(fmt.sample_rate.max(1)),
            "WAV header was not finalised (the writer stopped early or the file was cut); \
             reading the whole frames the file holds"
        );
        // `whole` is at most u32::MAX.
        let whole = whole as u32;
        bytes[data.length_offset..data.length_offset + 4].copy_from_slice(&whole.to_le_bytes());
        return Ok(());
    }
    let partial = declared % block_align;
    if partial != 0 {
        let whole = declared - partial;
        tracing::warn!(
            path = %path.display(),
            data_bytes = declared,
            frame_bytes = block_align,
            dropped_bytes = partial,
            "WAV data chunk ends mid-frame; reading the whole frames and ignoring the partial last one"
        );
        // `whole` is below `declared`, which came from a u32.
        let whole = whole as u32;
        bytes[data.length_offset..data.length_offset + 4].copy_from_slice(&whole.to_le_bytes());
    }
    Ok(())
}

/// Whether the bytes from `offset` to the end of the file are a list of
/// RIFF chunks (four ASCII characters and a length each) that ends exactly
/// at the end of the file: then an empty data chunk before them really is
/// empty, rather than a header that was never updated.
fn is_chunk_list(bytes: &[u8], mut offset: usize) -> bool {
    if offset >= bytes.len() {
        return false;
    }
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + 8) else {
            return false;
        };
        if !header[..4]
            .iter()
            .all(|byte| byte.is_ascii_graphic() || *byte == b' ')
        {
            return false;
        }
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let padded = size + (size & 1);
        offset = match (offset + 8).checked_add(padded) {
            Some(next) => next,
            None => return false,
        };
    }
    offset == bytes.len() || offset == bytes.len() + 1
}

/// Maps an error from `hound::WavReader::new`.
fn header_error(path: &Path, bytes: &[u8], error: hound::Error) -> WavError {
    let path = path.to_path_buf();
    match error {
        // hound reads from memory here, so an I/O error can only mean that
        // the bytes ran out (hound reports that as UnexpectedEof or as
        // "Failed to read enough bytes.").
        hound::Error::IoError(_) => WavError::Truncated {
            path,
            detail: format!(
                "the file ends after {} bytes, inside the header, before any audio data",
                bytes.len()
            ),
        },
        hound::Error::Unsupported => WavError::Unsupported {
            path,
            format: "a sample coding that hound cannot decode".to_string(),
        },
        hound::Error::FormatError(detail) => WavError::InvalidHeader {
            path,
            detail: detail.to_string(),
        },
        other => WavError::InvalidHeader {
            path,
            detail: other.to_string(),
        },
    }
}

/// Reads every sample, scaled to `f32`, in file order.
fn read_interleaved(
    path: &Path,
    reader: &mut hound::WavReader<Cursor<&[u8]>>,
    channels: usize,
) -> Result<Vec<f32>, WavError> {
    let spec = reader.spec();
    let sample_error = |index: usize, error: hound::Error| {
        let frame = index / channels;
        let seconds = frame as f64 / f64::from(spec.sample_rate);
        match error {
            // Reading from memory fails only when the bytes run out.
            hound::Error::IoError(_) => WavError::Truncated {
                path: path.to_path_buf(),
                detail: format!("the data ends in frame {frame} (at {seconds:.3} s)"),
            },
            other => WavError::InvalidHeader {
                path: path.to_path_buf(),
                detail: format!("sample {index} (frame {frame}, at {seconds:.3} s) could not be decoded: {other}"),
            },
        }
    };

    let mut samples = Vec::with_capacity(reader.len() as usize);
    match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            for (index, sample) in reader.samples::<i32>().enumerate() {
                let sample = sample.map_err(|error| sample_error(index, error))?;
                samples.push(sample as f32 * scale);
            }
        }
        hound::SampleFormat::Float => {
            let mut non_finite = 0usize;
            for (index, sample) in reader.samples::<f32>().enumerate() {
                let sample = sample.map_err(|error| sample_error(index, error))?;
                if sample.is_finite() {
                    samples.push(sample);
                } else {
                    non_finite += 1;
                    samples.push(0.0);
                }
            }
            if non_finite > 0 {
                tracing::warn!(
                    path = %path.display(),
                    samples = non_finite,
                    "WAV file contains NaN or infinite samples; replaced them with 0.0"
                );
            }
        }
    }
    Ok(samples)
}

/// Explains an empty data chunk: one that declares no bytes and is followed
/// only by other chunks, or that holds less than one whole frame.
fn empty_data_detail(bytes: &[u8], layout: &riff::RiffLayout) -> String {
    match layout.data {
        Some(data) if data.available_len(bytes.len()) > 0 && data.declared_len > 0 => format!(
            ": its data chunk holds {} bytes, less than one frame; record some audio into it",
            data.available_len(bytes.len())
                .min(data.declared_len as usize)
        ),
        _ => ": its data chunk is empty; record some audio into it".to_string(),
    }
}
