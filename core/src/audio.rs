//! The audio format every part of voicemcu agrees on, and the traits that
//! carry frames between the core's callers and their sources and sinks.
//!
//! Audio inside voicemcu is 48 kHz mono `f32` in [-1.0, 1.0], cut into
//! 20 ms frames of 960 samples: one frame per datagram and per mixer tick.

use std::time::Duration;

/// Samples per second.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;

/// The length of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// One 20 ms frame of 48 kHz mono audio.
pub type PcmFrame = [f32; FRAME_SAMPLES];

/// A frame of silence.
pub const SILENCE: PcmFrame = [0.0; FRAME_SAMPLES];

/// Where a client's outgoing audio comes from: a WAV file, a test tone, a
/// microphone.
pub trait FrameSource: Send {
    /// Fills `frame` with the next 20 ms and returns `true`, or returns
    /// `false` once the source has ended.
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool;
}

/// Where a client's incoming audio goes: a WAV file, speakers.
pub trait FrameSink: Send {
    /// Takes the next 20 ms of playback.
    fn write_frame(&mut self, frame: &PcmFrame) -> std::io::Result<()>;

    /// Flushes and closes the sink so that what it wrote stays valid.
    fn finish(&mut self) -> std::io::Result<()>;
}
