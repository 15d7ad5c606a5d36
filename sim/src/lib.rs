//! Deterministic simulation and replay of voicemcu conferences. (Not yet written.)
