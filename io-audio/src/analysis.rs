//! Measuring who is audible in a recording.
//!
//! The demo summary and the end-to-end tests check, from decoded audio
//! alone, that each listener hears every other speaker in the right time
//! windows and never its own voice. They compare a *reference*, what one
//! speaker sent at 48 kHz mono, with a *recording*, what a listener wrote
//! after Opus, the network and the server's mix. In the recording the
//! reference is delayed by an unknown lag, changed by the codec and summed
//! with other speakers.
//!
//! The method has two steps:
//!
//! 1. [`estimate_delay`] finds the lag, first coarsely by cross-correlating
//!    5 ms RMS envelopes (robust to the codec's phase changes), then to the
//!    sample by cross-correlating waveforms within ±10 ms of that.
//! 2. [`presence`] cuts the reference into windows and, for every window in
//!    which the reference is active, finds the best normalized correlation
//!    between it and the recording within a small search around the lag
//!    (the jitter buffer may shift the lag by a few frames during a call).
//!
//! The normalized correlation of a window is close to 1 when the recording
//! contains that speech alone, falls to about `1/sqrt(2)` times the codec's
//! own loss when one equally loud speaker talks over it, and stays small
//! when the speech is missing, even while others talk. [`HEARD_SCORE`] and
//! [`ABSENT_SCORE`] are the recommended thresholds.
//!
//! All positions and lengths are in samples at 48 kHz.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use voicemcu_core::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// Smallest sample magnitude that a 16-bit file can only hold when the
/// signal was clipped: 32767 / 32768.
pub const CLIP_LEVEL: f32 = 32_767.0 / 32_768.0;

/// A window score at or above this means the reference is heard there.
///
/// NOTE: an estimate from one simulated call (`tests/opus_presence.rs`: the
/// speech fixtures, Opus at 32 kb/s coded twice, every listener hearing the
/// other two at equal level). There, windows of a speaker talking alone
/// scored 0.86 to 0.95, windows under one other talker 0.49 to 0.95, and
/// windows of an absent speaker at most 0.22, even under two talkers. A
/// lower bitrate or a louder talker on top lowers the scores of heard
/// speech.
pub const HEARD_SCORE: f32 = 0.5;

/// A window score below this means the reference is absent there. Scores
/// from here up to [`HEARD_SCORE`] are inconclusive.
pub const ABSENT_SCORE: f32 = 0.3;

/// Envelope block used for the coarse delay search: 5 ms.
const ENVELOPE_BLOCK: usize = 240;

/// Half-width of the waveform refinement around the coarse lag: 50 ms,
/// because the envelope peak of speech under other talkers is broad.
const REFINE_RADIUS: i64 = 2_400;

/// Band in hertz in which [`estimate_delay`] compares waveforms.
const DELAY_BAND_HZ: (f32, f32) = (100.0, 4_000.0);

/// A half-open range of samples, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// Converts times in seconds to a span of 48 kHz samples, rounding each
    /// end to the nearest sample.
    pub fn from_secs(start_secs: f64, end_secs: f64) -> Span {
        Span {
            start: secs_to_samples(start_secs),
            end: secs_to_samples(end_secs),
        }
    }

    /// Returns the number of samples in the span.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Returns whether the span contains no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the start in seconds.
    pub fn start_secs(&self) -> f64 {
        self.start as f64 / f64::from(SAMPLE_RATE)
    }

    /// Returns the end in seconds.
    pub fn end_secs(&self) -> f64 {
        self.end as f64 / f64::from(SAMPLE_RATE)
    }

    /// Returns the number of samples this span shares with `other`.
    pub fn overlap(&self, other: &Span) -> usize {
        self.end
            .min(other.end)
            .saturating_sub(self.start.max(other.start))
    }
}

fn secs_to_samples(secs: f64) -> usize {
    (secs * f64::from(SAMPLE_RATE)).round().max(0.0) as usize
}

/// Returns the RMS level in dB relative to full scale, where a full-scale
/// square wave is 0 dBFS and a full-scale sine -3.01 dBFS. Returns negative
/// infinity for an empty or all-zero signal.
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mean_square = energy(samples) / samples.len() as f64;
    (10.0 * mean_square.log10()) as f32
}

