//! [`DeviceSink`]: the speakers as a [`FrameSink`], discarding frames while
//! no device is open.

use std::sync::mpsc::{Receiver, TryRecvError};

use voicemcu_core::audio::{FrameSink, PcmFrame};

use super::convert::PlaybackWriter;
use super::Handoff;

/// Frames to the playback device the device manager currently has open.
///
/// The manager hands over the writing half of each newly opened stream and
/// takes it back when the device fails; frames written meanwhile are
/// discarded so the call goes on.
pub struct DeviceSink {
    handoff: Receiver<Handoff<PlaybackWriter>>,
    writer: Option<PlaybackWriter>,
    discarded_frames: u64,
}

impl DeviceSink {
    pub(crate) fn new(handoff: Receiver<Handoff<PlaybackWriter>>) -> Self {
        DeviceSink {
            handoff,
            writer: None,
            discarded_frames: 0,
        }
    }

    /// Returns whether a device is attached now.
    pub fn is_attached(&self) -> bool {
        self.writer.is_some()
    }

    /// Returns the frames discarded because no device was open.
    pub fn discarded_frames(&self) -> u64 {
        self.discarded_frames
    }

    fn take_handoffs(&mut self) {
        loop {
            match self.handoff.try_recv() {
                Ok(Handoff::Attach(writer)) => self.writer = Some(writer),
                Ok(Handoff::Detach) => self.writer = None,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.writer = None;
                    return;
                }
            }
        }
    }
}

impl FrameSink for DeviceSink {
    fn write_frame(&mut self, frame: &PcmFrame) -> std::io::Result<()> {
        self.take_handoffs();
        match &mut self.writer {
            Some(writer) => writer.write_frame(frame),
            None => self.discarded_frames += 1,
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.writer = None;
        Ok(())
    }
}
