//! The per-room mixer (mix-minus).
//!
//! Every member of a room has a jitter buffer and a decoder for what it
//! sends, a voice activity detector that gates it, and a limiter and an
//! encoder for what it hears. Each 20 ms tick, [`RoomMixer::mix`]:
//!
//! 1. pops every member's jitter buffer exactly once, muted or not, so that
//!    playout timing never depends on policy;
//! 2. decodes or conceals the frames of members the policy lets be heard.
//!    A silent or muted member costs no decoding at all;
//! 3. gates each decoded frame with the member's VAD;
//! 4. groups the listeners by the set of speakers each may hear (every
//!    audible member except itself and those it has blocked), and for each
//!    distinct set sums the frames once, limits the sum and encodes it once
//!    for everyone in the group. A listener with nobody to hear gets no
//!    frame, so a silent room costs only the buffer pops.
//!
//! Sharing encodes is what keeps a big room cheap: with one person talking,
//! every other member hears the same mix, so a room of sixteen needs one
//! encode per tick instead of fifteen. The limiter and encoder belong to the
//! speaker set, not to a listener, and live as long as the set keeps being
//! heard. A listener whose set changes (someone starts or stops talking)
//! moves to that set's stream.
//!
//! NOTE: the move to another encoder's stream can be heard as a short
//! glitch when it happens mid-speech, because the listener's decoder state
//! came from the other stream. Most moves happen at the start of a talk
//! spurt, after silence, where it is inaudible. Mid-speech, with the
//! bundled speech at 32 kbit/s, the decoded error after a move peaked at
//! 0.22 of full scale against a signal peak of 0.33, and a mix of steady
//! tones reached full scale in simulation. Copying the old encoder's state
//! into the new stream (libopus encoder states can be copied byte for
//! byte) would remove it, but audiopus does not expose the state.
//!
//! Members and sets are kept in `BTreeMap`s, so every pass runs in a fixed
//! order and the same inputs give the same packets, byte for byte.

use std::collections::BTreeMap;

use crate::audio::{PcmFrame, SILENCE};
use crate::codec::{CodecError, Decoder, Encoder, OpusDecoder, OpusEncoder, OpusSettings};
use crate::ids::ClientId;
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::limiter::Limiter;
use crate::vad::{frame_rms, VoiceActivityDetector};
use crate::wire::MAX_AUDIO_PAYLOAD;

/// Ticks a speaker set's encoder is kept after it was last used: 1 s, so a
/// set that recurs between words keeps its encoder state.
const ENCODER_IDLE_TICKS: u64 = 50;

/// The debug message the mixer logs when a member's jitter buffer starts
/// over on a new sequence: the sender restarted its stream, or came back
/// from a long outage.
pub const RESYNC_MESSAGE: &str = "member's jitter buffer resynchronised on a new sequence";

/// Mixer settings shared by every room of a server.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixerConfig {
    pub opus: OpusSettings,
    pub jitter: JitterConfig,
    /// Frame RMS, as a fraction of full scale, below which a sender is
    /// treated as silent. Zero disables the gate.
    pub vad_threshold: f32,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            opus: OpusSettings::default(),
            jitter: JitterConfig::default(),
            vad_threshold: 0.01,
        }
    }
}

/// Who may be heard, and by whom: the room's answer to the mixer.
pub trait MixPolicy {
    /// Whether `sender` may be heard by anyone (not muted, not force-muted).
    fn is_audible(&self, sender: ClientId) -> bool;
    /// Whether `listener` has blocked `sender`.
    fn has_blocked(&self, listener: ClientId, sender: ClientId) -> bool;
}

/// One listener's encoded mix for one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixedFrame {
    pub listener: ClientId,
    pub packet: Vec<u8>,
    /// The senders audible in this frame, in ascending id order.
    pub speakers: Vec<ClientId>,
}

/// One member's audio as the mixer decoded it in one tick, after jitter
/// buffering and concealment, handed out while capture is on (see
/// [`RoomMixer::set_capture`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedFrame {
    pub member: ClientId,
    pub pcm: Box<PcmFrame>,
}

