//! The client's configurable options and how their sources combine: a flag
//! on the command line overrides the `--config` TOML file, which overrides
//! the defaults. Every value is checked against its allowed range after
//! the merge, so a bad value from either source is reported the same way.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::ClientArgs;
use crate::tui::model::DEFAULT_EVENT_CAP;

/// Allowed encoder bitrates in bits per second, the range Opus supports.
const BITRATE_RANGE: RangeInclusive<i64> = 6_000..=510_000;
/// Allowed jitter buffer depths in 20 ms frames (20 ms to 1 s).
const JITTER_DEPTH_RANGE: RangeInclusive<i64> = 1..=50;
/// Allowed event lines kept by the terminal UI.
const EVENT_CAP_RANGE: RangeInclusive<i64> = 1..=100_000;

const DEFAULT_BITRATE: u32 = 32_000;
const DEFAULT_JITTER_DEPTH: u32 = 3;

/// The client options that `--config` can set, after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Log file while the terminal UI runs; `None` means the default path.
    pub log_file: Option<PathBuf>,
    /// Encoder bitrate of what is sent, in bits per second.
    pub bitrate: u32,
    /// Jitter buffer depth for what is heard, in 20 ms frames.
    pub jitter_depth: u32,
    /// Capture device name, or `None` for the default microphone.
    pub input_device: Option<String>,
    /// Playback device name, or `None` for the default speakers.
    pub output_device: Option<String>,
    /// Event lines the terminal UI keeps.
    pub event_cap: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            log_file: None,
            bitrate: DEFAULT_BITRATE,
            jitter_depth: DEFAULT_JITTER_DEPTH,
            input_device: None,
            output_device: None,
            event_cap: DEFAULT_EVENT_CAP,
        }
    }
}

/// Values given on the command line or in the file; `None` where absent.
/// Numbers are signed 64-bit so that a negative or huge value reaches the
/// range check and gets its message instead of a type error.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PartialSettings {
    pub log_file: Option<PathBuf>,
    pub bitrate: Option<i64>,
    pub jitter_depth: Option<i64>,
    pub input_device: Option<String>,
    pub output_device: Option<String>,
    pub event_cap: Option<i64>,
}

impl PartialSettings {
    /// Returns each value from `self` when present, else from `lower`.
    fn or(self, lower: PartialSettings) -> PartialSettings {
        PartialSettings {
            log_file: self.log_file.or(lower.log_file),
            bitrate: self.bitrate.or(lower.bitrate),
            jitter_depth: self.jitter_depth.or(lower.jitter_depth),
            input_device: self.input_device.or(lower.input_device),
            output_device: self.output_device.or(lower.output_device),
            event_cap: self.event_cap.or(lower.event_cap),
        }
    }
}

