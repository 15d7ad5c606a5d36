//! Audio input and output for voicemcu that needs no sound card: WAV files,
//! resampling, test tones and the signal analysis the tests use.
//!
//! Everything here speaks the core's audio format, 48 kHz mono `f32` in
//! 20 ms frames ([`voicemcu_core::audio`]):
//!
//! - [`wav`] reads any WAV file hound can decode into 48 kHz mono, with
//!   errors that name the file and state what to do, and writes 48 kHz mono
//!   16-bit files;
//! - [`resample`] converts sample rates with a band-limited sinc filter,
//!   keeping the output time-aligned with the input;
//! - [`WavSource`], [`ToneSource`] and [`WavSink`] implement the core's
//!   [`FrameSource`](voicemcu_core::audio::FrameSource) and
//!   [`FrameSink`](voicemcu_core::audio::FrameSink);
//! - [`analysis`] measures levels, speech activity, delays, and whether a
//!   speaker can be heard in a recording;
//! - [`fixtures`] describes the speech fixtures' timeline;
//! - [`device`] opens the microphone and speakers through cpal, with
//!   fallbacks when a device is missing or fails.

pub mod analysis;
pub mod device;
pub mod fixtures;
pub mod resample;
mod riff;
mod sink;
mod source;
pub mod wav;

pub use analysis::{
    active_spans, band_pass, clipped_samples, estimate_delay, merge_spans, peak, presence,
    rms_dbfs, summarize, windows_within, DelayEstimate, PresenceConfig, PresenceSummary, Span,
    WindowPresence, ABSENT_SCORE, HEARD_SCORE,
};
pub use resample::{resample, resample_to_48k, ResampleError};
pub use sink::WavSink;
pub use source::{ToneError, ToneSource, WavSource};
pub use wav::{
    f32_to_i16, read_wav_48k_mono, read_wav_mono, write_wav_48k_mono, WavError, WavInfo,
};
