//! QUIC transport for voicemcu. (Being written.)
