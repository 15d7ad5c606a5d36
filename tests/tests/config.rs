//! Server configuration: defaults, a TOML file and flag overrides layered
//! in that order, rejection of invalid values, and a server started from a
//! file enforcing its limits over real QUIC on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use voicemcu_core::wire::{
    decode_message, encode_frame, encode_message, Dialect, FrameDecoder, SignalMessage,
};
use voicemcu_quic::quinn::Endpoint;
use voicemcu_quic::{
    connect, dump_default_config, ConnectOptions, QuicServer, ServerSettings, SettingsError,
    SettingsOverrides, Trust,
};

const STEP: Duration = Duration::from_secs(10);

/// A TOML file in the temporary directory, removed when dropped.
struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    fn new(name: &str, text: &str) -> ConfigFile {
        let path = std::env::temp_dir().join(format!(
            "voicemcu-config-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        ConfigFile { path }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn file_overrides_defaults_and_flags_override_file() {
    let file = ConfigFile::new(
        "precedence",
        "bitrate = 24000\nmax_room_size = 8\nidle_timeout = 60\n",
    );
    let mut flags = SettingsOverrides::new();
    flags.set_number("max_room_size", 4);

    let settings = ServerSettings::load(Some(&file.path), &flags).unwrap();
    let defaults = ServerSettings::default();
    assert_eq!(settings.bitrate, 24_000);
    assert_eq!(settings.max_room_size, 4);
    assert_eq!(settings.idle_timeout, 60);
    assert_eq!(settings.jitter_depth, defaults.jitter_depth);
    assert_eq!(settings.bind, defaults.bind);
}

#[test]
fn dump_is_a_loadable_file_of_defaults() {
    let dump = dump_default_config();
    let file = ConfigFile::new("dump", &dump);
    let settings = ServerSettings::load(Some(&file.path), &SettingsOverrides::new()).unwrap();
    assert_eq!(settings, ServerSettings::default());
    assert!(dump.contains("# Allowed range: 1 to 256.\nmax_room_size = 16\n"));
}

#[test]
fn invalid_file_value_names_option_value_range() {
    let cases = [
        (
            "bitrate = 100",
            "invalid value 100 for option bitrate: the allowed range is 6000 to 510000",
        ),
        (
            "max_rooms = 0",
            "invalid value 0 for option max_rooms: the allowed range is 1 to 100000",
        ),
        (
            "signalling_burst = 0",
            "invalid value 0 for option signalling_burst: the allowed range is 1 to 10000",
        ),
        (
            "connection_rate = 0",
            "invalid value 0 for option connection_rate: the allowed range is 1 to 10000",
        ),
        (
            "idle_timeout = 1",
            "invalid value 1 for option idle_timeout: the allowed range is 3 to 600",
        ),
        (
            "vad_threshold = -0.5",
            "invalid value -0.5 for option vad_threshold: the allowed range is 0 to 1",
        ),
        // Out of the options' integer types, not only of their ranges.
        (
            "bitrate = -1",
            "invalid value -1 for option bitrate: the allowed range is 6000 to 510000",
        ),
        (
            "kick_ban = -5",
            "invalid value -5 for option kick_ban: the allowed range is 0 to 604800",
        ),
        (
            "max_rooms = 5000000000",
            "invalid value 5000000000 for option max_rooms: the allowed range is 1 to 100000",
        ),
    ];
    for (text, expected) in cases {
        let file = ConfigFile::new("invalid", text);
        let error = ServerSettings::load(Some(&file.path), &SettingsOverrides::new())
            .unwrap_err()
            .to_string();
        assert_eq!(error, expected, "for {text:?}");
    }
}

#[test]
fn record_folder_from_file() {
    let file = ConfigFile::new("record", "record = \"recordings/friday\"\n");
    let settings = ServerSettings::load(Some(&file.path), &SettingsOverrides::new()).unwrap();
    assert_eq!(
        settings.record.as_deref(),
        Some(std::path::Path::new("recordings/friday"))
    );

    let mut flags = SettingsOverrides::new();
    flags.set_text("record", "elsewhere");
    let settings = ServerSettings::load(Some(&file.path), &flags).unwrap();
    assert_eq!(
        settings.record.as_deref(),
        Some(std::path::Path::new("elsewhere"))
    );
}

#[test]
fn bind_without_port_gets_default_port() {
    let file = ConfigFile::new("bind", "bind = \"127.0.0.1\"\n");
    let settings = ServerSettings::load(Some(&file.path), &SettingsOverrides::new()).unwrap();
    assert_eq!(settings.bind.to_string(), "127.0.0.1:4433");

    let file = ConfigFile::new("bind6", "bind = \"::1\"\n");
    let settings = ServerSettings::load(Some(&file.path), &SettingsOverrides::new()).unwrap();
    assert_eq!(settings.bind.to_string(), "[::1]:4433");
}

#[test]
fn invalid_flag_value_rejected_over_valid_file() {
    let file = ConfigFile::new("flag", "jitter_depth = 4\n");
    let mut flags = SettingsOverrides::new();
    flags.set_number("jitter_depth", 51);
    let error = ServerSettings::load(Some(&file.path), &flags).unwrap_err();
    assert!(matches!(
        error,
        SettingsError::OutOfRange {
            option: "jitter_depth",
            ..
        }
    ));
}

#[test]
fn unknown_option_and_bad_syntax_rejected() {
    let file = ConfigFile::new("unknown", "max_room_sise = 4\n");
    let error = ServerSettings::load(Some(&file.path), &SettingsOverrides::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown field `max_room_sise`"), "{error}");
    assert!(error.contains(&file.path.display().to_string()), "{error}");

    let file = ConfigFile::new("syntax", "bitrate = = 3\n");
    let error = ServerSettings::load(Some(&file.path), &SettingsOverrides::new()).unwrap_err();
    assert!(matches!(error, SettingsError::Parse { .. }), "{error}");

    let missing = std::env::temp_dir().join("voicemcu-config-does-not-exist.toml");
    let error = ServerSettings::load(Some(&missing), &SettingsOverrides::new()).unwrap_err();
    assert!(matches!(error, SettingsError::Read { .. }), "{error}");
}

#[test]
fn certificate_files_must_come_in_pairs() {
    let file = ConfigFile::new("pair", "cert_file = \"cert.pem\"\n");
    let error = ServerSettings::load(Some(&file.path), &SettingsOverrides::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "option cert_file is set but key_file is not: give both, or neither"
    );
}

/// Joins `room` over a raw connection and returns the first reply.
async fn first_reply(server: SocketAddr, trust: Trust, room: &str, name: &str) -> SignalMessage {
    let endpoint = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let (connection, _) = connect(&endpoint, &ConnectOptions::new(server, trust))
        .await
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let join = SignalMessage::Join {
        room_code: room.to_string(),
        display_name: name.to_string(),
    };
    let frame = encode_frame(&encode_message(&join, Dialect::Native).unwrap());
    send.write_all(&frame).await.unwrap();

    let mut frames = FrameDecoder::default();
    loop {
        if let Some(body) = frames.next_frame().unwrap() {
            return decode_message(&body, Dialect::Native).unwrap();
        }
        let chunk = tokio::time::timeout(STEP, recv.read_chunk(64 * 1024, true))
            .await
            .unwrap()
            .unwrap()
            .expect("stream ended before a reply");
        frames.push(&chunk.bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_from_file_enforces_room_size() {
    let file = ConfigFile::new(
        "server",
        "bind = \"127.0.0.1:0\"\nmax_room_size = 1\nmax_name_len = 5\n",
    );
    let settings = ServerSettings::load(Some(&file.path), &SettingsOverrides::new()).unwrap();
    let server = QuicServer::bind_with(settings.server_options(1), settings.tuning()).unwrap();
    let addr = server.local_addr().unwrap();
    let trust = Trust::Pinned(server.fingerprint());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // Keep the first participant's connection open while the second tries.
    let endpoint = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let (first, _) = connect(&endpoint, &ConnectOptions::new(addr, trust))
        .await
        .unwrap();
    let (mut send, mut recv) = first.open_bi().await.unwrap();
    let join = SignalMessage::Join {
        room_code: "small".to_string(),
        display_name: "ann".to_string(),
    };
    send.write_all(&encode_frame(
        &encode_message(&join, Dialect::Native).unwrap(),
    ))
    .await
    .unwrap();
    let mut frames = FrameDecoder::default();
    while frames.next_frame().unwrap().is_none() {
        let chunk = tokio::time::timeout(STEP, recv.read_chunk(1024, true))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        frames.push(&chunk.bytes);
    }

    let full = first_reply(addr, trust, "small", "bob").await;
    assert_eq!(
        full,
        SignalMessage::Error {
            message: "room \"small\" is full (1 of 1 participants)".to_string()
        }
    );
    let long_name = first_reply(addr, trust, "other", "bartholomew").await;
    assert!(
        matches!(&long_name, SignalMessage::Error { message } if message.contains("display name")),
        "{long_name:?}"
    );

    first.close(0u32.into(), b"done");
    let _ = stop.send(());
    tokio::time::timeout(STEP, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