/// Per-member media counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemberStats {
    pub jitter: JitterStats,
    /// Packets from this member that failed to decode and were concealed.
    /// Packets played while the member is muted are not decoded, so they
    /// never count here.
    pub decode_errors: u64,
    /// Ticks in which this member's mix failed to encode and was not sent.
    pub encode_errors: u64,
}

/// One member's media state.
struct Member {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    vad: VoiceActivityDetector,
    /// This tick's decoded frame.
    frame: Box<PcmFrame>,
    /// Whether `frame` counts in this tick's mixes.
    speaking: bool,
    /// Whether `frame` itself reached the VAD threshold, as opposed to
    /// passing in the gate's hangover.
    voiced: bool,
    decode_errors: u64,
    encode_errors: u64,
}

impl Member {
    fn new(config: &MixerConfig) -> Result<Self, CodecError> {
        Ok(Member {
            jitter: JitterBuffer::new(config.jitter),
            decoder: OpusDecoder::new()?,
            vad: VoiceActivityDetector::new(config.vad_threshold),
            frame: Box::new(SILENCE),
            speaking: false,
            voiced: false,
            decode_errors: 0,
            encode_errors: 0,
        })
    }

    /// Pops this tick's playout and decodes it into `frame` when the member
    /// may be heard, then decides whether it is speaking. Returns whether
    /// `frame` now holds this tick's decoded (or concealed) audio.
    fn prepare(&mut self, id: ClientId, audible: bool) -> bool {
        let playout = self.jitter.pop();
        self.speaking = false;
        self.voiced = false;

        let decoded = match playout {
            Playout::Silent => false,
            // Skipping the decode leaves the decoder state from before the
            // mute. Opus decodes the next packet regardless, as after a loss.
            _ if !audible => false,
            Playout::Packet(packet) => match self.decoder.decode(&packet, &mut self.frame) {
                Ok(()) => true,
                Err(error) => {
                    self.decode_errors += 1;
                    tracing::trace!(member = id, %error, "undecodable packet concealed");
                    self.conceal(id)
                }
            },
            Playout::Conceal => self.conceal(id),
        };

        if decoded {
            self.speaking = self.vad.update(&self.frame);
            // The RMS is computed again only while the gate is open.
            let threshold = self.vad.threshold();
            self.voiced =
                self.speaking && (threshold == 0.0 || frame_rms(&self.frame) >= threshold);
        } else {
            self.vad.reset();
        }
        decoded
    }

    fn conceal(&mut self, id: ClientId) -> bool {
        match self.decoder.conceal(&mut self.frame) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(member = id, %error, "packet loss concealment failed");
                false
            }
        }
    }

    fn stats(&self) -> MemberStats {
        MemberStats {
            jitter: self.jitter.stats(),
            decode_errors: self.decode_errors,
            encode_errors: self.encode_errors,
        }
    }
}

/// The limiter and encoder that serve every listener hearing one set of
/// speakers.
struct SharedEncoder {
    encoder: OpusEncoder,
    limiter: Limiter,
    last_used: u64,
}

/// The mixer of one room. It is `Send`, so rooms can run on different
/// threads.
pub struct RoomMixer {
    config: MixerConfig,
    members: BTreeMap<ClientId, Member>,
    /// Encoders by the speaker set they encode, in ascending id order.
    encoders: BTreeMap<Vec<ClientId>, SharedEncoder>,
    /// Ticks run so far.
    tick: u64,
    /// This tick's speakers, in ascending id order.
    speakers: Vec<ClientId>,
    /// This tick's speakers whose frame reached the VAD threshold, in
    /// ascending id order.
    voiced: Vec<ClientId>,
    /// `frames[i]` holds the decoded frame of `speakers[i]`. The boxes are
    /// swapped with the members' own, so no frame is copied or allocated
    /// once the pool has grown to the largest number of speakers.
    #[allow(
        clippy::vec_box,
        reason = "swapping a box with a member's is cheaper than copying 3840 bytes"
    )]
    frames: Vec<Box<PcmFrame>>,
    /// The sum of every speaker's frame this tick.
    total: Box<PcmFrame>,
    /// The mix being built for one listener.
    mix: Box<PcmFrame>,
    packet: [u8; MAX_AUDIO_PAYLOAD],
    /// Every member's decoded frame of the ticks since the last
    /// [`RoomMixer::take_captured`], while capture is on.
    capture: Option<Vec<DecodedFrame>>,
}

