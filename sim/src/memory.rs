//! In-memory audio sources and sinks for harnesses.

use std::sync::{Arc, Mutex, PoisonError};

use voicemcu_core::audio::{FrameSink, FrameSource, PcmFrame, SILENCE};

/// A sink that keeps every sample it is given, readable while the client
/// still runs.
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    samples: Arc<Mutex<Vec<f32>>>,
    finished: Arc<Mutex<bool>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything written so far.
    pub fn samples(&self) -> Vec<f32> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Samples written so far.
    pub fn len(&self) -> usize {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the client called `finish`.
    pub fn is_finished(&self) -> bool {
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FrameSink for MemorySink {
    fn write_frame(&mut self, frame: &PcmFrame) -> std::io::Result<()> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(frame);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner) = true;
        Ok(())
    }
}

/// Sends silence forever: a participant that only listens.
#[derive(Clone, Copy, Debug, Default)]
pub struct SilenceSource;

impl FrameSource for SilenceSource {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        *frame = SILENCE;
        true
    }
}

/// Drops everything: a participant whose playback nobody keeps.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardSink;

impl FrameSink for DiscardSink {
    fn write_frame(&mut self, _frame: &PcmFrame) -> std::io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
