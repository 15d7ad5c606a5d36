//! The talking indicator: which room members the server's VAD hears
//! talking, reported to each native listener as `TalkingPeers`.
//!
//! A member counts as talking from a frame that reaches the VAD threshold
//! until [`TALKING_HANGOVER`] after its last such frame, so short pauses
//! between words do not blink the indicator. A muted or force-muted member
//! never counts: the mixer does not decode it, and the tracker drops it at
//! once when the mute arrives.
//!
//! Each listener is sent the talking members it may hear: never itself, never
//! a member it blocked. A listener gets a message only when that view
//! differs from the last one it was sent. A room sends at most one round
//! of messages per [`MIN_REPORT_INTERVAL`], so each listener gets at most
//! five a second. A change that falls inside the interval is sent when the
//! interval ends, if it still holds then.

use std::collections::BTreeMap;
use std::time::Duration;

use super::room::Member;
use crate::ids::{ClientId, ConnectionId};
use crate::time::Instant;
use crate::wire::SignalMessage;

/// How long a member counts as talking after its last voiced frame.
pub const TALKING_HANGOVER: Duration = Duration::from_millis(300);

/// The shortest time between two rounds of `TalkingPeers` in one room.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(200);

/// Who in one room talks, and what was last sent to each listener.
#[derive(Debug, Default)]
pub(crate) struct TalkingTracker {
    /// When each member's last voiced frame was mixed.
    last_voiced: BTreeMap<ClientId, Instant>,
    /// This tick's talking members, in ascending id order.
    talking: Vec<ClientId>,
    /// The last view sent to each listener, in ascending id order. A
    /// listener with no entry was sent nothing, which a client reads as
    /// nobody talking.
    reported: BTreeMap<ClientId, Vec<ClientId>>,
    /// No round is sent before this instant.
    quiet_until: Option<Instant>,
}

