//! Per-sender jitter buffer, ordered by sequence number.
//!
//! STUB: signatures are fixed; bodies to be written.

/// Jitter buffer sizing, in 20 ms frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JitterConfig {
    /// Target playout delay: frames buffered before playout starts.
    pub depth: u32,
    /// Frames held at most; beyond it the oldest are dropped.
    pub capacity: u32,
    /// Consecutive missing frames concealed with PLC before the stream is
    /// considered paused and playout stops until it refills.
    pub max_concealed: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig { depth: 3, capacity: 50, max_concealed: 5 }
    }
}

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    pub concealed: u64,
    pub duplicates: u64,
    pub late: u64,
    pub dropped_overflow: u64,
    pub resyncs: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {}

impl JitterBuffer {
    pub fn new(_config: JitterConfig) -> Self {
        todo!()
    }

    /// Stores a packet that arrived with `sequence`.
    pub fn push(&mut self, _sequence: u32, _payload: &[u8]) {
        todo!()
    }

    /// Takes what to play for the next 20 ms. Call once per tick.
    pub fn pop(&mut self) -> Playout {
        todo!()
    }

    /// Frames currently held.
    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> JitterStats {
        todo!()
    }
}
