//! The one error type for every malformed input the wire decoders meet.

/// Why bytes from the network could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("input too short: needed {needed} bytes, got {got}")]
    TooShort { needed: usize, got: usize },

    #[error("frame length {len} is over the limit of {max} bytes")]
    FrameTooLong { len: usize, max: usize },

    #[error("audio payload of {len} bytes is over the limit of {max} bytes")]
    PayloadTooLong { len: usize, max: usize },

    #[error("unknown message variant {index} (this dialect knows 0 to {max})")]
    UnknownVariant { index: u32, max: u32 },

    #[error("message contains invalid UTF-8")]
    InvalidUtf8,

    #[error("message has {count} trailing bytes after its end")]
    TrailingBytes { count: usize },

    #[error("{detail}")]
    Malformed { detail: String },

    #[error("message variant {variant} cannot be sent in the legacy dialect")]
    NotInDialect { variant: &'static str },
}
