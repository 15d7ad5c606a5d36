//! A frame sink that records to a 48 kHz mono 16-bit WAV file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use voicemcu_core::audio::{FrameSink, PcmFrame};

use crate::wav::{f32_to_i16, wav_spec_48k_mono, WavError};

type Writer = hound::WavWriter<BufWriter<File>>;

/// Largest data chunk a WAV file can describe, leaving room for the header
/// inside the RIFF chunk's 32-bit length.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 1024;

/// Records frames to a 48 kHz mono 16-bit PCM WAV file.
///
/// Samples beyond full scale saturate at -32768 and 32767 instead of
/// wrapping. [`FrameSink::finish`] writes the final header; if it was not
/// called, dropping the sink does it and logs any error, since `drop`
/// cannot return one.
pub struct WavSink {
    path: PathBuf,
    /// `None` before the first frame of a deferred sink, and once finished.
    writer: Option<Writer>,
    /// Whether the file is still to be created, at the first frame.
    deferred: bool,
    frames_written: u64,
}

impl WavSink {
    /// Creates or truncates the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, WavError> {
        let path = path.as_ref();
        let writer = hound::WavWriter::create(path, wav_spec_48k_mono())
            .map_err(|error| WavError::from_hound(path, "creating", error))?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer: Some(writer),
            deferred: false,
            frames_written: 0,
        })
    }

    /// Checks that the file at `path` can be written, without changing it,
    /// and creates or truncates it only at the first frame. A session that
    /// never gets to play anything, because the server was unreachable or
    /// rejected the join, leaves an existing recording as it was.
    pub fn create_at_first_frame(path: impl AsRef<Path>) -> Result<Self, WavError> {
        let path = path.as_ref();
        check_writable(path)?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer: None,
            deferred: true,
            frames_written: 0,
        })
    }

    /// Returns the number of 20 ms frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// Returns the file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Checks that `path` can be opened for writing, without truncating an
/// existing file or leaving a new one behind.
fn check_writable(path: &Path) -> Result<(), WavError> {
    match OpenOptions::new().write(true).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|error| WavError::from_io(path, "creating", error))?;
            std::fs::remove_file(path).map_err(|error| WavError::from_io(path, "creating", error))
        }
        Err(error) => Err(WavError::from_io(path, "creating", error)),
    }
}

/// Wraps a hound error in an `io::Error` that names the file.
fn to_io_error(path: &Path, error: hound::Error) -> io::Error {
    let message = format!("failed writing WAV file {}: {error}", path.display());
    match error {
        hound::Error::IoError(inner) => io::Error::new(inner.kind(), message),
        _ => io::Error::other(message),
    }
}

