//! The server's command-line flags and how they combine with a
//! configuration file: flags override the file, which overrides the
//! defaults. The options, their defaults and their validation live in
//! [`voicemcu_quic::settings`]; this module only maps flags to them.

use std::path::PathBuf;

use clap::Args;
use voicemcu_quic::{ServerSettings, SettingsOverrides};

use crate::args::{parse_bind, parse_unit_interval};

/// Flags for every server option. None has a default here, so that an
/// absent flag leaves the file's value (or the built-in default) in place;
/// `voicemcu server --dump-config` prints the defaults.
#[derive(Debug, Default, Args)]
pub struct SettingsArgs {
    /// TOML file with server options; flags given on the command line
    /// override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print every option with its default and a comment, as a TOML file
    /// for --config, and exit.
    #[arg(long)]
    pub dump_config: bool,

    /// Print the SHA-256 fingerprint of the server's certificate (creating
    /// the certificate if it does not exist yet) and exit.
    #[arg(long)]
    pub print_fingerprint: bool,

    /// Address and UDP port to listen on: IP:PORT, or IP for port 4433
    /// [default: 0.0.0.0:4433].
    #[arg(long, value_parser = parse_bind)]
    pub bind: Option<std::net::SocketAddr>,

    /// PEM certificate to use; created together with --key-file if neither
    /// exists [default: $XDG_DATA_HOME/voicemcu/cert.pem, else
    /// ~/.local/share/voicemcu/cert.pem].
    #[arg(long)]
    pub cert_file: Option<PathBuf>,

    /// PEM private key matching --cert-file [default: key.pem next to the
    /// default certificate].
    #[arg(long)]
    pub key_file: Option<PathBuf>,

    /// Record every room into this folder (created if needed): per room, a
    /// WAV file of what the server decoded from each participant and a
    /// session file for `voicemcu replay`.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,

    /// Bitrate of each listener's mix, in bits per second (6000 to 510000)
    /// [default: 32000].
    #[arg(long, allow_negative_numbers = true)]
    pub bitrate: Option<i64>,

    /// Participants per room at most (1 to 256) [default: 16].
    #[arg(long, allow_negative_numbers = true)]
    pub max_room_size: Option<i64>,

    /// Rooms open at once at most (1 to 100000) [default: 1024].
    #[arg(long, allow_negative_numbers = true)]
    pub max_rooms: Option<i64>,

    /// Jitter buffer depth per sender, in 20 ms frames (1 to 50)
    /// [default: 3].
    #[arg(long, allow_negative_numbers = true)]
    pub jitter_depth: Option<i64>,

    /// Frame RMS, as a fraction of full scale, below which a sender is
    /// treated as silent; 0 disables the gate [default: 0.01].
    #[arg(long, value_parser = parse_unit_interval)]
    pub vad_threshold: Option<f32>,

    /// Seconds between sweeps for connections that never sent Join or
    /// whose signalling frame stalled (1 to 3600) [default: 5].
    #[arg(long, allow_negative_numbers = true)]
    pub cleanup_interval: Option<i64>,

    /// Display name length at most, in characters (1 to 1024)
    /// [default: 64].
    #[arg(long, allow_negative_numbers = true)]
    pub max_name_len: Option<i64>,

    /// Room code length at most, in characters (1 to 1024) [default: 128].
    #[arg(long, allow_negative_numbers = true)]
    pub max_room_code_len: Option<i64>,

    /// Signalling messages per second each client may send after its
    /// burst (1 to 1000) [default: 20].
    #[arg(long, allow_negative_numbers = true)]
    pub signalling_rate: Option<i64>,

    /// Signalling messages each client may send at once (1 to 10000)
    /// [default: 40].
    #[arg(long, allow_negative_numbers = true)]
    pub signalling_burst: Option<i64>,

    /// Connection attempts per second allowed from one IP address after
    /// its burst (1 to 10000) [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    pub connection_rate: Option<i64>,

    /// Connection attempts allowed at once from one IP address (1 to
    /// 100000) [default: 20].
    #[arg(long, allow_negative_numbers = true)]
    pub connection_burst: Option<i64>,

    /// Seconds a signalling frame may take to arrive whole (1 to 600)
    /// [default: 10].
    #[arg(long, allow_negative_numbers = true)]
    pub frame_timeout: Option<i64>,

    /// Seconds a kicked client's address may not rejoin that room (0 to
    /// 604800; 0 disables the ban) [default: 600].
    #[arg(long, allow_negative_numbers = true)]
    pub kick_ban: Option<i64>,

    /// Seconds a connection may stay silent before it is dropped (3 to
    /// 600) [default: 30].
    #[arg(long, allow_negative_numbers = true)]
    pub idle_timeout: Option<i64>,

    /// Seconds of quiet before the server sends a keep-alive, below
    /// --idle-timeout; 0 chooses a third of the idle timeout, at most 10 s
    /// [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub keep_alive: Option<i64>,

    /// Bytes of received audio datagrams buffered per connection (1500 to
    /// 16777216) [default: 65536].
    #[arg(long, allow_negative_numbers = true)]
    pub datagram_receive_buffer: Option<i64>,
}

