//! Whole conferences, run end to end.
//!
//! [`loopback`] starts the real QUIC server and real clients in one process
//! on 127.0.0.1, for the demo and the end-to-end tests. [`hearing`] measures,
//! from the audio each participant wrote, whom it heard and whom it did
//! not. [`replay`] runs a recorded session offline on a virtual clock, and
//! [`turmoil`] runs the live server and clients over simulated UDP in
//! simulated time, with faults, the same way for the same seed.

pub mod hearing;
pub mod loopback;
pub mod memory;
pub mod replay;
pub mod turmoil;
