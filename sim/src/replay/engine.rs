//! The replay engine: the real server and one real client per participant,
//! connected in memory and driven on a virtual clock.
//!
//! Signalling frames arrive at once and in order, as a QUIC stream would
//! deliver them on a perfect network. Audio datagrams pass through each
//! participant's [`Link`], which may drop or delay them. Time advances in
//! 20 ms steps, and between steps to every instant at which the server, a
//! client or a delayed datagram is due.
//!
//! Within one step the order is fixed: due datagrams, then joins, events
//! and leaves scheduled for the step, then every participant's captured
//! frame (in session file order), then the server's mixer tick, then every
//! participant's playout. The same session therefore always produces the
//! same audio and reports, byte for byte.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use voicemcu_core::audio::{PcmFrame, FRAME_DURATION, FRAME_SAMPLES, SILENCE};
use voicemcu_core::client::{Client, ClientConfig, ClientInput, ClientOutput};
use voicemcu_core::codec::CodecError;
use voicemcu_core::ids::{ClientId, ConnectionId};
use voicemcu_core::mixer::MemberStats;
use voicemcu_core::server::{
    LeaveReason, MixRecord, OutStream, Server, ServerConfig, ServerEvent, ServerInput, ServerOutput,
};
use voicemcu_core::time::Instant;
use voicemcu_core::wire::Dialect;

use super::impairment::{Link, LinkStats};
use super::session::Session;

/// An error that stopped a replay.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not set up the Opus codec for participant {name:?}: {error}")]
    Codec { name: String, error: CodecError },
}

/// A line of text stamped with the session time it happened at.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TimedLine {
    #[serde(serialize_with = "super::report::serialize_secs")]
    pub at: Duration,
    pub text: String,
}

/// Everything one participant did and experienced.
#[derive(Debug)]
pub struct ParticipantRun {
    pub name: String,
    pub dialect: Dialect,
    pub client_id: Option<ClientId>,
    pub joined_at: Duration,
    /// When the participant left the room, and why, as the server saw it.
    pub left: Option<(Duration, LeaveReason)>,
    /// Its playout, aligned to session time: silence before it joined and
    /// after it left.
    pub heard: Vec<f32>,
    /// The frames its client encoded and sent, aligned to session time.
    pub sent: Vec<f32>,
    pub frames_sent: u64,
    pub client_stats: voicemcu_core::client::ClientStats,
    /// The server's counters for this participant as a sender, as last seen
    /// while it was in the room.
    pub server_stats: Option<MemberStats>,
    pub uplink: LinkStats,
    pub downlink: Option<LinkStats>,
    /// Every event the participant's client reported.
    pub events: Vec<TimedLine>,
}

/// The raw outcome of a replay, before any report is derived from it.
#[derive(Debug)]
pub struct ReplayRun {
    pub duration: Duration,
    pub participants: Vec<ParticipantRun>,
    /// Every mix the server sent, in order.
    pub mixes: Vec<MixRecord>,
    /// Every event the server reported.
    pub server_events: Vec<TimedLine>,
}

/// The receiver of a datagram in flight.
#[derive(Clone, Copy, Debug)]
enum Destination {
    Server(usize),
    Client(usize),
}

/// A participant while the replay runs.
struct Live {
    conn: ConnectionId,
    client: Option<Client>,
    /// Whether its connection is open.
    connected: bool,
    /// Whether its audio source has ended.
    source_ended: bool,
    uplink: Link,
    downlink: Option<Link>,
    run: ParticipantRun,
}

/// A running replay.
struct Engine<'a> {
    session: &'a Session,
    server: Server,
    live: Vec<Live>,
    now: Instant,
    /// Datagrams in flight by arrival instant, then by send order.
    in_flight: BTreeMap<(Instant, u64), (Destination, Vec<u8>)>,
    sent_datagrams: u64,
    mixes: Vec<MixRecord>,
    server_events: Vec<TimedLine>,
    /// Client id to participant index, filled as participants join.
    by_client_id: BTreeMap<ClientId, usize>,
}