/// Returns the largest absolute sample value.
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0, |peak, s| peak.max(s.abs()))
}

/// Counts samples at or beyond [`CLIP_LEVEL`] in either direction.
pub fn clipped_samples(samples: &[f32]) -> usize {
    samples.iter().filter(|s| s.abs() >= CLIP_LEVEL).count()
}

fn energy(samples: &[f32]) -> f64 {
    samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

/// Finds where `samples` contains sound: cuts the signal into consecutive
/// windows of `window` samples (the last may be shorter), marks those whose
/// RMS level is at least `threshold_dbfs`, and joins adjacent marked windows
/// into spans. Returns no spans when `window` is 0.
///
/// Speech has short pauses between words; [`merge_spans`] joins spans
/// separated by less than a given gap.
pub fn active_spans(samples: &[f32], window: usize, threshold_dbfs: f32) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    if window == 0 {
        return spans;
    }
    for (index, chunk) in samples.chunks(window).enumerate() {
        if rms_dbfs(chunk) < threshold_dbfs {
            continue;
        }
        let start = index * window;
        let end = start + chunk.len();
        match spans.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => spans.push(Span { start, end }),
        }
    }
    spans
}

/// Joins spans (sorted by start) whose gap is at most `max_gap` samples.
pub fn merge_spans(spans: &[Span], max_gap: usize) -> Vec<Span> {
    let mut merged: Vec<Span> = Vec::new();
    for &span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end.saturating_add(max_gap) => {
                last.end = last.end.max(span.end);
            }
            _ => merged.push(span),
        }
    }
    merged
}

/// The lag of a reference in a recording, with the quality of the match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DelayEstimate {
    /// Reference sample `n` appears at recording sample `n + lag_samples`.
    /// Negative when the recording started after the reference.
    pub lag_samples: i64,
    /// Normalized waveform correlation at that lag, in [-1, 1]: the
    /// correlation divided by the reference's total energy and the
    /// recording's energy over the overlap, so that parts of the reference
    /// falling outside the recording count as missing.
    pub score: f32,
}

impl DelayEstimate {
    /// Returns the lag in seconds.
    pub fn lag_secs(&self) -> f64 {
        self.lag_samples as f64 / f64::from(SAMPLE_RATE)
    }
}

/// Estimates the lag at which `reference` best appears in `recording`,
/// searching lags from `-max_lag` to `max_lag` samples.
///
/// A lag is always returned when both signals hold energy, and its `score`
/// measures whether the reference is really there (see [`HEARD_SCORE`]).
/// Returns `None` when either signal is silent or too short for one 5 ms
/// envelope block.
pub fn estimate_delay(
    reference: &[f32],
    recording: &[f32],
    max_lag: usize,
) -> Option<DelayEstimate> {
    let reference_energy = energy(reference);
    if reference_energy <= 0.0 || energy(recording) <= 0.0 {
        return None;
    }
    // No lag beyond the two lengths can overlap, so larger limits add nothing.
    let max_lag = max_lag.min(reference.len() + recording.len());
    let coarse = coarse_lag(reference, recording, max_lag)?;

    // Refine on the speech band, where Opus keeps the waveform: first every
    // fourth lag with every fourth sample, then every lag near the best.
    let reference = band_pass(reference, DELAY_BAND_HZ.0, DELAY_BAND_HZ.1);
    let recording = band_pass(recording, DELAY_BAND_HZ.0, DELAY_BAND_HZ.1);
    let recording_prefix = prefix_energy(&recording);
    let max_lag = max_lag as i64;
    let low = (coarse - REFINE_RADIUS).max(-max_lag);
    let high = (coarse + REFINE_RADIUS).min(max_lag);
    let rough = refine_lag(
        &reference,
        &recording,
        &recording_prefix,
        (low..=high).step_by(4),
        4,
    )?;
    let fine_low = (rough - 4).max(-max_lag);
    let fine_high = (rough + 4).min(max_lag);
    let lag = refine_lag(
        &reference,
        &recording,
        &recording_prefix,
        fine_low..=fine_high,
        1,
    )?;
    let score = normalized_correlation_at(
        &reference,
        energy(&reference),
        &recording,
        &recording_prefix,
        lag,
    );
    Some(DelayEstimate {
        lag_samples: lag,
        score,
    })
}

