//! An opt-in feed of everything a recording of the server needs: for every
//! room, each participant's audio as the mixer decoded it, and the joins,
//! leaves and moderation actions, all stamped with the room's clock.
//!
//! The feed is off by default and costs nothing then. When enabled with
//! [`super::Server::set_recording`], every mixer tick hands out one
//! [`RecordEvent::Tick`] per room, and the caller drains the events with
//! [`super::Server::take_recording`]. The core writes no files: an adapter
//! carries the events to a writer off the mixing path.
//!
//! # The room clock
//!
//! A room's clock counts its mixer ticks. An event stamped `tick: n`
//! happened after the room's `n`-th tick and before the next one, so at
//! `n × 20 ms` of room time; the room opens at tick 0. The audio decoded in
//! tick `n` covers room time `(n - 1) × 20 ms` to `n × 20 ms`. A room that
//! empties and is opened again under the same code is a new room with a new
//! [`RoomSerial`] and a clock starting again from 0.
//!
//! Rooms opened before the recording was enabled are not recorded.

use std::collections::BTreeMap;

use crate::ids::ClientId;
use crate::mixer::DecodedFrame;
use crate::wire::Dialect;

use super::{LeaveReason, ServerEvent};

/// Identifies one life of a room, from the join that opened it to the leave
/// that emptied it. Serials count up from 0 in the order rooms open.
pub type RoomSerial = u64;

/// A moderation action, as the participant who made it typed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedAction {
    /// The participant muted itself.
    Mute,
    /// The participant unmuted itself.
    Unmute,
    /// The host muted `target` for everyone.
    ForceMute,
    /// The host lifted a force-mute of `target`.
    ForceUnmute,
    /// The host removed `target` from the room.
    Kick,
    /// The participant stopped hearing `target`.
    Block,
    /// The participant hears `target` again.
    Unblock,
}

/// Something a recording of the server needs to know.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordEvent {
    /// A room was created by its first join, at tick 0 of its clock.
    RoomOpened { room: RoomSerial, code: String },
    /// A participant joined after the room's `tick`-th tick.
    Joined {
        room: RoomSerial,
        tick: u64,
        client: ClientId,
        name: String,
        dialect: Dialect,
    },
    /// A participant left, was kicked, disconnected or was shut down.
    Left {
        room: RoomSerial,
        tick: u64,
        client: ClientId,
        reason: LeaveReason,
    },
    /// A participant changed what is heard. The server carried it out.
    Action {
        room: RoomSerial,
        tick: u64,
        by: ClientId,
        action: RecordedAction,
        /// The peer acted on; `None` for [`RecordedAction::Mute`] and
        /// [`RecordedAction::Unmute`].
        target: Option<ClientId>,
    },
    /// The room's `tick`-th mixer tick ran. `frames` holds, in ascending
    /// member order, the audio decoded (or concealed) this tick from every
    /// member who had any; members without a frame were silent, not yet
    /// playing out, or muted.
    Tick {
        room: RoomSerial,
        tick: u64,
        frames: Vec<DecodedFrame>,
    },
    /// The last participant left after the room's `tick`-th tick.
    RoomClosed { room: RoomSerial, tick: u64 },
}

impl RecordEvent {
    /// The room the event belongs to.
    pub fn room(&self) -> RoomSerial {
        match self {
            RecordEvent::RoomOpened { room, .. }
            | RecordEvent::Joined { room, .. }
            | RecordEvent::Left { room, .. }
            | RecordEvent::Action { room, .. }
            | RecordEvent::Tick { room, .. }
            | RecordEvent::RoomClosed { room, .. } => *room,
        }
    }
}

/// A recorded room's clock and host.
#[derive(Debug)]
struct RoomClock {
    serial: RoomSerial,
    ticks: u64,
    /// The host, who made every force-mute: the server checks that.
    host: Option<ClientId>,
}

