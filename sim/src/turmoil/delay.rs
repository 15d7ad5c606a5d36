//! Mouth-to-ear delay, measured from the markers in each participant's
//! tone ([`super::marked_tone`]).
//!
//! For every marker a speaker sent and every other participant, the
//! listener's playback is searched, frame by frame at the speaker's
//! frequency. The marker is heard at the first frame at least
//! [`DIP_THRESHOLD_DB`] below the level just before it, with another such
//! frame among the next two, followed within
//! [`MAX_DIP_FRAMES`] frames by the level coming back. The frame time of
//! the first is when the listener heard the marker. Loss concealed by PLC
//! can fade the tone and look like a dip, which makes a delay look shorter.
//! A burst that silences the tone for longer than a marker does not count
//! as one.
//!
//! A PLC fade shortly before a marker must not hide the marker. When the
//! server conceals a late packet of the speaker, every listener hears the
//! same fade, so listeners that agree on a late marker do not prove a late
//! marker. In one `legacy-host-churn` run the server concealed one of n3's
//! packets 90 ms before n3 sent a marker. The fade lay in the
//! marker's reference frames. A rule that counted every quiet reference
//! frame then rejected the real dip 130 ms after sending, and all three
//! listeners were matched with a fade 830 ms after sending instead.

use std::time::Duration;

use voicemcu_core::audio::FRAME_SAMPLES;

use super::invariants::PRESENT_DBFS;
use super::tones::tone_level_dbfs;

/// How far below the level before it a frame must be to count as part of
/// a marker's dip, in dB. A marker dips by 20 dB, but Opus, PLC and the
/// jitter buffer smear it. 8 dB is an estimate that most markers reach,
/// and the summary counts the ones not found.
pub const DIP_THRESHOLD_DB: f32 = 8.0;

/// Playback frames a marker's dip can span: its three frames, plus one
/// where it straddles a frame boundary, plus one of slack.
pub const MAX_DIP_FRAMES: usize = 5;

/// The margin below the reference, in dB, within which the level must come
/// back after a dip.
const RECOVERY_DB: f32 = 3.0;

/// Frames before a candidate dip whose median level is the reference: from
/// eight frames before it to three before it, so a dip that starts inside
/// a frame does not lower its own reference.
const REFERENCE_FRAMES: std::ops::Range<usize> = 3..9;

/// One marker as one listener heard it.
#[derive(Clone, Debug, PartialEq)]
pub struct MarkerDelay {
    /// Index of the listener in the scenario's participants.
    pub listener: usize,
    /// Index of the speaker.
    pub speaker: usize,
    /// When the speaker sent it, in simulated time.
    pub sent: Duration,
    /// When the listener played its dip out, if found within the search
    /// span.
    pub heard: Option<Duration>,
    /// Whether the speaker's tone was present in most of the listener's
    /// frames in the search span. A marker that was not is not judged: the
    /// listener was not hearing the speaker at all then.
    pub tone_present: bool,
}

impl MarkerDelay {
    /// Returns the delay, if the marker was heard.
    pub fn delay(&self) -> Option<Duration> {
        self.heard.map(|heard| heard.saturating_sub(self.sent))
    }
}

/// The per-frame level of one frequency in one playback.
pub struct FrameLevels {
    pub times: Vec<Duration>,
    pub levels_dbfs: Vec<f32>,
}

impl FrameLevels {
    /// Measures `frequency_hz` in each 20 ms frame of `samples`.
    pub fn measure(samples: &[f32], frame_times: &[Duration], frequency_hz: f32) -> FrameLevels {
        let levels_dbfs = samples
            .chunks_exact(FRAME_SAMPLES)
            .zip(frame_times)
            .map(|(frame, _)| tone_level_dbfs(frame, frequency_hz))
            .collect::<Vec<_>>();
        let times = frame_times[..levels_dbfs.len()].to_vec();
        FrameLevels { times, levels_dbfs }
    }

    fn reference_before(&self, index: usize) -> Option<f32> {
        let start = index.checked_sub(REFERENCE_FRAMES.end)?;
        let end = index - REFERENCE_FRAMES.start;
        let mut window: Vec<f32> = self.levels_dbfs[start..end].to_vec();
        window.sort_by(f32::total_cmp);
        Some(window[window.len() / 2])
    }