/// Loudest 20 ms blocks of the reference used to refine the lag: one
/// second of speech keeps the direct correlation cheap but unambiguous.
const REFINE_BLOCKS: usize = 50;

/// Block length used to pick the loudest parts of the reference.
const REFINE_BLOCK: usize = 960;

/// Finds the lag among `lags` at which the loudest blocks of `reference`
/// correlate best with `recording`, normalized by the recording's energy
/// under those blocks. Only every `stride`-th sample enters the products.
/// Returns `None` when no lag overlaps the recording.
fn refine_lag(
    reference: &[f32],
    recording: &[f32],
    recording_prefix: &[f64],
    lags: impl Iterator<Item = i64>,
    stride: usize,
) -> Option<i64> {
    let mut blocks: Vec<(usize, f64)> = reference
        .chunks(REFINE_BLOCK)
        .enumerate()
        .map(|(index, block)| (index * REFINE_BLOCK, energy(block)))
        .filter(|&(_, block_energy)| block_energy > 0.0)
        .collect();
    blocks.sort_by(|a, b| b.1.total_cmp(&a.1));
    blocks.truncate(REFINE_BLOCKS);

    let mut best: Option<(i64, f64)> = None;
    for lag in lags {
        let mut product = 0.0;
        let mut selected_energy = 0.0;
        let mut matched_energy = 0.0;
        for &(start, block_energy) in &blocks {
            let end = (start + REFINE_BLOCK).min(reference.len());
            // Clip the block to the part whose shifted position lies in
            // the recording.
            let first = start.max((-lag).max(0) as usize);
            let last = (end as i64).min(recording.len() as i64 - lag);
            selected_energy += block_energy;
            if last <= first as i64 {
                continue;
            }
            let last = last as usize;
            let shifted_first = (first as i64 + lag) as usize;
            let shifted_last = (last as i64 + lag) as usize;
            product += reference[first..last]
                .iter()
                .zip(&recording[shifted_first..shifted_last])
                .step_by(stride)
                .map(|(&r, &x)| f64::from(r) * f64::from(x))
                .sum::<f64>()
                * stride as f64;
            matched_energy += recording_prefix[shifted_last] - recording_prefix[shifted_first];
        }
        if matched_energy <= 0.0 {
            continue;
        }
        let score = product / (selected_energy * matched_energy).sqrt();
        if best.is_none_or(|(_, best_score)| score > best_score) {
            best = Some((lag, score));
        }
    }
    best.map(|(lag, _)| lag)
}

/// Returns the correlation of `reference` with `recording` shifted by
/// `lag`, divided by the square root of the reference's total energy times
/// the recording's energy over the overlap, in [-1, 1]. Parts of the
/// reference outside the recording thus count as missing.
fn normalized_correlation_at(
    reference: &[f32],
    reference_energy: f64,
    recording: &[f32],
    recording_prefix: &[f64],
    lag: i64,
) -> f32 {
    let first = (-lag).max(0) as usize;
    let last = (reference.len() as i64).min(recording.len() as i64 - lag);
    if last <= first as i64 {
        return 0.0;
    }
    let last = last as usize;
    let shifted_first = (first as i64 + lag) as usize;
    let shifted_last = (last as i64 + lag) as usize;
    let product: f64 = reference[first..last]
        .iter()
        .zip(&recording[shifted_first..shifted_last])
        .map(|(&r, &x)| f64::from(r) * f64::from(x))
        .sum();
    let matched_energy = recording_prefix[shifted_last] - recording_prefix[shifted_first];
    let denominator = (reference_energy * matched_energy).sqrt();
    if denominator <= 0.0 {
        return 0.0;
    }
    (product / denominator).clamp(-1.0, 1.0) as f32
}

