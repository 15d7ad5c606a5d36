//! A soft limiter for mixed audio.
//!
//! STUB: signatures are fixed; bodies to be written.

use crate::audio::PcmFrame;

#[derive(Debug, Default)]
pub struct Limiter {}

impl Limiter {
    pub fn new() -> Self {
        todo!()
    }

    /// Limits `frame` in place so that every sample lies within [-1.0, 1.0].
    pub fn process(&mut self, _frame: &mut PcmFrame) {
        todo!()
    }
}
