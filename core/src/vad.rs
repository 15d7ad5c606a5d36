//! Voice activity detection (VAD): an energy gate with hangover.
//!
//! STUB: signatures are fixed; bodies to be written.

use crate::audio::PcmFrame;

#[derive(Debug)]
pub struct VoiceActivityDetector {}

impl VoiceActivityDetector {
    /// `threshold` is the frame RMS, as a fraction of full scale, at or above
    /// which a frame counts as speech. Zero lets everything through.
    pub fn new(_threshold: f32) -> Self {
        todo!()
    }

    /// Feeds one frame and returns whether the sender counts as talking.
    pub fn update(&mut self, _frame: &PcmFrame) -> bool {
        todo!()
    }
}
