//! The QUIC server: a quinn endpoint driving the core's
//! [`voicemcu_core::server::Server`].
//!
//! One task owns the core. It never awaits the network. Per-connection tasks
//! finish the handshake, accept the client's bidirectional stream and
//! forward what they read (stream bytes, stream end, datagrams, the
//! connection's end) over one channel. The owner hands each message to the
//! core, drains the core's outputs, and sleeps until the core's next
//! deadline in between. Frames for a connection go through that
//! connection's writer task, which writes them in order and carries out a
//! close only after the frames before it are acknowledged.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, ConnectionError, Endpoint, ReadError, RecvStream, SendStream, VarInt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, trace, warn};
use voicemcu_core::ids::ConnectionId;
use voicemcu_core::rate_limit::RateLimit;
use voicemcu_core::server::{
    close_code, CloseReason, OutStream, Server, ServerConfig, ServerInput, ServerOutput,
};
use voicemcu_core::time::Instant;
use voicemcu_core::wire::{Dialect, FRAME_HEADER_LEN, MAX_FRAME_LEN};

use crate::clock::{sleep_until, Clock};
use crate::connection_limit::ConnectionLimiter;
use crate::endpoint::{
    negotiated_dialect, server_config_with, server_endpoint_config, TransportSettings,
};
use crate::event_log::EventLog;
use crate::recording::RecordingSender;
use crate::status::{StatusHandle, StatusReport, StatusRequest};
use crate::tls::{Fingerprint, Identity, TlsError};

/// How long a client may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take, after the handshake, to open its
/// bidirectional stream and send its first bytes on it.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a close waits for the client to acknowledge the frames queued
/// before it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long shutdown waits for every connection to close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long shutdown waits for the endpoint to go idle after that.
pub const IDLE_WAIT: Duration = Duration::from_secs(2);

/// The QUIC application close code for a client whose signalling backlog
/// overflowed [`WRITER_QUEUE`] because it stopped reading. The core's codes
/// ([`close_code`]) are all below it.
pub const CLOSE_CODE_BACKLOG: u32 = 0x100;

/// The reason every connection gets when the server shuts down.
const SHUTDOWN_REASON: &str = "server is shutting down";

/// Messages from connection tasks that may wait for the owner.
const INPUT_QUEUE: usize = 1024;

/// Status requests that may wait for the owner.
const STATUS_QUEUE: usize = 8;

/// Frames that may wait for one connection's writer.
pub const WRITER_QUEUE: usize = 1024;

/// The largest chunk read from a bidirectional stream at once.
const MAX_READ_CHUNK: usize = FRAME_HEADER_LEN + MAX_FRAME_LEN;

/// The origin of the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// A new self-signed certificate for `localhost` at every start.
    Generate,
    /// PEM files, created with a new certificate when neither exists.
    Files { cert: PathBuf, key: PathBuf },
}

/// Everything [`QuicServer::bind`] needs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub bind: SocketAddr,
    pub certificate: CertificateSource,
    pub core: ServerConfig,
    /// Seeds the core's client id offsets.
    pub seed: u64,
}

/// The default limit on connection attempts per client address (per /64
/// for IPv6): bursts of 20, then 2 a second. Generous enough for a
/// household or an office behind one NAT address.
pub const DEFAULT_CONNECTION_RATE: RateLimit = RateLimit::new(2, 20);

/// Settings of the QUIC layer beyond [`ServerOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTuning {
    pub transport: TransportSettings,
    /// Connection attempts allowed per client address.
    pub connection_rate: RateLimit,
}

impl Default for ServerTuning {
    fn default() -> Self {
        ServerTuning {
            transport: TransportSettings::default(),
            connection_rate: DEFAULT_CONNECTION_RATE,
        }
    }
}

/// An error that kept the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),

    #[error("failed to bind UDP socket {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// A bound server, ready to [`run`](QuicServer::run).
