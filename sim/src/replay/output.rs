//! The files a replay writes: `NAME-heard.wav` per participant, `room.wav`,
//! `report.json` and `report.txt`.

use std::path::{Path, PathBuf};

use voicemcu_audio::{write_wav_48k_mono, WavError};
use voicemcu_core::audio::{PcmFrame, FRAME_SAMPLES, SILENCE};
use voicemcu_core::limiter::Limiter;

use super::engine::ReplayRun;
use super::report::ReplayReport;

/// A file of the replay's output that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("failed creating output folder {}: {error}", path.display())]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("failed writing {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("failed serializing the report: {0}")]
    Json(serde_json::Error),
}

/// The name of the file holding what `name` heard.
pub fn heard_file_name(name: &str) -> String {
    format!("{name}-heard.wav")
}

/// Writes every output of `run` into `dir`, creating it if needed.
pub fn write_outputs(
    dir: &Path,
    run: &ReplayRun,
    report: &ReplayReport,
) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(|error| OutputError::CreateDir {
        path: dir.to_path_buf(),
        error,
    })?;

    for participant in &run.participants {
        write_wav_48k_mono(
            dir.join(heard_file_name(&participant.name)),
            &participant.heard,
        )?;
    }
    write_wav_48k_mono(dir.join("room.wav"), &room_mix(run))?;

    let mut json = serde_json::to_string_pretty(report).map_err(OutputError::Json)?;
    json.push('\n');
    write_file(&dir.join("report.json"), json.as_bytes())?;
    write_file(&dir.join("report.txt"), report.to_string().as_bytes())
}

/// The sum of everything every participant sent, through the server's
/// limiter so that overlapping speakers do not clip.
pub fn room_mix(run: &ReplayRun) -> Vec<f32> {
    let len = run
        .participants
        .iter()
        .map(|participant| participant.sent.len())
        .max()
        .unwrap_or(0);
    let mut limiter = Limiter::new();
    let mut mix = Vec::with_capacity(len);
    for start in (0..len).step_by(FRAME_SAMPLES) {
        let mut frame: PcmFrame = SILENCE;
        for participant in &run.participants {
            let end = (start + FRAME_SAMPLES).min(participant.sent.len());
            if start >= end {
                continue;
            }
            for (sum, sample) in frame.iter_mut().zip(&participant.sent[start..end]) {
                *sum += sample;
            }
        }
        limiter.process(&mut frame);
        let take = FRAME_SAMPLES.min(len - start);
        mix.extend_from_slice(&frame[..take]);
    }
    mix
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    std::fs::write(path, bytes).map_err(|error| OutputError::Write {
        path: path.to_path_buf(),
        error,
    })
}
