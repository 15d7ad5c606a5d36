//! `voicemcu server --record DIR`: starts the thread that writes every
//! room's recording (see [`voicemcu_sim::replay::record`]) and hands the
//! server the queue that feeds it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use voicemcu_quic::recording::DEFAULT_QUEUE_SLOTS;
use voicemcu_quic::QuicServer;
use voicemcu_sim::replay::record::{self, RecorderHandle};

/// How long the server waits, once stopped, for the writer to finish the
/// files. The writer only has to write what is queued; if the disk hangs,
/// the files stay as they were at the last update, at most a second old.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// A recording in progress.
pub struct Recording {
    writer: RecorderHandle,
}

/// Starts recording every room `server` opens into `dir`.
pub fn start(dir: &Path, server: &mut QuicServer) -> anyhow::Result<Recording> {
    let (sender, writer) = record::start(dir, DEFAULT_QUEUE_SLOTS)
        .with_context(|| format!("could not start recording into {}", dir.display()))?;
    server.record_to(sender);
    Ok(Recording { writer })
}

impl Recording {
    /// Waits for the writer to finish the files, once the server has
    /// stopped, and logs where they are.
    pub async fn finish(self) {
        let writer = self.writer;
        let joined = tokio::task::spawn_blocking(move || writer.join());
        let summary = match tokio::time::timeout(FINISH_TIMEOUT, joined).await {
            Ok(Ok(summary)) => summary,
            Ok(Err(error)) => {
                tracing::error!(%error, "the recording writer could not be waited for");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    "the recording writer is still busy after {FINISH_TIMEOUT:?}; stopping \
                     anyway, so the last second of the recordings may be missing"
                );
                return;
            }
        };
        for session in &summary.sessions {
            tracing::info!(
                session = %session.join(record::SESSION_FILE).display(),
                "recording finished"
            );
        }
    }
}