pub struct QuicServer {
    endpoint: Endpoint,
    fingerprint: Fingerprint,
    core: ServerConfig,
    seed: u64,
    connection_rate: RateLimit,
    status_requests: mpsc::Sender<StatusRequest>,
    status_inbox: mpsc::Receiver<StatusRequest>,
    recording: Option<RecordingSender>,
}

impl QuicServer {
    /// Loads or generates the certificate and binds the UDP socket, with
    /// the default [`ServerTuning`]. Must be called inside a tokio runtime.
    pub fn bind(options: ServerOptions) -> Result<QuicServer, ServerError> {
        QuicServer::bind_with(options, ServerTuning::default())
    }

    /// Binds like [`QuicServer::bind`], with `tuning` for the QUIC layer.
    pub fn bind_with(
        options: ServerOptions,
        tuning: ServerTuning,
    ) -> Result<QuicServer, ServerError> {
        let identity = match &options.certificate {
            CertificateSource::Generate => Identity::generate()?,
            CertificateSource::Files { cert, key } => Identity::load_or_create(cert, key)?,
        };
        let config = server_config_with(&identity, &tuning.transport)?;
        let bind_failed = |source| ServerError::Bind {
            addr: options.bind,
            source,
        };
        let socket = std::net::UdpSocket::bind(options.bind).map_err(bind_failed)?;
        let runtime = quinn::default_runtime().ok_or_else(|| {
            bind_failed(io::Error::other(
                "no async runtime found: the server must run inside tokio",
            ))
        })?;
        let endpoint = Endpoint::new(
            server_endpoint_config(&identity),
            Some(config),
            socket,
            runtime,
        )
        .map_err(bind_failed)?;
        let mut server =
            QuicServer::with_endpoint(endpoint, identity.fingerprint(), options.core, options.seed);
        server.connection_rate = tuning.connection_rate;
        Ok(server)
    }

    /// Wraps an endpoint built elsewhere, for example over a simulated
    /// socket. It must have been built with
    /// [`crate::endpoint::server_config`] for a certificate whose
    /// fingerprint is `fingerprint`.
    pub fn with_endpoint(
        endpoint: Endpoint,
        fingerprint: Fingerprint,
        core: ServerConfig,
        seed: u64,
    ) -> QuicServer {
        let (status_requests, status_inbox) = mpsc::channel(STATUS_QUEUE);
        QuicServer {
            endpoint,
            fingerprint,
            core,
            seed,
            connection_rate: DEFAULT_CONNECTION_RATE,
            status_requests,
            status_inbox,
            recording: None,
        }
    }

    /// Returns a handle that asks the running server for its status.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            requests: self.status_requests.clone(),
        }
    }

    /// Records every room opened from now on: the core's recording feed
    /// ([`voicemcu_core::server::RecordEvent`]) goes to `sender`, whose
    /// receiver a writer thread drains (see [`crate::recording`]). The mix
    /// never waits for it. The sender is dropped when [`QuicServer::run`]
    /// returns, after the shutdown's leaves, which tells the writer to
    /// finish.
    pub fn record_to(&mut self, sender: RecordingSender) {
        self.recording = Some(sender);
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Returns the fingerprint clients pin with `--cert-hash`.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Serves clients until `shutdown` completes, then sends every client
    /// the shutdown notice and closes their connections, waiting at
    /// most [`SHUTDOWN_GRACE`] and then [`IDLE_WAIT`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        match self.endpoint.local_addr() {
            Ok(addr) => info!(%addr, fingerprint = %self.fingerprint, "voicemcu server listening"),
            Err(error) => {
                info!(%error, fingerprint = %self.fingerprint, "voicemcu server listening on an unknown address")
            }
        }

        let (inputs_tx, inputs) = mpsc::channel(INPUT_QUEUE);
        let accept_task = tokio::spawn(accept_connections(
            self.endpoint.clone(),
            self.connection_rate,
            inputs_tx,
        ));

        let mut core = Server::new(self.core, self.seed);
        core.set_recording(self.recording.is_some());
        let mut owner = Owner {
            core,
            clock: Clock::start(),
            links: BTreeMap::new(),
            inputs,
            status_inbox: self.status_inbox,
            _status_requests: self.status_requests,
            event_log: EventLog::default(),
            recording: self.recording,
        };
        owner.serve(shutdown).await;

        accept_task.abort();
        owner.shut_down().await;

        self.endpoint.close(
            VarInt::from_u32(close_code::SHUTDOWN),
            SHUTDOWN_REASON.as_bytes(),
        );
        if tokio::time::timeout(IDLE_WAIT, self.endpoint.wait_idle())
            .await
            .is_err()
        {
            debug!("endpoint still had connections draining after {IDLE_WAIT:?}");
        }
        info!("voicemcu server stopped");
        Ok(())
    }
}

