//! `voicemcu sim`: lists and runs the deterministic network simulations in
//! `voicemcu_sim::turmoil`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use voicemcu_sim::turmoil::{list_scenarios, run_scenario, SimError};

/// Arguments of `voicemcu sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// List the simulation scenarios.
    List,
    /// Run one scenario with a seed and check its invariants.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name of the scenario, as `voicemcu sim list` prints it.
    pub scenario: String,

    /// Seed for every random choice in the run; the same seed replays the
    /// same run.
    #[arg(long)]
    pub seed: u64,

    /// Print the event trace, one simulated-time-stamped line per event.
    #[arg(long)]
    pub trace: bool,
}

/// Runs `voicemcu sim`. A scenario whose invariants break prints why, with
/// the command that reproduces it, and exits with status 1.
///
/// The simulation runs on a thread of its own and blocks the calling thread
/// until it ends, so call this outside the tokio runtime.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SimCommand::List => {
            for name in list_scenarios() {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SimCommand::Run(run) => run_one(&run),
    }
}

fn run_one(args: &RunArgs) -> anyhow::Result<ExitCode> {
    match run_scenario(&args.scenario, args.seed) {
        Ok(outcome) => {
            if args.trace {
                for line in &outcome.trace {
                    println!("{line}");
                }
            }
            println!("{}", outcome.summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let SimError::InvariantsBroken { outcome, .. } = &error else {
                return Err(error.into());
            };
            if args.trace {
                for line in &outcome.trace {
                    println!("{line}");
                }
            }
            // The error names the seed, every broken invariant and the
            // command that reproduces the run.
            eprintln!("voicemcu: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
