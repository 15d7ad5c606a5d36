//! The same scenario and seed must produce the same event trace, byte for
//! byte, including the hash of every participant's decoded playback.

use voicemcu_sim::turmoil::run_scenario;

#[test]
fn same_seed_gives_same_trace() {
    let first = run_scenario("lossy", 7).unwrap_or_else(|error| panic!("{error}"));
    let second = run_scenario("lossy", 7).unwrap_or_else(|error| panic!("{error}"));

    assert_eq!(first.trace, second.trace);
    assert_eq!(first.trace_hash, second.trace_hash);
}

#[test]
fn trace_records_joins_audio_and_exits() {
    let outcome = run_scenario("clean", 4).unwrap_or_else(|error| panic!("{error}"));
    let trace = outcome.trace.join("\n");

    for name in ["alice", "bob", "carol"] {
        assert!(
            trace.contains(&format!("as \"{name}\"")),
            "no join of {name} in\n{trace}"
        );
        assert!(
            outcome
                .trace
                .iter()
                .any(|line| line.contains(name) && line.contains("playback sha256")),
            "no playback hash of {name} in\n{trace}"
        );
    }
    assert!(
        trace.contains("joined room \"sim-room\" as host"),
        "{trace}"
    );
    // Nothing in the trace may depend on the run's ports or addresses.
    assert!(!trace.contains("192.168."), "{trace}");
    assert_eq!(outcome.trace_hash.len(), 64);
}
