//! Snapshots of rendered screens and checks of the view model's updates.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use voicemcu_audio::device::{DeviceNotice, Direction, NoticeKind};
use voicemcu_core::client::{ClientEvent, RosterEntry};

use super::model::{Action, ViewModel};
use super::render::draw;

fn entry(client_id: u32, name: &str) -> RosterEntry {
    RosterEntry {
        client_id: client_id.into(),
        display_name: name.to_string(),
        muted: false,
        server_muted: false,
        is_host: false,
        is_self: false,
        blocked: false,
        talking: false,
    }
}

fn screen(model: &ViewModel, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, model)).unwrap();
    terminal.backend().to_string()
}

/// alice (id 2, host) with bob and carol, after a few events.
fn typical_room() -> ViewModel {
    let mut model = ViewModel::new("alice", "friday", 100);
    model.apply(&ClientEvent::Joined {
        room_code: "friday".to_string(),
        display_name: "alice".to_string(),
        client_id: 2,
    });
    let mut alice = entry(2, "alice");
    alice.is_self = true;
    alice.is_host = true;
    let mut bob = entry(5, "bob");
    bob.muted = true;
    model.apply(&ClientEvent::RosterChanged {
        entries: vec![alice, bob],
    });
    model.apply(&ClientEvent::YouAreHost);
    model.apply(&ClientEvent::PeerJoined {
        client_id: 9,
        name: "carol".to_string(),
    });
    model.apply(&ClientEvent::PeerBlocked {
        client_id: 9,
        name: "carol".to_string(),
    });
    model.apply_device(&DeviceNotice {
        kind: NoticeKind::Opened(Direction::Input),
        message: "microphone: \"default\" at 48000 Hz, 1 channel, i16".to_string(),
    });
    model.apply_device(&DeviceNotice {
        kind: NoticeKind::Unavailable(Direction::Output),
        message: "no speakers: no default output device; discarding what you hear".to_string(),
    });
    model.send_level = 0.1;
    model.hear_level = 0.02;
    model
}

#[test]
fn typical_room_screen() {
    insta::assert_snapshot!(screen(&typical_room(), 100, 24));
}

#[test]
fn narrow_terminal_screen() {
    insta::assert_snapshot!(screen(&typical_room(), 60, 20));
}

#[test]
fn name_collision_screen() {
    let mut model = ViewModel::new("sam", "lab", 100);
    let mut me = entry(3, "sam");
    me.is_self = true;
    let mut host = entry(1, "Sam");
    host.is_host = true;
    model.apply(&ClientEvent::RosterChanged {
        entries: vec![host, me, entry(4, "kim")],
    });
    model.apply(&ClientEvent::CommandFailed {
        message: "\"sam\" matches 2 participants (ids 1, 3); use the id instead".to_string(),
    });

    assert!(model.has_duplicate_name(&model.peers[0]));
    assert!(!model.has_duplicate_name(&model.peers[2]));
    insta::assert_snapshot!(screen(&model, 100, 16));
}

#[test]
fn force_muted_self_screen() {
    let mut model = typical_room();
    model.apply(&ClientEvent::ForceMuted { muted: true });
    model.apply(&ClientEvent::SelfMuted { muted: false });
    model.apply(&ClientEvent::Warning {
        text: "you are unmuted, but the host has muted you, so nobody hears you".to_string(),
    });

    assert!(model.silenced);
    assert!(model.peers.iter().any(|p| p.is_self && p.server_muted));
    insta::assert_snapshot!(screen(&model, 100, 24));
}

/// alice with bob and carol talking and dave silent, as the server
/// reports them; carol is muted, which hides her marker.
fn talking_room() -> ViewModel {
    let mut model = ViewModel::new("alice", "friday", 100);
    let mut alice = entry(2, "alice");
    alice.is_self = true;
    model.apply(&ClientEvent::RosterChanged {
        entries: vec![alice, entry(5, "bob"), entry(9, "carol"), entry(12, "dave")],
    });
    model.apply(&ClientEvent::TalkingChanged {
        talking: vec![(5, "bob".to_string()), (9, "carol".to_string())],
    });
    model.apply(&ClientEvent::PeerMuted {
        client_id: 9,
        name: "carol".to_string(),
        muted: true,
        by_host: false,
    });
    model.send_level = 0.001;
    model
}

fn talking_ids(model: &ViewModel) -> Vec<u64> {
    model
        .peers
        .iter()
        .filter(|peer| peer.talking)
        .map(|peer| peer.client_id)
        .collect()
}

#[test]
fn talking_indicator_screen() {
    let model = talking_room();
    assert_eq!(talking_ids(&model), [5]);
    assert!(
        model.events.iter().all(|e| !e.text.contains("talking")),
        "talking changes are not logged"
    );
    insta::assert_snapshot!(screen(&model, 100, 12));
}

#[test]
fn talking_cleared_by_block_and_report() {
    let mut model = talking_room();
    model.apply(&ClientEvent::PeerBlocked {
        client_id: 5,
        name: "bob".to_string(),
    });
    assert!(talking_ids(&model).is_empty());

    model.apply(&ClientEvent::TalkingChanged {
        talking: vec![(12, "dave".to_string())],
    });
    assert_eq!(talking_ids(&model), [12]);
    model.apply(&ClientEvent::TalkingChanged { talking: vec![] });
    assert!(talking_ids(&model).is_empty());
}