impl TalkingTracker {
    /// Records this tick's `voiced` members (ascending ids, from the
    /// mixer), then compares each listener's view of who talks with the
    /// view last sent to it. Appends a `TalkingPeers` for each listener
    /// whose view changed to `out`, unless a round was sent less than
    /// [`MIN_REPORT_INTERVAL`] before `now`. Listeners for which
    /// `wants_reports` returns false (legacy connections) are skipped.
    pub fn update(
        &mut self,
        now: Instant,
        voiced: &[ClientId],
        members: &BTreeMap<ClientId, Member>,
        wants_reports: impl Fn(ConnectionId) -> bool,
        out: &mut Vec<(ConnectionId, SignalMessage)>,
    ) {
        for &id in voiced {
            self.last_voiced.insert(id, now);
        }
        self.last_voiced.retain(|id, last| {
            now < *last + TALKING_HANGOVER
                && members
                    .get(id)
                    .is_some_and(|member| !member.muted && !member.server_muted)
        });
        self.talking.clear();
        self.talking.extend(self.last_voiced.keys().copied());

        if self.quiet_until.is_some_and(|until| now < until) {
            return;
        }
        self.reported.retain(|id, _| members.contains_key(id));

        let mut sent = false;
        for (&listener, member) in members {
            if !wants_reports(member.conn) {
                continue;
            }

            let view = self
                .talking
                .iter()
                .copied()
                .filter(|&speaker| speaker != listener && !member.blocked.contains(&speaker));
            let previous = self.reported.get(&listener).map_or(&[][..], Vec::as_slice);
            if view.clone().eq(previous.iter().copied()) {
                continue;
            }

            let view: Vec<ClientId> = view.collect();
            tracing::trace!(listener, talking = ?view, "talking peers changed");
            self.reported.insert(listener, view.clone());
            out.push((
                member.conn,
                SignalMessage::TalkingPeers { client_ids: view },
            ));
            sent = true;
        }

        if sent {
            self.quiet_until = Some(now + MIN_REPORT_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const ALICE: ClientId = 1;
    const BOB: ClientId = 2;
    const CAROL: ClientId = 3;

    fn member(conn: u64) -> Member {
        Member {
            conn: ConnectionId(conn),
            name: String::new(),
            muted: false,
            server_muted: false,
            blocked: BTreeSet::new(),
        }
    }

    /// Alice, bob and carol on connections 1, 2 and 3.
    fn room() -> BTreeMap<ClientId, Member> {
        [(ALICE, member(1)), (BOB, member(2)), (CAROL, member(3))]
            .into_iter()
            .collect()
    }

    /// Runs one update at `ms` milliseconds and returns the messages as
    /// (connection number, ids).
    fn update_at(
        tracker: &mut TalkingTracker,
        ms: u64,
        speakers: &[ClientId],
        members: &BTreeMap<ClientId, Member>,
    ) -> Vec<(u64, Vec<ClientId>)> {
        let mut out = Vec::new();
        let now = Instant::from_millis(ms);
        tracker.update(now, speakers, members, |_| true, &mut out);
        out.into_iter()
            .map(|(conn, message)| match message {
                SignalMessage::TalkingPeers { client_ids } => (conn.0, client_ids),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn each_listener_gets_others_once() {
        let members = room();
        let mut tracker = TalkingTracker::default();

        let out = update_at(&mut tracker, 0, &[ALICE, BOB], &members);
        assert_eq!(
            out,
            [(1, vec![BOB]), (2, vec![ALICE]), (3, vec![ALICE, BOB])]
        );

        // The same speakers later: no message.
        assert!(update_at(&mut tracker, 1_000, &[ALICE, BOB], &members).is_empty());
    }

    #[test]
    fn silent_room_sends_nothing() {
        let members = room();
        let mut tracker = TalkingTracker::default();
        for ms in (0..2_000).step_by(20) {
            assert!(update_at(&mut tracker, ms, &[], &members).is_empty());
        }
    }

    #[test]
    fn rounds_at_most_every_interval() {
        // Thirty members take turns: each voices one frame, so the set of
        // talking members changes every tick.
        let members: BTreeMap<ClientId, Member> = (10..40).map(|id| (id, member(id))).collect();
        let mut tracker = TalkingTracker::default();
        let mut rounds = Vec::new();

        for tick in 0..30u64 {
            let out = update_at(&mut tracker, tick * 20, &[10 + tick], &members);
            if !out.is_empty() {
                rounds.push(tick * 20);
            }
        }

        assert_eq!(rounds, [0, 200, 400], "at most one round per 200 ms");
    }

    #[test]
    fn talking_until_hangover_after_last_voiced_frame() {
        let members = room();
        let mut tracker = TalkingTracker::default();
        assert_eq!(update_at(&mut tracker, 0, &[BOB], &members).len(), 2);

        for ms in (20..300).step_by(20) {
            assert!(
                update_at(&mut tracker, ms, &[], &members).is_empty(),
                "{ms} ms"
            );
        }
        let out = update_at(&mut tracker, 300, &[], &members);
        assert_eq!(out, [(1, vec![]), (3, vec![])]);
    }

    #[test]
    fn change_inside_interval_sent_when_it_ends() {
        let members = room();
        let mut tracker = TalkingTracker::default();
        assert_eq!(update_at(&mut tracker, 0, &[BOB], &members).len(), 2);

        // Carol starts 40 ms later: held until 200 ms, then sent.
        assert!(update_at(&mut tracker, 40, &[BOB, CAROL], &members).is_empty());
        assert!(update_at(&mut tracker, 180, &[BOB], &members).is_empty());
        let out = update_at(&mut tracker, 200, &[BOB], &members);
        assert_eq!(out, [(1, vec![BOB, CAROL]), (2, vec![CAROL])]);
    }

    #[test]
    fn muted_member_dropped_without_hangover() {
        let mut members = room();
        let mut tracker = TalkingTracker::default();
        update_at(&mut tracker, 0, &[BOB], &members);

        members.get_mut(&BOB).unwrap().server_muted = true;
        let out = update_at(&mut tracker, 200, &[], &members);
        assert_eq!(out, [(1, vec![]), (3, vec![])]);
    }

    #[test]
    fn blocked_speaker_hidden_from_blocker_only() {
        let mut members = room();
        members.get_mut(&ALICE).unwrap().blocked.insert(BOB);
        let mut tracker = TalkingTracker::default();

        let out = update_at(&mut tracker, 0, &[BOB], &members);
        assert_eq!(out, [(3, vec![BOB])]);

        // Unblocking shows bob to alice at the next round.
        members.get_mut(&ALICE).unwrap().blocked.clear();
        let out = update_at(&mut tracker, 200, &[BOB], &members);
        assert_eq!(out, [(1, vec![BOB])]);
    }

    #[test]
    fn legacy_listeners_skipped() {
        let members = room();
        let mut tracker = TalkingTracker::default();
        let mut out = Vec::new();
        let native_only = |conn: ConnectionId| conn != ConnectionId(3);
        tracker.update(Instant::ZERO, &[ALICE], &members, native_only, &mut out);

        let conns: Vec<u64> = out.iter().map(|(conn, _)| conn.0).collect();
        assert_eq!(conns, [2]);
    }

    #[test]
    fn new_member_hears_current_speakers() {
        let mut members = room();
        let mut tracker = TalkingTracker::default();
        update_at(&mut tracker, 0, &[BOB], &members);

        members.insert(4, member(4));
        let out = update_at(&mut tracker, 1_000, &[BOB], &members);
        assert_eq!(out, [(4, vec![BOB])]);
    }

    #[test]
    fn departed_member_forgotten() {
        let mut members = room();
        let mut tracker = TalkingTracker::default();
        update_at(&mut tracker, 0, &[BOB], &members);

        members.remove(&BOB);
        let out = update_at(&mut tracker, 1_000, &[], &members);
        assert_eq!(out, [(1, vec![]), (3, vec![])]);
        assert!(!tracker.reported.contains_key(&BOB));
    }

    /// The tracker inside a real server, fed Opus tones over fake
    /// connections on a virtual clock.
    mod through_server {
        use std::f32::consts::TAU;
        use std::net::SocketAddr;

        use crate::audio::{PcmFrame, FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};
        use crate::codec::{Encoder, OpusEncoder, OpusSettings};
        use crate::ids::{ClientId, ConnectionId};
        use crate::server::{Server, ServerConfig, ServerInput, ServerOutput};
        use crate::time::Instant;
        use crate::wire::{
            decode_message, encode_datagram, encode_frame, encode_message, AudioHeader, Dialect,
            SignalMessage, MAX_AUDIO_PAYLOAD,
        };

        struct Room {
            server: Server,
            now: Instant,
            encoder: OpusEncoder,
            sequence: u32,
            /// Each connection's dialect and id, by connection number.
            members: Vec<(Dialect, ClientId)>,
            /// `TalkingPeers` received, as (instant in ms, connection
            /// number, ids).
            reports: Vec<(u64, u64, Vec<ClientId>)>,
        }

        impl Room {
            /// Opens a room with members on connections 0.. of the given
            /// dialects.
            fn new(dialects: &[Dialect]) -> Self {
                let mut room = Room {
                    server: Server::new(ServerConfig::default(), 1),
                    now: Instant::ZERO,
                    encoder: OpusEncoder::new(OpusSettings::default()).unwrap(),
                    sequence: 0,
                    members: Vec::new(),
                    reports: Vec::new(),
                };
                for (number, &dialect) in dialects.iter().enumerate() {
                    let conn = ConnectionId(number as u64);
                    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000 + number as u16));
                    room.server.handle_input(
                        room.now,
                        ServerInput::ConnectionOpened {
                            conn,
                            peer,
                            dialect,
                        },
                    );
                    let join = SignalMessage::Join {
                        room_code: "room".to_string(),
                        display_name: format!("member{number}"),
                    };
                    room.signal(conn, dialect, &join);
                    let id = room.server.client_of(conn).expect("join accepted");
                    room.members.push((dialect, id));
                }
                room.drain();
                room
            }

            fn signal(&mut self, conn: ConnectionId, dialect: Dialect, message: &SignalMessage) {
                let frame = encode_frame(&encode_message(message, dialect).unwrap());
                let input = ServerInput::StreamData {
                    conn,
                    bytes: &frame,
                };
                self.server.handle_input(self.now, input);
            }

            fn id(&self, number: u64) -> ClientId {
                self.members[number as usize].1
            }

            /// Runs `ticks` mixer ticks; when `speaker` is given, that
            /// connection sends one frame of a loud tone before each.
            fn run(&mut self, ticks: u32, speaker: Option<u64>) {
                for _ in 0..ticks {
                    if let Some(number) = speaker {
                        self.send_tone_frame(ConnectionId(number));
                    }
                    self.now += FRAME_DURATION;
                    while self.server.poll_timeout().is_some_and(|at| at <= self.now) {
                        self.server.handle_input(self.now, ServerInput::Timeout);
                    }
                    self.drain();
                }
            }

            fn send_tone_frame(&mut self, conn: ConnectionId) {
                let start = self.sequence as usize * FRAME_SAMPLES;
                let frame: PcmFrame = std::array::from_fn(|n| {
                    let t = (start + n) as f32 / SAMPLE_RATE as f32;
                    0.3 * (TAU * 440.0 * t).sin()
                });
                let mut packet = [0u8; MAX_AUDIO_PAYLOAD];
                let len = self.encoder.encode(&frame, &mut packet).unwrap();
                let header = AudioHeader {
                    client_id: 0,
                    sequence: self.sequence,
                    timestamp: self.sequence.wrapping_mul(FRAME_SAMPLES as u32),
                };
                self.sequence += 1;
                let datagram = encode_datagram(header, &packet[..len]);
                let input = ServerInput::Datagram {
                    conn,
                    bytes: &datagram,
                };
                self.server.handle_input(self.now, input);
            }

            fn drain(&mut self) {
                while let Some(output) = self.server.poll_output() {
                    let ServerOutput::SendFrame { conn, frame, .. } = output else {
                        continue;
                    };
                    let dialect = self.members.get(conn.0 as usize).map(|m| m.0);
                    let dialect = dialect.unwrap_or(Dialect::Native);
                    if let Ok(SignalMessage::TalkingPeers { client_ids }) =
                        decode_message(&frame[4..], dialect)
                    {
                        let ms = self.now.as_micros() / 1_000;
                        self.reports.push((ms, conn.0, client_ids));
                    }
                }
            }

            /// Returns the reports that connection `number` received.
            fn reports_to(&self, number: u64) -> Vec<(u64, Vec<ClientId>)> {
                self.reports
                    .iter()
                    .filter(|(_, conn, _)| *conn == number)
                    .map(|(ms, _, ids)| (*ms, ids.clone()))
                    .collect()
            }
        }

        #[test]
        fn speaker_reported_then_cleared_after_hangover() {
            let mut room = Room::new(&[Dialect::Native, Dialect::Native, Dialect::Legacy]);
            let bob = room.id(1);

            // Bob talks for one second, then falls silent for one.
            room.run(50, Some(1));
            let talking_from = room.reports_to(0);
            assert_eq!(talking_from.len(), 1, "{talking_from:?}");
            assert_eq!(talking_from[0].1, [bob]);

            room.run(50, None);
            let reports = room.reports_to(0);
            assert_eq!(reports.len(), 2, "{reports:?}");
            assert!(reports[1].1.is_empty());
            // Counted as talking through the hangover after the last frame.
            let last_frame_ms = 1_000;
            assert!(reports[1].0 >= last_frame_ms + 300, "{reports:?}");

            assert!(room.reports_to(1).is_empty(), "bob hears only himself");
            assert!(room.reports_to(2).is_empty(), "legacy listener");
        }

        #[test]
        fn muted_speaker_never_reported() {
            let mut room = Room::new(&[Dialect::Native, Dialect::Native]);
            room.signal(
                ConnectionId(1),
                Dialect::Native,
                &SignalMessage::Mute { muted: true },
            );
            room.drain();

            room.run(50, Some(1));
            assert!(room.reports_to(0).is_empty(), "{:?}", room.reports);
        }

        #[test]
        fn blocked_speaker_hidden_from_blocker() {
            let mut room = Room::new(&[Dialect::Native, Dialect::Native, Dialect::Native]);
            let bob = room.id(1);
            room.run(50, Some(1));
            assert_eq!(room.reports_to(0).last().unwrap().1, [bob]);

            let block = SignalMessage::BlockPeer { target: bob };
            room.signal(ConnectionId(0), Dialect::Native, &block);
            room.run(25, Some(1));
            assert!(room.reports_to(0).last().unwrap().1.is_empty());
            assert_eq!(room.reports_to(2), [(room.reports_to(2)[0].0, vec![bob])]);
        }
    }
}
