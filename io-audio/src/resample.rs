//! Band-limited sample-rate conversion of whole mono signals.
//!
//! WAV files arrive at whatever rate they were recorded at, while voicemcu
//! runs at 48 kHz. [`resample`] converts a complete signal in one call with
//! rubato's windowed-sinc resampler ([`SincFixedIn`]), removes the filter's
//! delay so that output sample `k` sits at time `k / to_rate` like input
//! sample `j` sits at `j / from_rate`, and returns exactly
//! `round(len * to_rate / from_rate)` samples.

use rubato::{
    calculate_cutoff, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use voicemcu_core::audio::SAMPLE_RATE;

/// Errors from resampling.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("invalid sample rate 0 Hz (converting {from_rate} Hz to {to_rate} Hz); sample rates must be at least 1 Hz")]
    ZeroRate { from_rate: u32, to_rate: u32 },
    #[error("resampling from {from_rate} Hz to {to_rate} Hz failed inside rubato: {detail}")]
    Rubato {
        from_rate: u32,
        to_rate: u32,
        detail: String,
    },
}

/// Sinc filter length used when the rate ratio needs no adjustment.
const BASE_SINC_LEN: usize = 256;

/// Maximum sinc filter length, used for large downsampling ratios.
const MAX_SINC_LEN: usize = 2048;

/// Minimum sinc filter length, used only for upsampling from a few hertz.
const MIN_SINC_LEN: usize = 16;

/// Upsampling ratio above which the filter is shortened. The filter delay in
/// output samples is `sinc_len / 2 * ratio`, and this keeps it at or below
/// `BASE_SINC_LEN / 2 * 48` samples even when converting from 1 Hz.
const MAX_FULL_LENGTH_UPSAMPLING: f64 = 48.0;

/// Input samples per rubato call at ratios near 1.
const BASE_CHUNK: usize = 1024;

/// Resamples a 48 kHz-bound signal: [`resample`] with `to_rate` 48 000.
pub fn resample_to_48k(samples: &[f32], from_rate: u32) -> Result<Vec<f32>, ResampleError> {
    resample(samples, from_rate, SAMPLE_RATE)
}

/// Returns the output length [`resample`] produces: `round(len * to_rate /
/// from_rate)`, with halves rounded up. Returns 0 when `from_rate` is 0.
pub fn resampled_len(len: usize, from_rate: u32, to_rate: u32) -> usize {
    if from_rate == 0 {
        return 0;
    }
    let numerator = 2 * len as u128 * u128::from(to_rate) + u128::from(from_rate);
    let rounded = numerator / (2 * u128::from(from_rate));
    usize::try_from(rounded).unwrap_or(usize::MAX)
}

