//! `voicemcu client`: joins a room with the microphone (or a WAV file or a
//! test tone) as the source and the speakers (or a WAV file) as the sink.
//!
//! When stdin and stdout are terminals the session runs in the terminal UI
//! ([`crate::tui`]) and stderr goes to a log file for its duration, so
//! neither logs nor the audio library's messages draw over the screen.
//! Otherwise it runs headless: one line per event on stdout and slash
//! commands from stdin, one per line, for scripts and tests.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, Notify};
use voicemcu_audio::device::{self, CaptureFallback, DeviceManager, DeviceNotice, DeviceOptions};
use voicemcu_audio::{ToneSource, WavSink, WavSource};
use voicemcu_core::audio::{FrameSink, FrameSource, PcmFrame, FRAME_SAMPLES};
use voicemcu_core::client::{ClientConfig, ClientEvent};
use voicemcu_core::codec::OpusSettings;
use voicemcu_core::jitter::JitterConfig;
use voicemcu_core::server::MAX_PASSWORD_LEN;
use voicemcu_quic::{ClientExit, ClientOptions, ConnectOptions, DialectChoice, SenderFaults};

use crate::args::{bare_ip, ClientArgs, DEFAULT_PORT};
use crate::client_config::{self, ClientSettings};
use crate::shutdown;
use crate::tui::{self, model::ViewModel, UiChannels};

/// Frequency and level of `--test-tone`.
const TEST_TONE_HZ: f32 = 440.0;
const TEST_TONE_DBFS: f32 = -12.0;

/// How long to wait before trying a missing or failed audio device again.
const DEVICE_RETRY: Duration = Duration::from_secs(2);

/// Event lines printed after the terminal UI closes, so the reason the
/// session ended stays on screen.
const LAST_EVENTS_PRINTED: usize = 5;

