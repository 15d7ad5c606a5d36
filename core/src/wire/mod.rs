//! Bytes on the wire: signalling messages, their framing and the audio
//! datagram header, for both dialects.
//!
//! The legacy dialect is voicemcu 0.1's format, reproduced byte for byte so
//! that 0.1 clients can join our server and our client can join a 0.1
//! server. The native dialect, chosen by ALPN, uses the same framing and the
//! same message numbering, adds extension variants after the last legacy
//! one, and carries every server-to-client message on the one bidirectional
//! stream so that they arrive in the order they were sent.
//!
//! Every decoder here returns a [`WireError`] for malformed input and never
//! panics.

mod datagram;
mod error;
mod frame;
mod message;

pub use datagram::{decode_datagram, encode_datagram, AudioHeader, HEADER_LEN, MAX_AUDIO_PAYLOAD};
pub use error::WireError;
pub use frame::{encode_frame, FrameDecoder, FRAME_HEADER_LEN, MAX_FRAME_LEN};
pub use message::{decode_message, encode_message, ClientInfo, SignalMessage};

/// The ALPN protocol id of the native dialect.
pub const NATIVE_ALPN: &[u8] = b"voicemcu/2";

/// Which protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Dialect {
    /// voicemcu 0.1: no ALPN, pushes on one unidirectional stream each.
    Legacy,
    /// voicemcu 0.2 and later: ALPN [`NATIVE_ALPN`], everything from the
    /// server on the bidirectional stream, extension messages allowed.
    Native,
}

impl Dialect {
    /// Picks the dialect from the ALPN protocol a handshake negotiated.
    pub fn from_alpn(alpn: Option<&[u8]>) -> Dialect {
        match alpn {
            Some(protocol) if protocol == NATIVE_ALPN => Dialect::Native,
            _ => Dialect::Legacy,
        }
    }

    /// The highest message variant index this dialect accepts. A native
    /// index below it that is still unassigned is rejected as well.
    pub fn max_variant(self) -> u32 {
        match self {
            Dialect::Legacy => message::LAST_LEGACY_VARIANT,
            Dialect::Native => message::LAST_NATIVE_VARIANT,
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dialect::Legacy => f.write_str("legacy 0.1"),
            Dialect::Native => f.write_str("native"),
        }
    }
}
