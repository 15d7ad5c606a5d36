//! The QUIC client: connects to a server, then drives the core's
//! [`voicemcu_core::client::Client`] with what the connection delivers, a
//! 20 ms audio clock, and the user's typed commands.
//!
//! [`connect`] makes the connection and picks the dialect. It offers the
//! native ALPN first. A voicemcu 0.1 server negotiates no ALPN, so rustls
//! fails that handshake with the `no_application_protocol` alert, and
//! [`connect`] then reconnects without ALPN as a legacy client.
//! [`run_client`] runs a whole session on top of it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use quinn::{
    Connection, ConnectionError, Endpoint, ReadError, ReadToEndError, RecvStream, SendStream,
    VarInt,
};
use rustls::AlertDescription;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, trace, warn};
use voicemcu_core::audio::{FrameSink, FrameSource, PcmFrame, FRAME_DURATION, SILENCE};
use voicemcu_core::client::{
    shutdown_detail, Client, ClientConfig, ClientEvent, ClientInput, ClientOutput, ClientState,
};
use voicemcu_core::codec::CodecError;
use voicemcu_core::server::close_code;
use voicemcu_core::wire::{Dialect, FRAME_HEADER_LEN, MAX_FRAME_LEN};

use crate::clock::{sleep_until, Clock};
use crate::endpoint::{client_bind_addr, client_config, negotiated_dialect, Trust};
use crate::tls::{Fingerprint, TlsError, SERVER_NAME};

/// How long [`connect`] waits for a handshake by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times [`connect`] tries a server that refuses the connection,
/// by default.
pub const REFUSED_ATTEMPTS: u32 = 3;

/// How long [`connect`] waits before it tries a refusing server again.
pub const REFUSED_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How long closing waits for the server to acknowledge the last frames.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How far the audio clock may fall behind before it skips the missed
/// ticks instead of running them all at once.
pub const MAX_AUDIO_LAG: Duration = Duration::from_millis(200);

/// How long playback continues after the source ends, when the session is
/// set to end with the source, so the last words come back from the mixer.
pub const SOURCE_END_TAIL: Duration = Duration::from_secs(1);

/// How long the endpoint may take to send its close before the client
/// returns.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The largest push stream read: one frame of the maximum length.
const MAX_PUSH_LEN: usize = FRAME_HEADER_LEN + MAX_FRAME_LEN;

/// The largest chunk read from the bidirectional stream at once.
const MAX_READ_CHUNK: usize = FRAME_HEADER_LEN + MAX_FRAME_LEN;

/// The QUIC application close code the client closes with.
const CLOSE_CODE_NORMAL: u32 = 0;

/// The dialect a client offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DialectChoice {
    /// Offer the native ALPN, and fall back to legacy when the server
    /// rejects it.
    #[default]
    Auto,
    /// Offer no ALPN, as a voicemcu 0.1 client does.
    Legacy,
}

/// The server address, certificate trust and dialect of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    pub server: SocketAddr,
    /// The TLS server name (SNI). voicemcu servers' certificates name
    /// `localhost`.
    pub server_name: String,
    pub trust: Trust,
    pub dialect: DialectChoice,
    /// How long each handshake attempt may take.
    pub connect_timeout: Duration,
    /// How many times to try a server that refuses the connection, one
    /// second apart; 1 tries once.
    pub refused_attempts: u32,
}

impl ConnectOptions {
    /// Options for `server` with the defaults: server name `localhost`,
    /// automatic dialect, [`CONNECT_TIMEOUT`], [`REFUSED_ATTEMPTS`].
    pub fn new(server: SocketAddr, trust: Trust) -> ConnectOptions {
        ConnectOptions {
            server,
            server_name: SERVER_NAME.to_owned(),
            trust,
            dialect: DialectChoice::Auto,
            connect_timeout: CONNECT_TIMEOUT,
            refused_attempts: REFUSED_ATTEMPTS,
        }
    }
}

/// Everything [`run_client`] needs besides its audio and channels.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect: ConnectOptions,
    pub core: ClientConfig,
    /// Leave the room [`SOURCE_END_TAIL`] after the audio source ends.
    /// Otherwise the client stays, sending nothing, until stopped.
    pub end_when_source_ends: bool,
    /// Faults to inject into the audio sender. Only simulations set any.
    pub faults: SenderFaults,
}