/// An event a connection task reports to the owner.
enum ConnectionMessage {
    Opened {
        conn: ConnectionId,
        peer: SocketAddr,
        dialect: Dialect,
        link: Link,
    },
    StreamData {
        conn: ConnectionId,
        bytes: Bytes,
    },
    StreamFinished {
        conn: ConnectionId,
    },
    Datagram {
        conn: ConnectionId,
        bytes: Bytes,
    },
    Closed {
        conn: ConnectionId,
        reason: String,
    },
}

/// The owner's handle on one open connection.
struct Link {
    connection: Connection,
    writer: mpsc::Sender<WriterCommand>,
}

impl Link {
    fn enqueue(&self, conn: ConnectionId, command: WriterCommand) {
        match self.writer.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(%conn, "client is not reading its signalling stream ({WRITER_QUEUE} frames queued); closing the connection");
                self.connection.close(
                    VarInt::from_u32(CLOSE_CODE_BACKLOG),
                    b"too many unread signalling messages",
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                trace!(%conn, "writer already ended; output dropped");
            }
        }
    }
}

/// A step of a connection's writer task, carried out in order.
enum WriterCommand {
    /// Write a frame on the bidirectional stream.
    Control(Vec<u8>),
    /// Open a unidirectional stream, write the frame, finish it.
    Push(Vec<u8>),
    /// Wait for everything written so far to be acknowledged (at most
    /// [`CLOSE_GRACE`]), then close the connection.
    Close(CloseReason),
}

/// The task that owns the core.
struct Owner {
    core: Server,
    clock: Clock,
    links: BTreeMap<ConnectionId, Link>,
    inputs: mpsc::Receiver<ConnectionMessage>,
    status_inbox: mpsc::Receiver<StatusRequest>,
    /// Keeps `status_inbox` open while no handle exists.
    _status_requests: mpsc::Sender<StatusRequest>,
    event_log: EventLog,
    /// Where the core's recording feed goes, when recording.
    recording: Option<RecordingSender>,
}