/// Finds the lag, in samples and to a multiple of [`ENVELOPE_BLOCK`], at
/// which the RMS envelopes correlate best.
fn coarse_lag(reference: &[f32], recording: &[f32], max_lag: usize) -> Option<i64> {
    let reference_envelope = centered_envelope(reference);
    let recording_envelope = centered_envelope(recording);
    if reference_envelope.is_empty() || recording_envelope.is_empty() {
        return None;
    }
    let reference_energy = energy(&reference_envelope);
    if reference_energy <= 0.0 {
        // A constant envelope (a steady tone) carries no timing; let the
        // waveform search start from lag 0.
        return Some(0);
    }
    let max_blocks = (max_lag / ENVELOPE_BLOCK) as i64;
    let correlation = CrossCorrelation::new(&reference_envelope, &recording_envelope);
    let recording_prefix = prefix_energy(&recording_envelope);

    let mut best: Option<(i64, f32)> = None;
    for lag in -max_blocks..=max_blocks {
        let Some(score) = correlation.normalized(lag, reference_energy, &recording_prefix) else {
            continue;
        };
        if best.is_none_or(|(_, best_score)| score > best_score) {
            best = Some((lag, score));
        }
    }
    best.map(|(lag, _)| lag * ENVELOPE_BLOCK as i64)
}

/// Returns the RMS of each [`ENVELOPE_BLOCK`] (the last partial block is
/// dropped), minus the mean of those values.
fn centered_envelope(samples: &[f32]) -> Vec<f32> {
    let mut envelope: Vec<f32> = samples
        .chunks_exact(ENVELOPE_BLOCK)
        .map(|block| (energy(block) / ENVELOPE_BLOCK as f64).sqrt() as f32)
        .collect();
    if envelope.is_empty() {
        return envelope;
    }
    let mean = envelope.iter().map(|&v| f64::from(v)).sum::<f64>() / envelope.len() as f64;
    for value in &mut envelope {
        *value -= mean as f32;
    }
    envelope
}

/// `prefix[i]` is the energy of `samples[..i]`.
fn prefix_energy(samples: &[f32]) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(samples.len() + 1);
    let mut sum = 0.0;
    prefix.push(sum);
    for &s in samples {
        sum += f64::from(s) * f64::from(s);
        prefix.push(sum);
    }
    prefix
}

/// Cross-correlation `c[lag] = sum over n of a[n] * b[n + lag]` for every
/// lag at once, computed with one FFT per signal.
struct CrossCorrelation {
    /// Circular correlation; lag `l` is at index `l mod len`. The FFT is
    /// long enough that no two lags with any overlap share an index.
    values: Vec<f64>,
    a_len: usize,
    b_len: usize,
}

impl CrossCorrelation {
    fn new(a: &[f32], b: &[f32]) -> Self {
        let size = (a.len() + b.len()).next_power_of_two().max(2);
        let mut planner = RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(size);
        let inverse = planner.plan_fft_inverse(size);

        let a_spectrum = spectrum(&forward, a, size);
        let b_spectrum = spectrum(&forward, b, size);
        let mut product: Vec<Complex<f64>> = a_spectrum
            .iter()
            .zip(&b_spectrum)
            .map(|(x, y)| x.conj() * y)
            .collect();
        let mut values = inverse.make_output_vec();
        inverse_real_fft(&inverse, &mut product, &mut values);
        let scale = 1.0 / size as f64;
        for value in &mut values {
            *value *= scale;
        }
        CrossCorrelation {
            values,
            a_len: a.len(),
            b_len: b.len(),
        }
    }

    /// Returns the raw correlation at `lag`, or `None` when `a` shifted by
    /// `lag` does not overlap `b`.
    fn at(&self, lag: i64) -> Option<f64> {
        let (first, last) = self.overlap(lag)?;
        debug_assert!(first < last);
        let index = lag.rem_euclid(self.values.len() as i64) as usize;
        Some(self.values[index])
    }

    /// Returns the range of `a` indices `n` with `n + lag` inside `b`.
    fn overlap(&self, lag: i64) -> Option<(usize, usize)> {
        let first = (-lag).max(0);
        let last = (self.a_len as i64).min(self.b_len as i64 - lag);
        (first < last).then_some((first as usize, last as usize))
    }

