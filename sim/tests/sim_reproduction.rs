//! A broken invariant's message must name the seed and the command that
//! reruns it.
//! The outcome of a real run is doctored so that the checker must fail.

use voicemcu_sim::turmoil::{check_outcome, reproduce_command, run_scenario, SimError};

#[test]
fn broken_invariant_prints_seed_and_command() {
    let seed = 5;
    let mut outcome = run_scenario("clean", seed).unwrap_or_else(|error| panic!("{error}"));
    assert!(check_outcome(&outcome).is_ok());

    // Alice now hears her own tone in one window, and bob's roster lost
    // carol.
    let carol_id = outcome.observation.participants[2].view.own_id.unwrap();
    let participants = &mut outcome.observation.participants;
    participants[0].windows[40].levels_dbfs[0] = -12.0;
    participants[1].view.roster.members.remove(&carol_id);

    let error = check_outcome(&outcome).unwrap_err();
    let SimError::InvariantsBroken { violations, .. } = &error else {
        panic!("expected broken invariants, got {error:?}");
    };
    let broken: Vec<&str> = violations.iter().map(|v| v.invariant).collect();
    assert_eq!(broken, vec!["no-self-hearing", "rosters-agree"]);

    let message = error.to_string();
    assert!(message.contains("seed 5"), "{message}");
    assert!(
        message.contains("cargo run -p voicemcu -- sim run clean --seed 5"),
        "{message}"
    );
    assert_eq!(
        reproduce_command("clean", seed),
        "cargo run -p voicemcu -- sim run clean --seed 5"
    );
}

/// A far sequence restart that the server never resynchronised on, or that
/// never reached it, breaks `server-resyncs-after-restart`.
#[test]
fn unnoticed_sequence_restart_is_reported() {
    let seed = 1;
    let mut outcome =
        run_scenario("sequence-restart", seed).unwrap_or_else(|error| panic!("{error}"));
    // Alice restarts at 0 from about 190, far past the buffer's capacity.
    assert!(!outcome.observation.participants[0]
        .server_resyncs
        .is_empty());

    outcome.observation.participants[0].server_resyncs.clear();
    let error = check_outcome(&outcome).unwrap_err();
    let SimError::InvariantsBroken { violations, .. } = &error else {
        panic!("expected broken invariants, got {error:?}");
    };
    let broken: Vec<&str> = violations.iter().map(|v| v.invariant).collect();
    assert_eq!(broken, vec!["server-resyncs-after-restart"]);
    assert!(
        error
            .to_string()
            .contains("cargo run -p voicemcu -- sim run sequence-restart --seed 1"),
        "{error}"
    );
}

#[test]
fn own_tone_in_distortion_is_not_self_hearing() {
    let mut outcome = run_scenario("clean", 5).unwrap_or_else(|error| panic!("{error}"));

    // Alice's tone at -30 dBFS, but only as loud as the distortion beside
    // it, which is what packet loss concealment in her client leaves.
    let window = &mut outcome.observation.participants[0].windows[40];
    window.levels_dbfs[0] = -30.0;
    window.floors_dbfs[0] = -28.0;
    assert!(check_outcome(&outcome).is_ok());

    // The same level over a floor of Opus coding noise is her own tone.
    let window = &mut outcome.observation.participants[0].windows[40];
    window.floors_dbfs[0] = -50.0;
    let error = check_outcome(&outcome).unwrap_err();
    let SimError::InvariantsBroken { violations, .. } = &error else {
        panic!("expected broken invariants, got {error:?}");
    };
    let broken: Vec<&str> = violations.iter().map(|v| v.invariant).collect();
    assert_eq!(broken, vec!["no-self-hearing"]);
    assert!(
        violations[0]
            .detail
            .contains("20.0 dB above the distortion floor"),
        "{}",
        violations[0].detail
    );
}