/// The largest skew of a [`SenderFaults`] clock, fast or slow: 10 %.
pub const MAX_CLOCK_SKEW_PPM: i32 = 100_000;

/// Faults a simulation injects into a client's audio sender, to check that
/// the server copes with clients that misbehave in ways real ones do. The
/// default injects none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderFaults {
    /// The audio clock's rate against true time, in parts per million:
    /// 5000 ticks every 19.9 ms (0.5 % fast), -5000 every 20.1 ms.
    /// Capture and playback both follow it, as they follow one sound
    /// card's crystal. Clamped to [`MAX_CLOCK_SKEW_PPM`] either way.
    pub clock_skew_ppm: i32,
    /// Restarts of the outgoing sequence numbers, each as the time since
    /// the session started and the sequence to start over at, in time
    /// order. One that falls before the join waits for it.
    pub sequence_restarts: Vec<(Duration, u32)>,
}

impl SenderFaults {
    /// Returns the audio clock's period.
    pub fn audio_period(&self) -> Duration {
        let ppm = i64::from(
            self.clock_skew_ppm
                .clamp(-MAX_CLOCK_SKEW_PPM, MAX_CLOCK_SKEW_PPM),
        );
        let nanos = FRAME_DURATION.as_nanos() as i64 * 1_000_000 / (1_000_000 + ppm);
        Duration::from_nanos(nanos as u64)
    }
}

/// The reason a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientExit {
    /// The user left with `/leave`.
    Left,
    /// The host kicked this client.
    Kicked { reason: String },
    /// The server rejected the join.
    JoinRejected { message: String },
    /// The server did not reply to the join in time.
    JoinTimedOut,
    /// The server shut down.
    ServerShutdown { reason: String },
    /// The connection ended without the server saying why.
    ConnectionLost { reason: String },
    /// The client state machine ended the session, for example after the
    /// server broke the protocol.
    Closed { reason: String },
    /// The audio source ended and the client left.
    SourceEnded,
    /// The stop future completed and the client left.
    Stopped,
}

impl fmt::Display for ClientExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientExit::Left => f.write_str("left the room"),
            ClientExit::Kicked { reason } => write!(f, "kicked: {reason}"),
            ClientExit::JoinRejected { message } => {
                write!(f, "join rejected by the server: {message}")
            }
            ClientExit::JoinTimedOut => f.write_str("the server did not answer the join in time"),
            ClientExit::ServerShutdown { reason } => match shutdown_detail(reason) {
                Some(reason) => write!(f, "the server shut down: {reason}"),
                None => f.write_str("the server shut down"),
            },
            ClientExit::ConnectionLost { reason } => write!(f, "connection lost: {reason}"),
            ClientExit::Closed { reason } => write!(f, "session closed: {reason}"),
            ClientExit::SourceEnded => f.write_str("the audio source ended; left the room"),
            ClientExit::Stopped => f.write_str("stopped; left the room"),
        }
    }
}

/// An error that kept a client from connecting or ended its session early.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),

    #[error("failed to create the audio codec: {0}")]
    Codec(#[from] CodecError),

    #[error("failed to bind a UDP socket on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },

    #[error("cannot connect to {server} as {server_name:?}: {source}")]
    Connect {
        server: SocketAddr,
        server_name: String,
        source: quinn::ConnectError,
    },

    #[error(
        "the certificate of {server} does not match the pinned fingerprint: expected {expected}, got {got} \
         (someone may be impersonating the server; if its operator confirms over a channel you trust \
         that the certificate changed, pass the new fingerprint with --cert-hash)"
    )]
    FingerprintMismatch {
        server: SocketAddr,
        expected: Fingerprint,
        got: Fingerprint,
    },

    #[error(
        "{server} refused the connection {attempts} times: it limits new connections from one \
         address (its --connection-rate and --connection-burst); wait a few seconds and try \
         again, or ask its operator to raise the limit"
    )]
    Refused { server: SocketAddr, attempts: u32 },

    #[error("QUIC handshake with {server} failed: {source}")]
    Handshake {
        server: SocketAddr,
        source: ConnectionError,
    },

    #[error(
        "timed out after {} s connecting to {server}: no handshake reply (check that the server is running and the address and port are right)",
        after.as_secs_f32()
    )]
    ConnectTimeout { server: SocketAddr, after: Duration },

    #[error("failed to open the signalling stream to {server}: {source}")]
    OpenStream {
        server: SocketAddr,
        source: ConnectionError,
    },

    #[error("failed to write playback audio: {0}")]
    Sink(io::Error),
}