    /// Returns the correlation at `lag` divided by the square root of
    /// `a_energy` times the energy of `b` over the overlap, or `None` when
    /// there is no overlap. Returns 0.0 when `b` is silent there.
    fn normalized(&self, lag: i64, a_energy: f64, b_prefix: &[f64]) -> Option<f32> {
        let raw = self.at(lag)?;
        let (first, last) = self.overlap(lag)?;
        let b_start = (first as i64 + lag) as usize;
        let b_end = (last as i64 + lag) as usize;
        let b_energy = b_prefix[b_end] - b_prefix[b_start];
        let denominator = (a_energy * b_energy).sqrt();
        if denominator <= f64::EPSILON * a_energy.max(1.0) {
            return Some(0.0);
        }
        Some((raw / denominator).clamp(-1.0, 1.0) as f32)
    }
}

fn spectrum(
    forward: &Arc<dyn RealToComplex<f64>>,
    samples: &[f32],
    size: usize,
) -> Vec<Complex<f64>> {
    let mut input = forward.make_input_vec();
    debug_assert_eq!(input.len(), size);
    for (slot, &sample) in input.iter_mut().zip(samples) {
        *slot = f64::from(sample);
    }
    let mut output = forward.make_output_vec();
    // Both buffers come from the plan, so their lengths are right.
    let result = forward.process(&mut input, &mut output);
    debug_assert!(result.is_ok(), "{result:?}");
    output
}

/// Runs an inverse real FFT on a spectrum from [`spectrum`].
fn inverse_real_fft(
    inverse: &Arc<dyn ComplexToReal<f64>>,
    spectrum: &mut [Complex<f64>],
    output: &mut [f64],
) {
    // A real signal's first and last bins are real; clearing their rounding
    // residue keeps realfft from reporting an error for them.
    if let Some(first) = spectrum.first_mut() {
        first.im = 0.0;
    }
    if let Some(last) = spectrum.last_mut() {
        last.im = 0.0;
    }
    // The buffers come from the same plan, so their lengths are right and
    // realfft has nothing left to reject.
    let result = inverse.process(spectrum, output);
    debug_assert!(result.is_ok(), "{result:?}");
}

/// Settings for [`presence`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresenceConfig {
    /// Window length in samples.
    pub window: usize,
    /// Maximum drift of the lag from the one given, in samples either way.
    pub search: usize,
    /// When set, only drifts within `search_radius` of a multiple of this
    /// step are tried. voicemcu's jitter buffers add or drop whole 20 ms
    /// frames, so the lag moves in steps of 960 samples. Trying only those
    /// lags keeps chance correlations of absent speech low.
    pub drift_step: Option<usize>,
    /// Allowed distance, in samples, from a multiple of `drift_step`.
    pub search_radius: usize,
    /// A 20 ms block of the reference is active when its RMS level after
    /// the band filter reaches this many dBFS.
    pub active_threshold_dbfs: f32,
    /// Reference windows in which fewer than this fraction of the 20 ms
    /// blocks are active are skipped: a window holding only the tail of a
    /// word has too few pitch periods for its score to mean much.
    pub min_active_fraction: f32,
    /// Pass band in hertz applied to both signals before comparing them,
    /// or `None` to compare the full band.
    pub band_hz: Option<(f32, f32)>,
}

impl Default for PresenceConfig {
    /// 400 ms windows that are at least half active at -45 dBFS, a search
    /// of up to two 20 ms frames of drift either way, each ±1 ms, and a
    /// 100 Hz to 4 kHz band.
    fn default() -> Self {
        PresenceConfig {
            window: 19_200,
            search: 1_920,
            drift_step: Some(FRAME_SAMPLES),
            search_radius: 48,
            active_threshold_dbfs: -45.0,
            min_active_fraction: 0.5,
            band_hz: Some((100.0, 4_000.0)),
        }
    }
}

/// The match of one reference window in the recording.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowPresence {
    /// The window, in reference samples.
    pub span: Span,
    /// The reference's RMS level in the window.
    pub reference_dbfs: f32,
    /// The recording's RMS level over the best-matching window.
    pub recording_dbfs: f32,
    /// Best normalized correlation within the search, in [0, 1]. Compare
    /// with [`HEARD_SCORE`] and [`ABSENT_SCORE`].
    pub score: f32,
    /// The lag at which the score was found.
    pub lag_samples: i64,
}

