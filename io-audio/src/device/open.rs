//! Finding a cpal device, choosing its stream configuration and building a
//! stream whose callback runs one of the converters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    Device, FromSample, Host, SampleFormat, SizedSample, Stream, StreamConfig,
    SupportedStreamConfig, SupportedStreamConfigRange,
};
use voicemcu_core::audio::SAMPLE_RATE;

use super::convert::{
    capture_path, playback_path, CaptureConverter, CaptureReader, ConvertError, PathStats,
    PlaybackConverter, PlaybackWriter,
};
use super::Direction;

/// A failure to find or open a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no default {0} device")]
    NoDefault(Direction),
    #[error(
        "no {direction} device is named {name:?}; available: {}",
        list_or_none(available)
    )]
    NotFound {
        direction: Direction,
        name: String,
        available: Vec<String>,
    },
    #[error("{direction} device {name:?} matches several devices: {}; give the full name", matches.join(", "))]
    Ambiguous {
        direction: Direction,
        name: String,
        matches: Vec<String>,
    },
    #[error(
        "{direction} device {name:?} supports no sample format voicemcu can convert ({format})"
    )]
    UnsupportedFormat {
        direction: Direction,
        name: String,
        format: SampleFormat,
    },
    #[error("failed to {action} the {direction} device {name:?}: {detail}")]
    Backend {
        direction: Direction,
        name: String,
        action: &'static str,
        detail: String,
    },
    #[error("failed to list {direction} devices: {0}", direction = .0)]
    List(Direction, String),
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A running stream and what describes it to the user.
pub(crate) struct OpenStream<H> {
    pub stream: Stream,
    /// The half of the conversion path the client side uses.
    pub half: H,
    pub stats: Arc<PathStats>,
    /// Set by the stream's error callback when the device is gone.
    pub failed: Arc<AtomicBool>,
    /// Such as `"hw:0" at 44100 Hz, 2 channels, i16`.
    pub description: String,
}

/// Finds the device by name, or the default one when `name` is `None`.
/// A name matches exactly, then case-insensitively, then as a unique
/// case-insensitive substring.
pub(crate) fn find_device(
    host: &Host,
    direction: Direction,
    name: Option<&str>,
) -> Result<Device, DeviceError> {
    let Some(name) = name else {
        let device = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return device.ok_or(DeviceError::NoDefault(direction));
    };

    let devices = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
        Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
    }
    .map_err(|error| DeviceError::List(direction, error.to_string()))?;
    let mut named: Vec<(String, Device)> = devices
        .into_iter()
        .filter_map(|device| device.name().ok().map(|n| (n, device)))
        .collect();

    let wanted = name.to_lowercase();
    let exact = named.iter().position(|(n, _)| n == name);
    let caseless = named.iter().position(|(n, _)| n.to_lowercase() == wanted);
    if let Some(index) = exact.or(caseless) {
        return Ok(named.swap_remove(index).1);
    }
    let partial: Vec<usize> = (0..named.len())
        .filter(|&index| named[index].0.to_lowercase().contains(&wanted))
        .collect();
    match partial[..] {
        [index] => Ok(named.swap_remove(index).1),
        [] => Err(DeviceError::NotFound {
            direction,
            name: name.to_string(),
            available: named.into_iter().map(|(n, _)| n).collect(),
        }),
        _ => Err(DeviceError::Ambiguous {
            direction,
            name: name.to_string(),
            matches: partial
                .iter()
                .map(|&index| named[index].0.clone())
                .collect(),
        }),
    }
}

/// Ranks sample formats: float first, then wider integers, so the
/// conversion loses the least.
fn format_rank(format: SampleFormat) -> Option<u8> {
    let rank = match format {
        SampleFormat::F32 => 0,
        SampleFormat::I16 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::F64 => 3,
        SampleFormat::U16 => 4,
        SampleFormat::I64 | SampleFormat::U32 | SampleFormat::U64 => 5,
        SampleFormat::I8 | SampleFormat::U8 => 6,
        _ => return None,
    };
    Some(rank)
}