/// Connects to `options.server` and returns the connection and the dialect
/// its handshake negotiated.
pub async fn connect(
    endpoint: &Endpoint,
    options: &ConnectOptions,
) -> Result<(Connection, Dialect), ClientError> {
    if options.trust == Trust::SkipVerify {
        // Debug, not warn: the command line warns before it gets here.
        debug!(
            server = %options.server,
            "server certificate verification is disabled: anyone on the network path can impersonate the server"
        );
    }

    match options.dialect {
        DialectChoice::Legacy => connect_retrying(endpoint, options, false).await,
        DialectChoice::Auto => match connect_retrying(endpoint, options, true).await {
            Err(ClientError::Handshake { source, .. }) if is_alpn_rejection(&source) => {
                info!(
                    server = %options.server,
                    "server rejected ALPN voicemcu/2; reconnecting as a legacy 0.1 client"
                );
                connect_retrying(endpoint, options, false).await
            }
            other => other,
        },
    }
}

/// Connects like [`attempt_connect`], trying again after
/// [`REFUSED_RETRY_DELAY`] while the server refuses the connection, up to
/// `options.refused_attempts` attempts in all. A server refuses connections
/// from an address that exceeded its connection rate, which a client
/// that first probed the certificate can do on its own.
async fn connect_retrying(
    endpoint: &Endpoint,
    options: &ConnectOptions,
    offer_native_alpn: bool,
) -> Result<(Connection, Dialect), ClientError> {
    let mut attempts = 1;
    loop {
        match attempt_connect(endpoint, options, offer_native_alpn).await {
            Err(ClientError::Handshake { source, .. }) if is_refusal(&source) => {
                if attempts >= options.refused_attempts {
                    return Err(ClientError::Refused {
                        server: options.server,
                        attempts,
                    });
                }
                debug!(server = %options.server, attempts, "server refused the connection; trying again");
                attempts += 1;
                tokio::time::sleep(REFUSED_RETRY_DELAY).await;
            }
            other => return other,
        }
    }
}

/// Returns whether the server refused the connection before any handshake.
fn is_refusal(error: &ConnectionError) -> bool {
    matches!(
        error,
        ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
    )
}

async fn attempt_connect(
    endpoint: &Endpoint,
    options: &ConnectOptions,
    offer_native_alpn: bool,
) -> Result<(Connection, Dialect), ClientError> {
    let crypto = client_config(options.trust, offer_native_alpn)?;
    let connecting = endpoint
        .connect_with(crypto.config, options.server, &options.server_name)
        .map_err(|source| ClientError::Connect {
            server: options.server,
            server_name: options.server_name.clone(),
            source,
        })?;

    let connection = match tokio::time::timeout(options.connect_timeout, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(source)) => {
            if let Some(verifier) = &crypto.pinned {
                if let Some(got) = verifier.rejected() {
                    return Err(ClientError::FingerprintMismatch {
                        server: options.server,
                        expected: verifier.expected(),
                        got,
                    });
                }
            }
            return Err(ClientError::Handshake {
                server: options.server,
                source,
            });
        }
        Err(_) => {
            return Err(ClientError::ConnectTimeout {
                server: options.server,
                after: options.connect_timeout,
            })
        }
    };

    let dialect = negotiated_dialect(&connection);
    Ok((connection, dialect))
}

/// Returns whether a handshake failed because ALPN negotiation did: the server
/// rejected our protocol, or accepted the connection without choosing one.
fn is_alpn_rejection(error: &ConnectionError) -> bool {
    let alpn_failed =
        quinn::TransportErrorCode::crypto(u8::from(AlertDescription::NoApplicationProtocol));
    match error {
        ConnectionError::ConnectionClosed(close) => close.error_code == alpn_failed,
        ConnectionError::TransportError(error) => error.code == alpn_failed,
        _ => false,
    }
}

