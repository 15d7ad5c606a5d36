//! The server's configuration: every option an operator may set, its
//! default, its allowed range, and the TOML file that contains them.
//!
//! [`ServerSettings::load`] layers the defaults, then a TOML file, then the
//! command-line flags ([`SettingsOverrides`]), and validates the result
//! once, so a value out of range is reported the same way wherever it came
//! from. [`dump_default_config`]
//! writes a file with every option, its default and what it sets.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voicemcu_core::codec::OpusSettings;
use voicemcu_core::jitter::JitterConfig;
use voicemcu_core::mixer::MixerConfig;
use voicemcu_core::rate_limit::RateLimit;
use voicemcu_core::server::ServerConfig;

use crate::endpoint::{auto_keep_alive, TransportSettings, DATAGRAM_RECEIVE_BUFFER};
use crate::server::{CertificateSource, ServerOptions, ServerTuning, DEFAULT_CONNECTION_RATE};

/// The default address and port a server listens on.
pub const DEFAULT_BIND: &str = "0.0.0.0:4433";

/// The UDP port a `bind` address without one gets.
pub const DEFAULT_PORT: u16 = 4433;

/// Every server option. Field names are the TOML keys and, with `-` for
/// `_`, the command-line flags.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub bitrate: u32,
    pub max_room_size: u32,
    pub max_rooms: u32,
    pub jitter_depth: u32,
    pub vad_threshold: f32,
    /// Seconds.
    pub cleanup_interval: u64,
    pub max_name_len: u32,
    pub max_room_code_len: u32,
    pub signalling_rate: u32,
    pub signalling_burst: u32,
    pub connection_rate: u32,
    pub connection_burst: u32,
    /// Seconds.
    pub frame_timeout: u64,
    /// Seconds; 0 disables the ban.
    pub kick_ban: u64,
    /// Seconds.
    pub idle_timeout: u64,
    /// Seconds; 0 chooses a third of the idle timeout.
    pub keep_alive: u64,
    /// Bytes.
    pub datagram_receive_buffer: u64,
    /// Folder to record every room into; no recording when `None`.
    pub record: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let core = ServerConfig::default();
        let transport = TransportSettings::default();
        ServerSettings {
            bind: DEFAULT_BIND
                .parse()
                .unwrap_or_else(|_| unreachable!("a valid literal")),
            cert_file: None,
            key_file: None,
            record: None,
            bitrate: core.mixer.opus.bitrate,
            max_room_size: saturate(core.max_room_size),
            max_rooms: saturate(core.max_rooms),
            jitter_depth: core.mixer.jitter.depth,
            vad_threshold: core.mixer.vad_threshold,
            cleanup_interval: core.cleanup_interval.as_secs(),
            max_name_len: saturate(core.max_name_len),
            max_room_code_len: saturate(core.max_room_code_len),
            signalling_rate: core.signalling_rate.per_second,
            signalling_burst: core.signalling_rate.burst,
            connection_rate: DEFAULT_CONNECTION_RATE.per_second,
            connection_burst: DEFAULT_CONNECTION_RATE.burst,
            frame_timeout: core.frame_timeout.as_secs(),
            kick_ban: core.kick_ban.as_secs(),
            idle_timeout: transport.idle_timeout.as_secs(),
            keep_alive: 0,
            datagram_receive_buffer: DATAGRAM_RECEIVE_BUFFER as u64,
        }
    }
}

fn saturate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The documentation of one option: what it sets, with its unit, and the
/// values it accepts.
struct OptionDoc {
    key: &'static str,
    help: &'static str,
    /// Whole-number range, or `None` for options checked another way.
    range: Option<RangeInclusive<u64>>,
}

