//! The per-room mixer (mix-minus).
//!
//! STUB: signatures are fixed; bodies to be written.

use crate::codec::{CodecError, OpusSettings};
use crate::ids::ClientId;
use crate::jitter::{JitterConfig, JitterStats};

/// Mixer settings shared by every room of a server.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixerConfig {
    pub opus: OpusSettings,
    pub jitter: JitterConfig,
    /// Frame RMS, as a fraction of full scale, below which a sender is
    /// treated as silent. Zero disables the gate.
    pub vad_threshold: f32,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig { opus: OpusSettings::default(), jitter: JitterConfig::default(), vad_threshold: 0.01 }
    }
}

/// Who may be heard, and by whom: the room's answer to the mixer.
pub trait MixPolicy {
    /// Whether `sender` may be heard by anyone (not muted, not force-muted).
    fn is_audible(&self, sender: ClientId) -> bool;
    /// Whether `listener` has blocked `sender`.
    fn has_blocked(&self, listener: ClientId, sender: ClientId) -> bool;
}

/// One listener's encoded mix for one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixedFrame {
    pub listener: ClientId,
    pub packet: Vec<u8>,
    /// The senders audible in this frame, in ascending id order.
    pub speakers: Vec<ClientId>,
}

/// Per-member media counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemberStats {
    pub jitter: JitterStats,
    pub decode_errors: u64,
}

pub struct RoomMixer {}

impl RoomMixer {
    pub fn new(_config: MixerConfig) -> Self {
        todo!()
    }

    /// Adds a member with its own jitter buffer, decoder and encoder.
    pub fn add_member(&mut self, _id: ClientId) -> Result<(), CodecError> {
        todo!()
    }

    pub fn remove_member(&mut self, _id: ClientId) {
        todo!()
    }

    /// Hands in one Opus packet a member sent.
    pub fn push_packet(&mut self, _id: ClientId, _sequence: u32, _payload: &[u8]) {
        todo!()
    }

    /// Runs one 20 ms tick and appends one [`MixedFrame`] per listener who
    /// has someone to hear. A listener with nobody audible gets nothing.
    pub fn mix(&mut self, _policy: &dyn MixPolicy, _out: &mut Vec<MixedFrame>) {
        todo!()
    }

    pub fn member_stats(&self, _id: ClientId) -> Option<MemberStats> {
        todo!()
    }
}
