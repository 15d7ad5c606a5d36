//! The simulated world of one run: a turmoil `Sim` with a `server` host
//! running io-quic's `QuicServer` and one host per participant running
//! io-quic's `run_client_on`, each over its own [`SimUdpSocket`] and
//! [`SimRuntime`].
//!
//! Every random choice is derived from the run's seed: turmoil's network
//! RNG, each quinn endpoint's RNG (`EndpointConfig::rng_seed`, which seeds
//! packet-number skipping and the reserved transport parameter), the
//! sender-side loss, the core server's client ids, and the server's key.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use voicemcu_core::audio::{FrameSink, PcmFrame, FRAME_SAMPLES};
use voicemcu_core::client::ClientConfig;
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::endpoint::{
    auto_keep_alive, server_config_with, server_endpoint_config, TransportSettings,
};
use voicemcu_quic::{
    ClientOptions, ConnectOptions, Fingerprint, Identity, QuicServer, SenderFaults, Trust,
};

use super::link_faults::SendFaults;
use super::marked_tone::MarkedTone;
use super::runtime::SimRuntime;
use super::scenario::{Latency, Participant, Scenario};
use super::socket::SimUdpSocket;
use super::trace::{sim_now, Recorder};
use crate::memory::MemorySink;

/// The turmoil host name of the server.
pub const SERVER_HOST: &str = "server";

/// The UDP port the server listens on.
pub const SERVER_PORT: u16 = 4433;

/// The room every participant joins.
pub const ROOM: &str = "sim-room";

/// The peak level of every participant's tone in a conference of three:
/// low enough that three mixed together stay below full scale.
pub const TONE_LEVEL_DBFS: f32 = -12.0;

/// Returns the tone level for a conference of `participants`: lower in
/// bigger ones, so that everyone mixed together stays below full scale.
/// Pushed into the limiter, many tones leave intermodulation products
/// above the `no-self-hearing` threshold (measured with ten at -12 dBFS).
pub fn tone_level_dbfs(participants: usize) -> f32 {
    let crowd = (participants as f32 / 3.0).max(1.0);
    TONE_LEVEL_DBFS - 20.0 * crowd.log10()
}

/// How long after the clients leave the server shuts down.
pub const SERVER_GRACE: Duration = Duration::from_secs(3);

/// How much simulated time past the server's shutdown turmoil allows
/// before it fails the run as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(15);

/// Size of each host's UDP receive queue, in datagrams. turmoil's default
/// of 64 is smaller than a real socket buffer, and the simulation should
/// lose datagrams only where a scenario configures loss.
const UDP_QUEUE: usize = 1024;

/// The simulation's start on the Unix time scale, fixed so that nothing
/// depends on when the run happens (turmoil's default is the current time).
const EPOCH_SECS: u64 = 1_700_000_000;

/// Derives 32 bytes for the purpose `label` from the run's seed.
pub fn derive_seed_bytes(seed: u64, label: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(label.as_bytes());
    hasher.finalize().into()
}

/// Derives a 64-bit seed for the purpose `label` from the run's seed.
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let bytes = derive_seed_bytes(seed, label);
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first)
}

/// Configures turmoil for `scenario` with `seed`.
pub fn turmoil_builder(scenario: &Scenario, seed: u64) -> ::turmoil::Builder {
    let (min_latency, max_latency) = match scenario.network.latency {
        Latency::Fixed(latency) => (latency, latency),
        Latency::Reordering { min, max } => (min, max),
    };
    let mut builder = ::turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(scenario.leave_at + SERVER_GRACE + STUCK_AFTER)
        .tick_duration(Duration::from_millis(1))
        .udp_capacity(UDP_QUEUE)
        .min_message_latency(min_latency)
        .max_message_latency(max_latency)
        .fail_rate(scenario.network.link_fail_rate);
    builder
}

fn endpoint_config(seed: u64, host: &str) -> quinn::EndpointConfig {
    seeded(quinn::EndpointConfig::default(), seed, host)
}

fn seeded(mut config: quinn::EndpointConfig, seed: u64, host: &str) -> quinn::EndpointConfig {
    config.rng_seed(Some(derive_seed_bytes(seed, &format!("quinn {host}"))));
    config
}

/// Sleeps until the simulation's clock reads `at`.
async fn sleep_until_sim(at: Duration) {
    tokio::time::sleep(at.saturating_sub(sim_now())).await;
}

