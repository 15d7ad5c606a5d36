//! Command-line arguments, parsed by clap and validated in a second step.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Self-hosted group voice chat over QUIC: a mixing server and its client.
#[derive(Debug, Parser)]
#[command(name = "voicemcu", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a voice server.
    Server(ServerArgs),
    /// Join a room on a server.
    Client(ClientArgs),
    /// Run a three-person conference on 127.0.0.1 with the bundled speech
    /// and report who heard whom.
    Demo(DemoArgs),
    /// Replay a session file offline with the real server and clients on a
    /// virtual clock, and write what every participant heard.
    Replay(crate::replay::ReplayArgs),
    /// Run deterministic network simulations of whole conferences.
    Sim(crate::sim::SimArgs),
    /// Show a running server's rooms, participants and their audio
    /// quality, read from its status socket.
    Status(crate::status::StatusArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub settings: crate::server_config::SettingsArgs,

    /// Seed for client id allocation; random when not given.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Unix socket on which `voicemcu status` reads the server's status
    /// [default: status.sock in the data directory, beside the
    /// certificate].
    #[arg(long, value_name = "PATH", conflicts_with = "no_status_socket")]
    pub status_socket: Option<PathBuf>,

    /// Open no status socket.
    #[arg(long)]
    pub no_status_socket: bool,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address: HOST:PORT, or HOST for port 4433.
    #[arg(required_unless_present_any = ["list_devices", "dump_config"], default_value = "")]
    pub server: String,

    /// Room code to join (created if nobody is in it).
    #[arg(required_unless_present_any = ["list_devices", "dump_config"], default_value = "")]
    pub room: String,

    /// Display name others see.
    #[arg(required_unless_present_any = ["list_devices", "dump_config"], default_value = "")]
    pub name: String,

    /// Print every audio device with its supported sample rates, formats
    /// and channel counts, then exit.
    #[arg(long)]
    pub list_devices: bool,

    /// TOML file with client options (log file, bitrate, jitter depth,
    /// devices, event cap); flags given on the command line override its
    /// values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print every option --config accepts with its default, its allowed
    /// range and what it sets, as a TOML file, then exit.
    #[arg(long)]
    pub dump_config: bool,

    /// Capture device to use instead of the default microphone (a name
    /// from --list-devices, or a unique part of one).
    #[arg(long, conflicts_with_all = ["input_wav", "test_tone"])]
    pub input_device: Option<String>,

    /// Playback device to use instead of the default speakers.
    #[arg(long, conflicts_with = "output_wav")]
    pub output_device: Option<String>,

    /// File for diagnostic logs while the terminal UI runs [default:
    /// voicemcu-client.log in the system's temporary folder].
    #[arg(long)]
    pub log_file: Option<PathBuf>,

    /// SHA-256 fingerprint of the server's certificate, as the server
    /// printed it at start (64 hex digits).
    #[arg(long, conflicts_with = "danger_skip_verify")]
    pub cert_hash: Option<String>,

    /// Accept any server certificate. Anyone on the path can then listen in.
    #[arg(long)]
    pub danger_skip_verify: bool,

    /// Trust a server seen for the first time without asking, and remember
    /// its fingerprint. Needed on first contact when stdin is not a
    /// terminal.
    #[arg(long, conflicts_with_all = ["cert_hash", "danger_skip_verify"])]
    pub trust_new: bool,

    /// File of remembered server fingerprints [default:
    /// $VOICEMCU_KNOWN_SERVERS, else $XDG_CONFIG_HOME/voicemcu/known_servers,
    /// else ~/.config/voicemcu/known_servers].
    #[arg(long, value_name = "FILE")]
    pub known_servers: Option<PathBuf>,

    /// WAV file to send instead of the microphone: 8/16/24/32-bit integer or
    /// 32-bit float PCM, any sample rate and channel count.
    #[arg(long, conflicts_with = "test_tone")]
    pub input_wav: Option<PathBuf>,

    /// Send a 440 Hz test tone instead of the microphone.
    #[arg(long)]
    pub test_tone: bool,

    /// Write what you hear to this WAV file (48 kHz mono 16-bit) instead of
    /// playing it on the speakers.
    #[arg(long)]
    pub output_wav: Option<PathBuf>,

    /// Leave after this many seconds. Without it, the session ends when the
    /// input WAV ends, on /leave, or on Ctrl+C.
    #[arg(long, value_parser = parse_seconds)]
    pub seconds: Option<Duration>,

    /// Speak the voicemcu 0.1 dialect even to a server that offers the
    /// native one.
    #[arg(long)]
    pub legacy: bool,

    /// Encoder bitrate of what you send, in bits per second (6000 to
    /// 510000) [default: 32000].
    #[arg(long)]
    pub bitrate: Option<u32>,

    /// Jitter buffer depth for what you hear, in 20 ms frames (1 to 50)
    /// [default: 3].
    #[arg(long)]
    pub jitter_depth: Option<u32>,

    /// Event lines the terminal UI keeps (1 to 100000) [default: 500].
    #[arg(long)]
    pub event_cap: Option<u32>,

    /// Room password (native dialect only). The first joiner's password
    /// becomes the room's; later joiners must give the same one. Prefer the
    /// environment variable or --password-file: other local users can read
    /// a process's command line.
    #[arg(long, env = "VOICEMCU_ROOM_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// File whose first line, without trailing spaces, is the room
    /// password; it wins over --password and VOICEMCU_ROOM_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the WAV files and the summary.
    #[arg(long, default_value = "demo-output")]
    pub out: PathBuf,

    /// Folder holding alice.wav, bob.wav and carol.wav.
    #[arg(long, default_value = "fixtures/speech")]
    pub speech: PathBuf,
}

/// The port voicemcu servers listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = voicemcu_quic::settings::DEFAULT_PORT;

/// Parses an IP address without a port: `127.0.0.1`, `::1` or `[::1]`,
/// with both brackets or neither.
pub(crate) fn bare_ip(value: &str) -> Option<std::net::IpAddr> {
    let inner = match value.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None => value,
    };
    inner.parse().ok()
}

pub(crate) fn parse_bind(value: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    match bare_ip(value) {
        Some(ip) => Ok(std::net::SocketAddr::new(ip, DEFAULT_PORT)),
        None => Err(format!(
            "{value:?} is not an IP address with an optional port, such as 0.0.0.0:4433, [::]:4433 or 127.0.0.1"
        )),
    }
}

pub(crate) fn parse_unit_interval(value: &str) -> Result<f32, String> {
    let number: f32 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    if (0.0..=1.0).contains(&number) {
        Ok(number)
    } else {
        Err(format!("{number} is outside the allowed range 0 to 1"))
    }
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!(
            "{seconds} is outside the allowed range: more than 0 and at most 86400 seconds"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn vad_threshold_range_enforced() {
        assert_eq!(parse_unit_interval("0.5"), Ok(0.5));
        assert_eq!(
            parse_unit_interval("2"),
            Err("2 is outside the allowed range 0 to 1".to_string())
        );
        assert!(parse_unit_interval("loud").is_err());
    }

    #[test]
    fn bind_port_defaults_to_4433() {
        assert_eq!(
            parse_bind("127.0.0.1"),
            Ok("127.0.0.1:4433".parse().unwrap())
        );
        assert_eq!(parse_bind("[::1]"), Ok("[::1]:4433".parse().unwrap()));
        assert_eq!(parse_bind("0.0.0.0:9"), Ok("0.0.0.0:9".parse().unwrap()));
        assert!(parse_bind("example.org").is_err());
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}