impl Owner {
    /// Runs until `shutdown` completes.
    async fn serve(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let deadline = self
                .core
                .poll_timeout()
                .map(|at| self.clock.tokio_instant(at));
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.core.handle_input(self.clock.now(), ServerInput::Timeout);
                }
                message = self.inputs.recv() => match message {
                    Some(message) => self.handle_message(message),
                    None => {
                        warn!("endpoint stopped accepting connections; shutting down");
                        return;
                    }
                },
                Some(reply) = self.status_inbox.recv() => {
                    let _ = reply.send(self.status());
                }
            }
            self.carry_out_outputs();
        }
    }

    fn status(&self) -> StatusReport {
        StatusReport {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self
                .clock
                .now()
                .saturating_duration_since(Instant::ZERO)
                .as_secs(),
            connections: self.core.connection_count(),
            rooms: self.core.status(),
        }
    }

    /// Closes every connection through the core, then waits for them to go.
    async fn shut_down(&mut self) {
        info!(connections = self.links.len(), "shutting down");
        self.core.shutdown(self.clock.now(), SHUTDOWN_REASON);
        self.carry_out_outputs();

        let give_up = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.links.is_empty() {
            tokio::select! {
                () = tokio::time::sleep_until(give_up) => break,
                message = self.inputs.recv() => match message {
                    Some(message) => self.handle_message(message),
                    None => break,
                },
            }
            self.carry_out_outputs();
        }

        for (conn, link) in std::mem::take(&mut self.links) {
            debug!(%conn, "still open after {SHUTDOWN_GRACE:?}; closing now");
            link.connection.close(
                VarInt::from_u32(close_code::SHUTDOWN),
                SHUTDOWN_REASON.as_bytes(),
            );
        }
    }

    fn handle_message(&mut self, message: ConnectionMessage) {
        let now = self.clock.now();
        match message {
            ConnectionMessage::Opened {
                conn,
                peer,
                dialect,
                link,
            } => {
                debug!(%conn, %peer, %dialect, "connection opened");
                self.links.insert(conn, link);
                self.core.handle_input(
                    now,
                    ServerInput::ConnectionOpened {
                        conn,
                        peer,
                        dialect,
                    },
                );
            }
            ConnectionMessage::StreamData { conn, bytes } => {
                trace!(%conn, len = bytes.len(), "stream data");
                self.core.handle_input(
                    now,
                    ServerInput::StreamData {
                        conn,
                        bytes: &bytes,
                    },
                );
            }
            ConnectionMessage::StreamFinished { conn } => {
                debug!(%conn, "client finished its signalling stream");
                self.core
                    .handle_input(now, ServerInput::StreamFinished { conn });
            }
            ConnectionMessage::Datagram { conn, bytes } => {
                trace!(%conn, len = bytes.len(), "datagram");
                self.core.handle_input(
                    now,
                    ServerInput::Datagram {
                        conn,
                        bytes: &bytes,
                    },
                );
            }
            ConnectionMessage::Closed { conn, reason } => {
                debug!(%conn, %reason, "connection closed");
                self.links.remove(&conn);
                self.core
                    .handle_input(now, ServerInput::ConnectionClosed { conn });
            }
        }
    }

    fn carry_out_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                ServerOutput::SendDatagram { conn, datagram } => {
                    let Some(link) = self.links.get(&conn) else {
                        continue;
                    };
                    if let Err(error) = link.connection.send_datagram(Bytes::from(datagram)) {
                        trace!(%conn, %error, "datagram dropped");
                    }
                }
                ServerOutput::SendFrame {
                    conn,
                    stream,
                    frame,
                } => {
                    let Some(link) = self.links.get(&conn) else {
                        trace!(%conn, "frame for a closed connection dropped");
                        continue;
                    };
                    let command = match stream {
                        OutStream::Control => WriterCommand::Control(frame),
                        OutStream::Push => WriterCommand::Push(frame),
                    };
                    link.enqueue(conn, command);
                }
                ServerOutput::Close { conn, reason } => {
                    debug!(%conn, code = reason.code, reason = %reason.message, "closing connection");
                    if let Some(link) = self.links.get(&conn) {
                        link.enqueue(conn, WriterCommand::Close(reason));
                    }
                }
                ServerOutput::Event(event) => {
                    self.event_log.log(tokio::time::Instant::now(), &event);
                }
            }
        }
        if let Some(recording) = &mut self.recording {
            for event in self.core.take_recording() {
                recording.offer(event);
            }
        }
    }
}