/// Picks the configuration to open: 48 kHz when the device supports it
/// (then no resampling is needed), in the best-ranked format and with the
/// fewest channels; otherwise the device's default configuration.
pub(crate) fn choose_config(
    ranges: &[SupportedStreamConfigRange],
    default: Option<SupportedStreamConfig>,
) -> Option<SupportedStreamConfig> {
    let at_48k = ranges
        .iter()
        .filter(|range| {
            range.min_sample_rate().0 <= SAMPLE_RATE && SAMPLE_RATE <= range.max_sample_rate().0
        })
        .filter_map(|range| format_rank(range.sample_format()).map(|rank| (rank, range)))
        .min_by_key(|(rank, range)| (*rank, range.channels()));
    if let Some((_, range)) = at_48k {
        return Some(range.with_sample_rate(cpal::SampleRate(SAMPLE_RATE)));
    }
    if let Some(default) = default.filter(|d| format_rank(d.sample_format()).is_some()) {
        return Some(default);
    }
    // No 48 kHz and an unusable default: the best format at its highest rate.
    ranges
        .iter()
        .filter_map(|range| format_rank(range.sample_format()).map(|rank| (rank, range)))
        .min_by_key(|(rank, range)| (*rank, range.channels()))
        .map(|(_, range)| range.with_max_sample_rate())
}

fn backend_error(
    direction: Direction,
    name: &str,
    action: &'static str,
    detail: impl ToString,
) -> DeviceError {
    DeviceError::Backend {
        direction,
        name: name.to_string(),
        action,
        detail: detail.to_string(),
    }
}

/// Opens and starts a capture stream.
pub(crate) fn open_capture(
    host: &Host,
    name: Option<&str>,
) -> Result<OpenStream<CaptureReader>, DeviceError> {
    let direction = Direction::Input;
    let device = find_device(host, direction, name)?;
    let device_name = device.name().unwrap_or_else(|_| "unnamed".to_string());
    let ranges: Vec<SupportedStreamConfigRange> = device
        .supported_input_configs()
        .map_err(|e| backend_error(direction, &device_name, "query", e))?
        .collect();
    let config = choose_config(&ranges, device.default_input_config().ok()).ok_or_else(|| {
        DeviceError::UnsupportedFormat {
            direction,
            name: device_name.clone(),
            format: ranges
                .first()
                .map(|r| r.sample_format())
                .unwrap_or(SampleFormat::F32),
        }
    })?;

    let stream_config: StreamConfig = config.config();
    let (converter, reader) =
        capture_path(stream_config.sample_rate.0, stream_config.channels as usize)?;
    let stats = reader.stats().clone();
    let failed = Arc::new(AtomicBool::new(false));
    let stream = build_capture(
        &device,
        &stream_config,
        config.sample_format(),
        converter,
        failed.clone(),
    )
    .map_err(|detail| backend_error(direction, &device_name, "open", detail))?;
    stream
        .play()
        .map_err(|e| backend_error(direction, &device_name, "start", e))?;
    Ok(OpenStream {
        stream,
        half: reader,
        stats,
        failed,
        description: describe(&device_name, &config),
    })
}

/// Opens and starts a playback stream.
pub(crate) fn open_playback(
    host: &Host,
    name: Option<&str>,
) -> Result<OpenStream<PlaybackWriter>, DeviceError> {
    let direction = Direction::Output;
    let device = find_device(host, direction, name)?;
    let device_name = device.name().unwrap_or_else(|_| "unnamed".to_string());
    let ranges: Vec<SupportedStreamConfigRange> = device
        .supported_output_configs()
        .map_err(|e| backend_error(direction, &device_name, "query", e))?
        .collect();
    let config = choose_config(&ranges, device.default_output_config().ok()).ok_or_else(|| {
        DeviceError::UnsupportedFormat {
            direction,
            name: device_name.clone(),
            format: ranges
                .first()
                .map(|r| r.sample_format())
                .unwrap_or(SampleFormat::F32),
        }
    })?;

    let stream_config: StreamConfig = config.config();
    let (writer, converter) =
        playback_path(stream_config.sample_rate.0, stream_config.channels as usize)?;
    let stats = writer.stats().clone();
    let failed = Arc::new(AtomicBool::new(false));
    let stream = build_playback(
        &device,
        &stream_config,
        config.sample_format(),
        converter,
        failed.clone(),
    )
    .map_err(|detail| backend_error(direction, &device_name, "open", detail))?;
    stream
        .play()
        .map_err(|e| backend_error(direction, &device_name, "start", e))?;
    Ok(OpenStream {
        stream,
        half: writer,
        stats,
        failed,
        description: describe(&device_name, &config),
    })
}