impl RoomMixer {
    pub fn new(config: MixerConfig) -> Self {
        RoomMixer {
            config,
            members: BTreeMap::new(),
            encoders: BTreeMap::new(),
            tick: 0,
            speakers: Vec::new(),
            voiced: Vec::new(),
            frames: Vec::new(),
            total: Box::new(SILENCE),
            mix: Box::new(SILENCE),
            packet: [0; MAX_AUDIO_PAYLOAD],
            capture: None,
        }
    }

    /// Starts or stops handing out every member's decoded frames. Off by
    /// default, when it costs nothing. Capturing copies frames the mixer
    /// decodes anyway and never changes what it mixes. Stopping discards
    /// the frames not yet taken.
    pub fn set_capture(&mut self, enabled: bool) {
        match (enabled, &self.capture) {
            (true, None) => self.capture = Some(Vec::new()),
            (false, Some(_)) => self.capture = None,
            _ => {}
        }
    }

    /// Takes the frames captured since the last call: one per member and
    /// tick in which the mixer decoded or concealed that member's audio, in
    /// tick order and then ascending member id. A member that sent nothing,
    /// or was muted (so nothing was decoded), has no frame for that tick.
    /// Empty while capture is off.
    pub fn take_captured(&mut self) -> Vec<DecodedFrame> {
        match &mut self.capture {
            Some(frames) => std::mem::take(frames),
            None => Vec::new(),
        }
    }

    /// Adds a member with its own jitter buffer and decoder. Adding an id
    /// that is already a member starts it over with fresh state and
    /// counters. Fails when the codec cannot be set up with the configured
    /// settings.
    pub fn add_member(&mut self, id: ClientId) -> Result<(), CodecError> {
        // Encoders are made per speaker set later; making one here checks
        // the settings while the caller can still reject the join.
        OpusEncoder::new(self.config.opus)?;
        let member = Member::new(&self.config)?;
        self.members.insert(id, member);
        tracing::debug!(member = id, "member added to mixer");
        Ok(())
    }

    pub fn remove_member(&mut self, id: ClientId) {
        if self.members.remove(&id).is_some() {
            tracing::debug!(member = id, "member removed from mixer");
        }
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: ClientId) -> bool {
        self.members.contains_key(&id)
    }

    /// The members' ids, in ascending order.
    pub fn member_ids(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.members.keys().copied()
    }

    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// Hands in one Opus packet a member sent. Packets for an id that is not
    /// a member are ignored.
    pub fn push_packet(&mut self, id: ClientId, sequence: u32, payload: &[u8]) {
        let Some(member) = self.members.get_mut(&id) else {
            tracing::trace!(member = id, sequence, "packet for unknown member ignored");
            return;
        };
        let resyncs = member.jitter.resyncs();
        member.jitter.push(sequence, payload);
        if member.jitter.resyncs() != resyncs {
            tracing::debug!(member = id, sequence, "{RESYNC_MESSAGE}");
        }
    }

