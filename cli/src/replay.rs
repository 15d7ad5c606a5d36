//! `voicemcu replay`: replays a session file offline with the real server
//! and clients on a virtual clock, writes what every participant heard and
//! prints the report. The engine lives in `voicemcu_sim::replay`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use voicemcu_sim::replay::replay_to_dir;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session file (TOML) listing the participants, their WAV files, join
    /// and leave times, network impairments and commands; see
    /// docs/replay.md.
    pub session: PathBuf,

    /// Folder for NAME-heard.wav per participant, room.wav, report.json and
    /// report.txt; created if missing, files in it are overwritten.
    #[arg(long)]
    pub out: PathBuf,

    /// Print the JSON report on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// Runs the replay. The work is synchronous and CPU-bound; it is `async`
/// only to match the other subcommands, and runs on the calling thread.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    // The bar goes to stderr, and only when stdout is a terminal, so that
    // piped or redirected output stays free of it.
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "replaying {wide_bar} {pos}/{len} frames of session time ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    });
    let mut progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };

    // Every error names the session file or output file it is about.
    let report = replay_to_dir(&args.session, &args.out, &mut progress)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    if args.json {
        let json =
            serde_json::to_string_pretty(&report).context("could not serialize the report")?;
        println!("{json}");
    } else {
        print!("{report}");
        println!();
        println!("wrote {}", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}
