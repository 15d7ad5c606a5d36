//! The admin status view: a Unix socket on which the running server answers
//! every connection with one JSON document of its rooms, participants and
//! their loss, jitter and concealment counts, then closes it.
//!
//! A Unix socket rather than a TCP port, so that file permissions decide
//! who may read it (the socket is created mode 0600) and nothing about it is
//! reachable from the network. `voicemcu status` is its client.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use voicemcu_core::server::RoomStatus;

/// How long one status reader may take to read the reply before it is
/// dropped, so a stuck reader cannot hold up the next one.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `voicemcu status` waits for the server's reply.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest reply `voicemcu status` accepts: far above what a server at
/// its room and connection limits produces.
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// The whole status document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    /// The server's version.
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// Open QUIC connections, joined or not.
    pub connections: usize,
    pub rooms: Vec<RoomStatus>,
}

/// A request for a [`StatusReport`], answered by the task that owns the
/// server's core.
pub(crate) type StatusRequest = oneshot::Sender<StatusReport>;

/// Asks the running server for its status. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StatusHandle {
    pub(crate) requests: mpsc::Sender<StatusRequest>,
}

impl StatusHandle {
    /// Returns the server's status, or `None` once it has stopped.
    pub async fn query(&self) -> Option<StatusReport> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(reply).await.ok()?;
        answer.await.ok()
    }
}

/// An error that kept the status socket from opening.
#[derive(Debug, thiserror::Error)]
pub enum StatusSocketError {
    #[error(
        "another voicemcu server answers on the status socket {path}: \
         stop it, or give this one another --status-socket"
    )]
    InUse { path: PathBuf },

    #[error("could not create the status socket {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
}

/// A bound status socket, removed from the file system when dropped.
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusSocket {
    /// Creates the socket at `path` (and its directory), readable and
    /// writable only by this user. A socket file left behind by a server
    /// that died is replaced; one a live server answers on is not.
    pub async fn bind(path: &Path) -> Result<StatusSocket, StatusSocketError> {
        let create = |source| StatusSocketError::Create {
            path: path.to_owned(),
            source,
        };

        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(StatusSocketError::InUse {
                    path: path.to_owned(),
                });
            }
            debug!(path = %path.display(), "removing a stale status socket");
            std::fs::remove_file(path).map_err(create)?;
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(create)?;
        }

        let listener = UnixListener::bind(path).map_err(create)?;
        restrict_to_owner(path).map_err(create)?;
        Ok(StatusSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers status requests one at a time until the server stops.
    pub async fn serve(self, handle: StatusHandle) {
        info!(path = %self.path.display(), "status socket open");
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    warn!(%error, "status socket failed to accept; status view off");
                    return;
                }
            };
            let Some(report) = handle.query().await else {
                return;
            };
            if let Err(error) = reply(stream, &report).await {
                debug!(%error, "status reader went away before the reply was written");
            }
        }
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

async fn reply(mut stream: UnixStream, report: &StatusReport) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    json.push(b'\n');

    let write = async {
        stream.write_all(&json).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "status reader too slow"))?
}

/// An error that kept `voicemcu status` from reading the status.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "no voicemcu server answers on {path}: {source}; is the server running, \
         and is this the path it printed at start (--status-socket)?"
    )]
    Connect { path: PathBuf, source: io::Error },

    #[error("reading the status from {path} failed: {source}")]
    Read { path: PathBuf, source: io::Error },

    #[error("the server at {path} did not answer within {READ_TIMEOUT:?}")]
    TimedOut { path: PathBuf },

    #[error("the server at {path} sent a status that is not valid JSON: {source}")]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads the status document from the socket at `path`.
pub async fn fetch_status(path: &Path) -> Result<serde_json::Value, FetchError> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|source| FetchError::Connect {
            path: path.to_owned(),
            source,
        })?;

    let mut body = Vec::new();
    let mut limited = (&mut stream).take(MAX_REPLY);
    let read = limited.read_to_end(&mut body);
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(_)) => {}
        Ok(Err(source)) => {
            return Err(FetchError::Read {
                path: path.to_owned(),
                source,
            })
        }
        Err(_) => {
            return Err(FetchError::TimedOut {
                path: path.to_owned(),
            })
        }
    }

    serde_json::from_slice(&body).map_err(|source| FetchError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Returns the default status socket: `status.sock` beside the default
/// certificate, under `$XDG_DATA_HOME/voicemcu/` or
/// `$HOME/.local/share/voicemcu/`; `None` when neither variable is set.
pub fn default_status_socket() -> Option<PathBuf> {
    match crate::settings::default_certificate_files()? {
        crate::server::CertificateSource::Files { cert, .. } => {
            Some(cert.with_file_name("status.sock"))
        }
        crate::server::CertificateSource::Generate => None,
    }
}