/// Measures, for each window of `reference` that is active (see
/// [`PresenceConfig`]), how strongly it appears in `recording` around `lag`
/// (as from [`estimate_delay`]).
///
/// Parts of the search that fall outside the recording count as silence.
/// Returns nothing when `config.window` is 0.
pub fn presence(
    reference: &[f32],
    recording: &[f32],
    lag: i64,
    config: &PresenceConfig,
) -> Vec<WindowPresence> {
    let mut results = Vec::new();
    if config.window == 0 {
        return results;
    }
    let search = config.search as i64;
    let mut planner = RealFftPlanner::<f64>::new();
    let (reference, recording) = match config.band_hz {
        Some((low, high)) => (
            band_pass(reference, low, high),
            band_pass(recording, low, high),
        ),
        None => (reference.to_vec(), recording.to_vec()),
    };

    for (index, window) in reference.chunks(config.window).enumerate() {
        let blocks = window.chunks(FRAME_SAMPLES).count() as f32;
        let active_blocks = window
            .chunks(FRAME_SAMPLES)
            .filter(|block| rms_dbfs(block) >= config.active_threshold_dbfs)
            .count() as f32;
        if active_blocks == 0.0 || active_blocks < config.min_active_fraction * blocks {
            continue;
        }
        let reference_dbfs = rms_dbfs(window);
        let start = index * config.window;
        let span = Span {
            start,
            end: start + window.len(),
        };
        let segment_start = (start as i64).saturating_add(lag).saturating_sub(search);
        let segment = padded_slice(&recording, segment_start, window.len() + 2 * config.search);
        let allowed = |offset: usize| match config.drift_step {
            Some(step) if step > 0 => {
                let drift = (offset as i64 - search).rem_euclid(step as i64) as usize;
                drift.min(step - drift) <= config.search_radius
            }
            _ => true,
        };
        let (offset, score) = best_local_match(&mut planner, window, &segment, allowed);
        let matched = &segment[offset..offset + window.len()];
        results.push(WindowPresence {
            span,
            reference_dbfs,
            recording_dbfs: rms_dbfs(matched),
            score,
            lag_samples: segment_start
                .saturating_add(offset as i64)
                .saturating_sub(start as i64),
        });
    }
    results
}

/// Filters `samples` with a 2nd-order Butterworth high-pass at `low_hz`
/// followed by a 2nd-order Butterworth low-pass at `high_hz`. Speech below
/// about 4 kHz is mostly voiced, and Opus keeps its waveform; above that,
/// fricatives are coded as shaped noise that no longer correlates.
pub fn band_pass(samples: &[f32], low_hz: f32, high_hz: f32) -> Vec<f32> {
    let mut out = samples.to_vec();
    Biquad::butterworth(low_hz, true).run(&mut out);
    Biquad::butterworth(high_hz, false).run(&mut out);
    out
}

/// A biquad filter in direct form I, with coefficients from Robert
/// Bristow-Johnson's "Audio EQ Cookbook".
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    /// Creates a Butterworth (Q = 1/sqrt(2)) high-pass or low-pass at `cutoff_hz`,
    /// clamped to between 1 Hz and just below the Nyquist frequency.
    fn butterworth(cutoff_hz: f32, high_pass: bool) -> Biquad {
        let nyquist = f64::from(SAMPLE_RATE) / 2.0;
        let cutoff = f64::from(cutoff_hz).clamp(1.0, nyquist * 0.99);
        let omega = std::f64::consts::TAU * cutoff / f64::from(SAMPLE_RATE);
        let alpha = omega.sin() / std::f64::consts::SQRT_2;
        let cos = omega.cos();
        let a0 = 1.0 + alpha;
        let b = if high_pass {
            [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0]
        } else {
            [(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0]
        };
        Biquad {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
        }
    }

    fn run(&self, samples: &mut [f32]) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for sample in samples {
            let x0 = f64::from(*sample);
            let y0 =
                self.b[0] * x0 + self.b[1] * x1 + self.b[2] * x2 - self.a[0] * y1 - self.a[1] * y2;
            (x2, x1) = (x1, x0);
            (y2, y1) = (y1, y0);
            *sample = y0 as f32;
        }
    }
}

