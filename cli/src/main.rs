//! The `voicemcu` binary: parses arguments, sets up logging and hands over
//! to the library crates. It holds no logic a library could own.

mod args;
mod client;
mod demo;
mod replay;
mod server;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();

    // Logs go to stderr. The client keeps stdout for its event lines, so
    // it logs only warnings unless RUST_LOG asks for more.
    let default_level = match cli.command {
        Command::Server(_) => "info",
        Command::Client(_) | Command::Demo(_) | Command::Replay(_) => "warn",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
        }
    });

    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("voicemcu: {error:#}");
            ExitCode::FAILURE
        }
    }
}
