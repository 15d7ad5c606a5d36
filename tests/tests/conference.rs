//! Three people talk over real QUIC on 127.0.0.1 with the bundled speech:
//! each must hear the other two in the right time windows, never itself,
//! with no clipping and a bounded delay. One of them speaks the legacy 0.1
//! dialect.

use std::time::Duration;

use voicemcu_audio::analysis::{
    rms_dbfs, windows_within, Span, WindowPresence, ABSENT_SCORE, HEARD_SCORE,
};
use voicemcu_audio::fixtures::{SpeechFixture, SPEAKERS};
use voicemcu_audio::{read_wav_48k_mono, WavSource};
use voicemcu_core::audio::SAMPLE_RATE;
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::{ClientExit, DialectChoice};
use voicemcu_sim::hearing::{self, Verdict, LISTENER_SETTLE_SECS};
use voicemcu_sim::loopback::LoopbackServer;
use voicemcu_sim::memory::MemorySink;

/// Delay from a speaker's microphone to a listener's speaker at most:
/// jitter buffers on both sides plus the network and join offsets.
const MAX_DELAY_MS: f64 = 500.0;

/// Level below which a listener's output counts as silence.
const SILENCE_DBFS: f32 = -50.0;

fn dialect_of(speaker: &SpeechFixture) -> DialectChoice {
    if speaker.name == "bob" {
        DialectChoice::Legacy
    } else {
        DialectChoice::Auto
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_speakers_hear_each_other() {
    let server = LoopbackServer::start(ServerConfig::default(), 11)
        .await
        .unwrap();

    let mut references = Vec::new();
    let mut clients = Vec::new();
    let mut sinks = Vec::new();
    for speaker in SPEAKERS {
        let samples = read_wav_48k_mono(speaker.absolute_path()).unwrap();
        let sink = MemorySink::new();
        let options = server.client_options("speech", speaker.name, dialect_of(&speaker));
        let client = server.join(
            options,
            Box::new(WavSource::from_samples(samples.clone())),
            Box::new(sink.clone()),
        );
        client.joined(Duration::from_secs(10)).await.unwrap();
        references.push(samples);
        clients.push(client);
        sinks.push(sink);
    }

    for client in clients {
        let name = client.name().to_string();
        let exit = client.finish(Duration::from_secs(60)).await.unwrap();
        assert_eq!(exit, ClientExit::SourceEnded, "{name}");
    }
    server.stop().await.unwrap();

    let recordings: Vec<Vec<f32>> = sinks.iter().map(MemorySink::samples).collect();
    for (sink, speaker) in sinks.iter().zip(SPEAKERS) {
        assert!(
            sink.is_finished(),
            "{}'s sink was not finished",
            speaker.name
        );
    }

    let speakers: Vec<(&str, &[f32])> = SPEAKERS
        .iter()
        .zip(&references)
        .map(|(s, r)| (s.name, r.as_slice()))
        .collect();
    let listeners: Vec<(&str, &[f32])> = SPEAKERS
        .iter()
        .zip(&recordings)
        .map(|(s, r)| (s.name, r.as_slice()))
        .collect();
    let report = hearing::measure(&speakers, &listeners);
    println!("{report}");

    for listener in SPEAKERS {
        let heard = report.listener(listener.name).unwrap();
        assert_eq!(heard.clipped_samples, 0, "{} clipped", listener.name);
        assert!(
            heard.peak < 1.0,
            "{} peaked at {}",
            listener.name,
            heard.peak
        );

        for speaker in SPEAKERS {
            let measured = heard.speaker(speaker.name).unwrap();
            if speaker.name == listener.name {
                assert_eq!(
                    measured.verdict,
                    Verdict::Absent,
                    "{} heard their own voice",
                    listener.name
                );
                for window in &measured.detail {
                    assert!(
                        window.score < ABSENT_SCORE,
                        "{}'s own voice scored {} at {:.1} s",
                        listener.name,
                        window.score,
                        window.span.start_secs()
                    );
                }
                continue;
            }

            assert_eq!(
                measured.verdict,
                Verdict::Heard,
                "{} did not hear {}",
                listener.name,
                speaker.name
            );
            let delay = measured.delay_ms.expect("delay found");
            assert!(
                delay > 0.0 && delay < MAX_DELAY_MS,
                "{} hears {} {delay} ms late",
                listener.name,
                speaker.name
            );

            // Every window of the speaker talking alone is clearly there,
            // from the moment the listener was in the room: clients join one
            // after another, so a later listener misses the first words.
            let lag = measured.lag_ms.expect("lag found") / 1000.0;
            let present =
                |window: &WindowPresence| window.span.start_secs() + lag >= LISTENER_SETTLE_SECS;
            let solo: Vec<WindowPresence> =
                windows_within(&measured.detail, speaker.solo.to_samples())
                    .into_iter()
                    .filter(present)
                    .collect();
            assert!(
                solo.len() >= 3,
                "{} had too little of {}'s solo to judge",
                listener.name,
                speaker.name
            );
            for window in solo {
                assert!(
                    window.score >= HEARD_SCORE,
                    "{} barely heard {} at {:.1} s (score {})",
                    listener.name,
                    speaker.name,
                    window.span.start_secs(),
                    window.score
                );
            }

            // When everyone talks, most of each other speaker still comes
            // through, and none of it vanishes.
            let together = windows_within(&measured.detail, speaker.together.to_samples());
            let heard_together = together.iter().filter(|w| w.score >= HEARD_SCORE).count();
            assert!(
                10 * heard_together >= 7 * together.len(),
                "{} lost {} under the others",
                listener.name,
                speaker.name
            );
            assert!(together.iter().all(|w| w.score >= ABSENT_SCORE));
        }

        // While the listener talks alone, nobody else does, so what it hears
        // must be silence: its own voice is not mixed back to it. Others'
        // speech lands in this recording shifted by their lags, so cut those
        // spans (with a margin) out of the listener's own solo window.
        let index = SPEAKERS
            .iter()
            .position(|s| s.name == listener.name)
            .unwrap();
        let recording = &recordings[index];
        let quiet = quiet_part(listener, &heard.speakers);
        assert!(
            quiet.len() >= SAMPLE_RATE as usize,
            "{}: no quiet second to check",
            listener.name
        );
        let level = rms_dbfs(&recording[quiet.start..quiet.end.min(recording.len())]);
        assert!(
            level < SILENCE_DBFS,
            "{} hears {level} dBFS while only they talk",
            listener.name
        );
    }
}

/// The longest part of `listener`'s solo window, in its own recording,
/// during which no other speaker's speech arrives.
fn quiet_part(listener: SpeechFixture, measured: &[hearing::SpeakerInRecording]) -> Span {
    let margin = 0.2;
    let mut busy: Vec<(f64, f64)> = Vec::new();
    for speaker in SPEAKERS.iter().filter(|s| s.name != listener.name) {
        let lag = measured
            .iter()
            .find(|m| m.speaker == speaker.name)
            .and_then(|m| m.lag_ms)
            .expect("lag of a heard speaker")
            / 1000.0;
        for span in speaker.speech() {
            busy.push((span.start_secs + lag - margin, span.end_secs + lag + margin));
        }
    }

    // Walk the solo window and keep the longest stretch outside every
    // busy span.
    let (start, end) = (listener.solo.start_secs, listener.solo.end_secs);
    let mut cuts: Vec<f64> = vec![start, end];
    for (busy_start, busy_end) in &busy {
        cuts.extend([busy_start.clamp(start, end), busy_end.clamp(start, end)]);
    }
    cuts.sort_by(f64::total_cmp);
    let best = cuts
        .windows(2)
        .map(|pair| (pair[0], pair[1]))
        .filter(|(a, b)| busy.iter().all(|(s, e)| *b <= *s || *a >= *e))
        .max_by(|x, y| (x.1 - x.0).total_cmp(&(y.1 - y.0)))
        .unwrap_or((start, start));
    Span::from_secs(best.0, best.1)
}