/// Why the client's settings could not be loaded.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        message: String,
    },
    Parse {
        path: PathBuf,
        message: String,
    },
    OutOfRange {
        option: &'static str,
        value: i64,
        range: RangeInclusive<i64>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, message } => {
                write!(
                    f,
                    "could not read the config file {}: {message}",
                    path.display()
                )
            }
            ConfigError::Parse { path, message } => {
                write!(f, "invalid config file {}: {message}", path.display())
            }
            ConfigError::OutOfRange {
                option,
                value,
                range,
            } => write!(
                f,
                "invalid value {value} for option {option}: the allowed range is {} to {}",
                range.start(),
                range.end()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ClientSettings {
    /// Reads the `--config` file when given, lays `flags` over it and the
    /// defaults under both, and checks every value's range.
    pub fn load(file: Option<&Path>, flags: PartialSettings) -> Result<Self, ConfigError> {
        let from_file = match file {
            Some(path) => read_file(path)?,
            None => PartialSettings::default(),
        };
        Self::merge(flags.or(from_file))
    }

    /// Loads the settings from the `--config` file and the flags in `args`.
    pub fn from_args(args: &ClientArgs) -> Result<Self, ConfigError> {
        let flags = PartialSettings {
            log_file: args.log_file.clone(),
            bitrate: args.bitrate.map(i64::from),
            jitter_depth: args.jitter_depth.map(i64::from),
            input_device: args.input_device.clone(),
            output_device: args.output_device.clone(),
            event_cap: args.event_cap.map(i64::from),
        };
        Self::load(args.config.as_deref(), flags)
    }

    /// Fills absent values with the defaults and checks the ranges.
    fn merge(values: PartialSettings) -> Result<Self, ConfigError> {
        let defaults = ClientSettings::default();
        let bitrate = checked("bitrate", values.bitrate, BITRATE_RANGE)?;
        let jitter_depth = checked("jitter_depth", values.jitter_depth, JITTER_DEPTH_RANGE)?;
        let event_cap = checked("event_cap", values.event_cap, EVENT_CAP_RANGE)?;
        Ok(ClientSettings {
            log_file: values.log_file,
            bitrate: bitrate.map_or(defaults.bitrate, |value| value as u32),
            jitter_depth: jitter_depth.map_or(defaults.jitter_depth, |value| value as u32),
            input_device: values.input_device,
            output_device: values.output_device,
            event_cap: event_cap.map_or(defaults.event_cap, |value| value as usize),
        })
    }
}

/// Returns `value` when it is absent or inside `range`. Every range fits in
/// `u32`, so callers may cast a returned value.
fn checked(
    option: &'static str,
    value: Option<i64>,
    range: RangeInclusive<i64>,
) -> Result<Option<i64>, ConfigError> {
    match value {
        Some(number) if !range.contains(&number) => Err(ConfigError::OutOfRange {
            option,
            value: number,
            range,
        }),
        _ => Ok(value),
    }
}

fn read_file(path: &Path) -> Result<PartialSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    toml::from_str(&text).map_err(|error: toml::de::Error| ConfigError::Parse {
        path: path.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })
}