    /// Finds the first dip starting at or after `from` and before `until`,
    /// and returns its frame time.
    pub fn find_dip(&self, from: Duration, until: Duration) -> Option<Duration> {
        let first = self.times.partition_point(|time| *time < from);
        for index in first..self.levels_dbfs.len().saturating_sub(1) {
            if self.times[index] >= until {
                return None;
            }
            let Some(reference) = self.reference_before(index) else {
                continue;
            };
            if reference < PRESENT_DBFS {
                continue;
            }
            let limit = reference - DIP_THRESHOLD_DB;
            let next_two = &self.levels_dbfs[index + 1..(index + 3).min(self.levels_dbfs.len())];
            // A frame more than a dip's length into a run of quiet frames
            // is not taken for a dip, so neither is the end of a longer
            // silence. Only the run leading up to this frame counts: an
            // earlier short dip among the reference frames, such as a PLC
            // fade, leaves their median alone.
            let quiet_run = self.levels_dbfs[..index]
                .iter()
                .rev()
                .take_while(|level| **level <= limit)
                .count();
            let dips = quiet_run < MAX_DIP_FRAMES
                && self.levels_dbfs[index] <= limit
                && next_two.iter().any(|level| *level <= limit);
            let after = &self.levels_dbfs[(index + 2).min(self.levels_dbfs.len())
                ..(index + MAX_DIP_FRAMES + 1).min(self.levels_dbfs.len())];
            let recovers = after.iter().any(|level| *level >= reference - RECOVERY_DB);
            if dips && recovers {
                return Some(self.times[index]);
            }
        }
        None
    }

    /// Returns whether the tone is present in at least half the frames
    /// between `from` and `until`.
    pub fn mostly_present(&self, from: Duration, until: Duration) -> bool {
        let first = self.times.partition_point(|time| *time < from);
        let last = self.times.partition_point(|time| *time < until);
        let span = &self.levels_dbfs[first..last];
        !span.is_empty()
            && span.iter().filter(|level| **level >= PRESENT_DBFS).count() * 2 >= span.len()
    }
}

/// Measures every marker of `speaker`, sent at `sent`, in `listener`'s
/// playback, searching up to `search` after each.
pub fn measure_markers(
    listener: usize,
    speaker: usize,
    levels: &FrameLevels,
    sent: &[Duration],
    search: Duration,
) -> Vec<MarkerDelay> {
    sent.iter()
        .map(|sent| MarkerDelay {
            listener,
            speaker,
            sent: *sent,
            heard: levels.find_dip(*sent, *sent + search),
            tone_present: levels.mostly_present(*sent, *sent + search),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(values: &[f32]) -> FrameLevels {
        FrameLevels {
            times: (0..values.len() as u64)
                .map(|i| Duration::from_millis(20 * i))
                .collect(),
            levels_dbfs: values.to_vec(),
        }
    }

    #[test]
    fn finds_a_dip_after_the_marker() {
        let mut values = vec![-12.0; 40];
        values[20] = -30.0;
        values[21] = -18.0;
        values[22] = -30.0;
        let levels = levels(&values);
        assert_eq!(
            levels.find_dip(Duration::from_millis(100), Duration::from_secs(1)),
            Some(Duration::from_millis(400))
        );
    }

    #[test]
    fn long_silence_is_no_dip() {
        let mut values = vec![-12.0; 40];
        values[20..30].fill(-120.0);
        let levels = levels(&values);
        assert_eq!(
            levels.find_dip(Duration::ZERO, Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn fade_before_the_marker_does_not_hide_it() {
        // A two-frame PLC fade at frames 20 and 21, then the marker's dip
        // at frames 27 and 28, whose reference frames (18 to 23) contain the
        // fade.
        let mut values = vec![-19.5; 60];
        values[20] = -46.0;
        values[21] = -31.5;
        values[27] = -35.0;
        values[28] = -34.0;
        values[45] = -45.0;
        values[46] = -31.0;
        let levels = levels(&values);
        assert_eq!(
            levels.find_dip(Duration::from_millis(460), Duration::from_secs(2)),
            Some(Duration::from_millis(540))
        );
    }

    #[test]
    fn one_low_frame_is_no_dip() {
        let mut values = vec![-12.0; 40];
        values[20] = -30.0;
        let levels = levels(&values);
        assert_eq!(
            levels.find_dip(Duration::ZERO, Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn silence_is_not_present() {
        let levels = levels(&[-120.0; 40]);
        assert!(!levels.mostly_present(Duration::ZERO, Duration::from_secs(1)));
        assert_eq!(
            levels.find_dip(Duration::ZERO, Duration::from_secs(1)),
            None
        );
    }
}
