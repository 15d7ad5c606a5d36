//! The deterministic core of voicemcu.
//!
//! Everything that decides anything lives here: the wire format of both
//! dialects, the server's rooms and moderation, the client's roster and
//! commands, jitter buffers, the mixer and the Opus codec. The crate never
//! reads a clock, opens a socket, spawns a thread or touches a sound card.
//! Callers feed it inputs stamped with an [`time::Instant`] they choose and
//! drain the outputs it queues, so the same inputs always give the same
//! outputs, byte for byte.
//!
//! Both state machines follow one loop:
//!
//! 1. hand in one input with `handle_input(now, input)`;
//! 2. drain `poll_output()` until it returns `None`;
//! 3. sleep until `poll_timeout()`, then hand in a timeout and repeat.

pub mod arrival;
pub mod audio;
pub mod client;
pub mod codec;
pub mod ids;
pub mod jitter;
pub mod limiter;
pub mod mixer;
pub mod rate_limit;
pub mod server;
pub mod text;
pub mod time;
pub mod vad;
pub mod wire;
