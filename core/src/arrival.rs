//! Arrival statistics of one sender's audio datagrams: packet loss and
//! interarrival jitter as RTP receivers compute them (RFC 3550, section
//! 6.4.1 and appendix A.8), for the server's status view.
//!
//! Loss counts sequence numbers skipped over, minus those that arrive
//! later out of order. A jump of more than [`MAX_SEQUENCE_JUMP`] is taken
//! as a sender restarting its sequence, not as loss, and starts a new
//! stream with the counts kept.

use crate::time::Instant;

/// Audio samples per second, the unit of datagram timestamps.
const CLOCK_RATE: f64 = 48_000.0;

/// The largest forward or backward sequence step still read as the same
/// stream: 10 s of 20 ms frames.
pub const MAX_SEQUENCE_JUMP: u32 = 500;

/// Loss and jitter of one sender, as the status view reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ArrivalReport {
    /// Datagrams that arrived, duplicates included.
    pub received: u64,
    /// Datagrams the sequence numbers say were sent but never arrived.
    pub lost: u64,
    /// `lost` as a percentage of the datagrams expected.
    pub loss_percent: f64,
    /// Interarrival jitter in milliseconds: the smoothed variation of the
    /// transit time from one datagram to the next.
    pub jitter_ms: f64,
    /// Times the sender's sequence numbers jumped so far that a new stream
    /// was started.
    pub restarts: u64,
}

/// Running loss and jitter state for one sender.
#[derive(Clone, Debug, Default)]
pub struct ArrivalStats {
    /// The highest sequence number seen in this stream.
    highest: Option<u32>,
    /// Arrival time and timestamp of the previous datagram.
    previous: Option<(Instant, u32)>,
    /// The jitter estimate in timestamp units (1/48000 s).
    jitter: f64,
    received: u64,
    /// Datagrams expected over all streams so far.
    expected: u64,
    /// Sequence numbers skipped over and not seen since.
    lost: u64,
    restarts: u64,
}

impl ArrivalStats {
    /// Records a datagram with `sequence` and `timestamp` arriving at `now`.
    pub fn record(&mut self, now: Instant, sequence: u32, timestamp: u32) {
        self.received += 1;
        self.track_sequence(sequence);
        self.track_jitter(now, timestamp);
    }

    fn track_sequence(&mut self, sequence: u32) {
        let Some(highest) = self.highest else {
            self.highest = Some(sequence);
            self.expected += 1;
            return;
        };

        let ahead = sequence.wrapping_sub(highest);
        let behind = highest.wrapping_sub(sequence);
        if ahead != 0 && ahead <= MAX_SEQUENCE_JUMP {
            self.expected += u64::from(ahead);
            self.lost += u64::from(ahead - 1);
            self.highest = Some(sequence);
        } else if behind != 0 && behind <= MAX_SEQUENCE_JUMP {
            // A late arrival fills a gap counted as lost. A duplicate of a
            // packet already counted can take the count below the truth,
            // never below zero.
            self.lost = self.lost.saturating_sub(1);
        } else if ahead != 0 {
            self.restarts += 1;
            self.expected += 1;
            self.highest = Some(sequence);
            self.previous = None;
        }
    }

    fn track_jitter(&mut self, now: Instant, timestamp: u32) {
        if let Some((then, previous_timestamp)) = self.previous {
            let arrival_gap = now.saturating_duration_since(then).as_secs_f64() * CLOCK_RATE;
            let sent_gap = f64::from(timestamp.wrapping_sub(previous_timestamp) as i32);
            let difference = (arrival_gap - sent_gap).abs();
            self.jitter += (difference - self.jitter) / 16.0;
        }
        self.previous = Some((now, timestamp));
    }

    /// Returns the counts so far.
    pub fn report(&self) -> ArrivalReport {
        let loss_percent = if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.expected as f64
        };
        ArrivalReport {
            received: self.received,
            lost: self.lost,
            loss_percent,
            jitter_ms: self.jitter * 1_000.0 / CLOCK_RATE,
            restarts: self.restarts,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const FRAME: u32 = 960;

    /// Feeds `sequences` sent every 20 ms and arriving on time.
    fn steady(sequences: impl IntoIterator<Item = u32>) -> ArrivalStats {
        let mut stats = ArrivalStats::default();
        for sequence in sequences {
            let at = Instant::ZERO + Duration::from_millis(20 * u64::from(sequence));
            stats.record(at, sequence, sequence.wrapping_mul(FRAME));
        }
        stats
    }

    #[test]
    fn steady_stream_has_no_loss_or_jitter() {
        let report = steady(0..100).report();
        assert_eq!(report.received, 100);
        assert_eq!(report.lost, 0);
        assert_eq!(report.jitter_ms, 0.0);
    }

    #[test]
    fn gaps_count_as_loss() {
        let report = steady((0..100).filter(|sequence| sequence % 10 != 5)).report();
        assert_eq!(report.lost, 10);
        assert!((report.loss_percent - 10.1).abs() < 0.1, "{report:?}");
    }

    #[test]
    fn late_arrival_fills_gap() {
        let mut stats = steady([0, 1, 3, 4]);
        assert_eq!(stats.report().lost, 1);
        stats.record(Instant::ZERO + Duration::from_millis(100), 2, 2 * FRAME);
        assert_eq!(stats.report().lost, 0);
    }

    #[test]
    fn sequence_wrap_is_not_loss() {
        let report = steady((u32::MAX - 5..=u32::MAX).chain(0..5)).report();
        assert_eq!(report.lost, 0);
        assert_eq!(report.restarts, 0);
    }

    #[test]
    fn restart_is_not_loss() {
        let mut stats = steady(1_000..1_010);
        let later = Instant::ZERO + Duration::from_secs(60);
        stats.record(later, 0, 0);
        stats.record(later + Duration::from_millis(20), 1, FRAME);
        let report = stats.report();
        assert_eq!(report.lost, 0);
        assert_eq!(report.restarts, 1);
    }

    #[test]
    fn uneven_arrival_shows_jitter() {
        let mut stats = ArrivalStats::default();
        for sequence in 0..200u32 {
            // Every other packet arrives 10 ms late.
            let late = if sequence % 2 == 1 { 10 } else { 0 };
            let at = Instant::ZERO + Duration::from_millis(20 * u64::from(sequence) + late);
            stats.record(at, sequence, sequence * FRAME);
        }
        let jitter = stats.report().jitter_ms;
        assert!((jitter - 10.0).abs() < 0.5, "jitter {jitter} ms");
    }
}
