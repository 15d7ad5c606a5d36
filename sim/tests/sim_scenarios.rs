//! Every built-in scenario over a fixed set of seeds, with all invariants
//! checked. A failure prints the seed and the command that reproduces it.

use voicemcu_sim::turmoil::{list_scenarios, run_scenario, SimError};

/// Seeds each scenario runs with. Each run takes a few seconds of CPU in a
/// debug build, so the set stays small.
const SEEDS: [u64; 3] = [1, 2, 3];

fn run_all_seeds(scenario: &str) {
    for seed in SEEDS {
        if let Err(error) = run_scenario(scenario, seed) {
            panic!("{error}");
        }
    }
}

#[test]
fn clean_scenario_holds() {
    run_all_seeds("clean");
}

#[test]
fn lossy_scenario_holds() {
    run_all_seeds("lossy");
}

#[test]
fn partition_scenario_holds() {
    run_all_seeds("partition");
}

#[test]
fn scenario_list_names_each_once() {
    assert_eq!(list_scenarios(), vec!["clean", "lossy", "partition"]);
}

#[test]
fn unknown_scenario_lists_known_ones() {
    let error = run_scenario("nosuch", 1).unwrap_err();
    assert!(
        matches!(error, SimError::UnknownScenario { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("\"nosuch\""), "{message}");
    assert!(message.contains("clean, lossy, partition"), "{message}");
}
