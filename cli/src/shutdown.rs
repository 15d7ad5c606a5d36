//! Waiting for the operator to stop the process: Ctrl+C (SIGINT) or, on
//! Unix, SIGTERM from a service manager.

/// Resolves when the process is asked to stop. If a signal handler cannot
/// be installed, logs why and never resolves, so the caller runs on until
/// its other exit conditions.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};

        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(%error, "could not listen for SIGTERM");
                None
            }
        };
        let sigterm = async {
            match terminate.as_mut() {
                Some(stream) => {
                    stream.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };

        tokio::select! {
            _ = ctrl_c() => {}
            _ = sigterm => {}
        }
    }

    #[cfg(not(unix))]
    ctrl_c().await;
}

async fn ctrl_c() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "could not listen for Ctrl+C");
        std::future::pending::<()>().await;
    }
}