/// How often refused connection attempts are summarised in the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections until the endpoint closes, one task each. Attempts
/// over the per-address rate are refused before quinn starts a handshake.
async fn accept_connections(
    endpoint: Endpoint,
    connection_rate: RateLimit,
    inputs: mpsc::Sender<ConnectionMessage>,
) {
    let clock = Clock::start();
    let mut limiter = ConnectionLimiter::new(connection_rate, clock.now());
    let mut next_refusal_log = clock.now();
    let mut next_id = 0u64;
    while let Some(incoming) = endpoint.accept().await {
        let peer = incoming.remote_address();
        let now = clock.now();
        if !limiter.allow(peer.ip(), now) {
            trace!(%peer, "connection attempt over the per-address rate refused");
            incoming.refuse();
            if now >= next_refusal_log {
                warn!(
                    %peer,
                    refused = limiter.take_refused(),
                    per_second = connection_rate.per_second,
                    burst = connection_rate.burst,
                    "refusing connection attempts over the per-address rate"
                );
                next_refusal_log = now + REFUSAL_LOG_INTERVAL;
            }
            continue;
        }

        let conn = ConnectionId(next_id);
        next_id += 1;
        trace!(%conn, %peer, "incoming connection");
        tokio::spawn(serve_connection(conn, incoming, inputs.clone()));
    }
}

/// Takes one connection from handshake to close, forwarding what it reads
/// to the owner.
async fn serve_connection(
    conn: ConnectionId,
    incoming: quinn::Incoming,
    inputs: mpsc::Sender<ConnectionMessage>,
) {
    let peer = incoming.remote_address();
    let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            debug!(%conn, %peer, %error, "handshake failed");
            return;
        }
        Err(_) => {
            debug!(%conn, %peer, "handshake timed out after {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    let dialect = negotiated_dialect(&connection);

    let (send, recv) = match tokio::time::timeout(STREAM_TIMEOUT, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(error)) => {
            debug!(%conn, %peer, %error, "connection ended before the client opened its signalling stream");
            return;
        }
        Err(_) => {
            debug!(%conn, %peer, "no signalling stream within {STREAM_TIMEOUT:?}; closing");
            connection.close(
                VarInt::from_u32(close_code::JOIN_TIMEOUT),
                b"no signalling stream opened in time",
            );
            return;
        }
    };

    let (writer, commands) = mpsc::channel(WRITER_QUEUE);
    tokio::spawn(run_writer(conn, connection.clone(), send, commands));

    let link = Link {
        connection: connection.clone(),
        writer,
    };
    let opened = ConnectionMessage::Opened {
        conn,
        peer,
        dialect,
        link,
    };
    if inputs.send(opened).await.is_err() {
        connection.close(
            VarInt::from_u32(close_code::SHUTDOWN),
            SHUTDOWN_REASON.as_bytes(),
        );
        return;
    }

    let reason = forward_reads(conn, &connection, recv, &inputs).await;
    // The owner may be gone already during shutdown; nothing is left to tell.
    let _ = inputs
        .send(ConnectionMessage::Closed { conn, reason })
        .await;
}

/// Forwards the bidirectional stream and the datagrams until the
/// connection ends, and returns why it ended.
async fn forward_reads(
    conn: ConnectionId,
    connection: &Connection,
    mut recv: RecvStream,
    inputs: &mpsc::Sender<ConnectionMessage>,
) -> String {
    let mut stream_open = true;
    loop {
        // Biased, so that a simulation replaying a seed sees stream data
        // and datagrams that are ready together in the same order.
        let message = tokio::select! {
            biased;
            chunk = recv.read_chunk(MAX_READ_CHUNK, true), if stream_open => match chunk {
                Ok(Some(chunk)) => ConnectionMessage::StreamData { conn, bytes: chunk.bytes },
                Ok(None) => {
                    stream_open = false;
                    ConnectionMessage::StreamFinished { conn }
                }
                Err(ReadError::ConnectionLost(_)) => {
                    // The datagram branch reports the connection's end.
                    stream_open = false;
                    continue;
                }
                Err(error) => {
                    debug!(%conn, %error, "signalling stream failed; closing");
                    connection.close(
                        VarInt::from_u32(close_code::PROTOCOL_ERROR),
                        b"signalling stream reset",
                    );
                    stream_open = false;
                    continue;
                }
            },
            datagram = connection.read_datagram() => match datagram {
                Ok(bytes) => ConnectionMessage::Datagram { conn, bytes },
                Err(error) => {
                    if stream_open {
                        forward_remaining_stream(conn, &mut recv, inputs).await;
                    }
                    return describe_close(&error);
                }
            },
        };

        if inputs.send(message).await.is_err() {
            connection.close(
                VarInt::from_u32(close_code::SHUTDOWN),
                SHUTDOWN_REASON.as_bytes(),
            );
            return "server stopped".to_owned();
        }
    }
}

