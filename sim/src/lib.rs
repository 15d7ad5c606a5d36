//! Whole conferences, run end to end.
//!
//! [`loopback`] starts the real QUIC server and real clients in one process
//! on 127.0.0.1, for the demo and the end-to-end tests. [`hearing`] measures,
//! from the audio each participant wrote, whom it heard and whom it did
//! not. The turmoil network simulation will live here too.

pub mod hearing;
pub mod loopback;
pub mod memory;
pub mod replay;