/// Replays `session` and calls `progress(done, total)` after every 20 ms
/// step, with both counted in steps.
pub fn run(
    session: &Session,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReplayRun, EngineError> {
    let mut engine = Engine::new(session);
    let steps = (session.duration.as_micros() / FRAME_DURATION.as_micros()) as u64;
    for step in 0..steps {
        engine.step(step)?;
        progress(step + 1, steps);
    }
    Ok(engine.finish())
}

impl<'a> Engine<'a> {
    fn new(session: &'a Session) -> Self {
        let mut server = Server::new(ServerConfig::default(), session.seed);
        server.set_mix_log(true);
        let samples = duration_samples(session.duration);

        let live = session
            .participants
            .iter()
            .enumerate()
            .map(|(index, participant)| {
                let (uplink, downlink) = match &participant.impairment {
                    Some(spec) => {
                        // Two random streams per participant: even for the
                        // uplink, odd for the downlink.
                        let stream = index as u64 * 2;
                        let downlink = spec.downlink.then(|| Link::new(spec, stream + 1));
                        (Link::new(spec, stream), downlink)
                    }
                    None => (Link::new(&Default::default(), 0), None),
                };
                Live {
                    conn: ConnectionId(index as u64 + 1),
                    client: None,
                    connected: false,
                    source_ended: false,
                    uplink,
                    downlink,
                    run: ParticipantRun {
                        name: participant.name.clone(),
                        dialect: participant.dialect,
                        client_id: None,
                        joined_at: participant.join,
                        left: None,
                        heard: vec![0.0; samples],
                        sent: vec![0.0; samples],
                        frames_sent: 0,
                        client_stats: Default::default(),
                        server_stats: None,
                        uplink: LinkStats::default(),
                        downlink: None,
                        events: Vec::new(),
                    },
                }
            })
            .collect();

        Engine {
            session,
            server,
            live,
            now: Instant::ZERO,
            in_flight: BTreeMap::new(),
            sent_datagrams: 0,
            mixes: Vec::new(),
            server_events: Vec::new(),
            by_client_id: BTreeMap::new(),
        }
    }

    fn step(&mut self, step: u64) -> Result<(), EngineError> {
        let step_at = Instant::ZERO + FRAME_DURATION * step as u32;
        self.run_until(step_at);
        self.now = step_at;
        self.pump();

        let at = step_at.since_epoch();
        for index in 0..self.live.len() {
            if self.session.participants[index].join == at {
                self.join(index)?;
            }
        }
        for event in &self.session.events {
            if event.at == at {
                let target = event
                    .target
                    .map(|target| self.session.participants[target].name.as_str());
                let line = event.action.command_line(target);
                self.type_command(event.by, &line);
            }
        }
        for index in 0..self.live.len() {
            if self.session.participants[index].leave == Some(at) {
                self.type_command(index, "/leave");
            }
        }

        let offset = sample_offset(at);
        for index in 0..self.live.len() {
            self.capture(index, offset);
        }
        self.pump();

        self.fire_timeouts();

        for live in &mut self.live {
            let Some(client) = &mut live.client else {
                continue;
            };
            let mut frame: PcmFrame = SILENCE;
            client.playout(self.now, &mut frame);
            if let Some(slot) = live.run.heard.get_mut(offset..offset + FRAME_SAMPLES) {
                slot.copy_from_slice(&frame);
            }
        }

        self.mixes.extend(self.server.take_mix_log());
        for room in self.server.status() {
            for participant in room.participants {
                if let Some(&index) = self.by_client_id.get(&participant.client_id) {
                    self.live[index].run.server_stats = participant.media;
                }
            }
        }
        Ok(())
    }

    /// Handles every timeout and delayed datagram due before `end`, each at
    /// its own instant.
    fn run_until(&mut self, end: Instant) {
        while let Some(next) = self.next_deadline() {
            if next >= end {
                break;
            }
            self.now = self.now.max(next);
            self.fire_timeouts();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let server = self.server.poll_timeout();
        let clients = self
            .live
            .iter()
            .filter_map(|live| live.client.as_ref()?.poll_timeout());
        let datagram = self.in_flight.keys().next().map(|(at, _)| *at);
        server.into_iter().chain(clients).chain(datagram).min()
    }

    /// Hands a timeout to the server and every client that is due, and
    /// delivers due datagrams.
    fn fire_timeouts(&mut self) {
        if self.server.poll_timeout().is_some_and(|at| at <= self.now) {
            self.server.handle_input(self.now, ServerInput::Timeout);
        }
        for live in &mut self.live {
            if let Some(client) = &mut live.client {
                if client.poll_timeout().is_some_and(|at| at <= self.now) {
                    client.handle_input(self.now, ClientInput::Timeout);
                }
            }
        }
        self.pump();
    }

    fn join(&mut self, index: usize) -> Result<(), EngineError> {
        let participant = &self.session.participants[index];
        let config = ClientConfig::new(self.session.room.clone(), participant.name.clone());
        let mut client = Client::new(config, self.now).map_err(|error| EngineError::Codec {
            name: participant.name.clone(),
            error,
        })?;
        let live = &mut self.live[index];
        let peer = SocketAddr::from(([127, 0, 0, 1], 40_000 + index as u16));
        self.server.handle_input(
            self.now,
            ServerInput::ConnectionOpened {
                conn: live.conn,
                peer,
                dialect: participant.dialect,
            },
        );
        client.handle_input(
            self.now,
            ClientInput::Connected {
                dialect: participant.dialect,
            },
        );
        live.client = Some(client);
        live.connected = true;
        self.pump();

        let live = &mut self.live[index];
        if let Some(id) = live.client.as_ref().and_then(Client::client_id) {
            live.run.client_id = Some(id);
            self.by_client_id.insert(id, index);
        }
        Ok(())
    }

    fn type_command(&mut self, index: usize, line: &str) {
        let now = self.now;
        let live = &mut self.live[index];
        if let Some(client) = &mut live.client {
            live.run.events.push(TimedLine {
                at: now.since_epoch(),
                text: format!("typed {line}"),
            });
            client.handle_input(now, ClientInput::Command(line));
        }
        self.pump();
    }

    /// Feeds the participant's next captured frame to its client.
    fn capture(&mut self, index: usize, offset: usize) {
        let now = self.now;
        let participant = &self.session.participants[index];
        let live = &mut self.live[index];
        let Some(client) = &mut live.client else {
            return;
        };
        if live.source_ended || now.since_epoch() < participant.join {
            return;
        }
        // The recording advances like a microphone: frame N plays N steps
        // after the join, whether or not the client sends it (when muted).
        let frame_index = ((now.since_epoch() - participant.join).as_micros()
            / FRAME_DURATION.as_micros()) as usize;
        let mut frame: PcmFrame = SILENCE;
        if !frame_at(&participant.audio, frame_index, &mut frame) {
            live.source_ended = true;
            return;
        }
        let before = client.stats().frames_sent;
        client.send_audio(now, &frame);
        if client.stats().frames_sent > before {
            live.run.frames_sent += 1;
            if let Some(slot) = live.run.sent.get_mut(offset..offset + FRAME_SAMPLES) {
                slot.copy_from_slice(&frame);
            }
        }
    }

    /// Routes outputs between the server and the clients until nothing is
    /// left to route and no datagram is due.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(output) = self.server.poll_output() {
                moved = true;
                self.route_server_output(output);
            }
            for index in 0..self.live.len() {
                while let Some(output) = self.live[index]
                    .client
                    .as_mut()
                    .and_then(Client::poll_output)
                {
                    moved = true;
                    self.route_client_output(index, output);
                }
            }
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (destination, datagram) = entry.remove();
                moved = true;
                self.deliver(destination, &datagram);
            }
            if !moved {
                return;
            }
        }
    }

    fn route_server_output(&mut self, output: ServerOutput) {
        let now = self.now;
        match output {
            ServerOutput::SendFrame {
                conn,
                stream,
                frame,
            } => {
                let Some(live) = self.live_by_conn(conn) else {
                    return;
                };
                if !live.connected {
                    return;
                }
                if let Some(client) = &mut live.client {
                    let input = match stream {
                        OutStream::Control => ClientInput::StreamData(&frame),
                        OutStream::Push => ClientInput::PushStream(&frame),
                    };
                    client.handle_input(now, input);
                }
            }
            ServerOutput::SendDatagram { conn, datagram } => {
                let Some(index) = self.index_of(conn) else {
                    return;
                };
                if !self.live[index].connected {
                    return;
                }
                let delay = match &mut self.live[index].downlink {
                    Some(link) => link.transmit(),
                    None => Some(Duration::ZERO),
                };
                if let Some(delay) = delay {
                    self.schedule(delay, Destination::Client(index), datagram);
                }
            }
            ServerOutput::Close { conn, reason } => {
                let Some(live) = self.live_by_conn(conn) else {
                    return;
                };
                if !live.connected {
                    return;
                }
                live.connected = false;
                if let Some(client) = &mut live.client {
                    client.handle_input(
                        now,
                        ClientInput::ConnectionLost {
                            reason: format!("closed by the server: {}", reason.message),
                        },
                    );
                }
                self.server
                    .handle_input(now, ServerInput::ConnectionClosed { conn });
            }
            ServerOutput::Event(event) => {
                if let ServerEvent::ClientLeft { client, reason, .. } = &event {
                    if let Some(&index) = self.by_client_id.get(client) {
                        self.live[index].run.left = Some((now.since_epoch(), *reason));
                    }
                }
                self.server_events.push(TimedLine {
                    at: now.since_epoch(),
                    text: event.to_string(),
                });
            }
        }
    }

    fn route_client_output(&mut self, index: usize, output: ClientOutput) {
        let now = self.now;
        let conn = self.live[index].conn;
        match output {
            ClientOutput::SendFrame(frame) => {
                if self.live[index].connected {
                    self.server.handle_input(
                        now,
                        ServerInput::StreamData {
                            conn,
                            bytes: &frame,
                        },
                    );
                }
            }
            ClientOutput::SendDatagram(datagram) => {
                if !self.live[index].connected {
                    return;
                }
                if let Some(delay) = self.live[index].uplink.transmit() {
                    self.schedule(delay, Destination::Server(index), datagram);
                }
            }
            ClientOutput::Close { .. } => {
                let live = &mut self.live[index];
                if live.connected {
                    live.connected = false;
                    self.server
                        .handle_input(now, ServerInput::ConnectionClosed { conn });
                }
            }
            ClientOutput::Event(event) => {
                self.live[index].run.events.push(TimedLine {
                    at: now.since_epoch(),
                    text: event.to_string(),
                });
            }
        }
    }

    fn schedule(&mut self, delay: Duration, destination: Destination, datagram: Vec<u8>) {
        let order = self.sent_datagrams;
        self.sent_datagrams += 1;
        self.in_flight
            .insert((self.now + delay, order), (destination, datagram));
    }

    fn deliver(&mut self, destination: Destination, datagram: &[u8]) {
        match destination {
            Destination::Server(index) => {
                let live = &self.live[index];
                if live.connected {
                    self.server.handle_input(
                        self.now,
                        ServerInput::Datagram {
                            conn: live.conn,
                            bytes: datagram,
                        },
                    );
                }
            }
            Destination::Client(index) => {
                let live = &mut self.live[index];
                if let (true, Some(client)) = (live.connected, &mut live.client) {
                    client.handle_input(self.now, ClientInput::Datagram(datagram));
                }
            }
        }
    }

    fn index_of(&self, conn: ConnectionId) -> Option<usize> {
        self.live.iter().position(|live| live.conn == conn)
    }

    fn live_by_conn(&mut self, conn: ConnectionId) -> Option<&mut Live> {
        self.live.iter_mut().find(|live| live.conn == conn)
    }

    fn finish(self) -> ReplayRun {
        let participants = self
            .live
            .into_iter()
            .map(|live| {
                let mut run = live.run;
                if let Some(client) = &live.client {
                    run.client_stats = client.stats();
                }
                run.uplink = live.uplink.stats();
                run.downlink = live.downlink.as_ref().map(Link::stats);
                run
            })
            .collect();
        ReplayRun {
            duration: self.session.duration,
            participants,
            mixes: self.mixes,
            server_events: self.server_events,
        }
    }
}

/// Copies frame `index` of `source`'s audio into `frame`, padding the last
/// one with silence. Returns `false` past the end.
fn frame_at(source: &voicemcu_audio::WavSource, index: usize, frame: &mut PcmFrame) -> bool {
    let samples = source.samples();
    let start = index * FRAME_SAMPLES;
    if start >= samples.len() {
        return false;
    }
    let end = (start + FRAME_SAMPLES).min(samples.len());
    *frame = SILENCE;
    frame[..end - start].copy_from_slice(&samples[start..end]);
    true
}

/// Counts the 48 kHz samples in `duration`, a whole number of frames.
pub(crate) fn duration_samples(duration: Duration) -> usize {
    sample_offset(duration)
}

fn sample_offset(at: Duration) -> usize {
    (at.as_micros() / FRAME_DURATION.as_micros()) as usize * FRAME_SAMPLES
}
