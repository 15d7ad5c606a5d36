//! The microphone of a simulated participant: its own sine, with a short
//! level dip every two seconds that marks the moment it was sent.
//!
//! A marker lowers the tone by [`MARKER_DIP_DB`] (less for quiet tones)
//! for [`MARKER_FRAMES`] frames. The dip leaves the tone above the voice activity detector's
//! threshold and too short to empty a 100 ms window of `hears-others`, but a
//! listener's playback shows it clearly at the speaker's frequency. The
//! time between sending a marker and a listener playing its dip out is the
//! mouth-to-ear delay through both jitter buffers, the mixer and the
//! network ([`super::delay`]).
//!
//! During the participant's scripted silences the source sends zeros and
//! no markers.

use std::time::Duration;

use voicemcu_audio::{ToneError, ToneSource};
use voicemcu_core::audio::{FrameSource, PcmFrame};

use super::trace::{sim_now, Recorder};

/// How much a marker lowers the tone, in dB.
pub const MARKER_DIP_DB: f32 = 20.0;

/// How many 20 ms frames a marker lasts.
pub const MARKER_FRAMES: u64 = 3;

/// The lowest peak level a marker dips to, in dBFS: above the server's
/// voice activity detector threshold (an RMS of 0.01, -40 dBFS, which is
/// -37 dBFS peak for a sine), so a dip never gates the speaker off.
const MARKER_FLOOR_DBFS: f32 = -34.0;

/// Frames from one marker to the next: 2 s.
pub const MARKER_PERIOD_FRAMES: u64 = 100;

/// A tone with markers and scripted silences.
pub struct MarkedTone {
    tone: ToneSource,
    participant: &'static str,
    /// Spans of simulated time, from and until, that send silence.
    silent: Vec<(Duration, Duration)>,
    /// Frames sent so far, silent ones included.
    frames: u64,
    /// The gain applied during a marker.
    marker_gain: f32,
    recorder: Recorder,
}

impl MarkedTone {
    pub(crate) fn new(
        participant: &'static str,
        tone_hz: f32,
        level_dbfs: f32,
        silent: Vec<(Duration, Duration)>,
        recorder: Recorder,
    ) -> Result<MarkedTone, ToneError> {
        let dip_db = MARKER_DIP_DB.min(level_dbfs - MARKER_FLOOR_DBFS).max(0.0);
        Ok(MarkedTone {
            marker_gain: 10f32.powf(-dip_db / 20.0),
            tone: ToneSource::new(tone_hz, level_dbfs)?,
            participant,
            silent,
            frames: 0,
            recorder,
        })
    }
}

impl FrameSource for MarkedTone {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        let now = sim_now();
        let index = self.frames;
        self.frames += 1;

        // The tone runs on during silences, so its phase is the same as if
        // it had never stopped.
        if !self.tone.next_frame(frame) {
            return false;
        }
        if self
            .silent
            .iter()
            .any(|(from, until)| (*from..*until).contains(&now))
        {
            frame.fill(0.0);
            return true;
        }

        let in_period = index % MARKER_PERIOD_FRAMES;
        if in_period < MARKER_FRAMES {
            if in_period == 0 {
                self.recorder.marker_sent(self.participant, now);
            }
            frame
                .iter_mut()
                .for_each(|sample| *sample *= self.marker_gain);
        }
        true
    }
}