/// Runs one session: connects, joins, streams audio both ways and carries
/// out commands until the session ends or `stop` completes, then leaves.
///
/// Each 20 ms, once joined, one frame from `source` is sent and one frame of
/// the server's mix is written to `sink`. Events go to `events` as they
/// happen; lines from `commands` are handled like typed slash commands.
/// `sink.finish()` runs on every exit path.
pub async fn run_client(
    options: ClientOptions,
    source: Box<dyn FrameSource>,
    mut sink: Box<dyn FrameSink>,
    commands: mpsc::Receiver<String>,
    events: mpsc::UnboundedSender<ClientEvent>,
    stop: impl Future<Output = ()>,
) -> Result<ClientExit, ClientError> {
    let bind = client_bind_addr(options.connect.server);
    let endpoint = match Endpoint::client(bind) {
        Ok(endpoint) => endpoint,
        Err(source) => {
            if let Err(error) = sink.finish() {
                warn!(%error, "failed to finish the playback sink");
            }
            return Err(ClientError::Bind { addr: bind, source });
        }
    };
    run_client_on(endpoint, options, source, sink, commands, events, stop).await
}

/// Runs one session like [`run_client`], over an endpoint built elsewhere,
/// for example over a simulated socket.
pub async fn run_client_on(
    endpoint: Endpoint,
    options: ClientOptions,
    mut source: Box<dyn FrameSource>,
    mut sink: Box<dyn FrameSink>,
    commands: mpsc::Receiver<String>,
    events: mpsc::UnboundedSender<ClientEvent>,
    stop: impl Future<Output = ()>,
) -> Result<ClientExit, ClientError> {
    let result = run_session(
        &endpoint,
        &options,
        &mut *source,
        &mut *sink,
        commands,
        events,
        stop,
    )
    .await;
    let finished = sink.finish();

    if tokio::time::timeout(IDLE_WAIT, endpoint.wait_idle())
        .await
        .is_err()
    {
        debug!("connection still draining after {IDLE_WAIT:?}");
    }

    match (result, finished) {
        (Ok(exit), Ok(())) => Ok(exit),
        (Ok(_), Err(error)) => Err(ClientError::Sink(error)),
        (Err(error), Err(sink_error)) => {
            warn!(%sink_error, "failed to finish the playback sink");
            Err(error)
        }
        (Err(error), Ok(())) => Err(error),
    }
}

async fn run_session(
    endpoint: &Endpoint,
    options: &ClientOptions,
    source: &mut dyn FrameSource,
    sink: &mut dyn FrameSink,
    commands: mpsc::Receiver<String>,
    events: mpsc::UnboundedSender<ClientEvent>,
    stop: impl Future<Output = ()>,
) -> Result<ClientExit, ClientError> {
    let clock = Clock::start();
    let started = tokio::time::Instant::now();
    let core = Client::new(options.core.clone(), clock.now())?;
    let server = options.connect.server;

    tokio::pin!(stop);
    let (connection, dialect) = tokio::select! {
        connected = connect(endpoint, &options.connect) => connected?,
        () = &mut stop => return Ok(ClientExit::Stopped),
    };
    info!(%server, %dialect, "connected");

    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|source| ClientError::OpenStream { server, source })?;

    let mut session = Session {
        core,
        clock,
        connection,
        send,
        events,
        source,
        sink,
        end_when_source_ends: options.end_when_source_ends,
        audio_period: options.faults.audio_period(),
        sequence_restarts: options
            .faults
            .sequence_restarts
            .iter()
            .map(|(after, sequence)| (started + *after, *sequence))
            .collect(),
        source_ended: false,
        tail_end: None,
        closed: false,
        exit: None,
        failure: None,
    };
    let exit = session.run(dialect, recv, commands, stop).await;

    if tokio::time::timeout(IDLE_WAIT, endpoint.wait_idle())
        .await
        .is_err()
    {
        debug!("connection still draining after {IDLE_WAIT:?}");
    }
    match session.failure {
        Some(error) => Err(error),
        None => Ok(exit),
    }
}

