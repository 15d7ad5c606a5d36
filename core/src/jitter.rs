//! Per-sender jitter buffer, ordered by sequence number.
//!
//! The caller pushes packets as they arrive and pops exactly once per 20 ms
//! tick. The buffer turns arrival jitter, reordering, loss and duplicates
//! into a steady stream of [`Playout`] decisions.
//!
//! # Sequence numbers
//!
//! Sequence numbers are `u32` and wrap at 2^32. The buffer compares two of
//! them only through their wrapping signed distance (`a.wrapping_sub(b) as
//! i32`), and stores packets in a queue indexed by their distance from the
//! next sequence to play. Any depth and capacity work, powers of two or not.
//!
//! # Life cycle
//!
//! - **Idle**: nothing to play. The first packet starts priming.
//! - **Priming**: playout starts once the buffered packets span `depth`
//!   frames, or once `depth` ticks have passed since priming began. The
//!   timeout lets a lone packet play, one tick later than the first packet
//!   of a steady stream would. While priming, packets older than the first one
//!   are still accepted, so reordering at the start of a stream loses
//!   nothing.
//! - **Playing**: each tick plays the next sequence. A missing packet is
//!   concealed for up to `max_concealed` consecutive ticks. After that the
//!   buffer returns [`Playout::Silent`]: it keeps its schedule while later
//!   packets are buffered (a loss burst), and goes back to idle when it is
//!   empty (the sender paused), so the next packet primes again. A paused
//!   stream may resume from the first sequence it concealed.
//!
//! # Resynchronisation
//!
//! A packet that does not fit the current stream starts a candidate stream.
//! Such a packet is more than `capacity` frames behind the playout point, or
//! too far ahead to fit even after dropping every buffered packet, or, while
//! idle, behind the playout point without being a duplicate (a sender that
//! restarted its sequence). A second packet within `capacity` of the
//! candidate confirms it: the buffer drops what it held, counts a resync
//! and primes again on the new sequence, keeping both packets. A lone
//! stray packet therefore never disturbs a healthy stream. While idle, a
//! packet more than `capacity` away resynchronises at once, since there is
//! nothing to protect.
//!
//! # Overflow and clock drift
//!
//! The buffered packets never span more than `capacity` frames: a packet
//! that would exceed it drops the oldest. A sender whose clock runs fast
//! fills the buffer slowly. When the buffer level stays above twice the
//! depth for a whole [`DRIFT_WINDOW_TICKS`] window, the buffer drains: it
//! drops one frame every [`DRIFT_DROP_INTERVAL_TICKS`] ticks until the level
//! is back at the depth.
//!
//! A sender whose clock runs slow, or a listener whose clock runs fast,
//! empties the buffer now and then, and its next packet arrives just after
//! it was concealed. Such a packet is late, not lost. When the level has
//! stayed below twice the depth for the last [`DRIFT_WINDOW_TICKS`] ticks
//! or more, the buffer moves playout back to it and plays it next, instead
//! of dropping it and every packet after it as late. This *stretch* turns
//! the concealed frames into added playout delay.
//!
//! Memory is bounded: at most `capacity` buffered packets plus one candidate.

use std::collections::VecDeque;

/// Jitter buffer sizing, in 20 ms frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JitterConfig {
    /// Target playout delay: frames buffered before playout starts.
    /// Clamped to 1..=capacity.
    pub depth: u32,
    /// Frames held at most; beyond it the oldest are dropped. Clamped to
    /// 1..=[`MAX_CAPACITY`].
    pub capacity: u32,
    /// Consecutive missing frames concealed with PLC before the stream is
    /// considered paused and playout stops until it refills.
    pub max_concealed: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            depth: 3,
            capacity: 50,
            max_concealed: 5,
        }
    }
}

/// The largest capacity a buffer accepts: about 82 s of audio. It keeps
/// sequence distances far from the `i32` range the wrap arithmetic relies
/// on, and bounds the queue a single packet can make the buffer allocate.
pub const MAX_CAPACITY: u32 = 4096;

/// Ticks over which the drift detector takes the minimum buffer level: 1 s.
pub const DRIFT_WINDOW_TICKS: u32 = 50;

/// While draining excess delay, one frame is dropped every this many ticks:
/// playback runs at most 25% fast, which is audible but brief.
pub const DRIFT_DROP_INTERVAL_TICKS: u32 = 4;

/// Ticks a candidate stream waits for a second packet before it is
/// discarded.
pub const RESYNC_CONFIRM_TICKS: u32 = 10;

/// Recently played packets the buffer remembers, by sequence and payload
/// hash, to tell duplicates from late packets.
const HISTORY_LEN: usize = 64;

/// What to play for one 20 ms tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Vec<u8>),
    /// The packet is missing: conceal it with PLC.
    Conceal,
    /// Nothing to play: the sender has not started, is paused, or the buffer
    /// is refilling.
    Silent,
}

/// Counters for diagnostics and tests.
///
/// Every packet pushed ends up in exactly one place, so `received` equals
/// `played + duplicates + late + dropped_overflow + dropped_drift +
/// dropped_resync` plus the packets still held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JitterStats {
    /// Packets pushed.
    pub received: u64,
    /// Packets returned by [`JitterBuffer::pop`].
    pub played: u64,
    /// Ticks that returned [`Playout::Conceal`].
    pub concealed: u64,
    /// Concealed frames whose packet arrived late and was played after all,
    /// because the buffer had run dry: each added a frame of delay.
    pub stretched: u64,
    /// Packets whose sequence was already buffered or already played.
    pub duplicates: u64,
    /// Packets that arrived after their playout point.
    pub late: u64,
    /// Packets dropped because the buffer would have spanned more than its
    /// capacity.
    pub dropped_overflow: u64,
    /// Times the buffer restarted on a new sequence.
    pub resyncs: u64,
    /// Packets dropped to bring the delay back to the depth after a sender's
    /// clock ran fast.
    pub dropped_drift: u64,
    /// Packets dropped because they fitted no stream: packets still buffered
    /// when the buffer resynchronised, and candidate packets that no second
    /// packet confirmed.
    pub dropped_resync: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing buffered and nothing playing.
    Idle,
    /// Buffering before playout; `waited` counts the ticks spent so far.
    Priming { waited: u32 },
    /// Playing one sequence per tick; `concealed_run` counts consecutive
    /// concealed ticks, and `skipped` those of them that gave up on their
    /// sequence (all but a stretch).
    Playing { concealed_run: u32, skipped: u32 },
}