/// Converts `samples` from `from_rate` to `to_rate` with a windowed-sinc
/// filter and returns [`resampled_len`] samples, time-aligned with the input.
///
/// Equal rates return a copy. Audio above the lower of the two Nyquist
/// frequencies is filtered out. Any rates from 1 Hz up are accepted, but the
/// filter is shortened for upsampling ratios above 48 (input rates below
/// 1 kHz when converting to 48 kHz), so quality drops there.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, ResampleError> {
    if from_rate == 0 || to_rate == 0 {
        return Err(ResampleError::ZeroRate { from_rate, to_rate });
    }
    if from_rate == to_rate {
        return Ok(samples.to_vec());
    }
    let expected_len = resampled_len(samples.len(), from_rate, to_rate);
    if expected_len == 0 {
        return Ok(Vec::new());
    }

    let rubato_error = |detail: String| ResampleError::Rubato {
        from_rate,
        to_rate,
        detail,
    };
    let ratio = f64::from(to_rate) / f64::from(from_rate);
    let sinc_len = sinc_len_for(ratio);
    let parameters = SincInterpolationParameters {
        sinc_len,
        f_cutoff: calculate_cutoff(sinc_len, WindowFunction::BlackmanHarris2),
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    let chunk = chunk_for(ratio);
    let mut resampler = SincFixedIn::<f32>::new(ratio, 1.0, parameters, chunk, 1)
        .map_err(|error| rubato_error(error.to_string()))?;

    // NOTE: measured with rubato 0.16.2 (see `impulse_stays_in_place` and
    // `sine_keeps_phase_and_level`): SincFixedIn's output sample k sits at
    // input time (k + 1) / ratio - 1, that is `ratio - 1` output samples
    // late, and not `output_delay()` (half the filter) late. The filter
    // delay only holds output back until more input arrives, which the
    // flush below releases. The lag is dropped here to the nearest whole
    // output sample, or, when it rounds to -1 (downsampling by more than
    // 2), made up with one leading zero. What remains is under half an
    // output sample.
    let lag = (ratio - 1.0).round();
    let delay = if lag > 0.0 { lag as usize } else { 0 };
    let lead_zeros = if lag < 0.0 { 1 } else { 0 };
    let wanted = delay + expected_len;
    let mut output: Vec<f32> = Vec::with_capacity(wanted + 1 + resampler.output_frames_max());
    output.resize(lead_zeros, 0.0);
    let mut buffer = resampler.output_buffer_allocate(true);

    let mut chunks = samples.chunks_exact(chunk);
    for input in chunks.by_ref() {
        let (_, written) = resampler
            .process_into_buffer(&[input], &mut buffer, None)
            .map_err(|error| rubato_error(error.to_string()))?;
        output.extend_from_slice(&buffer[0][..written]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let (_, written) = resampler
            .process_partial_into_buffer(Some(&[rest]), &mut buffer, None)
            .map_err(|error| rubato_error(error.to_string()))?;
        output.extend_from_slice(&buffer[0][..written]);
    }

    // Feed silence until the filter has released every delayed sample. Each
    // call yields about `chunk * ratio` samples, so the bound below is
    // generous; it only guards against looping forever.
    let per_call = ((chunk as f64 * ratio).floor() as usize).max(1);
    let max_flush_calls = wanted / per_call + 4 * sinc_len / chunk + 64;
    let mut flush_calls = 0;
    while output.len() < wanted {
        if flush_calls == max_flush_calls {
            return Err(rubato_error(format!(
                "the filter released only {} of {wanted} samples after {flush_calls} flushes",
                output.len()
            )));
        }
        let (_, written) = resampler
            .process_partial_into_buffer(None::<&[&[f32]]>, &mut buffer, None)
            .map_err(|error| rubato_error(error.to_string()))?;
        output.extend_from_slice(&buffer[0][..written]);
        flush_calls += 1;
    }

    output.truncate(wanted);
    output.drain(..delay);
    Ok(output)
}

/// Chooses a filter length: longer when downsampling, so the transition band
/// stays narrow relative to the output rate, and shorter for very large
/// upsampling ratios, so the delay to flush stays bounded.
fn sinc_len_for(ratio: f64) -> usize {
    let len = if ratio < 1.0 {
        (BASE_SINC_LEN as f64 / ratio).ceil()
    } else if ratio > MAX_FULL_LENGTH_UPSAMPLING {
        BASE_SINC_LEN as f64 * MAX_FULL_LENGTH_UPSAMPLING / ratio
    } else {
        BASE_SINC_LEN as f64
    };
    let len = (len as usize).clamp(MIN_SINC_LEN, MAX_SINC_LEN);
    // rubato rounds the length up to a multiple of 8; do it here so the
    // delay it reports matches the filter it builds.
    len.div_ceil(8) * 8
}

/// Chooses the input chunk so that one call yields at most about 64 k
/// output samples.
fn chunk_for(ratio: f64) -> usize {
    let limit = (65_536.0 / ratio).floor() as usize;
    limit.clamp(1, BASE_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sine(frequency: f64, rate: u32, len: usize, amplitude: f32) -> Vec<f32> {
        (0..len)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                amplitude * (2.0 * std::f64::consts::PI * frequency * t).sin() as f32
            })
            .collect()
    }

    fn rms(samples: &[f32]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / samples.len() as f64).sqrt()
    }

    /// Fits `a * sin(w t + phase)` to `samples` (48 kHz) and returns the
    /// amplitude, the time offset in output samples, and the largest
    /// difference from the fitted sine. `margin` samples at each end are
    /// ignored, because the filter meets the signal's edges there.
    fn fit_sine(samples: &[f32], frequency: f64, margin: usize) -> (f64, f64, f64) {
        let w = 2.0 * std::f64::consts::PI * frequency / f64::from(SAMPLE_RATE);
        let body = margin..samples.len() - margin;
        let (mut in_phase, mut quadrature) = (0.0, 0.0);
        for n in body.clone() {
            in_phase += f64::from(samples[n]) * (w * n as f64).sin();
            quadrature += f64::from(samples[n]) * (w * n as f64).cos();
        }
        let count = body.len() as f64;
        let amplitude = 2.0 * (in_phase * in_phase + quadrature * quadrature).sqrt() / count;
        let phase = quadrature.atan2(in_phase);
        let residual = body
            .map(|n| (f64::from(samples[n]) - amplitude * (w * n as f64 + phase).sin()).abs())
            .fold(0.0, f64::max);
        (amplitude, -phase / w, residual)
    }

    #[test]
    fn resampled_len_rounds_to_nearest() {
        assert_eq!(resampled_len(22_050, 22_050, 48_000), 48_000);
        assert_eq!(resampled_len(1, 44_100, 48_000), 1);
        assert_eq!(resampled_len(3, 96_000, 48_000), 2);
        assert_eq!(resampled_len(1, 96_000, 48_000), 1);
        assert_eq!(resampled_len(1, 96_001, 48_000), 0);
        assert_eq!(resampled_len(5, 0, 48_000), 0);
    }

    #[test]
    fn zero_rate_is_an_error() {
        let error = resample(&[0.0; 10], 0, 48_000).unwrap_err();
        assert!(
            error.to_string().contains("invalid sample rate 0 Hz"),
            "{error}"
        );
    }

    #[test]
    fn equal_rates_copy_input() {
        let input = sine(1000.0, 48_000, 500, 0.5);
        assert_eq!(resample(&input, 48_000, 48_000).unwrap(), input);
    }

    #[test]
    fn sine_keeps_phase_and_level() {
        for from_rate in [8_000u32, 11_025, 16_000, 22_050, 44_100, 96_000, 192_000] {
            let len = from_rate as usize; // one second
            let input = sine(1000.0, from_rate, len, 0.5);
            let output = resample_to_48k(&input, from_rate).unwrap();
            assert_eq!(output.len(), 48_000, "length from {from_rate} Hz");

            let (amplitude, offset, residual) = fit_sine(&output, 1000.0, 2_000);
            assert!(
                (amplitude - 0.5).abs() < 0.002,
                "amplitude {amplitude} from {from_rate} Hz"
            );
            assert!(
                offset.abs() <= 0.5,
                "offset {offset} samples from {from_rate} Hz"
            );
            assert!(residual < 0.002, "residual {residual} from {from_rate} Hz");
        }
    }

    #[test]
    fn impulse_stays_in_place() {
        // An impulse at 0.25 s must peak at 0.25 s after resampling.
        let from_rate = 44_100;
        let mut input = vec![0.0f32; from_rate as usize / 2];
        input[from_rate as usize / 4] = 1.0;
        let output = resample_to_48k(&input, from_rate).unwrap();
        let peak = output
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(index, _)| index)
            .unwrap();
        assert_eq!(peak, 12_000);
    }

    #[test]
    fn downsampling_removes_content_above_nyquist() {
        // 30 kHz at 96 kHz has no place at 48 kHz and must be filtered out
        // instead of folding down to 18 kHz.
        let input = sine(30_000.0, 96_000, 96_000, 0.5);
        let output = resample_to_48k(&input, 96_000).unwrap();
        let level = rms(&output[2_000..46_000]);
        assert!(level < 0.001, "rms {level}");
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(resample_to_48k(&[], 44_100).unwrap().is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn output_length_matches_for_any_rate(
            from_rate in 1u32..=384_000,
            len_seed in 0usize..4_000,
        ) {
            // Keep the output under about 100 k samples so that very low
            // input rates stay fast.
            let max_len = (100_000u64 * u64::from(from_rate) / 48_000).max(1) as usize;
            let len = len_seed % (max_len + 1);
            let input: Vec<f32> = (0..len).map(|n| ((n * 7919) % 200) as f32 / 100.0 - 1.0).collect();
            let output = resample_to_48k(&input, from_rate).unwrap();
            prop_assert_eq!(output.len(), resampled_len(len, from_rate, 48_000));
            prop_assert!(output.iter().all(|s| s.is_finite()));
        }
    }
}