const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        key: "bind",
        help: "Address and UDP port to listen on.",
        range: None,
    },
    OptionDoc {
        key: "cert_file",
        help: "PEM certificate; created together with key_file when neither exists. \
               Without both, the command line uses cert.pem and key.pem in \
               $XDG_DATA_HOME/voicemcu/ (or ~/.local/share/voicemcu/).",
        range: None,
    },
    OptionDoc {
        key: "key_file",
        help: "PEM private key matching cert_file.",
        range: None,
    },
    OptionDoc {
        key: "bitrate",
        help: "Bitrate of each listener's mix, in bits per second.",
        range: Some(6_000..=510_000),
    },
    OptionDoc {
        key: "max_room_size",
        help: "Participants per room at most.",
        range: Some(1..=256),
    },
    OptionDoc {
        key: "max_rooms",
        help: "Rooms open at once at most, across the server.",
        range: Some(1..=100_000),
    },
    OptionDoc {
        key: "jitter_depth",
        help: "Jitter buffer depth per sender, in 20 ms frames.",
        range: Some(1..=50),
    },
    OptionDoc {
        key: "vad_threshold",
        help: "Frame RMS, as a fraction of full scale, below which a sender counts as \
               silent; 0 disables the gate. Allowed range: 0 to 1.",
        range: None,
    },
    OptionDoc {
        key: "cleanup_interval",
        help: "Seconds between sweeps for connections that never sent Join (each is \
               closed once it has waited 10 s) or whose signalling frame stalled.",
        range: Some(1..=3_600),
    },
    OptionDoc {
        key: "max_name_len",
        help: "Display name length at most, in characters.",
        range: Some(1..=1_024),
    },
    OptionDoc {
        key: "max_room_code_len",
        help: "Room code length at most, in characters.",
        range: Some(1..=1_024),
    },
    OptionDoc {
        key: "signalling_rate",
        help: "Signalling messages per second each client may send once its burst is \
               spent; others get an Error. Leave is always allowed.",
        range: Some(1..=1_000),
    },
    OptionDoc {
        key: "signalling_burst",
        help: "Signalling messages each client may send at once.",
        range: Some(1..=10_000),
    },
    OptionDoc {
        key: "connection_rate",
        help: "Connection attempts per second allowed from one IP address (one /64 \
               for IPv6) once its burst is spent; others are refused before the \
               handshake.",
        range: Some(1..=10_000),
    },
    OptionDoc {
        key: "connection_burst",
        help: "Connection attempts allowed at once from one IP address.",
        range: Some(1..=100_000),
    },
    OptionDoc {
        key: "frame_timeout",
        help: "Seconds a signalling frame may take to arrive whole; a connection \
               whose frame is still partial then is closed with an Error.",
        range: Some(1..=600),
    },
    OptionDoc {
        key: "kick_ban",
        help: "Seconds a client the host kicked may not rejoin that room from the same \
               IP address (one /64 for IPv6); 0 disables the ban. Everyone behind one \
               NAT shares an address, so a ban also keeps out the kicked client's \
               housemates.",
        range: Some(0..=604_800),
    },
    OptionDoc {
        key: "idle_timeout",
        help: "Seconds a connection may stay silent before it is dropped.",
        range: Some(3..=600),
    },
    OptionDoc {
        key: "keep_alive",
        help: "Seconds of quiet after which the server sends a keep-alive; must be \
               below idle_timeout. 0 chooses a third of the idle timeout, at most 10 s.",
        range: None,
    },
    OptionDoc {
        key: "datagram_receive_buffer",
        help: "Bytes of received audio datagrams buffered per connection; the oldest \
               are dropped beyond it.",
        range: Some(1_500..=16_777_216),
    },
    OptionDoc {
        key: "record",
        help: "Folder to record every room into, created if needed: per room, a WAV \
               file of what the server decoded from each participant and a session \
               file for `voicemcu replay`. Unset, nothing is recorded.",
        range: None,
    },
];

/// An error in the server's settings or their file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid value {value} for option {option}: the allowed range is {allowed}")]
    OutOfRange {
        option: &'static str,
        value: String,
        allowed: String,
    },

    #[error("option {option} is set but {missing} is not: give both, or neither")]
    Unpaired {
        option: &'static str,
        missing: &'static str,
    },

    #[error("failed to read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid configuration file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },

    #[error("invalid server option: {message}")]
    Invalid { message: String },
}