/// Registers the server and every participant of `scenario` on `sim`.
pub(crate) fn populate(
    sim: &mut ::turmoil::Sim<'_>,
    scenario: &Scenario,
    seed: u64,
    identity: Identity,
    recorder: &Recorder,
    sinks: &[MemorySink],
) {
    let fingerprint = identity.fingerprint();
    let faults = scenario.network.send_faults();
    let server = ServerPlan {
        identity,
        seed,
        faults,
        idle_timeout: scenario.server_idle_timeout,
        stop_at: scenario.leave_at + SERVER_GRACE,
        recorder: recorder.clone(),
    };

    if scenario.restartable_server {
        // A turmoil host can be restarted, but the run does not wait for
        // it to stop.
        sim.host(SERVER_HOST, move || run_server(server.clone()));
    } else {
        // Registered as a turmoil "client" so that the run also waits for
        // its clean shutdown.
        sim.client(SERVER_HOST, run_server(server));
    }

    for (participant, sink) in scenario.participants.iter().zip(sinks) {
        let plan = ParticipantPlan {
            participant: participant.clone(),
            tone_level_dbfs: tone_level_dbfs(scenario.participants.len()),
            leaves_at: participant.leaves_at.unwrap_or(scenario.leave_at),
            faults,
            seed,
            fingerprint,
        };
        sim.client(
            participant.name,
            run_participant(plan, sink.clone(), recorder.clone()),
        );
    }
}

/// The settings of the server's host.
#[derive(Clone)]
struct ServerPlan {
    identity: Identity,
    seed: u64,
    faults: SendFaults,
    idle_timeout: Duration,
    stop_at: Duration,
    recorder: Recorder,
}

async fn run_server(plan: ServerPlan) -> ::turmoil::Result {
    let ServerPlan {
        identity,
        seed,
        faults,
        idle_timeout,
        stop_at,
        recorder,
    } = plan;
    let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, SERVER_PORT));
    let socket = SimUdpSocket::bind(bind, faults, derive_seed(seed, "loss server")).await?;
    let transport = TransportSettings {
        idle_timeout,
        keep_alive: auto_keep_alive(idle_timeout),
        ..TransportSettings::default()
    };
    let config = server_config_with(&identity, &transport)?;
    // The production server's endpoint configuration, whose stateless
    // reset key survives a restart.
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        seeded(server_endpoint_config(&identity), seed, SERVER_HOST),
        Some(config),
        Arc::new(socket),
        Arc::new(SimRuntime),
    )?;

    let server = QuicServer::with_endpoint(
        endpoint,
        identity.fingerprint(),
        ServerConfig::default(),
        seed,
    );
    recorder.line(SERVER_HOST, "started");
    server.run(sleep_until_sim(stop_at)).await?;
    recorder.line(SERVER_HOST, "stopped");
    Ok(())
}

/// The settings of one participant's host.
struct ParticipantPlan {
    participant: Participant,
    tone_level_dbfs: f32,
    leaves_at: Duration,
    faults: SendFaults,
    seed: u64,
    fingerprint: Fingerprint,
}

