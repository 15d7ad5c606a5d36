//! Replays of the session files in `tests/replay/`: text reports pinned as
//! snapshots, byte-identical outputs across runs, and one test per kind of
//! invalid session file.

use std::path::{Path, PathBuf};

use voicemcu_sim::replay::{replay_to_dir, ReplayReport, Session, SessionError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/replay")
        .join(format!("{name}.toml"))
}

/// Replays the fixture `name` into a fresh folder and returns the report
/// and the folder.
fn replay(name: &str) -> (ReplayReport, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("temporary folder");
    let report = replay_to_dir(&fixture(name), out.path(), &mut |_, _| {})
        .unwrap_or_else(|error| panic!("replay of {name} failed: {error}"));
    (report, out)
}

fn report_text(out: &Path) -> String {
    std::fs::read_to_string(out.join("report.txt")).expect("report.txt written")
}

/// The audible frames of `peer` in the report of `listener`.
fn audible_frames(report: &ReplayReport, listener: &str, peer: &str) -> u64 {
    let listener = report
        .participants
        .iter()
        .find(|p| p.name == listener)
        .expect("listener in report");
    listener
        .peers
        .iter()
        .find(|p| p.peer == peer)
        .expect("peer in report")
        .audible_frames
}

#[test]
fn two_speakers_taking_turns() {
    let (report, out) = replay("two-turns");
    assert!(audible_frames(&report, "alice", "bob") > 200);
    assert!(audible_frames(&report, "bob", "alice") > 200);
    insta::assert_snapshot!("two_turns", report_text(out.path()));
}

#[test]
fn three_speakers_over_each_other() {
    let (report, out) = replay("three-overlap");
    for listener in ["alice", "bob", "carol"] {
        for peer in ["alice", "bob", "carol"] {
            if listener != peer {
                assert!(
                    audible_frames(&report, listener, peer) > 200,
                    "{listener} should hear {peer}"
                );
            }
        }
    }
    insta::assert_snapshot!("three_overlap", report_text(out.path()));
}

#[test]
fn speaker_behind_burst_loss() {
    let (report, out) = replay("burst-loss");
    let alice = &report.participants[0];
    let loss = alice.uplink.lost as f64 / alice.uplink.packets as f64;
    assert!((0.05..0.15).contains(&loss), "uplink loss {loss}");
    assert!(alice.concealed_by_server > 20, "{alice:?}");
    insta::assert_snapshot!("burst_loss", report_text(out.path()));
}

#[test]
fn participant_blocks_another() {
    let (report, out) = replay("block");
    let carol = &report.participants[2];
    let bob_for_carol = &carol.peers[1];
    assert_eq!(bob_for_carol.peer, "bob");
    // Carol blocks bob from 3.6 s to 10.6 s: she hears him only together
    // with the others, from 11.0 s.
    for span in &bob_for_carol.spans {
        assert!(span.start.as_secs_f64() >= 10.6, "{span:?}");
    }
    assert!(bob_for_carol.audible_frames > 100);
    assert!(audible_frames(&report, "alice", "bob") > 250);
    insta::assert_snapshot!("block", report_text(out.path()));
}

#[test]
fn host_kicks_participant_mid_session() {
    let (report, out) = replay("kick");
    let carol = &report.participants[2];
    assert_eq!(carol.left_reason.as_deref(), Some("kicked"));
    assert_eq!(carol.left.map(|at| at.as_secs_f64()), Some(9.0));
    let alice = &report.participants[0];
    let carol_for_alice = &alice.peers[1];
    assert!(carol_for_alice.audible_frames > 0);
    for span in &carol_for_alice.spans {
        assert!(span.end.as_secs_f64() <= 9.0, "{span:?}");
    }
    insta::assert_snapshot!("kick", report_text(out.path()));
}

#[test]
fn same_session_gives_identical_files() {
    let (_, first) = replay("kick");
    let (_, second) = replay("kick");
    let mut names: Vec<String> = std::fs::read_dir(first.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alice-heard.wav",
            "bob-heard.wav",
            "carol-heard.wav",
            "report.json",
            "report.txt",
            "room.wav"
        ]
    );
    for name in &names {
        let a = std::fs::read(first.path().join(name)).unwrap();
        let b = std::fs::read(second.path().join(name)).unwrap();
        assert!(a == b, "{name} differs between two runs");
    }
}

#[test]
fn heard_audio_is_aligned_to_session_time() {
    let (report, out) = replay("kick");
    let carol = voicemcu_audio::read_wav_48k_mono(out.path().join("carol-heard.wav")).unwrap();
    let alice = voicemcu_audio::read_wav_48k_mono(out.path().join("alice-heard.wav")).unwrap();
    let expected = (report.duration.as_secs_f64() * 48_000.0).round() as usize;
    assert_eq!(carol.len(), expected);
    assert_eq!(alice.len(), expected);
    // Carol joined at 0.2 s and was kicked at 9.0 s: silence outside.
    assert!(carol[..9_600].iter().all(|&s| s == 0.0));
    assert!(carol[9 * 48_000 + 960..].iter().all(|&s| s == 0.0));
}

/// Writes `toml` as a session file next to a copy of a speech fixture
/// called `alice.wav`, and returns the load error.
fn load_error(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/speech/alice.wav");
    std::fs::copy(speech, dir.path().join("alice.wav")).unwrap();
    let path = dir.path().join("session.toml");
    std::fs::write(&path, toml).unwrap();
    let error: SessionError = Session::load(&path).expect_err("session should be rejected");
    let text = error.to_string();
    assert!(
        text.contains("session.toml"),
        "error names the file: {text}"
    );
    text
}