/// Gives `bind` the default port when it names only an address, as the
/// `--bind` flag does.
fn add_default_port(table: &mut toml::Table) {
    let Some(toml::Value::String(bind)) = table.get_mut("bind") else {
        return;
    };
    if let Ok(ip) = bind.parse::<std::net::IpAddr>() {
        *bind = SocketAddr::new(ip, DEFAULT_PORT).to_string();
    }
}

/// Checks every whole number in `table` against its option's range before
/// the table is converted, so that a negative value, or one too large for
/// the option's type, gets the range message rather than a type error.
fn check_whole_numbers(table: &toml::Table) -> Result<(), SettingsError> {
    for doc in OPTIONS {
        let (Some(range), Some(toml::Value::Integer(value))) = (&doc.range, table.get(doc.key))
        else {
            continue;
        };
        let fits = u64::try_from(*value).is_ok_and(|value| range.contains(&value));
        if !fits {
            return Err(SettingsError::OutOfRange {
                option: doc.key,
                value: value.to_string(),
                allowed: format!("{} to {}", range.start(), range.end()),
            });
        }
    }
    Ok(())
}

/// Option values that take precedence over the file, by TOML key: the
/// command-line flags that were given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsOverrides {
    table: toml::Table,
}

impl SettingsOverrides {
    pub fn new() -> SettingsOverrides {
        SettingsOverrides::default()
    }

    /// Sets a whole-number option. A negative value or one out of the
    /// option's range fails [`ServerSettings::load`] with the range.
    pub fn set_number(&mut self, key: &str, value: i64) -> &mut Self {
        self.table
            .insert(key.to_owned(), toml::Value::Integer(value));
        self
    }

    /// Sets a fractional option.
    pub fn set_float(&mut self, key: &str, value: f64) -> &mut Self {
        self.table.insert(key.to_owned(), toml::Value::Float(value));
        self
    }

    /// Sets an address or path option.
    pub fn set_text(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.table
            .insert(key.to_owned(), toml::Value::String(value.into()));
        self
    }
}