pub async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    if args.list_devices {
        return list_devices();
    }
    if args.dump_config {
        print!("{}", client_config::dump_default_config());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = ClientSettings::from_args(&args)?;
    let password = room_password(&args)?;
    check_distinct_files(&args)?;
    let server = resolve(&args.server).await?;
    let trust = crate::trust::resolve(&args, server).await?;

    // The terminal UI needs stderr off the screen before the audio thread
    // starts: that thread points stderr elsewhere while it opens devices and
    // then restores what it saved, which must already be the log file.
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let log_path = settings.log_file.clone().unwrap_or_else(default_log_path);
    let redirect = if interactive {
        Some(StderrToFile::open(&log_path)?)
    } else {
        None
    };

    let (notices_tx, notices_rx) = std::sync::mpsc::channel();
    let audio = open_audio(&args, &settings, notices_tx)?;
    let meters = Meters::default();
    let source: Box<dyn FrameSource> = Box::new(MeteredSource {
        inner: audio.source,
        level: meters.send.clone(),
    });
    let sink: Box<dyn FrameSink> = Box::new(MeteredSink {
        inner: audio.sink,
        level: meters.hear.clone(),
    });
    let notices = forward_notices(notices_rx);

    let mut connect = ConnectOptions::new(server, trust);
    if args.legacy {
        connect.dialect = DialectChoice::Legacy;
    }
    let options = ClientOptions {
        connect,
        core: ClientConfig {
            room_code: args.room.clone(),
            display_name: args.name.clone(),
            jitter: JitterConfig {
                depth: settings.jitter_depth,
                ..JitterConfig::default()
            },
            opus: OpusSettings {
                bitrate: settings.bitrate,
                ..OpusSettings::default()
            },
            password,
            // Only the terminal UI shows who is talking; headless output
            // prints one line per event and would fill with them.
            report_talking: interactive,
        },
        end_when_source_ends: args.input_wav.is_some() && args.seconds.is_none(),
        faults: SenderFaults::default(),
    };

    let (commands_tx, commands) = mpsc::channel(16);
    let joined = Arc::new(AtomicBool::new(false));
    let (events, mut events_rx) = mpsc::unbounded_channel();
    let leave = Arc::new(Notify::new());

    // Which of the stop conditions fired, for the closing line.
    let stopped_by: Arc<Mutex<Option<String>>> = Arc::default();
    let stop = stop_future(args.seconds, leave.clone(), stopped_by.clone());

    let (result, last_events) = if interactive {
        let (ui_events_tx, ui_events) = mpsc::unbounded_channel();
        let forward = tokio::spawn({
            let joined = joined.clone();
            async move {
                while let Some(event) = events_rx.recv().await {
                    if matches!(event, ClientEvent::Joined { .. }) {
                        joined.store(true, Ordering::Relaxed);
                    }
                    let _ = ui_events_tx.send(event);
                }
            }
        });
        let mut model = ViewModel::new(&args.name, &args.room, settings.event_cap);
        model.push_event(
            tui::model::EventKind::Info,
            format!("connecting to {server}; logs go to {}", log_path.display()),
        );
        let channels = UiChannels {
            events: ui_events,
            notices,
            commands: commands_tx,
            leave,
            levels: meters.reader(),
        };
        let ui = tokio::spawn(tui::run(model, channels));
        let result = voicemcu_quic::run_client(options, source, sink, commands, events, stop).await;
        let _ = forward.await;
        let model = ui.await?;
        drop(redirect);
        let model = model?;
        let skip = model.events.len().saturating_sub(LAST_EVENTS_PRINTED);
        let last: Vec<String> = model
            .events
            .iter()
            .skip(skip)
            .map(|e| e.text.clone())
            .collect();
        (result, last)
    } else {
        tokio::spawn(read_commands(commands_tx));
        let printer = tokio::spawn({
            let joined = joined.clone();
            let mut notices = notices;
            async move {
                loop {
                    tokio::select! {
                        event = events_rx.recv() => match event {
                            Some(event) => {
                                if matches!(event, ClientEvent::Joined { .. }) {
                                    joined.store(true, Ordering::Relaxed);
                                }
                                println!("{event}");
                            }
                            None => return,
                        },
                        Some(notice) = notices.recv() => println!("audio: {}", notice.message),
                    }
                }
            }
        });
        let result = voicemcu_quic::run_client(options, source, sink, commands, events, stop).await;
        // The sender side closed with run_client, so the printer ends after
        // printing every queued event.
        let _ = printer.await;
        (result, Vec::new())
    };
    drop(audio.manager);
    for line in last_events {
        println!("{line}");
    }

    let exit = result?;
    let stopped_by = stopped_by
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if !joined.load(Ordering::Relaxed)
        && matches!(exit, ClientExit::Stopped | ClientExit::SourceEnded)
    {
        let why = stopped_by.unwrap_or_else(|| "the input ended".to_string());
        bail!(
            "never joined room {:?} on {server}: stopped ({why}) before the server answered",
            args.room
        );
    }
    match (&exit, stopped_by) {
        (ClientExit::Stopped, Some(why)) => println!("session ended: {why}; left the room"),
        _ => println!("session ended: {exit}"),
    }
    Ok(match exit {
        ClientExit::JoinRejected { .. }
        | ClientExit::JoinTimedOut
        | ClientExit::ConnectionLost { .. } => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// Completes on Ctrl+C or SIGTERM, when `--seconds` elapse, or when the
/// UI asks to leave, and records which.
async fn stop_future(
    seconds: Option<Duration>,
    leave: Arc<Notify>,
    stopped_by: Arc<Mutex<Option<String>>>,
) {
    {
        let limit = async {
            match seconds {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            _ = shutdown::signal() => "interrupted".to_string(),
            _ = leave.notified() => "left with Esc or Ctrl+C".to_string(),
            _ = limit => format!("--seconds {} elapsed", seconds.unwrap_or_default().as_secs_f64()),
        };
        *stopped_by.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

fn list_devices() -> anyhow::Result<ExitCode> {
    let (listings, library_output) = device::list_devices()
        .map_err(|error| anyhow::anyhow!("could not list audio devices: {error}"))?;
    print!("{}", device::format_listings(&listings));
    if let Some(summary) = library_output {
        println!("note: {summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The session's source and sink, and the device manager when a device is
/// used. The manager must outlive the session.
struct Audio {
    source: Box<dyn FrameSource>,
    sink: Box<dyn FrameSink>,
    manager: Option<DeviceManager>,
}

/// Chooses the source and sink: WAV files and the test tone when given,
/// the microphone and speakers otherwise.
fn open_audio(
    args: &ClientArgs,
    settings: &ClientSettings,
    notices: std::sync::mpsc::Sender<DeviceNotice>,
) -> anyhow::Result<Audio> {
    let file_source = source(args)?;
    let file_sink: Option<Box<dyn FrameSink>> = match &args.output_wav {
        // Created at the first frame played, so that a session that never
        // joins leaves an earlier recording at the same path untouched.
        Some(path) => Some(Box::new(WavSink::create_at_first_frame(path)?)),
        None => None,
    };
    let options = DeviceOptions {
        capture: file_source.is_none(),
        playback: file_sink.is_none(),
        input_device: settings.input_device.clone(),
        output_device: settings.output_device.clone(),
        capture_fallback: CaptureFallback::Silence,
        retry_interval: DEVICE_RETRY,
    };
    if !options.capture && !options.playback {
        return Ok(Audio {
            source: file_source.context("a file source exists when capture is off")?,
            sink: file_sink.context("a file sink exists when playback is off")?,
            manager: None,
        });
    }
    let (device_source, device_sink, manager) =
        device::start(options, notices).context("could not start the audio device thread")?;
    Ok(Audio {
        source: file_source.unwrap_or_else(|| Box::new(device_source)),
        sink: file_sink.unwrap_or_else(|| Box::new(device_sink)),
        manager: Some(manager),
    })
}

/// Moves device notices from the manager thread's channel to a tokio one.
fn forward_notices(
    notices: std::sync::mpsc::Receiver<DeviceNotice>,
) -> mpsc::UnboundedReceiver<DeviceNotice> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(notice) = notices.recv() {
            if tx.send(notice).is_err() {
                return;
            }
        }
    });
    rx
}

/// Levels of what is sent and heard, stored as `f32` bits for the meters.
#[derive(Clone, Default)]
struct Meters {
    send: Arc<AtomicU32>,
    hear: Arc<AtomicU32>,
}

impl Meters {
    fn reader(&self) -> tui::LevelReader {
        let meters = self.clone();
        Box::new(move || {
            (
                f32::from_bits(meters.send.load(Ordering::Relaxed)),
                f32::from_bits(meters.hear.load(Ordering::Relaxed)),
            )
        })
    }
}

fn frame_rms(frame: &PcmFrame) -> f32 {
    let sum: f32 = frame.iter().map(|s| s * s).sum();
    (sum / FRAME_SAMPLES as f32).sqrt()
}

/// A source that records each frame's level.
struct MeteredSource {
    inner: Box<dyn FrameSource>,
    level: Arc<AtomicU32>,
}

impl FrameSource for MeteredSource {
    fn next_frame(&mut self, frame: &mut PcmFrame) -> bool {
        let more = self.inner.next_frame(frame);
        let level = if more { frame_rms(frame) } else { 0.0 };
        self.level.store(level.to_bits(), Ordering::Relaxed);
        more
    }
}

/// A sink that records each frame's level.
struct MeteredSink {
    inner: Box<dyn FrameSink>,
    level: Arc<AtomicU32>,
}

impl FrameSink for MeteredSink {
    fn write_frame(&mut self, frame: &PcmFrame) -> std::io::Result<()> {
        self.level
            .store(frame_rms(frame).to_bits(), Ordering::Relaxed);
        self.inner.write_frame(frame)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.inner.finish()
    }
}

fn default_log_path() -> PathBuf {
    std::env::temp_dir().join("voicemcu-client.log")
}

/// Points stderr (descriptor 2) at a log file until dropped, so logs and
/// library messages stay off the terminal UI.
struct StderrToFile {
    saved: libc::c_int,
}

impl StderrToFile {
    fn open(path: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("could not open the log file {}", path.display()))?;
        // SAFETY: `dup` and `dup2` only duplicate descriptors; descriptor 2
        // exists for the whole process and `saved` is closed once, in drop.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            bail!("could not save stderr: {}", std::io::Error::last_os_error());
        }
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
            let error = std::io::Error::last_os_error();
            unsafe { libc::close(saved) };
            bail!("could not send stderr to {}: {error}", path.display());
        }
        Ok(StderrToFile { saved })
    }
}

impl Drop for StderrToFile {
    fn drop(&mut self) {
        // SAFETY: restores the descriptor saved in `open`.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
    }
}

/// Reads slash commands from stdin, one per line. The end of stdin ends only
/// this reader, not the session.
async fn read_commands(commands: mpsc::Sender<String>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let line = line.trim().to_string();
                if line.is_empty() {
                    continue;
                }
                if commands.send(line).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read commands from stdin");
                return;
            }
        }
    }
}

