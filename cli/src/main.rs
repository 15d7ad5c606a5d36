//! The `voicemcu` binary: parses arguments, sets up logging and hands over
//! to the library crates. It holds no logic a library could own.

mod args;
mod client;
mod client_config;
mod demo;
mod record;
mod replay;
mod server;
mod server_config;
mod shutdown;
mod sim;
mod status;
mod trust;
mod tui;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();

    // Logs go to stderr. The client keeps stdout for its event lines, so
    // it logs only warnings unless RUST_LOG asks for more.
    let default_level = match cli.command {
        Command::Server(_) => "info",
        Command::Client(_)
        | Command::Demo(_)
        | Command::Replay(_)
        | Command::Sim(_)
        | Command::Status(_) => "warn",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voicemcu: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Client(args) => client::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Sim(args) => sim::run(args),
            Command::Status(args) => status::run(args).await,
        }
    });

    // The client reads stdin on a blocking thread that only returns when a
    // line or EOF arrives, so the runtime must not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));

    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("voicemcu: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Joins an error and its causes with ": ", skipping a cause whose text the
/// message before it already contains (many errors repeat their source).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}