#[test]
fn own_marker_follows_capture_level() {
    let mut model = talking_room();
    model.send_level = 0.2;
    let row = |model: &ViewModel| {
        screen(model, 100, 12)
            .lines()
            .find(|line| line.contains("alice (you)"))
            .unwrap()
            .to_string()
    };
    assert!(row(&model).contains("▶ ● "), "{}", row(&model));

    model.apply(&ClientEvent::SelfMuted { muted: true });
    assert!(!row(&model).contains('●'), "{}", row(&model));
}

/// Ids as a real server hands them out (16 digits, consecutive) and the
/// largest a u64 holds (20 digits).
fn long_id_room() -> ViewModel {
    let mut model = ViewModel::new("alice", "friday", 100);
    let mut alice = entry(0, "alice");
    alice.client_id = 3_270_902_291_614_444;
    alice.is_self = true;
    alice.is_host = true;
    let mut bob = entry(0, "bob");
    bob.client_id = 3_270_902_291_614_445;
    let mut max = entry(0, "a participant with a very long display name");
    max.client_id = u64::MAX;
    max.muted = true;
    model.apply(&ClientEvent::RosterChanged {
        entries: vec![alice, bob, max],
    });
    model
}

#[test]
fn long_ids_screen() {
    let model = long_id_room();
    let text = screen(&model, 100, 10);
    for line in text.lines() {
        assert_eq!(line.chars().count(), 102, "{line}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn long_ids_in_full_on_wide_screen() {
    let text = screen(&long_id_room(), 200, 10);
    assert!(text.contains(" 3270902291614444 alice"), "{text}");
    assert!(
        text.contains("18446744073709551615 a participant"),
        "{text}"
    );
}

#[test]
fn long_event_lines_screen() {
    let mut model = ViewModel::new("alice", "friday", 100);
    model.apply(&ClientEvent::Warning {
        text: "the server rejected the command because it was sent too often; wait a \
               second and try again, or type /help to list the commands"
            .to_string(),
    });
    model.apply(&ClientEvent::PeerJoined {
        client_id: u64::MAX,
        name: "x".repeat(70),
    });
    model.apply(&ClientEvent::Notice {
        text: "short line".to_string(),
    });
    insta::assert_snapshot!(screen(&model, 80, 14));
}

#[test]
fn newest_event_shown_whole_when_panel_is_full() {
    let mut model = ViewModel::new("alice", "friday", 100);
    for n in 0..30 {
        model.apply(&ClientEvent::Notice {
            text: format!("event {n} with enough words to need a second row in a narrow panel"),
        });
    }
    let text = screen(&model, 60, 12);
    assert!(text.contains("event 29 with"), "{text}");
    assert!(text.contains("narrow panel"), "{text}");
    assert!(!text.contains("event 0 "), "{text}");
}

#[test]
fn tiny_terminals_draw_without_panic() {
    let model = typical_room();
    for (width, height) in [(1, 1), (10, 4), (60, 8), (200, 8), (79, 6)] {
        screen(&model, width, height);
    }
}

#[test]
fn roster_follows_events() {
    let mut model = typical_room();
    model.apply(&ClientEvent::PeerMuted {
        client_id: 5,
        name: "bob".to_string(),
        muted: true,
        by_host: true,
    });
    assert!(model
        .peers
        .iter()
        .any(|p| p.client_id == 5 && p.server_muted));

    model.apply(&ClientEvent::HostChanged {
        client_id: 5,
        name: "bob".to_string(),
    });
    assert!(!model.is_host);
    let hosts: Vec<_> = model.peers.iter().filter(|p| p.is_host).collect();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].client_id, 5);

    model.apply(&ClientEvent::PeerLeft {
        client_id: 9,
        name: "carol".to_string(),
    });
    assert!(model.peers.iter().all(|p| p.client_id != 9));
}

#[test]
fn event_log_is_capped_and_scrolls() {
    let mut model = ViewModel::new("a", "r", 3);
    for n in 0..5 {
        model.apply(&ClientEvent::Notice {
            text: format!("line {n}"),
        });
    }
    let texts: Vec<_> = model.events.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["line 2", "line 3", "line 4"]);

    let up = KeyEvent::new(KeyCode::Up, KeyModifiers::NONE);
    for _ in 0..5 {
        model.handle_key(up);
    }
    assert_eq!(model.scroll, 2);
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn keys_map_to_actions() {
    let mut model = ViewModel::new("a", "r", 10);
    assert_eq!(
        model.handle_key(key(KeyCode::Char('m'))),
        Action::Command("/mute".to_string())
    );
    for c in "/kick bob".chars() {
        assert_eq!(model.handle_key(key(KeyCode::Char(c))), Action::None);
    }
    // Once typing has started, 'm' is text.
    assert_eq!(model.handle_key(key(KeyCode::Char('m'))), Action::None);
    assert_eq!(model.handle_key(key(KeyCode::Backspace)), Action::None);
    assert_eq!(
        model.handle_key(key(KeyCode::Enter)),
        Action::Command("/kick bob".to_string())
    );
    assert!(model.input.is_empty());
    assert_eq!(model.handle_key(key(KeyCode::Enter)), Action::None);
    assert_eq!(model.handle_key(key(KeyCode::Esc)), Action::Leave);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(model.handle_key(ctrl_c), Action::Leave);
}

#[test]
fn tiny_terminals_render_without_panic() {
    // A window shrunk mid-call can reach any size; drawing must never
    // panic, however little fits.
    let model = typical_room();
    for (width, height) in [
        (80, 0),
        (80, 1),
        (80, 6),
        (80, 8),
        (200, 8),
        (1, 30),
        (20, 3),
    ] {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, &model)).unwrap();
    }
}
