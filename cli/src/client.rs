//! `voicemcu client`: joins a room with a WAV file or a test tone as the
//! microphone and a WAV file as the speakers, prints one line per event on
//! stdout and takes slash commands from stdin.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use voicemcu_audio::{ToneSource, WavSink, WavSource};
use voicemcu_core::audio::{FrameSink, FrameSource};
use voicemcu_core::client::{ClientConfig, ClientEvent};
use voicemcu_core::codec::OpusSettings;
use voicemcu_core::jitter::JitterConfig;
use voicemcu_quic::{ClientExit, ClientOptions, ConnectOptions, DialectChoice, Fingerprint, Trust};
use voicemcu_sim::memory::{DiscardSink, SilenceSource};

use crate::args::{ClientArgs, DEFAULT_PORT};
use crate::shutdown;

/// Frequency and level of `--test-tone`.
const TEST_TONE_HZ: f32 = 440.0;
const TEST_TONE_DBFS: f32 = -12.0;

pub async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    check_distinct_files(&args)?;
    let server = resolve(&args.server).await?;
    let trust = trust(&args)?;
    let source = source(&args)?;
    let sink: Box<dyn FrameSink> = match &args.output_wav {
        Some(path) => Box::new(WavSink::create(path)?),
        None => Box::new(DiscardSink),
    };

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
                depth: args.jitter_depth,
                ..JitterConfig::default()
            },
            opus: OpusSettings {
                bitrate: args.bitrate,
                ..OpusSettings::default()
            },
        },
        end_when_source_ends: args.input_wav.is_some() && args.seconds.is_none(),
    };

    let (commands_tx, commands) = mpsc::channel(16);
    tokio::spawn(read_commands(commands_tx));

    let joined = Arc::new(AtomicBool::new(false));
    let (events, mut events_rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn({
        let joined = joined.clone();
        async move {
            while let Some(event) = events_rx.recv().await {
                if matches!(event, ClientEvent::Joined { .. }) {
                    joined.store(true, Ordering::Relaxed);
                }
                println!("{event}");
            }
        }
    });

    // Which of the stop conditions fired, for the closing line.
    let stopped_by: Arc<Mutex<Option<String>>> = Arc::default();
    let seconds = args.seconds;
    let stop = {
        let stopped_by = stopped_by.clone();
        async move {
            let reason = match seconds {
                Some(limit) => {
                    tokio::select! {
                        _ = shutdown::signal() => "interrupted".to_string(),
                        _ = tokio::time::sleep(limit) => format!("--seconds {} elapsed", limit.as_secs_f64()),
                    }
                }
                None => {
                    shutdown::signal().await;
                    "interrupted".to_string()
                }
            };
            *stopped_by.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
    };

    let result = voicemcu_quic::run_client(options, source, sink, commands, events, stop).await;
    // The sender side closed with run_client, so the printer ends after
    // printing every queued event.
    let _ = printer.await;

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

fn trust(args: &ClientArgs) -> anyhow::Result<Trust> {
    if let Some(hash) = &args.cert_hash {
        let fingerprint = Fingerprint::parse(hash)?;
        return Ok(Trust::Pinned(fingerprint));
    }
    if args.danger_skip_verify {
        eprintln!(
            "voicemcu: warning: --danger-skip-verify accepts any certificate; anyone on the network path can impersonate the server and listen in"
        );
        return Ok(Trust::SkipVerify);
    }
    bail!(
        "cannot verify the server: pass --cert-hash with the fingerprint the server printed at start, or --danger-skip-verify on a network you control"
    )
}

fn source(args: &ClientArgs) -> anyhow::Result<Box<dyn FrameSource>> {
    if let Some(path) = &args.input_wav {
        return Ok(Box::new(WavSource::open(path)?));
    }
    if args.test_tone {
        return Ok(Box::new(ToneSource::new(TEST_TONE_HZ, TEST_TONE_DBFS)?));
    }
    Ok(Box::new(SilenceSource))
}

/// Turns `HOST:PORT`, `HOST`, `IP` or `[IPv6]:PORT` into one address.
async fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let trimmed = server.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
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
    }
}