/// Returns the room password from --password (or its environment
/// variable) or the first line of --password-file, checked against what the
/// server accepts so a bad one fails before connecting.
fn room_password(args: &ClientArgs) -> anyhow::Result<Option<String>> {
    let password = match (&args.password_file, &args.password) {
        (None, Some(password)) => password.clone(),
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "could not read the room password from --password-file {}",
                    path.display()
                )
            })?;
            // Editors leave trailing spaces unseen, and a password that
            // differs from the others' only by them would fail to join.
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_string()
        }
        (None, None) => return Ok(None),
    };

    if password.is_empty() {
        bail!("the room password is empty: give a non-empty password, or none to join a room without one");
    }
    if password.len() > MAX_PASSWORD_LEN {
        bail!(
            "the room password is {} bytes long, over the server's limit of {MAX_PASSWORD_LEN} bytes; choose a shorter one",
            password.len()
        );
    }
    if args.legacy {
        bail!("--legacy speaks the voicemcu 0.1 dialect, which has no room passwords; drop --legacy or the password");
    }
    Ok(Some(password))
}

/// Rejects an output WAV that is the input WAV, which would overwrite the
/// recording being sent.
fn check_distinct_files(args: &ClientArgs) -> anyhow::Result<()> {
    let (Some(input), Some(output)) = (&args.input_wav, &args.output_wav) else {
        return Ok(());
    };
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        (Ok(input), Ok(output)) => input == output,
        _ => input == output,
    };
    if same {
        bail!(
            "--output-wav {} is the same file as --input-wav: it would be overwritten; choose another output file",
            output.display()
        );
    }
    Ok(())
}