/// One connected session.
struct Session<'a> {
    core: Client,
    clock: Clock,
    connection: Connection,
    send: SendStream,
    events: mpsc::UnboundedSender<ClientEvent>,
    source: &'a mut dyn FrameSource,
    sink: &'a mut dyn FrameSink,
    end_when_source_ends: bool,
    /// The audio clock's period: [`FRAME_DURATION`] unless a fault skews it.
    audio_period: Duration,
    /// Injected restarts of the outgoing sequence still to come: when, and
    /// the sequence to start over at.
    sequence_restarts: VecDeque<(tokio::time::Instant, u32)>,
    source_ended: bool,
    /// When to leave, once the source has ended.
    tail_end: Option<tokio::time::Instant>,
    /// Whether the connection is closed, by either side.
    closed: bool,
    exit: Option<ClientExit>,
    /// A local failure that ended the session.
    failure: Option<ClientError>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        dialect: Dialect,
        mut recv: RecvStream,
        mut commands: mpsc::Receiver<String>,
        stop: impl Future<Output = ()>,
    ) -> ClientExit {
        tokio::pin!(stop);
        let connection = self.connection.clone();
        let mut pushes: JoinSet<Result<Vec<u8>, ReadToEndError>> = JoinSet::new();
        let mut stream_open = true;
        let mut commands_open = true;
        let mut next_tick = tokio::time::Instant::now() + self.audio_period;

        self.core
            .handle_input(self.clock.now(), ClientInput::Connected { dialect });
        self.carry_out_outputs().await;

        while self.exit.is_none() {
            let deadline = self
                .core
                .poll_timeout()
                .map(|at| self.clock.tokio_instant(at));
            let mut lost = None;

            tokio::select! {
                biased;
                () = &mut stop => {
                    info!("stopping; leaving the room");
                    self.leave(ClientExit::Stopped).await;
                }
                () = tokio::time::sleep_until(next_tick) => {
                    next_tick = self.audio_tick(next_tick);
                    if self.failure.is_some() {
                        self.leave(ClientExit::Stopped).await;
                    } else if self.tail_end.is_some_and(|end| tokio::time::Instant::now() >= end) {
                        info!("audio source ended; leaving the room");
                        self.leave(ClientExit::SourceEnded).await;
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.core.handle_input(self.clock.now(), ClientInput::Timeout);
                }
                chunk = recv.read_chunk(MAX_READ_CHUNK, true), if stream_open => match chunk {
                    Ok(Some(chunk)) => {
                        trace!(len = chunk.bytes.len(), "stream data");
                        self.core.handle_input(self.clock.now(), ClientInput::StreamData(&chunk.bytes));
                    }
                    Ok(None) => {
                        debug!("server finished the signalling stream");
                        stream_open = false;
                    }
                    // The datagram branch reports the connection's end.
                    Err(ReadError::ConnectionLost(_)) => stream_open = false,
                    Err(error) => {
                        warn!(%error, "signalling stream from the server failed");
                        stream_open = false;
                    }
                },
                stream = connection.accept_uni() => match stream {
                    Ok(mut stream) => {
                        pushes.spawn(async move { stream.read_to_end(MAX_PUSH_LEN).await });
                    }
                    Err(error) => lost = Some(error),
                },
                Some(read) = pushes.join_next(), if !pushes.is_empty() => {
                    self.handle_push(read);
                }
                datagram = connection.read_datagram() => match datagram {
                    Ok(bytes) => {
                        trace!(len = bytes.len(), "datagram");
                        self.core.handle_input(self.clock.now(), ClientInput::Datagram(&bytes));
                    }
                    Err(error) => lost = Some(error),
                },
                command = commands.recv(), if commands_open => match command {
                    Some(line) => self.core.handle_input(self.clock.now(), ClientInput::Command(&line)),
                    None => commands_open = false,
                },
            }

            if let Some(error) = lost {
                let remaining = if stream_open { Some(&mut recv) } else { None };
                self.connection_ended(error, remaining, &mut pushes).await;
            }
            self.carry_out_outputs().await;
        }

        self.exit.take().unwrap_or(ClientExit::Stopped)
    }

    /// Runs one tick of the 20 ms audio clock scheduled for `scheduled`
    /// and returns when the next one is due.
    fn audio_tick(&mut self, scheduled: tokio::time::Instant) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let mut next = scheduled + self.audio_period;
        let lag = now.saturating_duration_since(scheduled);
        if lag > MAX_AUDIO_LAG {
            debug!(?lag, "audio clock fell behind; skipping the missed ticks");
            next = now + self.audio_period;
        }

        if self.core.state() != ClientState::Joined {
            return next;
        }
        let core_now = self.clock.core_instant(now);

        while let Some(&(at, sequence)) = self.sequence_restarts.front() {
            if at > now {
                break;
            }
            self.sequence_restarts.pop_front();
            self.core.restart_sequence(sequence);
        }

        if !self.source_ended {
            let mut frame: PcmFrame = SILENCE;
            if self.source.next_frame(&mut frame) {
                self.core.send_audio(core_now, &frame);
            } else {
                info!("audio source ended");
                self.source_ended = true;
                if self.end_when_source_ends {
                    self.tail_end = Some(now + SOURCE_END_TAIL);
                }
            }
        }

        let mut playback: PcmFrame = SILENCE;
        self.core.playout(core_now, &mut playback);
        if let Err(error) = self.sink.write_frame(&playback) {
            warn!(%error, "failed to write playback audio; leaving");
            self.failure = Some(ClientError::Sink(error));
        }
        next
    }

    fn handle_push(
        &mut self,
        read: Result<Result<Vec<u8>, ReadToEndError>, tokio::task::JoinError>,
    ) {
        match read {
            Ok(Ok(bytes)) => {
                trace!(len = bytes.len(), "push stream");
                self.core
                    .handle_input(self.clock.now(), ClientInput::PushStream(&bytes));
            }
            Ok(Err(ReadToEndError::TooLong)) => {
                warn!("server sent a push stream over {MAX_PUSH_LEN} bytes; ignored");
            }
            Ok(Err(error)) => debug!(%error, "push stream not read"),
            Err(error) => debug!(%error, "push stream reader ended"),
        }
    }

    /// Hands the core what the connection still held, then its loss.
    ///
    /// quinn keeps data that arrived before a close readable afterwards.
    /// Reading it first means a `Kicked` or shutdown notice written just
    /// before the server closed reaches the core ahead of the loss, so the
    /// session ends with the server's reason, not a bare "connection lost".
    async fn connection_ended(
        &mut self,
        error: ConnectionError,
        recv: Option<&mut RecvStream>,
        pushes: &mut JoinSet<Result<Vec<u8>, ReadToEndError>>,
    ) {
        self.closed = true;

        if let Some(recv) = recv {
            while let Ok(Some(chunk)) = recv.read_chunk(MAX_READ_CHUNK, true).await {
                self.core
                    .handle_input(self.clock.now(), ClientInput::StreamData(&chunk.bytes));
            }
        }
        while let Ok(mut stream) = self.connection.accept_uni().await {
            pushes.spawn(async move { stream.read_to_end(MAX_PUSH_LEN).await });
        }
        let drained = async {
            let mut reads = Vec::new();
            while let Some(read) = pushes.join_next().await {
                reads.push(read);
            }
            reads
        };
        match tokio::time::timeout(CLOSE_GRACE, drained).await {
            Ok(reads) => reads.into_iter().for_each(|read| self.handle_push(read)),
            Err(_) => debug!("push streams still unread after the connection ended"),
        }

        if self.exit.is_none() {
            self.exit = exit_from_close(&error);
        }
        let reason = describe_loss(&error);
        info!(%reason, "connection ended");
        self.core.handle_input(
            self.clock.now(),
            ClientInput::ConnectionLost {
                reason: reason.clone(),
            },
        );
        self.carry_out_outputs().await;

        // The core reports no loss after it ended the session itself, and a
        // closed connection must end the loop either way.
        if self.exit.is_none() {
            self.exit = Some(ClientExit::ConnectionLost { reason });
        }
    }

    /// Asks the core to leave, closes the connection if the core did not,
    /// and ends the session with `exit`.
    async fn leave(&mut self, exit: ClientExit) {
        if !self.closed {
            self.core
                .handle_input(self.clock.now(), ClientInput::Command("/leave"));
            self.carry_out_outputs().await;
            self.close_connection("left").await;
        }
        self.exit = Some(exit);
    }

    async fn carry_out_outputs(&mut self) {
        let mut close = None;
        while let Some(output) = self.core.poll_output() {
            match output {
                ClientOutput::SendFrame(frame) => {
                    if self.closed {
                        continue;
                    }
                    if let Err(error) = self.send.write_all(&frame).await {
                        debug!(%error, "signalling frame not written");
                    }
                }
                ClientOutput::SendDatagram(datagram) => {
                    if let Err(error) = self.connection.send_datagram(datagram.into()) {
                        trace!(%error, "datagram dropped");
                    }
                }
                ClientOutput::Event(event) => self.report(event),
                ClientOutput::Close { reason } => close = Some(reason),
            }
        }

        if let Some(reason) = close {
            self.close_connection(&reason).await;
            if self.exit.is_none() {
                self.exit = Some(ClientExit::Closed { reason });
            }
        }
    }

    fn report(&mut self, event: ClientEvent) {
        debug!(%event, "client event");
        if self.exit.is_none() {
            self.exit = exit_from_event(&event);
        }
        // The caller may have dropped the receiver to ignore events.
        let _ = self.events.send(event);
    }

    /// Finishes the signalling stream, waits (at most [`CLOSE_GRACE`]) for
    /// the server to acknowledge it, then closes the connection.
    async fn close_connection(&mut self, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;

        let _ = self.send.finish();
        if tokio::time::timeout(CLOSE_GRACE, self.send.stopped())
            .await
            .is_err()
        {
            debug!("server did not acknowledge the last frames within {CLOSE_GRACE:?}");
        }
        debug!(%reason, "closing the connection");
        self.connection
            .close(VarInt::from_u32(CLOSE_CODE_NORMAL), reason.as_bytes());
    }
}

