//! Deterministic offline replay of a recorded session.
//!
//! A session file ([`session`]) lists participants, each with a WAV file, a
//! join time and optionally a leave time and an impaired network
//! ([`impairment`]), and the slash commands they type at given times. The
//! [`engine`] runs the real server and one real client per participant in
//! memory on a virtual clock, much faster than real time and with no
//! network. [`output`] writes what each participant heard, the whole room
//! and a [`report`], and the same session file always gives the same files,
//! byte for byte. [`record`] writes such session files from a live
//! server (`voicemcu server --record`).

pub mod engine;
pub mod impairment;
pub mod output;
pub mod record;
pub mod report;
pub mod session;

pub use engine::{EngineError, ReplayRun};
pub use output::{write_outputs, OutputError};
pub use report::ReplayReport;
pub use session::{Session, SessionError};

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Loads the session file at `session_path`, replays it, writes every
/// output into `out_dir` and returns the report. `progress(done, total)`
/// is called after every 20 ms step of session time.
pub fn replay_to_dir(
    session_path: &std::path::Path,
    out_dir: &std::path::Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReplayReport, ReplayError> {
    let session = Session::load(session_path)?;
    let run = engine::run(&session, progress)?;
    let report = report::build(&session, &run);
    write_outputs(out_dir, &run, &report)?;
    Ok(report)
}
