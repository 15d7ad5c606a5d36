//! `voicemcu sim`: lists, runs and soaks the deterministic network
//! simulations in `voicemcu_sim::turmoil`.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use voicemcu_sim::turmoil::{
    describe_scenarios, list_scenarios, run_scenario, soak_scenarios, SimError,
};

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
    /// Run scenarios over a range of seeds and report every seed that
    /// breaks an invariant.
    Soak(SoakArgs),
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

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Scenarios to run; when none is given, every scenario but those that
    /// take minutes per run (`drift-long`) or fail on purpose (`canary`).
    pub scenarios: Vec<String>,

    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub from: u64,

    /// How many seeds to run, from `--from` on (at least 1).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
}

/// Runs `voicemcu sim`. A scenario whose invariants break prints why, with
/// the command that reproduces it, and exits with status 1.
///
/// The simulation runs on a thread of its own and blocks the calling thread
/// until it ends, so call this outside the tokio runtime.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SimCommand::List => {
            let width = list_scenarios().iter().map(|name| name.len()).max();
            let width = width.unwrap_or_default();
            for (name, summary) in describe_scenarios() {
                println!("{name:width$}  {summary}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SimCommand::Run(run) => run_one(&run),
        SimCommand::Soak(soak) => run_soak(&soak),
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
            // The summary without its verdict: the error below names the
            // seed, every broken invariant and the command that reproduces
            // the run.
            let summary = outcome.summary.as_str();
            let verdict = summary.find("\ninvariants:").unwrap_or(summary.len());
            println!("{}", &summary[..verdict]);
            eprintln!("voicemcu: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs every chosen scenario over the seed range, one line per failure,
/// and a count at the end. An unknown scenario stops the soak; a run that
/// breaks an invariant or fails to run counts as a failure.
fn run_soak(args: &SoakArgs) -> anyhow::Result<ExitCode> {
    let scenarios: Vec<String> = if args.scenarios.is_empty() {
        soak_scenarios().into_iter().map(str::to_owned).collect()
    } else {
        args.scenarios.clone()
    };
    // A typo in the last name should not wait for the others' runs.
    let known = list_scenarios();
    if let Some(unknown) = scenarios
        .iter()
        .find(|name| !known.contains(&name.as_str()))
    {
        bail!(
            "unknown scenario {unknown:?}; the scenarios are: {}",
            known.join(", ")
        );
    }
    let Some(last) = args.from.checked_add(args.seeds - 1) else {
        bail!(
            "--from {} with --seeds {} runs past the largest seed, {}; start lower or run fewer",
            args.from,
            args.seeds,
            u64::MAX
        );
    };

    let mut runs = 0u64;
    let mut failures = 0u64;
    for scenario in &scenarios {
        for seed in args.from..=last {
            runs += 1;
            match run_scenario(scenario, seed) {
                Ok(_) => {}
                Err(error @ SimError::UnknownScenario { .. }) => return Err(error.into()),
                Err(error) => {
                    failures += 1;
                    eprintln!("voicemcu: {error}");
                }
            }
        }
        println!(
            "{scenario}: seeds {} to {last} done, {failures} failed runs so far",
            args.from
        );
    }

    println!("{runs} runs, {failures} broke an invariant");
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