    /// Runs one 20 ms tick and appends one [`MixedFrame`] per listener who
    /// has someone to hear. A listener with nobody audible gets nothing.
    pub fn mix(&mut self, policy: &dyn MixPolicy, out: &mut Vec<MixedFrame>) {
        self.tick += 1;
        let RoomMixer {
            config,
            members,
            encoders,
            tick,
            speakers,
            voiced,
            frames,
            total,
            mix,
            packet,
            capture,
        } = self;

        speakers.clear();
        voiced.clear();
        for (&id, member) in members.iter_mut() {
            let decoded = member.prepare(id, policy.is_audible(id));
            if member.voiced {
                voiced.push(id);
            }
            if let (true, Some(captured)) = (decoded, capture.as_mut()) {
                captured.push(DecodedFrame {
                    member: id,
                    pcm: member.frame.clone(),
                });
            }
            if member.speaking {
                let slot = speakers.len();
                if frames.len() == slot {
                    frames.push(Box::new(SILENCE));
                }
                std::mem::swap(&mut member.frame, &mut frames[slot]);
                speakers.push(id);
            }
        }
        if speakers.is_empty() {
            return;
        }

        let speaker_frames = &frames[..speakers.len()];
        total.fill(0.0);
        for frame in speaker_frames {
            add_into(total, frame);
        }

        // Listeners who hear the same speakers share one mix and one encode.
        let mut groups: BTreeMap<Vec<ClientId>, Vec<ClientId>> = BTreeMap::new();
        for &listener in members.keys() {
            let heard: Vec<ClientId> = speakers
                .iter()
                .copied()
                .filter(|&speaker| speaker != listener && !policy.has_blocked(listener, speaker))
                .collect();
            if !heard.is_empty() {
                groups.entry(heard).or_default().push(listener);
            }
        }

        let first_new = out.len();
        for (heard, listeners) in groups {
            build_mix(mix, total, speakers, speaker_frames, &heard);
            let encoded = match encoders.entry(heard.clone()) {
                std::collections::btree_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
                std::collections::btree_map::Entry::Vacant(entry) => OpusEncoder::new(config.opus)
                    .map(|encoder| {
                        entry.insert(SharedEncoder {
                            encoder,
                            limiter: Limiter::new(),
                            last_used: *tick,
                        })
                    }),
            }
            .and_then(|shared| {
                shared.last_used = *tick;
                shared.limiter.process(mix);
                shared.encoder.encode(mix, &mut packet[..])
            });

            match encoded {
                Ok(len) => {
                    for listener in listeners {
                        out.push(MixedFrame {
                            listener,
                            packet: packet[..len].to_vec(),
                            speakers: heard.clone(),
                        });
                    }
                }
                Err(error) => {
                    tracing::debug!(?listeners, %error, "mix not sent: encoding failed");
                    for listener in listeners {
                        if let Some(member) = members.get_mut(&listener) {
                            member.encode_errors += 1;
                        }
                    }
                }
            }
        }
        out[first_new..].sort_by_key(|frame| frame.listener);

        let now = *tick;
        encoders.retain(|_, shared| now - shared.last_used < ENCODER_IDLE_TICKS);

        // Speakers flapping on and off could make many short-lived sets;
        // keep at most two encoders per member, dropping the least recently
        // used.
        let limit = 2 * members.len() + 2;
        while encoders.len() > limit {
            let oldest = encoders
                .iter()
                .min_by_key(|(_, shared)| shared.last_used)
                .map(|(set, _)| set.clone());
            match oldest {
                Some(set) => encoders.remove(&set),
                None => break,
            };
        }
    }

    /// Returns the members whose frame in the last tick reached the VAD
    /// threshold (not counting the gate's hangover), in ascending id order. Only
    /// members the policy let be heard are decoded, so only they appear.
    pub fn voiced(&self) -> &[ClientId] {
        &self.voiced
    }

    pub fn member_stats(&self, id: ClientId) -> Option<MemberStats> {
        self.members.get(&id).map(Member::stats)
    }
}

/// Writes into `mix` the sum of the frames of `heard`, a subset of
/// `speakers`. It starts from `total` and subtracts the excluded speakers
/// when they are fewer than the heard ones, so each listener costs at most
/// about half the speakers in additions.
fn build_mix(
    mix: &mut PcmFrame,
    total: &PcmFrame,
    speakers: &[ClientId],
    frames: &[Box<PcmFrame>],
    heard: &[ClientId],
) {
    let excluded = speakers.len() - heard.len();
    let is_heard = |speaker: &ClientId| heard.binary_search(speaker).is_ok();

    if excluded == 0 {
        mix.copy_from_slice(total);
    } else if excluded < heard.len() {
        mix.copy_from_slice(total);
        for (speaker, frame) in speakers.iter().zip(frames) {
            if !is_heard(speaker) {
                subtract_from(mix, frame);
            }
        }
    } else {
        mix.fill(0.0);
        for (speaker, frame) in speakers.iter().zip(frames) {
            if is_heard(speaker) {
                add_into(mix, frame);
            }
        }
    }
}

fn add_into(sum: &mut PcmFrame, frame: &PcmFrame) {
    for (sum, sample) in sum.iter_mut().zip(frame.iter()) {
        *sum += sample;
    }
}