/// Forwards what the stream still contains after the connection ended: quinn
/// keeps received data readable after a close, so a `Leave` written just
/// before the client closed still arrives.
async fn forward_remaining_stream(
    conn: ConnectionId,
    recv: &mut RecvStream,
    inputs: &mpsc::Sender<ConnectionMessage>,
) {
    loop {
        let message = match recv.read_chunk(MAX_READ_CHUNK, true).await {
            Ok(Some(chunk)) => ConnectionMessage::StreamData {
                conn,
                bytes: chunk.bytes,
            },
            Ok(None) => ConnectionMessage::StreamFinished { conn },
            Err(_) => return,
        };
        let finished = matches!(message, ConnectionMessage::StreamFinished { .. });
        if inputs.send(message).await.is_err() || finished {
            return;
        }
    }
}

fn describe_close(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ApplicationClosed(close) => format!(
            "closed by the client (code {}): {}",
            close.error_code,
            String::from_utf8_lossy(&close.reason)
        ),
        ConnectionError::LocallyClosed => "closed by the server".to_owned(),
        ConnectionError::TimedOut => "timed out".to_owned(),
        other => other.to_string(),
    }
}

/// Writes one connection's frames in the order the core queued them, and
/// closes the connection on a [`WriterCommand::Close`].
async fn run_writer(
    conn: ConnectionId,
    connection: Connection,
    mut send: SendStream,
    mut commands: mpsc::Receiver<WriterCommand>,
) {
    // One task per unfinished push stream, each ending when the client has
    // acknowledged its frame.
    let mut pushes = JoinSet::new();

    while let Some(command) = commands.recv().await {
        match command {
            WriterCommand::Control(frame) => {
                if let Err(error) = send.write_all(&frame).await {
                    debug!(%conn, %error, "signalling frame not written");
                }
            }
            WriterCommand::Push(frame) => {
                while pushes.try_join_next().is_some() {}
                match write_push(&connection, &frame).await {
                    Ok(stream) => {
                        pushes.spawn(async move {
                            let _ = stream.stopped().await;
                        });
                    }
                    Err(error) => debug!(%conn, %error, "push frame not written"),
                }
            }
            WriterCommand::Close(reason) => {
                // Finishing the stream and waiting for `stopped` waits for the
                // client to acknowledge every byte written before the close.
                let _ = send.finish();
                let flushed = async {
                    let _ = send.stopped().await;
                    while pushes.join_next().await.is_some() {}
                };
                if tokio::time::timeout(CLOSE_GRACE, flushed).await.is_err() {
                    debug!(%conn, "client did not acknowledge every frame within {CLOSE_GRACE:?}; closing anyway");
                }
                connection.close(VarInt::from_u32(reason.code), reason.message.as_bytes());
                return;
            }
        }
    }
}

async fn write_push(connection: &Connection, frame: &[u8]) -> Result<SendStream, io::Error> {
    let mut stream = connection.open_uni().await.map_err(io::Error::other)?;
    stream.write_all(frame).await.map_err(io::Error::other)?;
    stream.finish().map_err(io::Error::other)?;
    Ok(stream)
}