/// Returns the WAV or tone source the arguments ask for, or `None` for the
/// microphone.
fn source(args: &ClientArgs) -> anyhow::Result<Option<Box<dyn FrameSource>>> {
    if let Some(path) = &args.input_wav {
        return Ok(Some(Box::new(WavSource::open(path)?)));
    }
    if args.test_tone {
        return Ok(Some(Box::new(ToneSource::new(
            TEST_TONE_HZ,
            TEST_TONE_DBFS,
        )?)));
    }
    Ok(None)
}

/// Turns `HOST:PORT`, `HOST`, `IP` or `[IPv6]:PORT` into one address.
async fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        if addr.port() == 0 {
            bail!("invalid port 0 in server address {server:?}: use a number from 1 to 65535, or leave out \":PORT\" for {DEFAULT_PORT}");
        }
        return Ok(addr);
    }
    if let Some(ip) = bare_ip(server) {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if server.starts_with('[') && !server.contains(']') {
        bail!("server address {server:?} opens a bracket it does not close: write an IPv6 address as [::1] or [::1]:PORT");
    }

    let with_port = match server.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok_and(|port| port > 0) => server.to_string(),
        Some((_, port)) if port.is_empty() || port.chars().all(|c| c.is_ascii_digit()) => {
            bail!("invalid port {port:?} in server address {server:?}: use a number from 1 to 65535, or leave out \":PORT\" for {DEFAULT_PORT}")
        }
        _ => format!("{server}:{DEFAULT_PORT}"),
    };
    let mut addrs = tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("could not resolve server address {server:?}"))?;
    match addrs.next() {
        Some(addr) => Ok(addr),
        None => bail!("server address {server:?} resolved to no address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_addresses_resolve() {
        assert_eq!(
            resolve("127.0.0.1:5000").await.unwrap(),
            "127.0.0.1:5000".parse().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1").await.unwrap(),
            "127.0.0.1:4433".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]").await.unwrap(),
            "[::1]:4433".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]:9").await.unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(resolve("localhost:4000").await.unwrap().port(), 4000);
        let error = resolve("127.0.0.1:99999").await.unwrap_err().to_string();
        assert!(error.starts_with("invalid port \"99999\""), "{error}");
        assert!(resolve("127.0.0.1:").await.is_err());

        let error = resolve("127.0.0.1:0").await.unwrap_err().to_string();
        assert!(error.starts_with("invalid port 0"), "{error}");
        let error = resolve("[::1").await.unwrap_err().to_string();
        assert!(error.contains("does not close"), "{error}");
    }

    #[test]
    fn password_file_drops_trailing_spaces() {
        use clap::Parser;

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "open sesame \t\r\nsecond line\n").unwrap();

        let cli = crate::args::Cli::try_parse_from([
            "voicemcu",
            "client",
            "127.0.0.1",
            "room",
            "alice",
            "--password-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let crate::args::Command::Client(args) = cli.command else {
            panic!("parsed as another subcommand");
        };
        assert_eq!(
            room_password(&args).unwrap().as_deref(),
            Some("open sesame")
        );
    }
}
