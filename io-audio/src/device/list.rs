//! `--list-devices`: every capture and playback device with the sample
//! rates, formats and channel counts it supports.

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};

use super::quiet;

/// One device and its supported configurations, as ranges per format and
/// channel count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceListing {
    pub name: String,
    pub is_default: bool,
    pub is_input: bool,
    /// One line per range, such as `2 channels, i16, 8000-192000 Hz`.
    pub configs: Vec<String>,
}

impl fmt::Display for DeviceListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.is_default { " (default)" } else { "" };
        writeln!(f, "  {:?}{default}", self.name)?;
        if self.configs.is_empty() {
            writeln!(f, "      no supported configuration reported")?;
        }
        for config in &self.configs {
            writeln!(f, "      {config}")?;
        }
        Ok(())
    }
}

/// Lists every input and output device of the default host, with stderr
/// output of the audio library captured. Returns the listings and a
/// one-line summary of what the library printed, if anything.
pub fn list_devices() -> Result<(Vec<DeviceListing>, Option<String>), String> {
    let (result, captured) = quiet::capture_stderr(collect);
    if !captured.trim().is_empty() {
        tracing::debug!(output = %captured, "audio library output on stderr");
    }
    result.map(|listings| (listings, quiet::summarize(&captured)))
}

fn collect() -> Result<Vec<DeviceListing>, String> {
    let host = cpal::default_host();
    let default_input = host.default_input_device().and_then(|d| d.name().ok());
    let default_output = host.default_output_device().and_then(|d| d.name().ok());
    let mut listings = Vec::new();

    let inputs = host
        .input_devices()
        .map_err(|error| format!("failed to list input devices: {error}"))?;
    for device in inputs {
        let name = device.name().unwrap_or_else(|_| "unnamed".to_string());
        let configs = match device.supported_input_configs() {
            Ok(ranges) => ranges.map(describe_range).collect(),
            Err(error) => vec![format!("failed to query: {error}")],
        };
        listings.push(DeviceListing {
            is_default: default_input.as_deref() == Some(name.as_str()),
            name,
            is_input: true,
            configs,
        });
    }

    let outputs = host
        .output_devices()
        .map_err(|error| format!("failed to list output devices: {error}"))?;
    for device in outputs {
        let name = device.name().unwrap_or_else(|_| "unnamed".to_string());
        let configs = match device.supported_output_configs() {
            Ok(ranges) => ranges.map(describe_range).collect(),
            Err(error) => vec![format!("failed to query: {error}")],
        };
        listings.push(DeviceListing {
            is_default: default_output.as_deref() == Some(name.as_str()),
            name,
            is_input: false,
            configs,
        });
    }
    Ok(listings)
}

fn describe_range(range: cpal::SupportedStreamConfigRange) -> String {
    let (min, max) = (range.min_sample_rate().0, range.max_sample_rate().0);
    let rates = if min == max {
        format!("{min} Hz")
    } else {
        format!("{min}-{max} Hz")
    };
    let channels = range.channels();
    let plural = if channels == 1 { "" } else { "s" };
    format!(
        "{channels} channel{plural}, {}, {rates}",
        range.sample_format()
    )
}

/// Formats listings as the `--list-devices` output: inputs, then outputs.
pub fn format_listings(listings: &[DeviceListing]) -> String {
    let mut text = String::new();
    for (is_input, title) in [(true, "input devices:"), (false, "output devices:")] {
        text.push_str(title);
        text.push('\n');
        let mut any = false;
        for listing in listings.iter().filter(|l| l.is_input == is_input) {
            text.push_str(&listing.to_string());
            any = true;
        }
        if !any {
            text.push_str("  none\n");
        }
    }
    text
}