/// Maps a session-ending event to its exit.
fn exit_from_event(event: &ClientEvent) -> Option<ClientExit> {
    let exit = match event {
        ClientEvent::Left => ClientExit::Left,
        ClientEvent::Kicked { reason } => ClientExit::Kicked {
            reason: reason.clone(),
        },
        ClientEvent::JoinRejected { message } => ClientExit::JoinRejected {
            message: message.clone(),
        },
        ClientEvent::JoinTimedOut { .. } => ClientExit::JoinTimedOut,
        ClientEvent::ShuttingDown { reason } => ClientExit::ServerShutdown {
            reason: reason.clone(),
        },
        ClientEvent::ConnectionLost { reason } => ClientExit::ConnectionLost {
            reason: reason.clone(),
        },
        _ => return None,
    };
    Some(exit)
}

/// Maps a voicemcu server's close code to an exit, for when no event ended
/// the session first. A legacy-dialect client learns of a shutdown only
/// from an `Error` message and the close.
fn exit_from_close(error: &ConnectionError) -> Option<ClientExit> {
    let ConnectionError::ApplicationClosed(close) = error else {
        return None;
    };
    let reason = String::from_utf8_lossy(&close.reason).into_owned();
    let code = u32::try_from(close.error_code.into_inner()).ok()?;
    match code {
        close_code::SHUTDOWN => Some(ClientExit::ServerShutdown { reason }),
        close_code::KICKED => Some(ClientExit::Kicked { reason }),
        close_code::JOIN_REJECTED => Some(ClientExit::JoinRejected { message: reason }),
        _ => None,
    }
}