fn subtract_from(sum: &mut PcmFrame, frame: &PcmFrame) {
    for (sum, sample) in sum.iter_mut().zip(frame.iter()) {
        *sum -= sample;
    }
}

// The mixer must be movable to the thread that runs its room.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<RoomMixer>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};
    use std::collections::BTreeSet;
    use std::f32::consts::TAU;

    const ALICE: ClientId = 7;
    const BOB: ClientId = 42;
    const CAROL: ClientId = 1_000;

    #[derive(Default)]
    struct Policy {
        muted: BTreeSet<ClientId>,
        blocked: BTreeSet<(ClientId, ClientId)>,
    }

    impl MixPolicy for Policy {
        fn is_audible(&self, sender: ClientId) -> bool {
            !self.muted.contains(&sender)
        }

        fn has_blocked(&self, listener: ClientId, sender: ClientId) -> bool {
            self.blocked.contains(&(listener, sender))
        }
    }

    /// A room with real Opus on both sides: each member's client encodes a
    /// tone, and each listener's client decodes what the mixer sends.
    struct Harness {
        mixer: RoomMixer,
        senders: BTreeMap<ClientId, (OpusEncoder, f32, f32)>,
        sequences: BTreeMap<ClientId, u32>,
        decoders: BTreeMap<ClientId, OpusDecoder>,
        received: BTreeMap<ClientId, Vec<f32>>,
        frames: Vec<MixedFrame>,
        tick: usize,
    }

    impl Harness {
        fn new(members: &[ClientId]) -> Self {
            let mut mixer = RoomMixer::new(MixerConfig::default());
            let mut decoders = BTreeMap::new();
            let mut received = BTreeMap::new();
            for &id in members {
                mixer.add_member(id).unwrap();
                decoders.insert(id, OpusDecoder::new().unwrap());
                received.insert(id, Vec::new());
            }
            Harness {
                mixer,
                senders: BTreeMap::new(),
                sequences: BTreeMap::new(),
                decoders,
                received,
                frames: Vec::new(),
                tick: 0,
            }
        }

        fn send_tone(&mut self, id: ClientId, frequency: f32, amplitude: f32) {
            let encoder = OpusEncoder::new(OpusSettings::default()).unwrap();
            self.senders.insert(id, (encoder, frequency, amplitude));
        }

        fn stop_sending(&mut self, id: ClientId) {
            self.senders.remove(&id);
        }

        /// Runs one tick and returns the frames the mixer produced.
        fn step(&mut self, policy: &Policy) -> Vec<MixedFrame> {
            let mut packet = [0u8; MAX_AUDIO_PAYLOAD];
            for (&id, (encoder, frequency, amplitude)) in &mut self.senders {
                let frame: PcmFrame = std::array::from_fn(|n| {
                    let t = (self.tick * FRAME_SAMPLES + n) as f32 / SAMPLE_RATE as f32;
                    *amplitude * (TAU * *frequency * t).sin()
                });
                let len = encoder.encode(&frame, &mut packet).unwrap();
                let sequence = self.sequences.entry(id).or_insert(0);
                self.mixer.push_packet(id, *sequence, &packet[..len]);
                *sequence += 1;
            }

            let mut frames = Vec::new();
            self.mixer.mix(policy, &mut frames);
            for (&listener, audio) in &mut self.received {
                let mut pcm = [0.0f32; FRAME_SAMPLES];
                if let Some(frame) = frames.iter().find(|frame| frame.listener == listener) {
                    assert!(frame.packet.len() <= MAX_AUDIO_PAYLOAD);
                    let decoder = self.decoders.get_mut(&listener).unwrap();
                    decoder.decode(&frame.packet, &mut pcm).unwrap();
                }
                audio.extend_from_slice(&pcm);
            }
            self.frames.extend(frames.iter().cloned());
            self.tick += 1;
            frames
        }

        fn run(&mut self, policy: &Policy, ticks: usize) {
            for _ in 0..ticks {
                self.step(policy);
            }
        }

        /// The last `frames` frames `listener` heard.
        fn tail(&self, listener: ClientId, frames: usize) -> &[f32] {
            let audio = &self.received[&listener];
            &audio[audio.len() - frames * FRAME_SAMPLES..]
        }
    }

    /// Amplitude of the `frequency` component of `samples` (Goertzel).
    fn tone_amplitude(samples: &[f32], frequency: f32) -> f32 {
        let omega = TAU * frequency / SAMPLE_RATE as f32;
        let coefficient = 2.0 * f64::from(omega.cos());
        let (mut previous, mut before_previous) = (0.0f64, 0.0f64);
        for &sample in samples {
            let current = f64::from(sample) + coefficient * previous - before_previous;
            before_previous = previous;
            previous = current;
        }
        let power = previous * previous + before_previous * before_previous
            - coefficient * previous * before_previous;
        (2.0 * power.sqrt() / samples.len() as f64) as f32
    }

    const TONES: [(ClientId, f32); 3] = [(ALICE, 500.0), (BOB, 1_000.0), (CAROL, 1_500.0)];

    fn three_tones(amplitude: f32) -> Harness {
        let mut harness = Harness::new(&[ALICE, BOB, CAROL]);
        for (id, frequency) in TONES {
            harness.send_tone(id, frequency, amplitude);
        }
        harness
    }

    /// Asserts which tones `listener` heard over the last 25 frames.
    fn assert_hears(harness: &Harness, listener: ClientId, expected: &[ClientId]) {
        let tail = harness.tail(listener, 25);
        for (speaker, frequency) in TONES {
            let amplitude = tone_amplitude(tail, frequency);
            if expected.contains(&speaker) {
                assert!(
                    amplitude > 0.15,
                    "{listener} should hear {speaker} at {frequency} Hz: amplitude {amplitude}"
                );
            } else {
                assert!(
                    amplitude < 0.01,
                    "{listener} should not hear {speaker} at {frequency} Hz: amplitude {amplitude}"
                );
            }
        }
    }

    #[test]
    fn each_listener_hears_others_not_itself() {
        let mut harness = three_tones(0.3);
        let policy = Policy::default();
        harness.run(&policy, 60);

        assert_hears(&harness, ALICE, &[BOB, CAROL]);
        assert_hears(&harness, BOB, &[ALICE, CAROL]);
        assert_hears(&harness, CAROL, &[ALICE, BOB]);

        let last = harness.step(&policy);
        let listeners: Vec<ClientId> = last.iter().map(|frame| frame.listener).collect();
        assert_eq!(listeners, vec![ALICE, BOB, CAROL]);
        assert_eq!(last[0].speakers, vec![BOB, CAROL]);
        assert_eq!(last[1].speakers, vec![ALICE, CAROL]);
        assert_eq!(last[2].speakers, vec![ALICE, BOB]);
    }

    #[test]
    fn blocked_sender_absent_for_blocker_only() {
        let mut harness = three_tones(0.3);
        let mut policy = Policy::default();
        policy.blocked.insert((ALICE, BOB));
        harness.run(&policy, 60);

        assert_hears(&harness, ALICE, &[CAROL]);
        assert_hears(&harness, BOB, &[ALICE, CAROL]);
        assert_hears(&harness, CAROL, &[ALICE, BOB]);
        let last = harness.step(&policy);
        assert_eq!(last[0].listener, ALICE);
        assert_eq!(last[0].speakers, vec![CAROL]);
    }

    #[test]
    fn muted_sender_absent_for_everyone() {
        let mut harness = three_tones(0.3);
        let mut policy = Policy::default();
        policy.muted.insert(BOB);
        harness.run(&policy, 60);

        assert_hears(&harness, ALICE, &[CAROL]);
        assert_hears(&harness, BOB, &[ALICE, CAROL]);
        assert_hears(&harness, CAROL, &[ALICE]);
        for frame in harness.step(&policy) {
            assert!(!frame.speakers.contains(&BOB), "{frame:?}");
        }

        // The muted member's buffer keeps playing out, but nothing decodes.
        let stats = harness.mixer.member_stats(BOB).unwrap();
        assert!(stats.jitter.played > 50, "{stats:?}");
        assert_eq!(stats.jitter.late, 0);
    }

    #[test]
    fn loud_senders_never_exceed_full_scale() {
        let mut harness = three_tones(0.95);
        harness.run(&Policy::default(), 60);

        for listener in [ALICE, BOB, CAROL] {
            let audio = &harness.received[&listener];
            let peak = audio
                .iter()
                .fold(0.0f32, |peak, sample| peak.max(sample.abs()));
            assert!(peak <= 1.0, "{listener}: decoded peak {peak}");
            // A wrapped sample would jump by about 2 between neighbours.
            let jump = audio
                .windows(2)
                .map(|pair| (pair[1] - pair[0]).abs())
                .fold(0.0f32, f32::max);
            assert!(jump < 0.8, "{listener}: sample-to-sample jump {jump}");
        }
        assert_hears(&harness, ALICE, &[BOB, CAROL]);
    }

    #[test]
    fn silent_room_sends_nothing() {
        let mut harness = Harness::new(&[ALICE, BOB, CAROL]);
        let policy = Policy::default();
        for _ in 0..20 {
            assert!(harness.step(&policy).is_empty());
        }

        // Alice speaks: only the others get a mix.
        harness.send_tone(ALICE, 500.0, 0.3);
        let mut listeners = BTreeSet::new();
        for _ in 0..20 {
            for frame in harness.step(&policy) {
                assert_eq!(frame.speakers, vec![ALICE]);
                listeners.insert(frame.listener);
            }
        }
        assert_eq!(listeners, BTreeSet::from([BOB, CAROL]));

        // Alice stops: frames end once concealment and the VAD hangover run
        // out.
        harness.stop_sending(ALICE);
        for _ in 0..40 {
            harness.step(&policy);
        }
        for _ in 0..20 {
            assert!(harness.step(&policy).is_empty());
        }
    }

    #[test]
    fn silence_below_vad_threshold_is_not_mixed() {
        let mut harness = Harness::new(&[ALICE, BOB]);
        // An RMS of about 0.0035: under the default threshold of 0.01.
        harness.send_tone(ALICE, 500.0, 0.005);
        let policy = Policy::default();
        for _ in 0..40 {
            assert!(harness.step(&policy).is_empty());
        }
        assert!(harness.mixer.member_stats(ALICE).unwrap().jitter.played > 30);
    }

    #[test]
    fn voiced_excludes_hangover_and_muted() {
        let mut harness = Harness::new(&[ALICE, BOB]);
        harness.send_tone(ALICE, 500.0, 0.3);
        harness.send_tone(BOB, 1_000.0, 0.3);
        let mut policy = Policy::default();
        policy.muted.insert(BOB);
        harness.run(&policy, 10);
        assert_eq!(harness.mixer.voiced(), [ALICE]);

        // Alice drops below the threshold but keeps sending: the gate's
        // hangover still mixes her, yet her frames are no longer voiced.
        harness.send_tone(ALICE, 500.0, 0.001);
        harness.run(&policy, 6);
        assert!(harness.mixer.voiced().is_empty());
        let heard_by_bob = harness.step(&policy);
        assert_eq!(heard_by_bob.len(), 1, "alice is still in the hangover");
        assert_eq!(heard_by_bob[0].speakers, [ALICE]);
    }

    #[test]
    fn undecodable_packets_are_counted_and_concealed() {
        let mut harness = Harness::new(&[ALICE, BOB]);
        harness.send_tone(BOB, 1_000.0, 0.3);
        let policy = Policy::default();
        for sequence in 0..30u32 {
            // Code 3 without its frame-count byte: never valid Opus.
            harness.mixer.push_packet(ALICE, sequence, &[0x03]);
            harness.step(&policy);
        }
        let stats = harness.mixer.member_stats(ALICE).unwrap();
        assert!(stats.decode_errors >= 25, "{stats:?}");
        assert_hears(&harness, ALICE, &[BOB]);
    }

    #[test]
    fn packets_for_unknown_member_are_ignored() {
        let mut mixer = RoomMixer::new(MixerConfig::default());
        mixer.push_packet(ALICE, 0, &[1, 2, 3]);
        let mut out = Vec::new();
        mixer.mix(&Policy::default(), &mut out);
        assert!(out.is_empty());
        assert_eq!(mixer.member_stats(ALICE), None);
    }

    #[test]
    fn removed_member_is_neither_heard_nor_served() {
        let mut harness = three_tones(0.3);
        let policy = Policy::default();
        harness.run(&policy, 20);
        harness.mixer.remove_member(CAROL);
        assert!(!harness.mixer.contains(CAROL));
        assert_eq!(
            harness.mixer.member_ids().collect::<Vec<_>>(),
            vec![ALICE, BOB]
        );
        for frame in harness.step(&policy) {
            assert_ne!(frame.listener, CAROL);
            assert!(!frame.speakers.contains(&CAROL));
        }
    }

    #[test]
    fn same_inputs_give_same_packets() {
        let run = || {
            let mut harness = three_tones(0.5);
            let mut policy = Policy::default();
            policy.blocked.insert((CAROL, ALICE));
            harness.run(&policy, 30);
            harness.frames
        };
        let first = run();
        assert!(!first.is_empty());
        assert_eq!(first, run());
    }

    #[test]
    fn listeners_hearing_same_speakers_share_packet() {
        let mut harness = Harness::new(&[1, 2, 3, 4]);
        let policy = Policy::default();
        harness.send_tone(1, 500.0, 0.3);
        harness.run(&policy, 10);

        let frames = harness.step(&policy);
        let listeners: Vec<ClientId> = frames.iter().map(|frame| frame.listener).collect();
        assert_eq!(listeners, [2, 3, 4], "the speaker hears nobody");
        assert!(frames.iter().all(|frame| frame.speakers == [1]));
        assert_eq!(frames[0].packet, frames[1].packet);
        assert_eq!(frames[1].packet, frames[2].packet);
        assert_eq!(
            harness.mixer.encoders.len(),
            1,
            "one encode serves all three"
        );
    }

    #[test]
    fn capture_hands_out_decoded_frames_without_changing_mixes() {
        let run = |capture: bool| {
            let mut harness = three_tones(0.3);
            harness.mixer.set_capture(capture);
            let mut policy = Policy::default();
            policy.muted.insert(CAROL);
            let mut captured = Vec::new();
            for _ in 0..30 {
                harness.step(&policy);
                captured.push(harness.mixer.take_captured());
            }
            (harness.frames, captured)
        };
        let (plain, nothing) = run(false);
        let (frames, captured) = run(true);
        assert_eq!(plain, frames, "capture changed what was mixed");
        assert!(nothing.iter().all(Vec::is_empty));

        // Once the jitter buffers play, every tick holds the decoded frames
        // of the audible members only, in id order.
        for tick in &captured[10..] {
            let members: Vec<ClientId> = tick.iter().map(|frame| frame.member).collect();
            assert_eq!(members, [ALICE, BOB], "muted Carol is never decoded");
        }
        let alice: Vec<f32> = captured[10..]
            .iter()
            .flat_map(|tick| tick[0].pcm.iter().copied())
            .collect();
        assert!(tone_amplitude(&alice, 500.0) > 0.25);
        assert!(tone_amplitude(&alice, 1_000.0) < 0.01);
    }

    #[test]
    fn mix_minus_by_subtraction_matches_direct_sum() {
        let frames: Vec<Box<PcmFrame>> = (0..4)
            .map(|speaker| {
                Box::new(std::array::from_fn(|n| {
                    ((n * (speaker + 3)) % 17) as f32 / 17.0 - 0.5
                }))
            })
            .collect();
        let speakers = [1, 2, 3, 4];
        let mut total = Box::new(SILENCE);
        for frame in &frames {
            add_into(&mut total, frame);
        }

        // Three of four heard uses subtraction; one of four, direct sums.
        for heard in [vec![1, 2, 4], vec![3], vec![1, 2, 3, 4]] {
            let mut mix = Box::new(SILENCE);
            build_mix(&mut mix, &total, &speakers, &frames, &heard);
            for n in 0..FRAME_SAMPLES {
                let expected: f32 = speakers
                    .iter()
                    .zip(&frames)
                    .filter(|(speaker, _)| heard.contains(speaker))
                    .map(|(_, frame)| frame[n])
                    .sum();
                assert!(
                    (mix[n] - expected).abs() < 1e-5,
                    "heard {heard:?} sample {n}"
                );
            }
        }
    }
}