/// Why a candidate packet did not fit, which decides how it is counted when
/// it is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CandidateKind {
    /// Behind the playout point while idle.
    Late,
    /// Beyond the window in either direction.
    OutOfWindow,
}

#[derive(Debug)]
struct Candidate {
    sequence: u32,
    payload: Vec<u8>,
    kind: CandidateKind,
    age: u32,
}

/// Tracks the buffer level to detect a sender whose clock runs fast.
#[derive(Debug, Default)]
struct DriftMonitor {
    ticks: u32,
    window_min: u32,
    /// The highest level in the current window, and in the one before.
    window_max: u32,
    last_window_max: u32,
    draining: bool,
    since_drop: u32,
}

impl DriftMonitor {
    fn reset(&mut self) {
        *self = DriftMonitor::default();
    }
}

/// A per-sender jitter buffer. See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    state: State,
    /// The sequence of `slots[0]`. While playing it is the next to play.
    base: u32,
    /// `slots[i]` holds the packet with sequence `base + i`. Empty, or
    /// ending with a packet.
    slots: VecDeque<Option<Vec<u8>>>,
    /// Packets in `slots`.
    present: usize,
    /// The first sequence not yet played, concealed or skipped; `None`
    /// until the stream has consumed anything since it (re)started.
    floor: Option<u32>,
    /// Recently played packets as (sequence, payload hash), at index
    /// `sequence % HISTORY_LEN`. Matching the payload as well as the
    /// sequence keeps a sender that restarted its sequence from looking like
    /// a stream of duplicates.
    history: [Option<(u32, u64)>; HISTORY_LEN],
    candidate: Option<Candidate>,
    drift: DriftMonitor,
    stats: JitterStats,
}

/// Returns the signed distance from `from` to `to` across the wrap.
fn distance(from: u32, to: u32) -> i64 {
    i64::from(to.wrapping_sub(from) as i32)
}

