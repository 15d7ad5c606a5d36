//! The bounded queue that carries the core's recording feed
//! ([`voicemcu_core::server::RecordEvent`]) from the task that mixes to a
//! writer thread that does the file I/O.
//!
//! Sending never blocks and never waits for the writer. The queue counts
//! what it holds in slots: a room's tick costs one slot plus one per decoded
//! frame in it, any other event one slot. When the writer falls behind and
//! the queue is full, ticks are dropped: the frames in them are lost (the
//! recording holds silence there) and counted, with a warning at most every
//! [`WARNING_INTERVAL`]. Joins, leaves and moderation events are kept even
//! then, up to [`CONTROL_RESERVE`] slots more, because a session file
//! without them cannot be replayed; beyond that they are dropped too, with
//! an error.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, warn};
use voicemcu_core::server::RecordEvent;

/// Slots queued for the writer by default: 4096, about 15 MB of audio, or
/// 80 s of one speaker's frames.
pub const DEFAULT_QUEUE_SLOTS: usize = 4096;

/// Slots beyond the queue's capacity kept for joins, leaves and moderation
/// events.
pub const CONTROL_RESERVE: usize = 1024;

/// Least time between two warnings about dropped frames.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Counters shared by both ends.
#[derive(Debug)]
struct Shared {
    capacity: usize,
    /// Slots sent and not yet received.
    queued: AtomicUsize,
    dropped_frames: AtomicU64,
    dropped_ticks: AtomicU64,
    dropped_control: AtomicU64,
}

/// What the queue dropped, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Decoded frames lost with the ticks that carried them.
    pub frames: u64,
    /// Room ticks dropped, with or without frames.
    pub ticks: u64,
    /// Joins, leaves and moderation events dropped.
    pub control: u64,
}

impl Shared {
    fn drops(&self) -> DropCounts {
        DropCounts {
            frames: self.dropped_frames.load(Ordering::Relaxed),
            ticks: self.dropped_ticks.load(Ordering::Relaxed),
            control: self.dropped_control.load(Ordering::Relaxed),
        }
    }
}

/// Creates a queue holding at most `capacity` slots (at least 1) of audio.
pub fn channel(capacity: usize) -> (RecordingSender, RecordingReceiver) {
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        queued: AtomicUsize::new(0),
        dropped_frames: AtomicU64::new(0),
        dropped_ticks: AtomicU64::new(0),
        dropped_control: AtomicU64::new(0),
    });
    (
        RecordingSender {
            sender,
            shared: Arc::clone(&shared),
            last_warning: None,
            frames_since_warning: 0,
        },
        RecordingReceiver { receiver, shared },
    )
}

/// The slots an event takes in the queue.
fn slots(event: &RecordEvent) -> usize {
    match event {
        RecordEvent::Tick { frames, .. } => 1 + frames.len(),
        _ => 1,
    }
}

/// The mixing side of the queue.
#[derive(Debug)]
pub struct RecordingSender {
    sender: mpsc::Sender<(RecordEvent, usize)>,
    shared: Arc<Shared>,
    last_warning: Option<Instant>,
    /// Frames dropped since the last warning.
    frames_since_warning: u64,
}

impl RecordingSender {
    /// Queues `event` for the writer, or drops it when the writer is too
    /// far behind (see the module documentation). Never blocks. Returns
    /// whether the event was queued.
    pub fn offer(&mut self, event: RecordEvent) -> bool {
        let cost = slots(&event);
        let is_tick = matches!(event, RecordEvent::Tick { .. });
        let limit = if is_tick {
            self.shared.capacity
        } else {
            self.shared.capacity + CONTROL_RESERVE
        };
        let queued = self.shared.queued.load(Ordering::Acquire);
        if queued + cost > limit {
            self.dropped(event);
            return false;
        }
        // Only this sender adds, so the check above cannot be overtaken.
        self.shared.queued.fetch_add(cost, Ordering::AcqRel);
        match self.sender.send((event, cost)) {
            Ok(()) => true,
            Err(mpsc::SendError((event, cost))) => {
                self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
                self.dropped(event);
                false
            }
        }
    }

    /// What was dropped so far.
    pub fn drops(&self) -> DropCounts {
        self.shared.drops()
    }

