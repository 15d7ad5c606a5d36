//! `voicemcu sim` as a user runs it: the list, a passing run, and a failing
//! run whose printed command reproduces it exactly.

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_voicemcu");

fn sim(args: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("sim")
        .args(args)
        .output()
        .expect("the voicemcu binary starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Returns the trace hash line of a run's summary.
fn trace_hash(stdout: &str) -> String {
    stdout
        .lines()
        .find(|line| line.starts_with("trace: "))
        .unwrap_or_else(|| panic!("no trace line in:\n{stdout}"))
        .to_owned()
}

#[test]
fn list_names_every_scenario() {
    let output = sim(&["list"]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    for name in ["clean", "drift", "drift-long", "sequence-restart", "canary"] {
        let listed = stdout
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name));
        assert!(listed, "{stdout}");
    }
}

#[test]
fn soak_checks_range_and_names_first() {
    let output = sim(&["soak", "--seeds", "0"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));

    let output = sim(&[
        "soak",
        "clean",
        "--from",
        "18446744073709551615",
        "--seeds",
        "2",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("runs past the largest seed"),
        "{}",
        text(&output.stderr)
    );

    // The unknown name is reported before any run of the known one.
    let output = sim(&["soak", "canary", "nosuch", "--seeds", "1000"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("unknown scenario \"nosuch\""));
    assert!(text(&output.stdout).is_empty());
}

#[test]
fn passing_run_prints_summary() {
    let output = sim(&["run", "clean", "--seed", "4"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("invariants: all held"), "{stdout}");
}

#[test]
fn failing_run_reproduces_from_its_command() {
    let first = sim(&["run", "canary", "--seed", "3"]);
    assert_eq!(first.status.code(), Some(1));
    let stderr = text(&first.stderr);
    assert!(stderr.contains("seed 3"), "{stderr}");
    assert!(stderr.contains("delay-ceiling"), "{stderr}");

    // The command the failure printed, minus `cargo run -p voicemcu --`,
    // is what this binary runs.
    let command = stderr
        .lines()
        .find_map(|line| line.strip_prefix("reproduce: cargo run -p voicemcu -- "))
        .unwrap_or_else(|| panic!("no reproduce line in:\n{stderr}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args, ["sim", "run", "canary", "--seed", "3"]);

    let again = Command::new(BINARY).args(&args).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(text(&again.stderr), stderr);
    assert_eq!(
        trace_hash(&text(&again.stdout)),
        trace_hash(&text(&first.stdout))
    );
}
