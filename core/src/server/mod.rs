//! The server state machine. (Being written.)