/// Turns the server's events and mixer output into [`RecordEvent`]s.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    events: Vec<RecordEvent>,
    next_serial: RoomSerial,
    /// Recorded rooms by room code.
    rooms: BTreeMap<String, RoomClock>,
}

impl Recorder {
    /// Takes the events recorded since the last call, oldest first.
    pub fn take(&mut self) -> Vec<RecordEvent> {
        std::mem::take(&mut self.events)
    }

    /// Notes that `code` ran a mixer tick that decoded `frames`.
    pub fn on_tick(&mut self, code: &str, frames: Vec<DecodedFrame>) {
        let Some(room) = self.rooms.get_mut(code) else {
            return;
        };
        room.ticks += 1;
        self.events.push(RecordEvent::Tick {
            room: room.serial,
            tick: room.ticks,
            frames,
        });
    }

    /// Records what a server event changes in a recorded room.
    pub fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::RoomCreated { room } => {
                let serial = self.next_serial;
                self.next_serial += 1;
                self.rooms.insert(
                    room.clone(),
                    RoomClock {
                        serial,
                        ticks: 0,
                        host: None,
                    },
                );
                self.events.push(RecordEvent::RoomOpened {
                    room: serial,
                    code: room.clone(),
                });
            }
            ServerEvent::RoomClosed { room } => {
                if let Some(clock) = self.rooms.remove(room) {
                    self.events.push(RecordEvent::RoomClosed {
                        room: clock.serial,
                        tick: clock.ticks,
                    });
                }
            }
            ServerEvent::ClientJoined {
                client,
                room,
                name,
                dialect,
                host,
                ..
            } => {
                let Some(clock) = self.rooms.get_mut(room) else {
                    return;
                };
                if *host {
                    clock.host = Some(*client);
                }
                self.events.push(RecordEvent::Joined {
                    room: clock.serial,
                    tick: clock.ticks,
                    client: *client,
                    name: name.clone(),
                    dialect: *dialect,
                });
            }
            ServerEvent::ClientLeft {
                client,
                room,
                reason,
                ..
            } => {
                let Some(clock) = self.rooms.get(room) else {
                    return;
                };
                self.events.push(RecordEvent::Left {
                    room: clock.serial,
                    tick: clock.ticks,
                    client: *client,
                    reason: *reason,
                });
            }
            ServerEvent::HostChanged { room, client } => {
                if let Some(clock) = self.rooms.get_mut(room) {
                    clock.host = Some(*client);
                }
            }
            ServerEvent::Kicked { room, host, target } => {
                self.action(room, Some(*host), RecordedAction::Kick, Some(*target));
            }
            ServerEvent::MuteChanged {
                room,
                client,
                muted,
                by_host: false,
            } => {
                let action = if *muted {
                    RecordedAction::Mute
                } else {
                    RecordedAction::Unmute
                };
                self.action(room, Some(*client), action, None);
            }
            ServerEvent::MuteChanged {
                room,
                client,
                muted,
                by_host: true,
            } => {
                let action = if *muted {
                    RecordedAction::ForceMute
                } else {
                    RecordedAction::ForceUnmute
                };
                let host = self.rooms.get(room).and_then(|clock| clock.host);
                self.action(room, host, action, Some(*client));
            }
            ServerEvent::BlockChanged {
                room,
                client,
                target,
                blocked,
            } => {
                let action = if *blocked {
                    RecordedAction::Block
                } else {
                    RecordedAction::Unblock
                };
                self.action(room, Some(*client), action, Some(*target));
            }
            ServerEvent::ConnectionOpened { .. }
            | ServerEvent::JoinRejected { .. }
            | ServerEvent::CommandRejected { .. }
            | ServerEvent::ProtocolError { .. } => {}
        }
    }

    fn action(
        &mut self,
        room: &str,
        by: Option<ClientId>,
        action: RecordedAction,
        target: Option<ClientId>,
    ) {
        let Some(clock) = self.rooms.get(room) else {
            return;
        };
        let Some(by) = by else {
            tracing::debug!(room, ?action, "moderation by an unknown host not recorded");
            return;
        };
        self.events.push(RecordEvent::Action {
            room: clock.serial,
            tick: clock.ticks,
            by,
            action,
            target,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::audio::{PcmFrame, FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};
    use crate::codec::{Encoder, OpusEncoder, OpusSettings};
    use crate::ids::ConnectionId;
    use crate::server::{Server, ServerConfig, ServerInput};
    use crate::time::Instant;
    use crate::wire::{encode_datagram, encode_frame, encode_message, AudioHeader, SignalMessage};

    struct Harness {
        server: Server,
        now: Instant,
    }

    impl Harness {
        fn new() -> Self {
            let mut server = Server::new(ServerConfig::default(), 7);
            server.set_recording(true);
            Harness {
                server,
                now: Instant::ZERO,
            }
        }

        fn send(&mut self, conn: u64, message: SignalMessage) {
            let frame = encode_frame(&encode_message(&message, Dialect::Native).unwrap());
            self.server.handle_input(
                self.now,
                ServerInput::StreamData {
                    conn: ConnectionId(conn),
                    bytes: &frame,
                },
            );
            while self.server.poll_output().is_some() {}
        }

        fn join(&mut self, conn: u64, room: &str, name: &str) -> ClientId {
            let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
            self.server.handle_input(
                self.now,
                ServerInput::ConnectionOpened {
                    conn: ConnectionId(conn),
                    peer,
                    dialect: Dialect::Native,
                },
            );
            self.send(
                conn,
                SignalMessage::Join {
                    room_code: room.to_string(),
                    display_name: name.to_string(),
                },
            );
            self.server.client_of(ConnectionId(conn)).unwrap()
        }

        fn ticks(&mut self, count: u32) {
            for _ in 0..count {
                self.now += FRAME_DURATION;
                self.server.handle_input(self.now, ServerInput::Timeout);
                while self.server.poll_output().is_some() {}
            }
        }

        /// The events taken, without ticks that decoded nothing.
        fn take(&mut self) -> Vec<RecordEvent> {
            self.server
                .take_recording()
                .into_iter()
                .filter(
                    |event| !matches!(event, RecordEvent::Tick { frames, .. } if frames.is_empty()),
                )
                .collect()
        }
    }

    #[test]
    fn joins_leaves_and_moderation_carry_the_room_clock() {
        let mut harness = Harness::new();
        let alice = harness.join(1, "friday", "alice");
        harness.ticks(3);
        let bob = harness.join(2, "friday", "bob");
        harness.ticks(2);
        harness.send(2, SignalMessage::Mute { muted: true });
        harness.send(
            1,
            SignalMessage::ServerMute {
                target: bob,
                muted: true,
            },
        );
        harness.send(2, SignalMessage::BlockPeer { target: alice });
        harness.ticks(1);
        harness.send(2, SignalMessage::UnblockPeer { target: alice });
        // Not the host: rejected, so not recorded.
        harness.send(2, SignalMessage::Kick { target: alice });
        harness.send(1, SignalMessage::Kick { target: bob });
        harness.ticks(1);
        harness.send(1, SignalMessage::Leave);

        let action = |tick, by, action, target| RecordEvent::Action {
            room: 0,
            tick,
            by,
            action,
            target,
        };
        assert_eq!(
            harness.take(),
            [
                RecordEvent::RoomOpened {
                    room: 0,
                    code: "friday".to_string()
                },
                RecordEvent::Joined {
                    room: 0,
                    tick: 0,
                    client: alice,
                    name: "alice".to_string(),
                    dialect: Dialect::Native
                },
                RecordEvent::Joined {
                    room: 0,
                    tick: 3,
                    client: bob,
                    name: "bob".to_string(),
                    dialect: Dialect::Native
                },
                action(5, bob, RecordedAction::Mute, None),
                action(5, alice, RecordedAction::ForceMute, Some(bob)),
                action(5, bob, RecordedAction::Block, Some(alice)),
                action(6, bob, RecordedAction::Unblock, Some(alice)),
                action(6, alice, RecordedAction::Kick, Some(bob)),
                RecordEvent::Left {
                    room: 0,
                    tick: 6,
                    client: bob,
                    reason: LeaveReason::Kicked
                },
                RecordEvent::Left {
                    room: 0,
                    tick: 7,
                    client: alice,
                    reason: LeaveReason::Left
                },
                RecordEvent::RoomClosed { room: 0, tick: 7 },
            ]
        );

        // The same code again is a new room whose clock starts over.
        let carol = harness.join(3, "friday", "carol");
        harness.ticks(1);
        let events = harness.server.take_recording();
        assert_eq!(
            events[..2],
            [
                RecordEvent::RoomOpened {
                    room: 1,
                    code: "friday".to_string()
                },
                RecordEvent::Joined {
                    room: 1,
                    tick: 0,
                    client: carol,
                    name: "carol".to_string(),
                    dialect: Dialect::Native
                },
            ]
        );
        assert!(matches!(
            events[2],
            RecordEvent::Tick {
                room: 1,
                tick: 1,
                ..
            }
        ));
    }

    #[test]
    fn decoded_audio_is_handed_out_every_tick() {
        let mut harness = Harness::new();
        let alice = harness.join(1, "friday", "alice");
        let _bob = harness.join(2, "friday", "bob");
        let mut encoder = OpusEncoder::new(OpusSettings::default()).unwrap();
        let mut packet = [0u8; 1500];
        let mut decoded = Vec::new();
        for sequence in 0..40u32 {
            let frame: PcmFrame = std::array::from_fn(|n| {
                let t = (sequence as usize * FRAME_SAMPLES + n) as f32 / SAMPLE_RATE as f32;
                0.3 * (std::f32::consts::TAU * 440.0 * t).sin()
            });
            let len = encoder.encode(&frame, &mut packet).unwrap();
            let header = AudioHeader {
                client_id: alice,
                sequence,
                timestamp: sequence * FRAME_SAMPLES as u32,
            };
            harness.server.handle_input(
                harness.now,
                ServerInput::Datagram {
                    conn: ConnectionId(1),
                    bytes: &encode_datagram(header, &packet[..len]),
                },
            );
            harness.ticks(1);
            for event in harness.server.take_recording() {
                if let RecordEvent::Tick { tick, frames, .. } = event {
                    assert_eq!(tick, u64::from(sequence) + 1, "one tick event per tick");
                    for frame in frames {
                        assert_eq!(frame.member, alice, "bob sent nothing");
                        decoded.extend_from_slice(&frame.pcm[..]);
                    }
                }
            }
        }
        // Everything after the jitter buffer's fill is there, and loud.
        assert!(decoded.len() >= 35 * FRAME_SAMPLES, "{}", decoded.len());
        let rms = (decoded.iter().map(|s| s * s).sum::<f32>() / decoded.len() as f32).sqrt();
        assert!(rms > 0.15, "rms {rms}");
    }

    #[test]
    fn recording_off_costs_nothing() {
        let mut server = Server::new(ServerConfig::default(), 7);
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        server.handle_input(
            Instant::ZERO,
            ServerInput::ConnectionOpened {
                conn: ConnectionId(1),
                peer,
                dialect: Dialect::Native,
            },
        );
        let join = SignalMessage::Join {
            room_code: "friday".to_string(),
            display_name: "alice".to_string(),
        };
        let frame = encode_frame(&encode_message(&join, Dialect::Native).unwrap());
        server.handle_input(
            Instant::ZERO,
            ServerInput::StreamData {
                conn: ConnectionId(1),
                bytes: &frame,
            },
        );
        server.handle_input(Instant::from_millis(20), ServerInput::Timeout);
        assert!(server.take_recording().is_empty());
    }
}