impl ServerSettings {
    /// Builds the settings from the defaults, overridden by the TOML file at
    /// `file` when given, overridden by `overrides`, and validates them.
    pub fn load(
        file: Option<&Path>,
        overrides: &SettingsOverrides,
    ) -> Result<ServerSettings, SettingsError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|error| SettingsError::Parse {
                        path: path.to_owned(),
                        message: error.to_string().trim_end().to_owned(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (key, value) in &overrides.table {
            table.insert(key.clone(), value.clone());
        }
        check_whole_numbers(&table)?;
        add_default_port(&mut table);

        let settings: ServerSettings = table.try_into().map_err(|error: toml::de::Error| {
            let message = error.to_string().trim_end().to_owned();
            match file {
                Some(path) => SettingsError::Parse {
                    path: path.to_owned(),
                    message,
                },
                None => SettingsError::Invalid { message },
            }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads a TOML file. Options it leaves out keep their defaults; an
    /// unknown option is an error, so that a typo is not silently ignored.
    /// The values are not validated here.
    pub fn from_toml_file(path: &Path) -> Result<ServerSettings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        ServerSettings::from_toml(&text).map_err(|message| SettingsError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text like [`ServerSettings::from_toml_file`]; the error
    /// is the parser's message.
    pub fn from_toml(text: &str) -> Result<ServerSettings, String> {
        toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
    }

    /// Checks every option against its allowed range and returns the first
    /// that is out of it.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for doc in OPTIONS {
            let Some(range) = &doc.range else {
                continue;
            };
            let value = self.whole_number(doc.key);
            if !range.contains(&value) {
                return Err(SettingsError::OutOfRange {
                    option: doc.key,
                    value: value.to_string(),
                    allowed: format!("{} to {}", range.start(), range.end()),
                });
            }
        }

        if !(0.0..=1.0).contains(&self.vad_threshold) {
            return Err(SettingsError::OutOfRange {
                option: "vad_threshold",
                value: self.vad_threshold.to_string(),
                allowed: "0 to 1".to_owned(),
            });
        }
        if self.keep_alive >= self.idle_timeout {
            return Err(SettingsError::OutOfRange {
                option: "keep_alive",
                value: self.keep_alive.to_string(),
                allowed: format!(
                    "0 (automatic) to {} (below idle_timeout {})",
                    self.idle_timeout.saturating_sub(1),
                    self.idle_timeout
                ),
            });
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(SettingsError::Unpaired {
                option: "cert_file",
                missing: "key_file",
            }),
            (None, Some(_)) => Err(SettingsError::Unpaired {
                option: "key_file",
                missing: "cert_file",
            }),
            _ => Ok(()),
        }
    }

    fn whole_number(&self, key: &str) -> u64 {
        match key {
            "bitrate" => self.bitrate.into(),
            "max_room_size" => self.max_room_size.into(),
            "max_rooms" => self.max_rooms.into(),
            "jitter_depth" => self.jitter_depth.into(),
            "cleanup_interval" => self.cleanup_interval,
            "max_name_len" => self.max_name_len.into(),
            "max_room_code_len" => self.max_room_code_len.into(),
            "signalling_rate" => self.signalling_rate.into(),
            "signalling_burst" => self.signalling_burst.into(),
            "connection_rate" => self.connection_rate.into(),
            "connection_burst" => self.connection_burst.into(),
            "frame_timeout" => self.frame_timeout,
            "kick_ban" => self.kick_ban,
            "idle_timeout" => self.idle_timeout,
            "datagram_receive_buffer" => self.datagram_receive_buffer,
            other => unreachable!("option {other} has a range in OPTIONS but no value here"),
        }
    }

    /// Builds the core server's settings.
    pub fn core_config(&self) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            max_room_size: self.max_room_size as usize,
            max_rooms: self.max_rooms as usize,
            max_name_len: self.max_name_len as usize,
            max_room_code_len: self.max_room_code_len as usize,
            cleanup_interval: Duration::from_secs(self.cleanup_interval),
            mixer: MixerConfig {
                opus: OpusSettings {
                    bitrate: self.bitrate,
                    ..defaults.mixer.opus
                },
                jitter: JitterConfig {
                    depth: self.jitter_depth,
                    ..defaults.mixer.jitter
                },
                vad_threshold: self.vad_threshold,
            },
            signalling_rate: RateLimit::new(self.signalling_rate, self.signalling_burst),
            frame_timeout: Duration::from_secs(self.frame_timeout),
            kick_ban: Duration::from_secs(self.kick_ban),
            ..defaults
        }
    }

    /// Builds the QUIC layer's settings.
    pub fn tuning(&self) -> ServerTuning {
        let idle_timeout = Duration::from_secs(self.idle_timeout);
        let keep_alive = match self.keep_alive {
            0 => auto_keep_alive(idle_timeout),
            seconds => Duration::from_secs(seconds),
        };
        ServerTuning {
            transport: TransportSettings {
                idle_timeout,
                keep_alive,
                datagram_receive_buffer: usize::try_from(self.datagram_receive_buffer)
                    .unwrap_or(usize::MAX),
            },
            connection_rate: RateLimit::new(self.connection_rate, self.connection_burst),
        }
    }

    /// Returns the certificate the settings name: files when both are set, a new
    /// certificate at every start otherwise.
    pub fn certificate(&self) -> CertificateSource {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => CertificateSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertificateSource::Generate,
        }
    }

    /// Everything [`crate::QuicServer::bind_with`] needs. Call
    /// [`ServerSettings::validate`] first.
    pub fn server_options(&self, seed: u64) -> ServerOptions {
        ServerOptions {
            bind: self.bind,
            certificate: self.certificate(),
            core: self.core_config(),
            seed,
        }
    }
}

/// Returns where the server keeps its certificate and key when no files are
/// configured: `$XDG_DATA_HOME/voicemcu/`, else `$HOME/.local/share/voicemcu/`;
/// `None` when neither variable is set.
pub fn default_certificate_files() -> Option<CertificateSource> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let data = non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    let dir = data.join("voicemcu");
    Some(CertificateSource::Files {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    })
}