/// Returns `len` samples of `samples` starting at `start`, with zeros where
/// that range lies outside the signal.
fn padded_slice(samples: &[f32], start: i64, len: usize) -> Vec<f32> {
    let mut out = vec![0.0; len];
    let first = start.max(0);
    let last = start.saturating_add(len as i64).min(samples.len() as i64);
    if first < last {
        let (first, last) = (first as usize, last as usize);
        let out_start = (first as i64 - start) as usize;
        out[out_start..out_start + (last - first)].copy_from_slice(&samples[first..last]);
    }
    out
}

/// Slides `template` over `segment` and returns the offset, among those
/// `allowed`, with the highest normalized correlation, and that
/// correlation floored at 0.
fn best_local_match(
    planner: &mut RealFftPlanner<f64>,
    template: &[f32],
    segment: &[f32],
    allowed: impl Fn(usize) -> bool,
) -> (usize, f32) {
    let template_energy = energy(template);
    let offsets = segment.len() + 1 - template.len();
    let size = (segment.len() + template.len()).next_power_of_two();
    let forward = planner.plan_fft_forward(size);
    let inverse = planner.plan_fft_inverse(size);
    let template_spectrum = spectrum(&forward, template, size);
    let segment_spectrum = spectrum(&forward, segment, size);
    let mut product: Vec<Complex<f64>> = template_spectrum
        .iter()
        .zip(&segment_spectrum)
        .map(|(t, s)| t.conj() * s)
        .collect();
    let mut correlation = inverse.make_output_vec();
    inverse_real_fft(&inverse, &mut product, &mut correlation);

    let prefix = prefix_energy(segment);
    let mut best = (0usize, 0.0f32);
    for offset in (0..offsets).filter(|&offset| allowed(offset)) {
        let segment_energy = prefix[offset + template.len()] - prefix[offset];
        let denominator = (template_energy * segment_energy).sqrt();
        if denominator <= f64::EPSILON * template_energy.max(1.0) {
            continue;
        }
        let score = (correlation[offset] / size as f64 / denominator).clamp(0.0, 1.0) as f32;
        if score > best.1 {
            best = (offset, score);
        }
    }
    best
}

/// Counts of a presence measurement against the recommended thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresenceSummary {
    /// Active reference windows measured.
    pub windows: usize,
    /// Windows scoring at least [`HEARD_SCORE`].
    pub heard: usize,
    /// Windows scoring below [`ABSENT_SCORE`].
    pub absent: usize,
    /// Median window score, or 0.0 when there are no windows.
    pub median_score: f32,
}

impl PresenceSummary {
    /// Returns the fraction of windows heard, or 0.0 without windows.
    pub fn heard_fraction(&self) -> f32 {
        if self.windows == 0 {
            return 0.0;
        }
        self.heard as f32 / self.windows as f32
    }

    /// Returns the fraction of windows absent, or 0.0 without windows.
    pub fn absent_fraction(&self) -> f32 {
        if self.windows == 0 {
            return 0.0;
        }
        self.absent as f32 / self.windows as f32
    }
}

/// Summarizes window scores against [`HEARD_SCORE`] and [`ABSENT_SCORE`].
pub fn summarize(windows: &[WindowPresence]) -> PresenceSummary {
    let mut scores: Vec<f32> = windows.iter().map(|w| w.score).collect();
    scores.sort_by(f32::total_cmp);
    let median_score = match scores.len() {
        0 => 0.0,
        n if n % 2 == 1 => scores[n / 2],
        n => (scores[n / 2 - 1] + scores[n / 2]) / 2.0,
    };
    PresenceSummary {
        windows: scores.len(),
        heard: scores.iter().filter(|&&s| s >= HEARD_SCORE).count(),
        absent: scores.iter().filter(|&&s| s < ABSENT_SCORE).count(),
        median_score,
    }
}

/// Returns the windows that fall inside `span` (in reference samples) by at
/// least half their length.
pub fn windows_within(windows: &[WindowPresence], span: Span) -> Vec<WindowPresence> {
    windows
        .iter()
        .filter(|w| 2 * w.span.overlap(&span) >= w.span.len())
        .copied()
        .collect()
}