async fn run_participant(
    plan: ParticipantPlan,
    sink: MemorySink,
    recorder: Recorder,
) -> ::turmoil::Result {
    let name = plan.participant.name;
    sleep_until_sim(plan.participant.joins_at).await;

    let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let loss_seed = derive_seed(plan.seed, &format!("loss {name}"));
    let socket = SimUdpSocket::bind(bind, plan.faults, loss_seed).await?;
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        endpoint_config(plan.seed, name),
        None,
        Arc::new(socket),
        Arc::new(SimRuntime),
    )?;

    let server = SocketAddr::new(::turmoil::lookup(SERVER_HOST), SERVER_PORT);
    let mut connect = ConnectOptions::new(server, Trust::Pinned(plan.fingerprint));
    connect.dialect = plan.participant.dialect;
    let options = ClientOptions {
        connect,
        core: ClientConfig::new(ROOM, name),
        end_when_source_ends: false,
        faults: sender_faults(&plan.participant),
    };
    let source = MarkedTone::new(
        name,
        plan.participant.tone_hz,
        plan.tone_level_dbfs,
        plan.participant.silent.clone(),
        recorder.clone(),
    )?;
    let sink_copy = sink.clone();
    let sink = TimedSink {
        inner: sink,
        participant: name,
        recorder: recorder.clone(),
    };

    let (events, mut events_rx) = mpsc::unbounded_channel();
    let collector_recorder = recorder.clone();
    let collector = tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            collector_recorder.client_event(name, event);
        }
    });
    // Held open for the whole session: a closed command channel is not a
    // reason to leave.
    let (commands, commands_rx) = mpsc::channel(8);
    let typist = tokio::spawn(type_commands(plan.participant.commands.clone(), commands));
    let rebinder = plan.participant.rebinds_at.map(|at| {
        tokio::spawn(rebind_later(
            endpoint.clone(),
            at,
            plan.faults,
            derive_seed(plan.seed, &format!("loss {name} rebound")),
            name,
            recorder.clone(),
        ))
    });

    if plan.participant.clock_skew_ppm != 0 {
        recorder.line(
            name,
            format!(
                "audio clock runs {:+} ppm against true time",
                plan.participant.clock_skew_ppm
            ),
        );
    }
    for (at, sequence) in &plan.participant.sequence_restarts {
        recorder.line_at(*at, name, format!("sender restarts at sequence {sequence}"));
    }
    recorder.line(name, "connecting");
    let result = voicemcu_quic::run_client_on(
        endpoint,
        options,
        Box::new(source),
        Box::new(sink),
        commands_rx,
        events,
        sleep_until_sim(plan.leaves_at),
    )
    .await;
    // The session dropped its event sender, so the collector ends once it
    // has recorded everything.
    collector.await?;
    typist.abort();
    if let Some(rebinder) = rebinder {
        rebinder.abort();
    }

    // The played-out audio, hashed, puts the whole media path into the
    // trace: two runs with the same seed must decode the same samples.
    let played = sink_copy.samples();
    let mut audio_hash = Sha256::new();
    for sample in &played {
        audio_hash.update(sample.to_bits().to_le_bytes());
    }
    let digest: String = audio_hash.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    recorder.line(
        name,
        format!(
            "played {} frames, playback sha256 {digest}...",
            played.len() / FRAME_SAMPLES
        ),
    );

    let exit = match result {
        Ok(exit) => exit.to_string(),
        Err(error) => format!("failed: {error}"),
    };
    recorder.exit(name, exit);
    Ok(())
}

/// Returns the faults `participant`'s sender injects. Its session starts
/// when it joins, so restart times become offsets from that.
fn sender_faults(participant: &Participant) -> SenderFaults {
    SenderFaults {
        clock_skew_ppm: participant.clock_skew_ppm,
        sequence_restarts: participant
            .sequence_restarts
            .iter()
            .map(|(at, sequence)| (at.saturating_sub(participant.joins_at), *sequence))
            .collect(),
    }
}

/// Types each of `lines` at its simulated time, then keeps the channel
/// open until aborted.
async fn type_commands(lines: Vec<(Duration, &'static str)>, commands: mpsc::Sender<String>) {
    for (at, line) in lines {
        sleep_until_sim(at).await;
        if commands.send(line.to_owned()).await.is_err() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Moves `endpoint` to a new socket on a new port at `at`. The old socket
/// is dropped, so datagrams still addressed to its port are lost.
async fn rebind_later(
    endpoint: quinn::Endpoint,
    at: Duration,
    faults: SendFaults,
    fault_seed: u64,
    name: &'static str,
    recorder: Recorder,
) {
    sleep_until_sim(at).await;
    let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let rebound = match SimUdpSocket::bind(bind, faults, fault_seed).await {
        Ok(socket) => endpoint.rebind_abstract(Arc::new(socket)),
        Err(error) => Err(error),
    };
    match rebound {
        Ok(()) => recorder.line(name, "moved to a new UDP port"),
        Err(error) => recorder.line(name, format!("failed to move to a new UDP port: {error}")),
    }
}

/// A [`MemorySink`] that also records when each frame was played out.
struct TimedSink {
    inner: MemorySink,
    participant: &'static str,
    recorder: Recorder,
}

impl FrameSink for TimedSink {
    fn write_frame(&mut self, frame: &PcmFrame) -> std::io::Result<()> {
        self.recorder.frame_written(self.participant);
        self.inner.write_frame(frame)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.inner.finish()
    }
}
