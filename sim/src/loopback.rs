//! A conference on 127.0.0.1: the real QUIC server and real clients in one
//! process, each client with its own event log and command line.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use voicemcu_core::audio::{FrameSink, FrameSource};
use voicemcu_core::client::{ClientConfig, ClientEvent};
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::{
    CertificateSource, ClientError, ClientExit, ClientOptions, ConnectOptions, DialectChoice,
    Fingerprint, QuicServer, SenderFaults, ServerError, ServerOptions, Trust,
};

/// Why a loopback conference could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("could not start the server: {0}")]
    Server(#[from] ServerError),
    #[error("could not read the server's address: {0}")]
    Address(std::io::Error),
    #[error("client {name:?} failed: {source}")]
    Client { name: String, source: ClientError },
    #[error("client {name:?} task ended abnormally: {detail}")]
    Task { name: String, detail: String },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
}

/// A server on an ephemeral 127.0.0.1 port, running until [`stop`].
///
/// [`stop`]: LoopbackServer::stop
pub struct LoopbackServer {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl LoopbackServer {
    /// Starts a server with `config`, a fresh certificate and `seed` for
    /// client ids. Must run inside a tokio runtime.
    pub async fn start(config: ServerConfig, seed: u64) -> Result<Self, LoopbackError> {
        let server = QuicServer::bind(ServerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            certificate: CertificateSource::Generate,
            core: config,
            seed,
        })?;
        let addr = server.local_addr().map_err(LoopbackError::Address)?;
        let fingerprint = server.fingerprint();

        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(LoopbackServer {
            addr,
            fingerprint,
            shutdown: Some(shutdown),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Options for a client of this server, pinned to its certificate.
    pub fn client_options(&self, room: &str, name: &str, dialect: DialectChoice) -> ClientOptions {
        let mut connect = ConnectOptions::new(self.addr, Trust::Pinned(self.fingerprint));
        connect.dialect = dialect;
        ClientOptions {
            connect,
            core: ClientConfig::new(room, name),
            end_when_source_ends: true,
            faults: SenderFaults::default(),
        }
    }

    /// Starts a client with `options`, sending `source` and writing what it
    /// hears to `sink`.
    pub fn join(
        &self,
        options: ClientOptions,
        source: Box<dyn FrameSource>,
        sink: Box<dyn FrameSink>,
    ) -> LoopbackClient {
        LoopbackClient::spawn(options, source, sink)
    }

    /// Shuts the server down: clients are told and disconnected.
    pub async fn stop(mut self) -> Result<(), LoopbackError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.task.await {
            Ok(result) => result.map_err(LoopbackError::Server),
            Err(error) => Err(LoopbackError::Task {
                name: "server".to_string(),
                detail: error.to_string(),
            }),
        }
    }
}

/// The events a client has reported, shared with the task that collects
/// them.
#[derive(Clone, Default)]
struct EventLog {
    events: Arc<Mutex<Vec<ClientEvent>>>,
    changed: Arc<Notify>,
}

/// A running client of a [`LoopbackServer`].
pub struct LoopbackClient {
    name: String,
    commands: mpsc::Sender<String>,
    log: EventLog,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<ClientExit, ClientError>>,
}

impl LoopbackClient {
    fn spawn(
        options: ClientOptions,
        source: Box<dyn FrameSource>,
        sink: Box<dyn FrameSink>,
    ) -> Self {
        let name = options.core.display_name.clone();
        let (commands, commands_rx) = mpsc::channel(16);
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<ClientEvent>();
        let (stop, stopped) = oneshot::channel::<()>();

        let log = EventLog::default();
        let collector = log.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                collector
                    .events
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(event);
                collector.changed.notify_waiters();
            }
        });

        let task = tokio::spawn(voicemcu_quic::run_client(
            options,
            source,
            sink,
            commands_rx,
            events_tx,
            async move {
                let _ = stopped.await;
            },
        ));
        LoopbackClient {
            name,
            commands,
            log,
            stop: Some(stop),
            task,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Types `line` as if at the client's prompt.
    pub async fn command(&self, line: &str) {
        // A closed channel means the client already ended; its exit tells why.
        let _ = self.commands.send(line.to_string()).await;
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<ClientEvent> {
        self.log
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every event so far, one `Display` line each.
    pub fn event_lines(&self) -> Vec<String> {
        self.events().iter().map(ToString::to_string).collect()
    }

    /// Waits until an event matches `predicate` and returns it.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, LoopbackError> {
        let search = async {
            loop {
                let changed = self.log.changed.notified();
                if let Some(event) = self.events().into_iter().find(&predicate) {
                    return event;
                }
                changed.await;
            }
        };
        within(timeout, &format!("{} to see {what}", self.name), search).await
    }

    /// Waits until the client has joined and returns its id.
    pub async fn joined(&self, timeout: Duration) -> Result<u64, LoopbackError> {
        let event = self
            .wait_for("its join", timeout, |event| {
                matches!(event, ClientEvent::Joined { .. })
            })
            .await?;
        match event {
            ClientEvent::Joined { client_id, .. } => Ok(client_id),
            _ => unreachable!("the predicate matched only Joined"),
        }
    }

    /// Asks the client to leave and waits for it to end.
    pub async fn stop(mut self) -> Result<ClientExit, LoopbackError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finish(Duration::from_secs(10)).await
    }

    /// Waits for the client to end on its own and returns why it ended.
    pub async fn finish(self, timeout: Duration) -> Result<ClientExit, LoopbackError> {
        let name = self.name.clone();
        let joined = within(timeout, &format!("{name} to end"), self.task).await?;
        match joined {
            Ok(Ok(exit)) => Ok(exit),
            Ok(Err(source)) => Err(LoopbackError::Client { name, source }),
            Err(error) => Err(LoopbackError::Task {
                name,
                detail: error.to_string(),
            }),
        }
    }
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    future: impl Future<Output = T>,
) -> Result<T, LoopbackError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| LoopbackError::Timeout {
            what: what.to_string(),
            after: timeout,
        })
}