/// 64-bit FNV-1a, to recognise a payload that was already played.
fn payload_hash(payload: &[u8]) -> u64 {
    payload.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn history_index(sequence: u32) -> usize {
    sequence as usize % HISTORY_LEN
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let capacity = config.capacity.clamp(1, MAX_CAPACITY);
        let config = JitterConfig {
            depth: config.depth.clamp(1, capacity),
            capacity,
            max_concealed: config.max_concealed,
        };
        JitterBuffer {
            config,
            state: State::Idle,
            base: 0,
            slots: VecDeque::new(),
            present: 0,
            floor: None,
            history: [None; HISTORY_LEN],
            candidate: None,
            drift: DriftMonitor::default(),
            stats: JitterStats::default(),
        }
    }

    /// The configuration in force, after clamping.
    pub fn config(&self) -> JitterConfig {
        self.config
    }

    /// Stores a packet that arrived with `sequence`.
    pub fn push(&mut self, sequence: u32, payload: &[u8]) {
        self.stats.received += 1;
        let capacity = i64::from(self.config.capacity);

        match self.state {
            State::Idle => {
                let Some(floor) = self.floor else {
                    self.start(sequence, payload.to_vec());
                    return;
                };
                let ahead = distance(floor, sequence);
                if (0..=capacity).contains(&ahead) {
                    // The sender resumes after a pause.
                    self.start(sequence, payload.to_vec());
                    self.floor = Some(floor);
                } else if (-capacity..0).contains(&ahead) {
                    if self.was_played(sequence, payload) {
                        self.stats.duplicates += 1;
                    } else {
                        self.foreign(sequence, payload, CandidateKind::Late);
                    }
                } else {
                    self.resync(sequence, payload.to_vec());
                }
            }
            State::Priming { .. } | State::Playing { .. } => {
                self.push_active(sequence, payload, capacity);
            }
        }
    }

    /// Places a packet while priming or playing.
    fn push_active(&mut self, sequence: u32, payload: &[u8], capacity: i64) {
        if let Some(floor) = self.floor {
            let ahead = distance(floor, sequence);
            if ahead < 0 {
                if ahead < -capacity {
                    self.foreign(sequence, payload, CandidateKind::OutOfWindow);
                } else if self.was_played(sequence, payload) {
                    self.stats.duplicates += 1;
                } else if !self.stretch_for(sequence, ahead, payload) {
                    self.stats.late += 1;
                }
                return;
            }
        }

        let offset = distance(self.base, sequence);
        if offset >= 0 {
            self.insert_ahead(sequence, offset, payload, capacity);
        } else {
            // Only reachable while priming: playing keeps `floor == base`.
            self.insert_behind(sequence, offset, payload, capacity);
        }
    }

    /// Takes back a packet that arrived after it was concealed, when the
    /// buffer evidently ran dry rather than lost it. Returns whether it did.
    ///
    /// The packet must be one of the sequences skipped by the current run
    /// of concealment, nothing may be buffered after it, and the buffer
    /// must have stayed below twice its depth for a second or more. Playout then moves back to the packet,
    /// which plays next: the concealed frames become a stretch, and the
    /// playout delay grows by as many frames as it moved back. A sender
    /// whose clock runs slow, a listener whose clock runs fast and a delay
    /// spike all look like this. A buffer that recently held more has delay
    /// to spare, and its late packets are dropped.
    fn stretch_for(&mut self, sequence: u32, ahead: i64, payload: &[u8]) -> bool {
        let State::Playing {
            concealed_run,
            skipped,
        } = self.state
        else {
            return false;
        };
        let back = ahead.unsigned_abs();
        let recent_max = self.drift.window_max.max(self.drift.last_window_max);
        let shallow = recent_max < self.config.depth.saturating_mul(2);
        let fits = back < u64::from(self.config.capacity);
        if self.present > 0 || back > u64::from(skipped) || !shallow || !fits {
            return false;
        }

        let back = back as u32;
        for _ in 0..back {
            self.slots.push_front(None);
        }
        self.base = sequence;
        self.floor = Some(sequence);
        self.slots[0] = Some(payload.to_vec());
        self.present += 1;
        self.state = State::Playing {
            concealed_run,
            skipped: skipped - back,
        };
        self.stats.stretched += u64::from(back);
        true
    }

    /// Stores a packet at or after `base`, dropping the oldest packets if
    /// the buffer would span more than its capacity.
    fn insert_ahead(&mut self, sequence: u32, offset: i64, payload: &[u8], capacity: i64) {
        if offset >= capacity {
            let newest = self.slots.len() as i64 - 1;
            if self.slots.is_empty() || offset - newest >= capacity {
                // Nothing buffered would survive: a jump, not an overflow.
                self.foreign(sequence, payload, CandidateKind::OutOfWindow);
                return;
            }
            let excess = offset - capacity + 1;
            for _ in 0..excess {
                if self.drop_front() {
                    self.stats.dropped_overflow += 1;
                }
            }
        }

        let index = distance(self.base, sequence);
        // Both branches above leave 0 <= index < capacity <= MAX_CAPACITY.
        let index = usize::try_from(index).unwrap_or(0);
        self.store(index, payload);
    }

    /// Stores a packet older than `base` while priming.
    fn insert_behind(&mut self, sequence: u32, offset: i64, payload: &[u8], capacity: i64) {
        let span_after = self.slots.len() as i64 - offset;
        if span_after <= capacity {
            for _ in 0..-offset {
                self.slots.push_front(None);
            }
            self.base = sequence;
            self.store(0, payload);
        } else if offset >= -capacity {
            // The packet would be the oldest of an overfull buffer.
            self.stats.dropped_overflow += 1;
        } else {
            self.foreign(sequence, payload, CandidateKind::OutOfWindow);
        }
    }

    fn store(&mut self, index: usize, payload: &[u8]) {
        if index >= self.slots.len() {
            self.slots.resize(index + 1, None);
        }
        match &mut self.slots[index] {
            Some(_) => self.stats.duplicates += 1,
            slot => {
                *slot = Some(payload.to_vec());
                self.present += 1;
            }
        }
    }

    /// Whether this very packet was played recently.
    fn was_played(&self, sequence: u32, payload: &[u8]) -> bool {
        self.history[history_index(sequence)] == Some((sequence, payload_hash(payload)))
    }

    /// Handles a packet that fits no stream: it becomes a candidate, or
    /// confirms the current candidate and triggers a resync.
    fn foreign(&mut self, sequence: u32, payload: &[u8], kind: CandidateKind) {
        let capacity = i64::from(self.config.capacity);
        match self.candidate.take() {
            Some(candidate) if candidate.sequence == sequence => {
                self.stats.duplicates += 1;
                self.candidate = Some(candidate);
            }
            Some(candidate) if distance(candidate.sequence, sequence).abs() < capacity => {
                self.resync_pair(candidate, sequence, payload.to_vec());
            }
            previous => {
                self.candidate = previous;
                self.discard_candidate();
                self.candidate = Some(Candidate {
                    sequence,
                    payload: payload.to_vec(),
                    kind,
                    age: 0,
                });
            }
        }
    }

    fn discard_candidate(&mut self) {
        if let Some(candidate) = self.candidate.take() {
            match candidate.kind {
                CandidateKind::Late => self.stats.late += 1,
                CandidateKind::OutOfWindow => self.stats.dropped_resync += 1,
            }
        }
    }

    /// Drops everything buffered and primes on `sequence`.
    fn resync(&mut self, sequence: u32, payload: Vec<u8>) {
        self.stats.resyncs += 1;
        self.stats.dropped_resync += self.present as u64;
        self.discard_candidate();
        self.start(sequence, payload);
    }

    /// Resynchronises on a confirmed candidate and the packet that
    /// confirmed it.
    fn resync_pair(&mut self, first: Candidate, sequence: u32, payload: Vec<u8>) {
        let (older, newer) = if distance(first.sequence, sequence) > 0 {
            ((first.sequence, first.payload), (sequence, payload))
        } else {
            ((sequence, payload), (first.sequence, first.payload))
        };
        self.resync(older.0, older.1);
        // The pair lies within capacity, so this extends the new stream.
        let offset = distance(self.base, newer.0);
        let index = usize::try_from(offset).unwrap_or(0);
        self.store(index, &newer.1);
    }

    /// Starts priming a new stream on one packet, forgetting the old one.
    fn start(&mut self, sequence: u32, payload: Vec<u8>) {
        self.slots.clear();
        self.slots.push_back(Some(payload));
        self.present = 1;
        self.base = sequence;
        self.floor = None;
        self.state = State::Priming { waited: 0 };
        self.drift.reset();
    }

    /// Removes the front slot without playing it and returns whether it
    /// held a packet.
    fn drop_front(&mut self) -> bool {
        let had_packet = self.take_front().is_some();
        self.trim();
        had_packet
    }

    /// Removes the front slot, or a virtual empty one when nothing is
    /// buffered, and advances `base` and the floor past it.
    fn take_front(&mut self) -> Option<Vec<u8>> {
        let slot = self.slots.pop_front().flatten();
        if slot.is_some() {
            self.present -= 1;
        }
        self.base = self.base.wrapping_add(1);
        self.floor = Some(self.base);
        slot
    }

    /// Drops leading empty slots when no packet is buffered, so that an
    /// empty buffer holds no slots at all.
    fn trim(&mut self) {
        if self.present == 0 {
            self.slots.clear();
        }
    }

    /// Takes what to play for the next 20 ms. Call once per tick.
    pub fn pop(&mut self) -> Playout {
        self.age_candidate();

        match self.state {
            State::Idle => Playout::Silent,
            State::Priming { waited } => {
                let span = self.slots.len() as u32;
                if span >= self.config.depth || waited >= self.config.depth {
                    self.floor = Some(self.base);
                    self.state = State::Playing {
                        concealed_run: 0,
                        skipped: 0,
                    };
                    self.drift.reset();
                    self.play()
                } else {
                    self.state = State::Priming { waited: waited + 1 };
                    Playout::Silent
                }
            }
            State::Playing { .. } => self.play(),
        }
    }

    fn age_candidate(&mut self) {
        if let Some(candidate) = &mut self.candidate {
            candidate.age += 1;
            if candidate.age > RESYNC_CONFIRM_TICKS {
                self.discard_candidate();
            }
        }
    }

    /// Plays one tick in the playing state.
    fn play(&mut self) -> Playout {
        self.regulate_drift();

        let State::Playing {
            concealed_run,
            skipped,
        } = self.state
        else {
            return Playout::Silent;
        };

        let sequence = self.base;
        if let Some(payload) = self.take_front() {
            self.history[history_index(sequence)] = Some((sequence, payload_hash(&payload)));
            self.trim();
            self.stats.played += 1;
            self.state = State::Playing {
                concealed_run: 0,
                skipped: 0,
            };
            return Playout::Packet(payload);
        }

        // `take_front` above consumed the missing sequence.
        if concealed_run < self.config.max_concealed {
            self.trim();
            self.stats.concealed += 1;
            self.state = State::Playing {
                concealed_run: concealed_run + 1,
                skipped: skipped + 1,
            };
            Playout::Conceal
        } else if self.present > 0 {
            // A loss burst longer than concealment can cover, with later
            // packets already here: stay on schedule.
            Playout::Silent
        } else {
            // The sender paused. The floor goes back to the first concealed
            // sequence, because a sender that stops sending and later goes
            // on from where it stopped is the usual pause, not a late stream.
            let first_missing = sequence.wrapping_sub(skipped);
            self.base = first_missing;
            self.floor = Some(first_missing);
            self.slots.clear();
            self.state = State::Idle;
            self.drift.reset();
            Playout::Silent
        }
    }

    /// Drops a frame now and then when the buffer has held more than twice
    /// its depth for a whole window.
    fn regulate_drift(&mut self) {
        let depth = self.config.depth;
        let level = self.slots.len() as u32;
        let drift = &mut self.drift;

        if drift.ticks == 0 || level < drift.window_min {
            drift.window_min = level;
        }
        if drift.ticks == 0 || level > drift.window_max {
            drift.window_max = level;
        }
        drift.ticks += 1;
        if drift.ticks >= DRIFT_WINDOW_TICKS {
            if drift.window_min > depth.saturating_mul(2) {
                drift.draining = true;
            }
            drift.last_window_max = drift.window_max;
            drift.ticks = 0;
        }

        if !drift.draining {
            return;
        }
        if level <= depth {
            drift.draining = false;
            drift.since_drop = 0;
            return;
        }
        drift.since_drop += 1;
        if drift.since_drop >= DRIFT_DROP_INTERVAL_TICKS {
            drift.since_drop = 0;
            if self.drop_front() {
                self.stats.dropped_drift += 1;
            }
        }
    }

    /// Frames currently held.
    pub fn len(&self) -> usize {
        self.present
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The playout delay currently buffered, in frames: the span from the
    /// next sequence to play to the newest packet held.
    pub fn buffered_span(&self) -> usize {
        self.slots.len()
    }

    /// Whether the buffer is playing, as opposed to idle or priming.
    pub fn is_playing(&self) -> bool {
        matches!(self.state, State::Playing { .. })
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Returns how many times the buffer restarted on a new sequence.
    pub fn resyncs(&self) -> u64 {
        self.stats.resyncs
    }

    /// Forgets every packet and the stream position. The counters stay, and
    /// count the packets dropped here in `dropped_resync`.
    pub fn reset(&mut self) {
        self.stats.dropped_resync += self.present as u64;
        self.discard_candidate();
        self.slots.clear();
        self.present = 0;
        self.floor = None;
        self.history = [None; HISTORY_LEN];
        self.state = State::Idle;
        self.drift.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn config(depth: u32, capacity: u32, max_concealed: u32) -> JitterConfig {
        JitterConfig {
            depth,
            capacity,
            max_concealed,
        }
    }

    /// A payload that names its sequence and the stream it belongs to.
    fn payload(stream: u8, sequence: u32) -> Vec<u8> {
        let mut payload = vec![stream];
        payload.extend_from_slice(&sequence.to_le_bytes());
        payload
    }

    fn sequence_of(payload: &[u8]) -> u32 {
        u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]])
    }

    fn played(playout: &Playout) -> Option<u32> {
        match playout {
            Playout::Packet(payload) => Some(sequence_of(payload)),
            _ => None,
        }
    }

    /// Every pushed packet is accounted for exactly once.
    fn assert_accounted(buffer: &JitterBuffer) {
        let stats = buffer.stats();
        let held = buffer.len() as u64 + u64::from(buffer.candidate.is_some());
        assert_eq!(
            stats.received,
            stats.played
                + stats.duplicates
                + stats.late
                + stats.dropped_overflow
                + stats.dropped_drift
                + stats.dropped_resync
                + held,
            "{stats:?} with {held} held"
        );
    }

    #[test]
    fn steady_stream_starts_after_depth() {
        let mut buffer = JitterBuffer::new(config(3, 50, 5));
        let mut out = Vec::new();
        for sequence in 0..10 {
            buffer.push(sequence, &payload(0, sequence));
            out.push(buffer.pop());
        }
        assert_eq!(out[0], Playout::Silent);
        assert_eq!(out[1], Playout::Silent);
        let sequences: Vec<u32> = out.iter().filter_map(played).collect();
        assert_eq!(sequences, (0..8).collect::<Vec<_>>());
        assert_eq!(buffer.len(), 2);
        assert!(buffer.is_playing());
        assert_accounted(&buffer);
    }

    #[test]
    fn lone_packet_plays_after_timeout() {
        let mut buffer = JitterBuffer::new(config(3, 50, 5));
        buffer.push(7, &payload(0, 7));
        for tick in 0..3 {
            assert_eq!(buffer.pop(), Playout::Silent, "tick {tick}");
        }
        assert_eq!(played(&buffer.pop()), Some(7));
        assert_eq!(buffer.pop(), Playout::Conceal);
    }

    #[test]
    fn depth_one_plays_immediately() {
        let mut buffer = JitterBuffer::new(config(1, 10, 2));
        buffer.push(0, &payload(0, 0));
        assert_eq!(played(&buffer.pop()), Some(0));
    }

    #[test]
    fn reordering_is_undone() {
        let mut buffer = JitterBuffer::new(config(3, 50, 5));
        // 1 arrives before 0 while priming, and 5 before 4 while playing.
        let arrivals: [&[u32]; 6] = [&[1], &[0], &[2], &[3, 5], &[4], &[6]];
        let mut sequences = Vec::new();
        for batch in arrivals {
            for &sequence in batch {
                buffer.push(sequence, &payload(0, sequence));
            }
            sequences.extend(played(&buffer.pop()));
        }
        for _ in 0..5 {
            sequences.extend(played(&buffer.pop()));
        }
        assert_eq!(sequences, (0..7).collect::<Vec<_>>());
        assert_eq!(buffer.stats().late, 0);
    }

    #[test]
    fn duplicates_counted_and_ignored() {
        let mut buffer = JitterBuffer::new(config(2, 50, 5));
        buffer.push(0, &payload(0, 0));
        buffer.push(0, &payload(0, 0));
        buffer.push(1, &payload(0, 1));
        assert_eq!(played(&buffer.pop()), Some(0));
        // A copy of a packet already played.
        buffer.push(0, &payload(0, 0));
        assert_eq!(played(&buffer.pop()), Some(1));
        assert_eq!(buffer.stats().duplicates, 2);
        assert_eq!(buffer.stats().late, 0);
        assert_accounted(&buffer);
    }

    #[test]
    fn late_packet_dropped_after_conceal() {
        let mut buffer = JitterBuffer::new(config(2, 50, 5));
        buffer.push(0, &payload(0, 0));
        buffer.push(2, &payload(0, 2));
        assert_eq!(played(&buffer.pop()), Some(0));
        assert_eq!(buffer.pop(), Playout::Conceal);
        buffer.push(1, &payload(0, 1));
        assert_eq!(played(&buffer.pop()), Some(2));
        assert_eq!(buffer.stats().late, 1);
        assert_eq!(buffer.stats().concealed, 1);
        assert_accounted(&buffer);
    }

    #[test]
    fn pause_conceals_then_reprimes() {
        let mut buffer = JitterBuffer::new(config(2, 50, 3));
        for sequence in 0..4 {
            buffer.push(sequence, &payload(0, sequence));
            buffer.pop();
        }
        // Sequences 0..=2 played; 3 is buffered.
        assert_eq!(played(&buffer.pop()), Some(3));
        for _ in 0..3 {
            assert_eq!(buffer.pop(), Playout::Conceal);
        }
        assert_eq!(buffer.pop(), Playout::Silent);
        assert!(!buffer.is_playing());
        assert_eq!(buffer.pop(), Playout::Silent);

        // The sender resumes where it left off and the buffer primes again.
        buffer.push(4, &payload(0, 4));
        assert_eq!(buffer.pop(), Playout::Silent);
        buffer.push(5, &payload(0, 5));
        assert_eq!(played(&buffer.pop()), Some(4));
        assert_eq!(buffer.stats().concealed, 3);
        assert_eq!(buffer.stats().resyncs, 0);
    }

    #[test]
    fn loss_burst_keeps_schedule() {
        let mut buffer = JitterBuffer::new(config(1, 50, 2));
        buffer.push(0, &payload(0, 0));
        assert_eq!(played(&buffer.pop()), Some(0));
        // Sequences 1..=4 are lost; 5 is already here.
        buffer.push(5, &payload(0, 5));
        assert_eq!(buffer.pop(), Playout::Conceal);
        assert_eq!(buffer.pop(), Playout::Conceal);
        assert_eq!(buffer.pop(), Playout::Silent);
        assert_eq!(buffer.pop(), Playout::Silent);
        assert_eq!(played(&buffer.pop()), Some(5));
    }

    #[test]
    fn jitter_buffer_survives_sequence_wrap() {
        let mut buffer = JitterBuffer::new(config(3, 7, 2));
        let start = u32::MAX - 4;
        let mut sequences = Vec::new();
        for i in 0..20u32 {
            let sequence = start.wrapping_add(i);
            buffer.push(sequence, &payload(0, sequence));
            sequences.extend(played(&buffer.pop()));
        }
        let expected: Vec<u32> = (0..18u32).map(|i| start.wrapping_add(i)).collect();
        assert_eq!(sequences, expected);
        assert_eq!(buffer.stats().resyncs, 0);
    }

    #[test]
    fn restart_to_zero_after_silence_resyncs() {
        let mut buffer = JitterBuffer::new(config(2, 50, 2));
        for sequence in 0..20 {
            buffer.push(sequence, &payload(0, sequence));
            buffer.pop();
        }
        for _ in 0..10 {
            buffer.pop();
        }
        assert!(!buffer.is_playing());

        // Sequence 0 again, but new audio: 20 frames behind the playout point.
        let mut sequences = Vec::new();
        for sequence in 0..10 {
            buffer.push(sequence, &payload(1, sequence));
            sequences.extend(played(&buffer.pop()));
        }
        for _ in 0..5 {
            sequences.extend(played(&buffer.pop()));
        }
        assert_eq!(sequences, (0..10).collect::<Vec<_>>());
        assert_eq!(buffer.stats().resyncs, 1);
        assert_accounted(&buffer);
    }

    #[test]
    fn far_jump_while_playing_resyncs_on_second_packet() {
        let mut buffer = JitterBuffer::new(config(2, 10, 2));
        for sequence in 0..10 {
            buffer.push(sequence, &payload(0, sequence));
            buffer.pop();
        }
        let mut sequences = Vec::new();
        for sequence in 1_000_000..1_000_010 {
            buffer.push(sequence, &payload(1, sequence));
            sequences.extend(played(&buffer.pop()));
        }
        for _ in 0..5 {
            sequences.extend(played(&buffer.pop()));
        }
        // Sequence 9 plays while the first new packet waits for a second.
        let mut expected = vec![9];
        expected.extend(1_000_000..1_000_010);
        assert_eq!(sequences, expected);
        assert_eq!(buffer.stats().resyncs, 1);
        assert_eq!(buffer.stats().dropped_resync, 0);
        assert_accounted(&buffer);
    }

    #[test]
    fn far_jump_while_idle_resyncs_at_once() {
        let mut buffer = JitterBuffer::new(config(1, 10, 0));
        buffer.push(5, &payload(0, 5));
        assert_eq!(played(&buffer.pop()), Some(5));
        assert_eq!(buffer.pop(), Playout::Silent);
        buffer.push(5_000, &payload(0, 5_000));
        assert_eq!(played(&buffer.pop()), Some(5_000));
        assert_eq!(buffer.stats().resyncs, 1);
    }

    #[test]
    fn stray_packet_leaves_stream_alone() {
        let mut buffer = JitterBuffer::new(config(2, 10, 2));
        let mut sequences = Vec::new();
        for sequence in 100..130u32 {
            buffer.push(sequence, &payload(0, sequence));
            if sequence == 110 {
                buffer.push(3, &payload(9, 3));
            }
            if sequence == 125 {
                buffer.push(u32::MAX / 2, &payload(9, 0));
            }
            sequences.extend(played(&buffer.pop()));
        }
        assert_eq!(sequences, (100..129).collect::<Vec<_>>());
        assert_eq!(buffer.stats().resyncs, 0);
        assert_eq!(buffer.stats().dropped_resync, 1);
        // The second stray is still a candidate until it expires.
        for _ in 0..=RESYNC_CONFIRM_TICKS {
            buffer.pop();
        }
        assert_eq!(buffer.stats().dropped_resync, 2);
        assert_accounted(&buffer);
    }

    #[test]
    fn overflow_drops_oldest() {
        let mut buffer = JitterBuffer::new(config(3, 5, 2));
        for sequence in 0..8 {
            buffer.push(sequence, &payload(0, sequence));
            assert!(buffer.len() <= 5);
        }
        assert_eq!(buffer.stats().dropped_overflow, 3);
        let sequences: Vec<u32> = (0..5).filter_map(|_| played(&buffer.pop())).collect();
        assert_eq!(sequences, vec![3, 4, 5, 6, 7]);
        assert_accounted(&buffer);
    }

    #[test]
    fn fast_sender_clock_is_drained() {
        let depth = 3;
        let mut buffer = JitterBuffer::new(config(depth, 50, 5));
        let mut sequence = 0u32;
        let mut last = None;
        let mut max_span = 0;
        // The sender's clock runs 1% fast: one extra frame every 100 ticks.
        for tick in 0..10_000 {
            let frames = if tick % 100 == 99 { 2 } else { 1 };
            for _ in 0..frames {
                buffer.push(sequence, &payload(0, sequence));
                sequence += 1;
            }
            if let Some(played) = played(&buffer.pop()) {
                assert!(last.is_none_or(|last| played > last));
                last = Some(played);
            }
            if tick > 100 {
                max_span = max_span.max(buffer.buffered_span());
            }
        }
        let stats = buffer.stats();
        assert!(stats.dropped_drift >= 90, "{stats:?}");
        assert_eq!(stats.dropped_overflow, 0);
        assert!(
            max_span <= 2 * depth as usize + 3,
            "span reached {max_span}"
        );
        assert_accounted(&buffer);
    }

    #[test]
    fn slow_sender_clock_is_stretched() {
        let depth = 3;
        let mut buffer = JitterBuffer::new(config(depth, 50, 5));
        let mut sequence = 0u32;
        let mut sequences = Vec::new();
        let mut max_span = 0;
        // The sender's clock runs 1% slow: one frame short every 100 ticks.
        for tick in 0..10_000 {
            if tick % 100 != 99 {
                buffer.push(sequence, &payload(0, sequence));
                sequence += 1;
            }
            sequences.extend(played(&buffer.pop()));
            max_span = max_span.max(buffer.buffered_span());
        }

        // Every packet plays, in order: the buffer waits a frame each time
        // it runs dry instead of skipping a packet that is only late.
        let stats = buffer.stats();
        assert!(sequences.windows(2).all(|pair| pair[1] == pair[0] + 1));
        assert_eq!(stats.late, 0, "{stats:?}");
        assert_eq!(stats.dropped_drift, 0, "{stats:?}");
        assert!(stats.stretched >= 90, "{stats:?}");
        // Every concealed frame became a stretch but the last, whose packet
        // never came.
        assert_eq!(stats.concealed, stats.stretched + 1, "{stats:?}");
        assert!(max_span <= depth as usize, "span reached {max_span}");
        assert_accounted(&buffer);
    }

    #[test]
    fn deep_buffer_takes_a_missing_packet_as_lost() {
        let mut buffer = JitterBuffer::new(config(2, 50, 5));
        // Six frames buffered at once, well over twice the depth.
        for sequence in 0..6 {
            buffer.push(sequence, &payload(0, sequence));
        }
        let sequences: Vec<u32> = (0..6).filter_map(|_| played(&buffer.pop())).collect();
        assert_eq!(sequences, (0..6).collect::<Vec<_>>());

        // Frame 6 is lost and 7 arrives in time: 6 is concealed, not waited
        // for, so 7 plays on schedule.
        assert_eq!(buffer.pop(), Playout::Conceal);
        buffer.push(7, &payload(0, 7));
        assert_eq!(played(&buffer.pop()), Some(7));
        assert_eq!(buffer.stats().stretched, 0);
    }

    #[test]
    fn steady_jitter_is_not_mistaken_for_drift() {
        let depth = 4;
        let mut buffer = JitterBuffer::new(config(depth, 50, 5));
        // Packets arrive in pairs every other tick: jitter of one frame.
        let mut sequences = Vec::new();
        for tick in 0..2_000u32 {
            if tick % 2 == 1 {
                for sequence in [tick - 1, tick] {
                    buffer.push(sequence, &payload(0, sequence));
                }
            }
            sequences.extend(played(&buffer.pop()));
        }
        assert_eq!(buffer.stats().dropped_drift, 0);
        assert_eq!(buffer.stats().concealed, 0);
        assert!(sequences.windows(2).all(|pair| pair[1] == pair[0] + 1));
    }

    #[test]
    fn config_is_clamped() {
        let buffer = JitterBuffer::new(config(0, 0, 0));
        assert_eq!(buffer.config(), config(1, 1, 0));
        let buffer = JitterBuffer::new(config(100, 10, 3));
        assert_eq!(buffer.config(), config(10, 10, 3));
        let buffer = JitterBuffer::new(config(3, u32::MAX, 3));
        assert_eq!(buffer.config().capacity, MAX_CAPACITY);
    }

    #[test]
    fn reset_forgets_stream() {
        let mut buffer = JitterBuffer::new(config(2, 10, 2));
        for sequence in 0..5 {
            buffer.push(sequence, &payload(0, sequence));
        }
        buffer.reset();
        assert!(buffer.is_empty());
        assert_eq!(buffer.pop(), Playout::Silent);
        buffer.push(0, &payload(1, 0));
        buffer.push(1, &payload(1, 1));
        assert_eq!(played(&buffer.pop()), Some(0));
        assert_accounted(&buffer);
    }

    /// When each copy of a packet arrives.
    #[derive(Clone, Debug)]
    struct PacketPlan {
        lost: bool,
        /// Ticks after the packet's nominal tick, each at most the jitter.
        timely: Vec<u32>,
        /// Copies that arrive after their packet was played.
        stale: Vec<u32>,
    }

    #[derive(Clone, Debug)]
    struct Scenario {
        start: u32,
        depth: u32,
        capacity: u32,
        max_concealed: u32,
        packets: Vec<PacketPlan>,
        /// Orders arrivals within one tick.
        shuffle_seed: u64,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (1u32..=7, 0u32..=40, 0u32..=6)
            .prop_flat_map(|(depth, extra_capacity, max_concealed)| {
                let capacity = 2 * depth + extra_capacity;
                let jitter = depth - 1;
                let plan = (
                    proptest::bool::weighted(0.15),
                    proptest::collection::vec(0..=jitter, 1..=3),
                    proptest::collection::vec(jitter + 1..=jitter + capacity / 2, 0..=1),
                )
                    .prop_map(|(lost, timely, stale)| PacketPlan {
                        lost,
                        timely,
                        stale,
                    });
                (
                    prop_oneof![Just(0u32), u32::MAX - 300..=u32::MAX, any::<u32>()],
                    Just(depth),
                    Just(capacity),
                    Just(max_concealed),
                    proptest::collection::vec(plan, 1..300),
                    any::<u64>(),
                )
            })
            .prop_map(
                |(start, depth, capacity, max_concealed, packets, shuffle_seed)| Scenario {
                    start,
                    depth,
                    capacity,
                    max_concealed,
                    packets,
                    shuffle_seed,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// With arrival jitter below the depth, every packet that arrives is
        /// played exactly once and in order, whatever the loss, duplication,
        /// reordering and wrap.
        #[test]
        fn jitter_buffer_matches_reference_model(scenario in scenario()) {
            let Scenario { start, depth, capacity, max_concealed, packets, shuffle_seed } =
                scenario;
            let mut buffer = JitterBuffer::new(config(depth, capacity, max_concealed));

            // The reference model: every packet with a timely copy, in
            // sequence order.
            let mut model = BTreeMap::new();
            let mut arrivals: BTreeMap<(u32, u64), u32> = BTreeMap::new();
            let mut key = shuffle_seed;
            for (index, plan) in packets.iter().enumerate() {
                let index = index as u32;
                if plan.lost {
                    continue;
                }
                let sequence = start.wrapping_add(index);
                model.insert(index, sequence);
                for delay in plan.timely.iter().chain(&plan.stale) {
                    key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    arrivals.insert((index + delay, key), sequence);
                }
            }

            let ticks = packets.len() as u32 + 2 * capacity + depth + max_concealed + 10;
            let mut arrivals = arrivals.into_iter().peekable();
            let mut played_sequences = Vec::new();
            for tick in 0..ticks {
                while let Some(&((arrival, _), sequence)) = arrivals.peek() {
                    if arrival != tick {
                        break;
                    }
                    buffer.push(sequence, &payload(0, sequence));
                    arrivals.next();
                    prop_assert!(buffer.len() <= capacity as usize);
                    prop_assert!(buffer.buffered_span() <= capacity as usize);
                }
                if let Playout::Packet(bytes) = buffer.pop() {
                    prop_assert_eq!(&bytes[..], &payload(0, sequence_of(&bytes))[..]);
                    played_sequences.push(sequence_of(&bytes));
                }
            }

            let expected: Vec<u32> = model.values().copied().collect();
            prop_assert_eq!(&played_sequences, &expected);
            let stats = buffer.stats();
            prop_assert_eq!(stats.played, expected.len() as u64);
            prop_assert_eq!(stats.late, 0);
            prop_assert_eq!(stats.dropped_overflow, 0);
            prop_assert_eq!(stats.dropped_drift, 0);
            prop_assert_eq!(stats.dropped_resync, 0);
            prop_assert!(buffer.is_empty());
            assert_accounted(&buffer);
        }

        /// A sender that restarts its sequence anywhere, after any pause,
        /// loses at most a few frames of the new stream, and nothing is
        /// played twice or out of order.
        #[test]
        fn jitter_buffer_follows_sequence_restart(
            depth in 1u32..=6,
            capacity in 12u32..=60,
            max_concealed in 0u32..=6,
            first_start in prop_oneof![Just(0u32), u32::MAX - 100..=u32::MAX, any::<u32>()],
            first_len in 1u32..120,
            pause in 0u32..40,
            restart_offset in prop_oneof![
                -200i64..200,
                any::<u32>().prop_map(i64::from),
            ],
            second_len in 20u32..80,
        ) {
            let mut buffer = JitterBuffer::new(config(depth, capacity, max_concealed));
            let second_start = (i64::from(first_start) + restart_offset) as u32;

            let mut played_packets = Vec::new();
            let mut pop = |buffer: &mut JitterBuffer| {
                if let Playout::Packet(bytes) = buffer.pop() {
                    played_packets.push((bytes[0], sequence_of(&bytes)));
                }
            };
            for i in 0..first_len {
                let sequence = first_start.wrapping_add(i);
                buffer.push(sequence, &payload(0, sequence));
                pop(&mut buffer);
            }
            for _ in 0..pause {
                pop(&mut buffer);
            }
            for i in 0..second_len {
                let sequence = second_start.wrapping_add(i);
                buffer.push(sequence, &payload(1, sequence));
                pop(&mut buffer);
                prop_assert!(buffer.len() <= capacity as usize);
            }
            for _ in 0..capacity + depth + 5 {
                pop(&mut buffer);
            }

            // The first stream: in order, from its start.
            let first: Vec<u32> = played_packets
                .iter()
                .filter(|(stream, _)| *stream == 0)
                .map(|(_, sequence)| sequence.wrapping_sub(first_start))
                .collect();
            prop_assert!(first.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", first);
            // The second stream: in order, ending with its last packet and
            // starting within a few frames of its first. Drift regulation
            // may drop frames in between when the restart raised the delay.
            let second: Vec<u32> = played_packets
                .iter()
                .filter(|(stream, _)| *stream == 1)
                .map(|(_, sequence)| sequence.wrapping_sub(second_start))
                .collect();
            prop_assert!(!second.is_empty());
            prop_assert!(second.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", second);
            // When the sequences overlap, or come within the buffer's
            // capacity of each other, a restart looks exactly like
            // reordering: packets of the two streams may collide or
            // interleave, and only the order within each stream holds.
            let overlap = second_start.wrapping_sub(first_start) < first_len + capacity
                || first_start.wrapping_sub(second_start) < second_len + capacity;
            let skipped: u32 = second.windows(2).map(|pair| pair[1] - pair[0] - 1).sum();
            prop_assert!(overlap || u64::from(skipped) <= buffer.stats().dropped_drift);
            prop_assert_eq!(second.last().copied(), Some(second_len - 1));
            let lost = second[0];
            prop_assert!(
                lost <= depth + max_concealed + 3,
                "lost the first {} frames of the second stream", lost
            );
            // Nothing of the first stream plays after the second started.
            let first_of_second = played_packets.iter().position(|(stream, _)| *stream == 1);
            if let (false, Some(position)) = (overlap, first_of_second) {
                prop_assert!(played_packets[position..].iter().all(|(stream, _)| *stream == 1));
            }
            assert_accounted(&buffer);
        }

        /// Arbitrary pushes and pops: the buffer never holds more than its
        /// capacity, never plays a packet twice, and accounts for every
        /// packet.
        #[test]
        fn jitter_buffer_stays_bounded(
            depth in 1u32..=9,
            capacity in 1u32..=40,
            max_concealed in 0u32..=6,
            base in any::<u32>(),
            operations in proptest::collection::vec(
                prop_oneof![
                    3 => (-60i64..60).prop_map(Some),
                    1 => any::<u32>().prop_map(|sequence| Some(i64::from(sequence))),
                    3 => Just(None),
                ],
                0..400,
            ),
        ) {
            let mut buffer = JitterBuffer::new(config(depth, capacity, max_concealed));
            let mut next_id = 0u32;
            let mut played_ids = std::collections::BTreeSet::new();
            let mut pushed_sequence = BTreeMap::new();
            let mut clock = 0u32;
            for operation in operations {
                match operation {
                    Some(offset) => {
                        let sequence = base.wrapping_add(clock).wrapping_add(offset as u32);
                        // The id makes every payload unique.
                        let mut bytes = payload(0, sequence);
                        bytes.extend_from_slice(&next_id.to_le_bytes());
                        pushed_sequence.insert(next_id, sequence);
                        next_id += 1;
                        buffer.push(sequence, &bytes);
                    }
                    None => {
                        clock = clock.wrapping_add(1);
                        if let Playout::Packet(bytes) = buffer.pop() {
                            let id = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
                            prop_assert!(played_ids.insert(id), "packet {} played twice", id);
                            prop_assert_eq!(pushed_sequence.get(&id), Some(&sequence_of(&bytes)));
                        }
                    }
                }
                prop_assert!(buffer.len() <= capacity.max(1) as usize);
                prop_assert!(buffer.buffered_span() <= capacity.max(1) as usize);
                assert_accounted(&buffer);
            }
        }
    }
}