/// Returns a TOML file that sets every option to its default, each with a
/// comment saying what it sets and the values it accepts. Options without a
/// default are commented out.
pub fn dump_default_config() -> String {
    let defaults = ServerSettings::default();
    // Serialising a struct of plain values to a TOML table cannot fail.
    let mut table = toml::Table::try_from(&defaults).unwrap_or_default();
    // The threshold is an f32; widened to f64 as is, 0.01 would print as
    // 0.009999999776482582. Its shortest decimal form parses back the same.
    let threshold = defaults.vad_threshold.to_string().parse().unwrap_or(0.0);
    table.insert("vad_threshold".to_owned(), toml::Value::Float(threshold));

    let mut text = String::from(
        "# voicemcu server configuration. Every option is shown with its default.\n\
         # Use with `voicemcu server --config FILE`; command-line flags override it.\n",
    );
    for doc in OPTIONS {
        text.push('\n');
        for line in wrap_comment(doc.help) {
            let _ = writeln!(text, "# {line}");
        }
        if let Some(range) = &doc.range {
            let _ = writeln!(
                text,
                "# Allowed range: {} to {}.",
                range.start(),
                range.end()
            );
        }
        match table.get(doc.key) {
            Some(value) => {
                let _ = writeln!(text, "{} = {value}", doc.key);
            }
            None if doc.key == "record" => {
                let _ = writeln!(text, "# record = \"/var/lib/voicemcu/recordings\"");
            }
            None => {
                let file = doc.key.trim_end_matches("_file");
                let _ = writeln!(text, "# {} = \"/var/lib/voicemcu/{file}.pem\"", doc.key);
            }
        }
    }
    text
}

/// Splits a comment into lines of at most about 76 characters.
fn wrap_comment(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 76 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ServerSettings::default().validate().unwrap();
    }

    #[test]
    fn defaults_match_the_libraries() {
        let settings = ServerSettings::default();
        assert_eq!(settings.core_config(), ServerConfig::default());
        assert_eq!(settings.tuning(), ServerTuning::default());
    }

    #[test]
    fn dump_parses_back_to_defaults() {
        let dump = dump_default_config();
        assert_eq!(
            ServerSettings::from_toml(&dump).unwrap(),
            ServerSettings::default()
        );
        for doc in OPTIONS {
            assert!(dump.contains(doc.key), "{} missing from the dump", doc.key);
        }
    }

    #[test]
    fn every_ranged_option_has_a_value() {
        let settings = ServerSettings::default();
        for doc in OPTIONS.iter().filter(|doc| doc.range.is_some()) {
            settings.whole_number(doc.key);
        }
    }

    #[test]
    fn out_of_range_names_option_value_and_range() {
        let settings = ServerSettings {
            max_room_size: 0,
            ..ServerSettings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid value 0 for option max_room_size: the allowed range is 1 to 256"
        );
    }

    #[test]
    fn keep_alive_must_be_below_idle_timeout() {
        let settings = ServerSettings {
            idle_timeout: 10,
            keep_alive: 10,
            ..ServerSettings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid value 10 for option keep_alive: the allowed range is \
             0 (automatic) to 9 (below idle_timeout 10)"
        );
    }

    #[test]
    fn vad_threshold_range_checked() {
        let settings = ServerSettings {
            vad_threshold: 1.5,
            ..ServerSettings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid value 1.5 for option vad_threshold: the allowed range is 0 to 1"
        );
    }

    #[test]
    fn unknown_option_rejected() {
        let error = ServerSettings::from_toml("bitrat = 1\n").unwrap_err();
        assert!(error.contains("unknown field `bitrat`"), "{error}");
    }

    #[test]
    fn automatic_keep_alive_from_idle_timeout() {
        let short = ServerSettings {
            idle_timeout: 6,
            ..ServerSettings::default()
        };
        assert_eq!(short.tuning().transport.keep_alive, Duration::from_secs(2));
        let long = ServerSettings {
            idle_timeout: 120,
            ..ServerSettings::default()
        };
        assert_eq!(long.tuning().transport.keep_alive, Duration::from_secs(10));
    }
}