impl SettingsArgs {
    /// Returns the flags that were given, as overrides of the file's values.
    pub fn overrides(&self) -> SettingsOverrides {
        let mut overrides = SettingsOverrides::new();
        if let Some(bind) = self.bind {
            overrides.set_text("bind", bind.to_string());
        }
        if let Some(path) = &self.cert_file {
            overrides.set_text("cert_file", path.to_string_lossy());
        }
        if let Some(path) = &self.key_file {
            overrides.set_text("key_file", path.to_string_lossy());
        }
        if let Some(path) = &self.record {
            overrides.set_text("record", path.to_string_lossy());
        }
        if let Some(threshold) = self.vad_threshold {
            overrides.set_float("vad_threshold", f64::from(threshold));
        }

        let numbers = [
            ("bitrate", self.bitrate),
            ("max_room_size", self.max_room_size),
            ("max_rooms", self.max_rooms),
            ("jitter_depth", self.jitter_depth),
            ("cleanup_interval", self.cleanup_interval),
            ("max_name_len", self.max_name_len),
            ("max_room_code_len", self.max_room_code_len),
            ("signalling_rate", self.signalling_rate),
            ("signalling_burst", self.signalling_burst),
            ("connection_rate", self.connection_rate),
            ("connection_burst", self.connection_burst),
            ("frame_timeout", self.frame_timeout),
            ("kick_ban", self.kick_ban),
            ("idle_timeout", self.idle_timeout),
            ("keep_alive", self.keep_alive),
            ("datagram_receive_buffer", self.datagram_receive_buffer),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                overrides.set_number(key, value);
            }
        }
        overrides
    }

    /// Combines the defaults, the --config file and the flags, and
    /// validates the result.
    pub fn settings(&self) -> anyhow::Result<ServerSettings> {
        Ok(ServerSettings::load(
            self.config.as_deref(),
            &self.overrides(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    fn settings_from(flags: &[&str]) -> anyhow::Result<ServerSettings> {
        let mut argv = vec!["voicemcu-server"];
        argv.extend_from_slice(flags);
        Flags::try_parse_from(argv)?.settings.settings()
    }

    #[test]
    fn no_flags_give_defaults() {
        assert_eq!(settings_from(&[]).unwrap(), ServerSettings::default());
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "bitrate = 24000\nmax_room_size = 8\nbind = \"127.0.0.1:5000\""
        )
        .unwrap();
        let path = file.path().to_str().unwrap();

        let settings = settings_from(&["--config", path, "--max-room-size", "4"]).unwrap();
        assert_eq!(settings.bitrate, 24_000, "file over default");
        assert_eq!(settings.max_room_size, 4, "flag over file");
        assert_eq!(settings.bind, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(
            settings.jitter_depth,
            ServerSettings::default().jitter_depth
        );
    }

    #[test]
    fn every_flag_reaches_its_option() {
        let settings = settings_from(&[
            "--bind",
            "127.0.0.1:7000",
            "--cert-file",
            "c.pem",
            "--key-file",
            "k.pem",
            "--bitrate",
            "64000",
            "--max-room-size",
            "5",
            "--max-rooms",
            "6",
            "--jitter-depth",
            "7",
            "--vad-threshold",
            "0.5",
            "--cleanup-interval",
            "8",
            "--max-name-len",
            "9",
            "--max-room-code-len",
            "10",
            "--signalling-rate",
            "11",
            "--signalling-burst",
            "12",
            "--connection-rate",
            "13",
            "--connection-burst",
            "14",
            "--frame-timeout",
            "15",
            "--kick-ban",
            "17",
            "--idle-timeout",
            "60",
            "--keep-alive",
            "16",
            "--datagram-receive-buffer",
            "20000",
            "--record",
            "rec",
        ])
        .unwrap();
        let expected = ServerSettings {
            bind: "127.0.0.1:7000".parse().unwrap(),
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            bitrate: 64_000,
            max_room_size: 5,
            max_rooms: 6,
            jitter_depth: 7,
            vad_threshold: 0.5,
            cleanup_interval: 8,
            max_name_len: 9,
            max_room_code_len: 10,
            signalling_rate: 11,
            signalling_burst: 12,
            connection_rate: 13,
            connection_burst: 14,
            frame_timeout: 15,
            kick_ban: 17,
            idle_timeout: 60,
            keep_alive: 16,
            datagram_receive_buffer: 20_000,
            record: Some("rec".into()),
        };
        assert_eq!(settings, expected);
    }

    #[test]
    fn invalid_flag_value_names_option_and_range() {
        let error = settings_from(&["--jitter-depth", "0"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid value 0 for option jitter_depth: the allowed range is 1 to 50"
        );
    }

    #[test]
    fn negative_or_huge_flag_names_range() {
        let cases = [
            (
                ["--bitrate", "-1"],
                "invalid value -1 for option bitrate: the allowed range is 6000 to 510000",
            ),
            (
                ["--max-rooms", "5000000000"],
                "invalid value 5000000000 for option max_rooms: the allowed range is 1 to 100000",
            ),
        ];
        for (flags, expected) in cases {
            let error = settings_from(&flags).unwrap_err().to_string();
            assert_eq!(error, expected, "for {flags:?}");
        }
    }
}
