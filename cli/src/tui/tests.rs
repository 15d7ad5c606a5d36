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