fn describe_loss(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ApplicationClosed(close) => format!(
            "the server closed the connection (code {}): {}",
            close.error_code,
            String::from_utf8_lossy(&close.reason)
        ),
        ConnectionError::ConnectionClosed(close) => {
            format!("the server closed the connection with a transport error: {close}")
        }
        ConnectionError::TimedOut => {
            "timed out: nothing heard from the server within the idle timeout (the network \
             failed, or the server stopped or restarted with another certificate or port)"
                .to_owned()
        }
        ConnectionError::Reset => {
            "the server reset the connection (it may have restarted)".to_owned()
        }
        ConnectionError::LocallyClosed => "closed by this client".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(clock_skew_ppm: i32) -> Duration {
        SenderFaults {
            clock_skew_ppm,
            ..SenderFaults::default()
        }
        .audio_period()
    }

    #[test]
    fn skewed_clock_ticks_faster_or_slower() {
        assert_eq!(period(0), FRAME_DURATION);
        // 0.5 % fast: 201 ticks in the time a true clock takes for 200.
        assert_eq!(period(5_000), Duration::from_nanos(19_900_497));
        assert_eq!(period(-5_000), Duration::from_nanos(20_100_502));
    }

    #[test]
    fn skew_is_clamped() {
        assert_eq!(period(i32::MAX), period(MAX_CLOCK_SKEW_PPM));
        assert_eq!(period(i32::MIN), period(-MAX_CLOCK_SKEW_PPM));
    }
}