const TWO: &str = r#"
[[participant]]
name = "alice"
wav = "alice.wav"
join = 0.0

[[participant]]
name = "bob"
wav = "alice.wav"
join = 1.0
"#;

#[test]
fn error_unknown_participant() {
    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = 2.0\naction = \"block\"\nby = \"alice\"\ntarget = \"dave\"\n"
    ));
    assert!(text.contains("event 1 (block at 2 s)"), "{text}");
    assert!(
        text.contains("target \"dave\" is not a participant"),
        "{text}"
    );
    assert!(text.contains("alice, bob"), "{text}");

    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = 2.0\naction = \"mute\"\nby = \"eve\"\n"
    ));
    assert!(text.contains("by \"eve\" is not a participant"), "{text}");
}

#[test]
fn error_event_before_actor_joined() {
    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = 0.5\naction = \"mute\"\nby = \"bob\"\n"
    ));
    assert!(text.contains("event 1 (mute at 0.5 s)"), "{text}");
    assert!(
        text.contains("bob acts at 0.5 s but joins only at 1 s"),
        "{text}"
    );
}

#[test]
fn error_duplicate_names() {
    let text = load_error(&TWO.replace("name = \"bob\"", "name = \"Alice\""));
    assert!(text.contains("participant 2 (\"Alice\")"), "{text}");
    assert!(text.contains("already used by participant 1"), "{text}");
}

#[test]
fn error_negative_times() {
    let text = load_error(&TWO.replace("join = 1.0", "join = -1.0"));
    assert!(text.contains("participant 2 (\"bob\")"), "{text}");
    assert!(text.contains("join -1 s is negative"), "{text}");

    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = -2.0\naction = \"mute\"\nby = \"alice\"\n"
    ));
    assert!(text.contains("at -2 s is negative"), "{text}");
}

#[test]
fn error_room_over_server_limits() {
    let long_room = "r".repeat(129);
    let text = load_error(&format!("room = \"{long_room}\"\n{TWO}"));
    assert!(text.contains("129 characters long"), "{text}");
    assert!(text.contains("limit of 128"), "{text}");

    // Seventeen at once is one over the default room size; a leave or a
    // kick before the next join makes room.
    let crowd = |extra: &str| {
        let mut toml = String::new();
        for index in 0..17 {
            toml.push_str(&format!(
                "[[participant]]\nname = \"p{index}\"\nwav = \"alice.wav\"\njoin = {index}.0\n{}\n",
                if index == 0 { extra } else { "" }
            ));
        }
        toml
    };
    let text = load_error(&crowd(""));
    assert!(
        text.contains("17 participants are in the room at 16 s"),
        "{text}"
    );
    assert!(text.contains("limit of 16"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/speech/alice.wav");
    std::fs::copy(speech, dir.path().join("alice.wav")).unwrap();
    let path = dir.path().join("session.toml");
    std::fs::write(&path, crowd("leave = 15.5")).unwrap();
    Session::load(&path).expect("p0 leaves before p16 joins");
}

#[test]
fn error_missing_wav() {
    let text = load_error(&TWO.replace("join = 1.0", "join = 1.0\n").replacen(
        "wav = \"alice.wav\"\njoin = 1.0",
        "wav = \"missing.wav\"\njoin = 1.0",
        1,
    ));
    assert!(text.contains("participant 2 (\"bob\")"), "{text}");
    assert!(text.contains("missing.wav not found"), "{text}");
}

#[test]
fn error_target_rules() {
    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = 2.0\naction = \"kick\"\nby = \"alice\"\n"
    ));
    assert!(text.contains("action kick needs a target"), "{text}");

    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = 2.0\naction = \"leave\"\nby = \"alice\"\ntarget = \"bob\"\n"
    ));
    assert!(text.contains("action leave takes no target"), "{text}");

    let text = load_error(&format!(
        "{TWO}\n[[event]]\nat = 2.0\naction = \"block\"\nby = \"alice\"\ntarget = \"alice\"\n"
    ));
    assert!(text.contains("is the participant acting"), "{text}");
}

#[test]
fn error_syntax_and_unknown_keys() {
    let text = load_error(
        "[[participant]]\nname = \"alice\"\nwav = \"alice.wav\"\njoin = 0.0\nvolume = 3\n",
    );
    assert!(text.contains("unknown field `volume`"), "{text}");

    let text = load_error(&TWO.replace(
        "[[participant]]\nname = \"bob\"",
        "[[participant]]\nname = \"bob\"\ndialect = \"klingon\"",
    ));
    assert!(text.contains("klingon"), "{text}");

    let text = load_error("room = \"empty\"\n");
    assert!(text.contains("no [[participant]] entries"), "{text}");
}

#[test]
fn error_impairment_out_of_range() {
    let text = load_error(&TWO.replace(
        "join = 1.0",
        "join = 1.0\n\n[participant.impairment]\nloss_percent = 60.0\n",
    ));
    assert!(
        text.contains("participant 2 (\"bob\"), impairment"),
        "{text}"
    );
    assert!(text.contains("burst_len"), "{text}");
}

#[test]
fn error_names_unusable_in_file_names() {
    let text = load_error(&TWO.replace("name = \"bob\"", "name = \"../bob\""));
    assert!(text.contains("contains '.'"), "{text}");
}