fn describe(name: &str, config: &SupportedStreamConfig) -> String {
    format!(
        "{name:?} at {} Hz, {} channel{}, {}",
        config.sample_rate().0,
        config.channels(),
        if config.channels() == 1 { "" } else { "s" },
        config.sample_format()
    )
}

/// Returns an error callback that flags the stream as failed when the
/// device has gone away; other errors (such as an overrun) are logged.
fn on_stream_error(direction: Direction, failed: Arc<AtomicBool>) -> impl FnMut(cpal::StreamError) {
    move |error| match error {
        cpal::StreamError::DeviceNotAvailable => failed.store(true, Ordering::Relaxed),
        other => tracing::debug!(%direction, error = %other, "audio stream error"),
    }
}

fn build_capture(
    device: &Device,
    config: &StreamConfig,
    format: SampleFormat,
    converter: CaptureConverter,
    failed: Arc<AtomicBool>,
) -> Result<Stream, String> {
    fn build<T>(
        device: &Device,
        config: &StreamConfig,
        mut converter: CaptureConverter,
        failed: Arc<AtomicBool>,
    ) -> Result<Stream, String>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        device
            .build_input_stream::<T, _, _>(
                config,
                move |data: &[T], _| converter.process(data),
                on_stream_error(Direction::Input, failed),
                None,
            )
            .map_err(|error| error.to_string())
    }
    match format {
        SampleFormat::I8 => build::<i8>(device, config, converter, failed),
        SampleFormat::I16 => build::<i16>(device, config, converter, failed),
        SampleFormat::I32 => build::<i32>(device, config, converter, failed),
        SampleFormat::I64 => build::<i64>(device, config, converter, failed),
        SampleFormat::U8 => build::<u8>(device, config, converter, failed),
        SampleFormat::U16 => build::<u16>(device, config, converter, failed),
        SampleFormat::U32 => build::<u32>(device, config, converter, failed),
        SampleFormat::U64 => build::<u64>(device, config, converter, failed),
        SampleFormat::F32 => build::<f32>(device, config, converter, failed),
        SampleFormat::F64 => build::<f64>(device, config, converter, failed),
        other => Err(format!("sample format {other} is not supported")),
    }
}

fn build_playback(
    device: &Device,
    config: &StreamConfig,
    format: SampleFormat,
    converter: PlaybackConverter,
    failed: Arc<AtomicBool>,
) -> Result<Stream, String> {
    fn build<T>(
        device: &Device,
        config: &StreamConfig,
        mut converter: PlaybackConverter,
        failed: Arc<AtomicBool>,
    ) -> Result<Stream, String>
    where
        T: SizedSample + FromSample<f32>,
    {
        device
            .build_output_stream::<T, _, _>(
                config,
                move |data: &mut [T], _| converter.fill(data),
                on_stream_error(Direction::Output, failed),
                None,
            )
            .map_err(|error| error.to_string())
    }
    match format {
        SampleFormat::I8 => build::<i8>(device, config, converter, failed),
        SampleFormat::I16 => build::<i16>(device, config, converter, failed),
        SampleFormat::I32 => build::<i32>(device, config, converter, failed),
        SampleFormat::I64 => build::<i64>(device, config, converter, failed),
        SampleFormat::U8 => build::<u8>(device, config, converter, failed),
        SampleFormat::U16 => build::<u16>(device, config, converter, failed),
        SampleFormat::U32 => build::<u32>(device, config, converter, failed),
        SampleFormat::U64 => build::<u64>(device, config, converter, failed),
        SampleFormat::F32 => build::<f32>(device, config, converter, failed),
        SampleFormat::F64 => build::<f64>(device, config, converter, failed),
        other => Err(format!("sample format {other} is not supported")),
    }
}