/// Returns a config file with every option, its default, its allowed range
/// and what it sets, as `voicemcu client --dump-config` prints it. Options
/// without a value by default are commented out, because TOML has no null.
pub fn dump_default_config() -> String {
    let defaults = ClientSettings::default();
    let range = |range: RangeInclusive<i64>| format!("{} to {}", range.start(), range.end());
    format!(
        "\
# voicemcu client options, for `voicemcu client --config FILE`.
# A flag on the command line overrides the value here.

# File for diagnostic logs while the terminal UI runs
# [default: voicemcu-client.log in the system's temporary folder].
# log_file = \"/path/to/voicemcu-client.log\"

# Encoder bitrate of what you send, in bits per second ({bitrate_range}).
bitrate = {bitrate}

# Jitter buffer depth for what you hear, in 20 ms frames ({jitter_range}).
jitter_depth = {jitter_depth}

# Microphone and speakers to use instead of the defaults: a name from
# --list-devices, or a unique part of one. Unused when --input-wav,
# --test-tone or --output-wav replaces that device.
# input_device = \"USB\"
# output_device = \"USB\"

# Event lines the terminal UI keeps ({event_cap_range}).
event_cap = {event_cap}
",
        bitrate_range = range(BITRATE_RANGE),
        bitrate = defaults.bitrate,
        jitter_range = range(JITTER_DEPTH_RANGE),
        jitter_depth = defaults.jitter_depth,
        event_cap_range = range(EVENT_CAP_RANGE),
        event_cap = defaults.event_cap,
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn no_file_no_flags_give_defaults() {
        let settings = ClientSettings::load(None, PartialSettings::default()).unwrap();
        assert_eq!(settings, ClientSettings::default());
        assert_eq!(settings.bitrate, 32_000);
        assert_eq!(settings.jitter_depth, 3);
        assert_eq!(settings.event_cap, DEFAULT_EVENT_CAP);
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let file = config_file(
            "bitrate = 24000\njitter_depth = 5\nevent_cap = 50\n\
             input_device = \"Headset\"\nlog_file = \"/tmp/from-file.log\"\n",
        );
        let flags = PartialSettings {
            jitter_depth: Some(8),
            log_file: Some("/tmp/from-flag.log".into()),
            ..PartialSettings::default()
        };
        let settings = ClientSettings::load(Some(file.path()), flags).unwrap();

        assert_eq!(settings.bitrate, 24_000, "file over default");
        assert_eq!(settings.event_cap, 50, "file over default");
        assert_eq!(settings.input_device.as_deref(), Some("Headset"));
        assert_eq!(settings.jitter_depth, 8, "flag over file");
        assert_eq!(
            settings.log_file,
            Some(PathBuf::from("/tmp/from-flag.log")),
            "flag over file"
        );
        assert_eq!(settings.output_device, None, "default when neither");
    }

    #[test]
    fn every_flag_reaches_its_option() {
        let flags = PartialSettings {
            log_file: Some("client.log".into()),
            bitrate: Some(64_000),
            jitter_depth: Some(7),
            input_device: Some("mic".into()),
            output_device: Some("speakers".into()),
            event_cap: Some(20),
        };
        let expected = ClientSettings {
            log_file: Some("client.log".into()),
            bitrate: 64_000,
            jitter_depth: 7,
            input_device: Some("mic".into()),
            output_device: Some("speakers".into()),
            event_cap: 20,
        };
        assert_eq!(ClientSettings::load(None, flags).unwrap(), expected);
    }

    #[test]
    fn out_of_range_names_option_value_range() {
        let cases = [
            (
                PartialSettings {
                    bitrate: Some(5_999),
                    ..PartialSettings::default()
                },
                "invalid value 5999 for option bitrate: the allowed range is 6000 to 510000",
            ),
            (
                PartialSettings {
                    jitter_depth: Some(0),
                    ..PartialSettings::default()
                },
                "invalid value 0 for option jitter_depth: the allowed range is 1 to 50",
            ),
            (
                PartialSettings {
                    event_cap: Some(-1),
                    ..PartialSettings::default()
                },
                "invalid value -1 for option event_cap: the allowed range is 1 to 100000",
            ),
        ];
        for (flags, expected) in cases {
            let error = ClientSettings::load(None, flags).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn out_of_range_file_value_rejected() {
        let file = config_file("jitter_depth = 51\n");
        let error = ClientSettings::load(Some(file.path()), PartialSettings::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid value 51 for option jitter_depth: the allowed range is 1 to 50"
        );
    }

    #[test]
    fn valid_flag_hides_invalid_file_value() {
        let file = config_file("bitrate = 1\n");
        let flags = PartialSettings {
            bitrate: Some(16_000),
            ..PartialSettings::default()
        };
        let settings = ClientSettings::load(Some(file.path()), flags).unwrap();
        assert_eq!(settings.bitrate, 16_000);
    }

    #[test]
    fn unknown_option_in_file_rejected() {
        let file = config_file("bitrat = 24000\n");
        let error = ClientSettings::load(Some(file.path()), PartialSettings::default())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid config file "), "{error}");
        assert!(error.contains("unknown field `bitrat`"), "{error}");
    }

    #[test]
    fn wrong_type_in_file_rejected() {
        let file = config_file("bitrate = \"fast\"\n");
        let error = ClientSettings::load(Some(file.path()), PartialSettings::default())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid config file "), "{error}");
        assert!(error.contains("bitrate"), "{error}");
    }

    #[test]
    fn missing_file_reported() {
        let error = ClientSettings::load(
            Some(Path::new("/nonexistent/voicemcu-client.toml")),
            PartialSettings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("could not read the config file /nonexistent/voicemcu-client.toml"),
            "{error}"
        );
    }

    #[test]
    fn dump_parses_back_to_defaults() {
        let file = config_file(&dump_default_config());
        let settings = ClientSettings::load(Some(file.path()), PartialSettings::default()).unwrap();
        assert_eq!(settings, ClientSettings::default());
    }

    #[test]
    fn dump_uncommented_examples_parse() {
        let uncommented = dump_default_config()
            .replace("# log_file", "log_file")
            .replace("# input_device", "input_device");
        let file = config_file(&uncommented);
        let settings = ClientSettings::load(Some(file.path()), PartialSettings::default()).unwrap();
        assert_eq!(settings.input_device.as_deref(), Some("USB"));
        assert!(settings.log_file.is_some());
    }
}
