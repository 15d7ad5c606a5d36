//! Every built-in scenario over a fixed set of seeds, with all invariants
//! checked. A failure prints the seed and the command that reproduces it.

use voicemcu_sim::turmoil::invariants::{judged_delays, outages};
use voicemcu_sim::turmoil::{list_scenarios, run_scenario, SimError};

/// Seeds the short scenarios run with. Each run takes a few seconds of CPU
/// in a debug build, so the set stays small; `voicemcu sim soak` runs
/// thousands.
const SEEDS: [u64; 3] = [1, 2, 3];

/// Seeds of the scenarios that simulate 15 s or more.
const LONG_SEEDS: [u64; 1] = [1];

fn run_seeds(scenario: &str, seeds: &[u64]) {
    for seed in seeds {
        if let Err(error) = run_scenario(scenario, *seed) {
            panic!("{error}");
        }
    }
}

#[test]
fn clean_scenario_holds() {
    run_seeds("clean", &SEEDS);
}

#[test]
fn lossy_scenario_holds() {
    run_seeds("lossy", &SEEDS);
}

#[test]
fn partition_scenario_holds() {
    run_seeds("partition", &SEEDS);
}

#[test]
fn bursty_scenario_holds() {
    run_seeds("bursty", &SEEDS);
}

#[test]
fn duplicate_scenario_holds() {
    run_seeds("duplicate", &SEEDS);
}

#[test]
fn vanish_scenario_holds() {
    run_seeds("vanish", &LONG_SEEDS);
}

#[test]
fn silence_scenario_holds() {
    run_seeds("silence", &LONG_SEEDS);
}

#[test]
fn rebind_scenario_holds() {
    run_seeds("rebind", &SEEDS);
}

#[test]
fn restart_scenario_holds() {
    run_seeds("restart", &LONG_SEEDS);
}

#[test]
fn moderation_scenario_holds() {
    run_seeds("moderation", &SEEDS[..2]);
}

/// A run in which concealment in carol's client spreads bob's tone into
/// distortion at muted alice's frequency, which once broke
/// `muted-inaudible`.
#[test]
fn moderation_concealment_seed_holds() {
    run_seeds("moderation", &[29]);
}

#[test]
fn churn_scenario_holds() {
    run_seeds("churn", &SEEDS[..2]);
}

#[test]
fn host_churn_scenario_holds() {
    run_seeds("host-churn", &SEEDS[..2]);
}

/// A run in which concealment in h2's client spreads the mix into
/// distortion at h2's own frequency, which once broke `no-self-hearing`.
#[test]
fn host_churn_concealment_seed_holds() {
    run_seeds("host-churn", &[30]);
}

#[test]
fn legacy_host_churn_scenario_holds() {
    run_seeds("legacy-host-churn", &LONG_SEEDS);
}

/// In this run the server conceals a packet of n3 just before n3 sends a
/// marker. The marker's dip was once missed behind that fade, and every
/// listener was matched with a later fade, about 830 ms after sending.
/// That stayed within `delay-ceiling`, which needs two late markers in a
/// row, so this test checks the delays themselves.
#[test]
fn fade_hides_no_marker_of_newest_joiner() {
    let outcome = run_scenario("legacy-host-churn", 2).unwrap_or_else(|error| panic!("{error}"));
    let observation = &outcome.observation;
    let newest = observation
        .participants
        .iter()
        .position(|participant| participant.name == "n3")
        .expect("legacy-host-churn has a participant n3");
    let outages = outages(observation);
    let markers: Vec<_> = judged_delays(observation, &outages)
        .into_iter()
        .filter(|marker| marker.speaker == newest)
        .collect();
    assert!(!markers.is_empty(), "no marker of n3 was judged");
    for marker in markers {
        let delay = marker.delay();
        assert!(
            delay.is_some_and(|delay| delay <= observation.expectations.max_delay),
            "{} heard n3's marker sent at {:?} after {delay:?}",
            observation.participants[marker.listener].name,
            marker.sent
        );
    }
}

#[test]
fn drift_scenario_holds() {
    run_seeds("drift", &LONG_SEEDS);
}

/// 15 simulated minutes take about four minutes of CPU in a debug build,
/// too long for every CI run: `drift` runs the same conference for 90 s.
#[test]
#[ignore = "about four minutes of CPU; run with `cargo test -p voicemcu-sim -- --ignored`"]
fn drift_long_scenario_holds() {
    run_seeds("drift-long", &LONG_SEEDS);
}

#[test]
fn sequence_restart_scenario_holds() {
    run_seeds("sequence-restart", &SEEDS);
}

#[test]
fn canary_scenario_fails() {
    let error = run_scenario("canary", 2).unwrap_err();
    let SimError::InvariantsBroken { violations, .. } = &error else {
        panic!("expected broken invariants, got {error:?}");
    };
    assert!(violations.iter().all(|v| v.invariant == "delay-ceiling"));
    assert!(error
        .to_string()
        .contains("cargo run -p voicemcu -- sim run canary --seed 2"));
}

#[test]
fn scenario_list_names_each_once() {
    assert_eq!(
        list_scenarios(),
        vec![
            "clean",
            "lossy",
            "partition",
            "bursty",
            "duplicate",
            "vanish",
            "silence",
            "rebind",
            "restart",
            "moderation",
            "churn",
            "host-churn",
            "legacy-host-churn",
            "drift",
            "drift-long",
            "sequence-restart",
            "canary",
        ]
    );
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
