//! How long one 20 ms mixer tick takes for rooms of different sizes.
//!
//! Run with `cargo bench -p voicemcu-core --bench mixer`. Each case builds a
//! room, feeds every member one Opus packet per tick (a 300 Hz to 3 kHz
//! chirp, so the VAD lets it through), and times the mix: jitter buffer,
//! decode, mix-minus, limiter and one encode per listener. The numbers are
//! wall-clock and vary with the machine and its load; docs/benchmarks.md
//! records a run.

use std::time::{Duration, Instant};

use voicemcu_core::audio::{PcmFrame, FRAME_SAMPLES, SAMPLE_RATE};
use voicemcu_core::codec::{Encoder, OpusEncoder, OpusSettings};
use voicemcu_core::ids::ClientId;
use voicemcu_core::mixer::{MixPolicy, MixedFrame, MixerConfig, RoomMixer};

/// Ticks measured per case, after a warm-up that fills the jitter buffers.
const TICKS: u32 = 500;
const WARM_UP_TICKS: u32 = 10;

/// Everyone may hear everyone.
struct OpenRoom;

impl MixPolicy for OpenRoom {
    fn is_audible(&self, _sender: ClientId) -> bool {
        true
    }

    fn has_blocked(&self, _listener: ClientId, _sender: ClientId) -> bool {
        false
    }
}

/// One second of Opus packets of a chirp, reused in a loop.
fn packets() -> Vec<Vec<u8>> {
    let mut encoder =
        OpusEncoder::new(OpusSettings::default()).expect("default settings are valid");
    let mut phase = 0.0f32;
    (0..50)
        .map(|index| {
            let mut frame: PcmFrame = [0.0; FRAME_SAMPLES];
            let frequency = 300.0 + 2_700.0 * index as f32 / 50.0;
            for sample in frame.iter_mut() {
                phase += 2.0 * std::f32::consts::PI * frequency / SAMPLE_RATE as f32;
                *sample = 0.3 * phase.sin();
            }
            let mut packet = vec![0u8; 480];
            let len = encoder
                .encode(&frame, &mut packet)
                .expect("encoding a chirp succeeds");
            packet.truncate(len);
            packet
        })
        .collect()
}

/// Mean time of one tick for a room of `members` with `talkers` of them
/// sending audio.
#[allow(clippy::disallowed_methods)] // A benchmark measures wall-clock time.
fn time_tick(members: u64, talkers: u64, packets: &[Vec<u8>]) -> Duration {
    let mut mixer = RoomMixer::new(MixerConfig::default());
    for id in 0..members {
        mixer.add_member(id).expect("codec setup succeeds");
    }

    let mut out: Vec<MixedFrame> = Vec::new();
    let mut elapsed = Duration::ZERO;
    for tick in 0..WARM_UP_TICKS + TICKS {
        let packet = &packets[tick as usize % packets.len()];
        for id in 0..talkers {
            mixer.push_packet(id, tick, packet);
        }

        out.clear();
        let start = Instant::now();
        mixer.mix(&OpenRoom, &mut out);
        if tick >= WARM_UP_TICKS {
            elapsed += start.elapsed();
        }
    }
    elapsed / TICKS
}

fn main() {
    let packets = packets();
    println!(
        "{:>8} {:>8} {:>12} {:>16}",
        "members", "talkers", "tick (us)", "share of 20 ms"
    );
    for (members, talkers) in [
        (2, 2),
        (4, 1),
        (4, 4),
        (8, 1),
        (8, 8),
        (16, 1),
        (16, 4),
        (16, 16),
    ] {
        let tick = time_tick(members, talkers, &packets);
        let share = tick.as_secs_f64() / 0.020 * 100.0;
        println!(
            "{members:>8} {talkers:>8} {:>12.0} {share:>15.1}%",
            tick.as_secs_f64() * 1e6
        );
    }
}