impl FrameSink for WavSink {
    fn write_frame(&mut self, frame: &PcmFrame) -> io::Result<()> {
        if self.deferred {
            self.deferred = false;
            let writer = hound::WavWriter::create(&self.path, wav_spec_48k_mono())
                .map_err(|error| to_io_error(&self.path, error))?;
            self.writer = Some(writer);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other(format!(
                "WAV file {} is already finished; create a new WavSink to record more",
                self.path.display()
            )));
        };
        let frame_bytes = (frame.len() * 2) as u64;
        let written_bytes = self.frames_written * frame_bytes;
        if written_bytes + frame_bytes > MAX_DATA_BYTES {
            return Err(io::Error::other(format!(
                "WAV file {} is full: a WAV data chunk holds at most 4 GiB \
                 (about 12 hours at 48 kHz mono 16-bit); start a new file",
                self.path.display()
            )));
        }
        // `get_i16_writer` panics only for a spec other than 16-bit integer,
        // which `create` rules out, or when more samples are written than
        // reserved, which the loop below cannot do.
        let mut samples = writer.get_i16_writer(frame.len() as u32);
        for &sample in frame {
            samples.write_sample(f32_to_i16(sample));
        }
        samples
            .flush()
            .map_err(|error| to_io_error(&self.path, error))?;
        self.frames_written += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.deferred = false;
        match self.writer.take() {
            Some(writer) => writer
                .finalize()
                .map_err(|error| to_io_error(&self.path, error)),
            None => Ok(()),
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if self.writer.is_some() {
            if let Err(error) = self.finish() {
                tracing::error!(path = %self.path.display(), %error, "failed to finalise WAV file on drop");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicemcu_core::audio::{FRAME_SAMPLES, SILENCE};

    fn read_i16(path: &Path) -> Vec<i16> {
        let mut reader = hound::WavReader::open(path).unwrap();
        let spec = reader.spec();
        assert_eq!(spec.sample_rate, 48_000);
        assert_eq!(spec.channels, 1);
        assert_eq!(spec.bits_per_sample, 16);
        reader.samples::<i16>().map(Result::unwrap).collect()
    }

    #[test]
    fn deferred_sink_keeps_file_until_first_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heard.wav");
        std::fs::write(&path, b"an earlier recording").unwrap();

        let mut sink = WavSink::create_at_first_frame(&path).unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"an earlier recording");

        let mut sink = WavSink::create_at_first_frame(&path).unwrap();
        sink.write_frame(&SILENCE).unwrap();
        sink.finish().unwrap();
        assert_eq!(read_i16(&path).len(), FRAME_SAMPLES);
    }

    #[test]
    fn deferred_sink_checks_path_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("heard.wav");
        let error = WavSink::create_at_first_frame(&missing).err().unwrap();
        assert!(error.to_string().contains("no-such-dir"), "{error}");

        let error = WavSink::create_at_first_frame(dir.path()).err().unwrap();
        assert!(error.to_string().contains("creating"), "{error}");

        // A new file is not left behind by the check.
        let fresh = dir.path().join("fresh.wav");
        WavSink::create_at_first_frame(&fresh).unwrap();
        assert!(!fresh.exists());
    }

    #[test]
    fn sink_saturates_instead_of_wrapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loud.wav");
        let mut frame = SILENCE;
        let inputs = [
            1.5f32,
            -1.5,
            1.0,
            -1.0,
            0.5,
            -0.5,
            100.0,
            -100.0,
            f32::NAN,
            f32::INFINITY,
        ];
        frame[..inputs.len()].copy_from_slice(&inputs);

        let mut sink = WavSink::create(&path).unwrap();
        sink.write_frame(&frame).unwrap();
        sink.finish().unwrap();

        let samples = read_i16(&path);
        assert_eq!(samples.len(), FRAME_SAMPLES);
        assert_eq!(samples[0], 32_767);
        assert_eq!(samples[1], -32_768);
        assert_eq!(samples[2], 32_767);
        assert_eq!(samples[3], -32_768);
        assert_eq!(samples[4], 16_384);
        assert_eq!(samples[5], -16_384);
        assert_eq!(samples[6], 32_767);
        assert_eq!(samples[7], -32_768);
        assert_eq!(samples[8], 0);
        assert_eq!(samples[9], 32_767);
    }

    #[test]
    fn sink_counts_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count.wav");
        let mut sink = WavSink::create(&path).unwrap();
        for _ in 0..5 {
            sink.write_frame(&SILENCE).unwrap();
        }
        assert_eq!(sink.frames_written(), 5);
        sink.finish().unwrap();
        assert_eq!(read_i16(&path).len(), 5 * FRAME_SAMPLES);
    }

    #[test]
    fn sink_drop_finalises_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dropped.wav");
        {
            let mut sink = WavSink::create(&path).unwrap();
            sink.write_frame(&[0.25; FRAME_SAMPLES]).unwrap();
            sink.write_frame(&[0.25; FRAME_SAMPLES]).unwrap();
        }
        let samples = read_i16(&path);
        assert_eq!(samples.len(), 2 * FRAME_SAMPLES);
        assert!(samples.iter().all(|&s| s == 8_192));
    }

    #[test]
    fn sink_rejects_writes_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("finished.wav");
        let mut sink = WavSink::create(&path).unwrap();
        sink.finish().unwrap();
        sink.finish().unwrap();
        let error = sink.write_frame(&SILENCE).unwrap_err();
        assert!(error.to_string().contains("already finished"), "{error}");
    }

    #[test]
    fn sink_create_in_missing_directory_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.wav");
        let error = WavSink::create(&path).err().unwrap();
        assert!(
            error.to_string().contains(&*path.to_string_lossy()),
            "{error}"
        );
        assert!(error.to_string().contains("failed creating"), "{error}");
    }
}
