//! Server settings.

use std::time::Duration;

use crate::mixer::MixerConfig;
use crate::rate_limit::RateLimit;

/// Server settings. Every limit here protects the server from a client
/// asking for more than its share.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerConfig {
    /// Participants per room at most.
    pub max_room_size: usize,
    /// Rooms at most, across the server.
    pub max_rooms: usize,
    /// Display name length at most, in characters.
    pub max_name_len: usize,
    /// Room code length at most, in characters.
    pub max_room_code_len: usize,
    /// How often connections that never sent `Join` are looked for; they are
    /// closed once they have waited [`super::JOIN_TIMEOUT`].
    pub cleanup_interval: Duration,
    pub mixer: MixerConfig,
    /// Signalling messages each connection may send. `Leave` is always
    /// allowed; other messages over the limit are rejected with an `Error`.
    pub signalling_rate: RateLimit,
    /// Audio datagrams each participant may send. A sender produces 50 a
    /// second; datagrams over the limit are dropped before they reach the
    /// jitter buffer.
    pub datagram_rate: RateLimit,
    /// How long a signalling frame may take to arrive completely, counted
    /// from its first byte. A connection whose frame is still partial after
    /// this is closed with an `Error`.
    pub frame_timeout: Duration,
    /// How long a client the host kicked may not rejoin that room from the
    /// same IPv4 address or IPv6 /64 prefix. Zero disables the ban.
    pub kick_ban: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_room_size: 16,
            max_rooms: 1024,
            max_name_len: 64,
            max_room_code_len: 128,
            cleanup_interval: Duration::from_secs(5),
            mixer: MixerConfig::default(),
            signalling_rate: RateLimit::new(20, 40),
            datagram_rate: RateLimit::new(100, 50),
            frame_timeout: Duration::from_secs(10),
            kick_ban: Duration::from_secs(600),
        }
    }
}
