//! [`DeviceSource`]: the microphone as a [`FrameSource`], with a fallback
//! while no device is open.

use std::sync::mpsc::{Receiver, TryRecvError};

use voicemcu_core::audio::{FrameSource, PcmFrame, SILENCE};

use super::convert::CaptureReader;
use super::Handoff;
use crate::ToneSource;

/// What a [`DeviceSource`] sends while no capture device is open.
pub enum CaptureFallback {
    Silence,
    Tone(ToneSource),
}

/// Frames from the capture device the device manager currently has open.
///
/// The manager hands over the reading half of each newly opened stream and
/// takes it back when the device fails. Until the first hand-over, and
/// whenever the device is gone, the source plays its [`CaptureFallback`].
/// A device that delivers too little (it has just started, or its clock runs
/// slow) is padded with silence frames. The source never ends.
pub struct DeviceSource {
    handoff: Receiver<Handoff<CaptureReader>>,
    reader: Option<CaptureReader>,
    fallback: CaptureFallback,
}

impl DeviceSource {
    pub(crate) fn new(
        handoff: Receiver<Handoff<CaptureReader>>,
        fallback: CaptureFallback,
    ) -> Self {
        DeviceSource {
            handoff,
            reader: None,
            fallback,
        }
    }

    /// Returns whether a device is attached now.
    pub fn is_attached(&self) -> bool {
        self.reader.is_some()
    }

    fn take_handoffs(&mut self) {
        loop {
            match self.handoff.try_recv() {
                Ok(Handoff::Attach(reader)) => self.reader = Some(reader),
                Ok(Handoff::Detach) => self.reader = None,
                Err(TryRecvError::Empty) => return,
                // The manager stopped: no device will come back.
                Err(TryRecvError::Disconnected) => {
                    self.reader = None;
                    return;
                }
            }
        }
    }
}

impl FrameSource for DeviceSource {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        self.take_handoffs();
        match (&mut self.reader, &mut self.fallback) {
            (Some(reader), _) => {
                if !reader.read_frame(frame) {
                    *frame = SILENCE;
                }
            }
            (None, CaptureFallback::Tone(tone)) => {
                // An endless tone never ends, so the result is always true.
                tone.next_frame(frame);
            }
            (None, CaptureFallback::Silence) => *frame = SILENCE,
        }
        true
    }
}
