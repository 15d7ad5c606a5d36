//! Checks that the speech fixtures match the timeline in
//! `voicemcu_audio::fixtures`: format, length, digital silence outside each
//! speaker's windows and speech inside them.

use voicemcu_audio::analysis::{active_spans, merge_spans, Span};
use voicemcu_audio::fixtures::{SpeechFixture, DURATION_SECS, SPEAKERS};
use voicemcu_audio::{read_wav_48k_mono, read_wav_mono};

const NATIVE_RATE: u32 = 22_050;

fn native_span(start_secs: f64, end_secs: f64) -> std::ops::Range<usize> {
    let rate = f64::from(NATIVE_RATE);
    (start_secs * rate).round() as usize..(end_secs * rate).round() as usize
}

/// Returns whether the fixture speaks at native sample `index`.
fn speaks_in_native_sample(fixture: &SpeechFixture, index: usize) -> bool {
    let secs = index as f64 / f64::from(NATIVE_RATE);
    fixture.speaks_at(secs)
}

#[test]
fn fixtures_keep_native_format_and_length() {
    for fixture in SPEAKERS {
        let (samples, info) = read_wav_mono(fixture.absolute_path()).unwrap();
        assert_eq!(info.sample_rate, NATIVE_RATE, "{}", fixture.name);
        assert_eq!(info.channels, 1, "{}", fixture.name);
        assert_eq!(info.bits_per_sample, 16, "{}", fixture.name);
        assert_eq!(
            samples.len(),
            (DURATION_SECS * f64::from(NATIVE_RATE)) as usize,
            "{}",
            fixture.name
        );
    }
}

#[test]
fn fixtures_are_digital_silence_outside_speech() {
    for fixture in SPEAKERS {
        let (samples, _) = read_wav_mono(fixture.absolute_path()).unwrap();
        let loud_outside = samples
            .iter()
            .enumerate()
            .filter(|&(index, &sample)| sample != 0.0 && !speaks_in_native_sample(&fixture, index))
            .count();
        assert_eq!(
            loud_outside, 0,
            "{}: non-zero samples outside its windows",
            fixture.name
        );
    }
}

#[test]
fn fixtures_hold_speech_in_each_window() {
    for fixture in SPEAKERS {
        let (samples, _) = read_wav_mono(fixture.absolute_path()).unwrap();
        for window in fixture.speech() {
            let range = native_span(window.start_secs, window.end_secs);
            let inside = &samples[range.clone()];
            // Speech starts within 50 ms of the window's start.
            let first = inside.iter().position(|&s| s.abs() > 0.001).unwrap();
            assert!(
                first < NATIVE_RATE as usize / 20,
                "{}: speech starts {first} samples into {window:?}",
                fixture.name
            );
            // 10 ms windows above -50 dBFS cover at least half the window.
            let active: usize = active_spans(inside, 220, -50.0).iter().map(Span::len).sum();
            assert!(
                active * 2 >= inside.len(),
                "{}: only {active} of {} samples active in {window:?}",
                fixture.name,
                inside.len()
            );
        }
    }
}

#[test]
fn resampled_fixtures_show_speech_in_right_windows() {
    for fixture in SPEAKERS {
        let samples = read_wav_48k_mono(fixture.absolute_path()).unwrap();
        assert_eq!(samples.len(), 672_000, "{}", fixture.name);

        // Active 10 ms windows, joined across pauses of up to 0.4 s, must
        // give one span per speech window, starting within 50 ms of it and
        // ending inside it.
        let spans = merge_spans(&active_spans(&samples, 480, -50.0), 19_200);
        let windows = fixture.speech();
        assert_eq!(
            spans.len(),
            windows.len(),
            "{}: spans {spans:?}",
            fixture.name
        );
        for (span, window) in spans.iter().zip(windows) {
            assert!(
                (span.start_secs() - window.start_secs).abs() < 0.05,
                "{}: span {span:?} for {window:?}",
                fixture.name
            );
            assert!(
                span.end_secs() <= window.end_secs + 0.01,
                "{}: span {span:?} for {window:?}",
                fixture.name
            );
            assert!(
                span.end_secs() > window.start_secs + 0.5 * (window.end_secs - window.start_secs),
                "{}: span {span:?} for {window:?}",
                fixture.name
            );
        }
    }
}
