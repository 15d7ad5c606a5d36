//! `voicemcu demo`: a three-person conference over real QUIC on 127.0.0.1
//! with the bundled speech, then a report of who heard whom, measured from
//! the WAV files each participant wrote.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use voicemcu_audio::{read_wav_48k_mono, WavSink, WavSource};
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::DialectChoice;
use voicemcu_sim::hearing;
use voicemcu_sim::loopback::{LoopbackClient, LoopbackServer};

use crate::args::DemoArgs;

const SPEAKERS: [&str; 3] = ["alice", "bob", "carol"];
const ROOM: &str = "demo";

/// Seed for client ids, so every demo run shows the same ids.
const SEED: u64 = 1;

/// How long each step may take before the demo gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
const END_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut references = Vec::new();
    for name in SPEAKERS {
        let path = args.speech.join(format!("{name}.wav"));
        let samples = read_wav_48k_mono(&path).with_context(|| {
            format!("the demo needs the bundled speech in {}: run it from the repository root or pass --speech DIR", args.speech.display())
        })?;
        references.push((name, samples));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create the output folder {}", args.out.display()))?;

    let server = LoopbackServer::start(ServerConfig::default(), SEED).await?;
    println!(
        "server listening on {} (fingerprint {})",
        server.addr(),
        server.fingerprint()
    );

    // One at a time, so alice is always the host.
    let mut clients: Vec<LoopbackClient> = Vec::new();
    for (name, samples) in &references {
        let sink = WavSink::create(heard_path(&args.out, name))?;
        let options = server.client_options(ROOM, name, DialectChoice::Auto);
        let client = server.join(
            options,
            Box::new(WavSource::from_samples(samples.clone())),
            Box::new(sink),
        );
        let id = client.joined(JOIN_TIMEOUT).await?;
        println!("{name} joined room {ROOM:?} with id {id}");
        clients.push(client);
    }
    let longest = references.iter().map(|(_, s)| s.len()).max().unwrap_or(0) as f64 / 48_000.0;
    println!("talking for {longest:.1} s: alice, bob and carol take turns, then all speak at once");

    let mut transcripts = Vec::new();
    for client in clients {
        let name = client.name().to_string();
        let lines = client.event_lines();
        let exit = client.finish(END_TIMEOUT).await?;
        transcripts.push((name, lines, exit));
    }
    server.stop().await?;

    println!();
    for (name, lines, exit) in &transcripts {
        println!("{name}'s events:");
        for line in lines {
            println!("  {line}");
        }
        println!("  session ended: {exit}");
    }

    let mut recordings = Vec::new();
    for name in SPEAKERS {
        let path = heard_path(&args.out, name);
        let samples =
            read_wav_48k_mono(&path).context("could not read back what a participant heard")?;
        recordings.push((name, samples));
    }
    let speakers: Vec<(&str, &[f32])> =
        references.iter().map(|(n, s)| (*n, s.as_slice())).collect();
    let listeners: Vec<(&str, &[f32])> =
        recordings.iter().map(|(n, s)| (*n, s.as_slice())).collect();
    let report = hearing::measure(&speakers, &listeners);

    println!();
    println!(
        "who heard whom (measured from the WAV files in {}):",
        args.out.display()
    );
    print!("{report}");
    write_summary(&args.out, &report)?;

    let problems = report.problems();
    if problems.is_empty() {
        println!();
        println!("every participant heard both others and never their own voice; nothing clipped");
        println!("wrote {}", args.out.display());
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &problems {
            eprintln!("voicemcu: demo problem: {problem}");
        }
        bail!(
            "the demo conference did not sound right ({} problems listed above)",
            problems.len()
        )
    }
}

fn heard_path(out: &Path, name: &str) -> std::path::PathBuf {
    out.join(format!("{name}-heard.wav"))
}

fn write_summary(out: &Path, report: &hearing::HearingReport) -> anyhow::Result<()> {
    let text = out.join("summary.txt");
    std::fs::write(&text, report.to_string())
        .with_context(|| format!("could not write {}", text.display()))?;

    let json = out.join("summary.json");
    let body = serde_json::to_string_pretty(report).context("could not serialize the report")?;
    std::fs::write(&json, body).with_context(|| format!("could not write {}", json.display()))?;
    Ok(())
}