    fn dropped(&mut self, event: RecordEvent) {
        match event {
            RecordEvent::Tick { frames, .. } => {
                self.shared.dropped_ticks.fetch_add(1, Ordering::Relaxed);
                if frames.is_empty() {
                    return;
                }
                let lost = frames.len() as u64;
                self.shared
                    .dropped_frames
                    .fetch_add(lost, Ordering::Relaxed);
                self.frames_since_warning += lost;
                let now = Instant::now();
                let due = self
                    .last_warning
                    .is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL);
                if due {
                    warn!(
                        dropped_frames = self.frames_since_warning,
                        total_dropped_frames = self.shared.dropped_frames.load(Ordering::Relaxed),
                        "the recording writer is falling behind (slow disk?): dropped audio \
                         frames, which the recordings hold as silence"
                    );
                    self.frames_since_warning = 0;
                    self.last_warning = Some(now);
                }
            }
            other => {
                self.shared.dropped_control.fetch_add(1, Ordering::Relaxed);
                error!(
                    event = ?other,
                    "the recording writer is far behind: dropped a join, leave or moderation \
                     event, so this room's session file will be incomplete"
                );
            }
        }
    }
}

/// The writer side of the queue.
#[derive(Debug)]
pub struct RecordingReceiver {
    receiver: mpsc::Receiver<(RecordEvent, usize)>,
    shared: Arc<Shared>,
}

impl RecordingReceiver {
    /// Waits up to `timeout` for the next event. Fails with
    /// [`mpsc::RecvTimeoutError::Disconnected`] once the sender is gone and
    /// every queued event has been received.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RecordEvent, mpsc::RecvTimeoutError> {
        let (event, cost) = self.receiver.recv_timeout(timeout)?;
        self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
        Ok(event)
    }

    /// What the sender dropped so far.
    pub fn drops(&self) -> DropCounts {
        self.shared.drops()
    }

    /// Slots queued and not yet received.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicemcu_core::audio::SILENCE;
    use voicemcu_core::mixer::DecodedFrame;
    use voicemcu_core::server::LeaveReason;

    fn tick(tick: u64, frames: usize) -> RecordEvent {
        RecordEvent::Tick {
            room: 0,
            tick,
            frames: (0..frames)
                .map(|member| DecodedFrame {
                    member: member as u64,
                    pcm: Box::new(SILENCE),
                })
                .collect(),
        }
    }

    fn left(tick: u64) -> RecordEvent {
        RecordEvent::Left {
            room: 0,
            tick,
            client: 1,
            reason: LeaveReason::Left,
        }
    }

    #[test]
    fn full_queue_drops_ticks_without_blocking_and_counts_them() {
        let (mut sender, receiver) = channel(10);
        // 3 + 3 + 3 slots fit; the fourth tick would make 12.
        for n in 1..=3 {
            assert!(sender.offer(tick(n, 2)));
        }
        assert!(!sender.offer(tick(4, 2)));
        // An empty tick takes the last slot.
        assert!(sender.offer(tick(5, 0)));
        assert_eq!(receiver.queued(), 10);
        // Control events still fit, in the reserve.
        assert!(sender.offer(left(5)));
        assert_eq!(
            sender.drops(),
            DropCounts {
                frames: 2,
                ticks: 1,
                control: 0
            }
        );

        // The writer catches up and the queue takes ticks again, in order.
        let mut ticks = Vec::new();
        while let Ok(event) = receiver.recv_timeout(Duration::ZERO) {
            if let RecordEvent::Tick { tick, .. } = event {
                ticks.push(tick);
            }
        }
        assert_eq!(ticks, [1, 2, 3, 5]);
        assert_eq!(receiver.queued(), 0);
        assert!(sender.offer(tick(6, 2)));
    }

    #[test]
    fn control_events_beyond_the_reserve_are_dropped() {
        let (mut sender, _receiver) = channel(1);
        let kept = (0..CONTROL_RESERVE as u64 + 10)
            .filter(|n| sender.offer(left(*n)))
            .count();
        assert_eq!(kept, 1 + CONTROL_RESERVE);
        assert_eq!(sender.drops().control, 9);
    }

    #[test]
    fn receiver_sees_disconnection_after_the_last_event() {
        let (mut sender, receiver) = channel(10);
        assert!(sender.offer(left(1)));
        drop(sender);
        assert!(receiver.recv_timeout(Duration::from_secs(1)).is_ok());
        assert_eq!(
            receiver.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn offer_to_a_gone_writer_drops() {
        let (mut sender, receiver) = channel(10);
        drop(receiver);
        assert!(!sender.offer(tick(1, 1)));
        assert_eq!(sender.drops().frames, 1);
    }
}
