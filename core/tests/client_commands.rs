//! Slash commands in a joined session: what each sends, what it reports,
//! and the lines that send nothing.

#[path = "client_harness.rs"]
mod harness;

use harness::*;
use voicemcu_core::client::{ClientState, HELP_LINES, MAX_QUEUED_COMMANDS};
use voicemcu_core::wire::{Dialect, SignalMessage};

/// A legacy session as alice (id 1) with bob (id 7, the host), two
/// participants named Sam (ids 20 and 21), and one named "7" (id 30).
fn room() -> Session {
    Session::joined(
        Dialect::Legacy,
        1,
        &[(7, "bob"), (20, "Sam"), (21, "sam"), (30, "7")],
    )
}

#[test]
fn command_table() {
    struct Case {
        line: &'static str,
        events: Vec<String>,
        sent: Vec<SignalMessage>,
    }
    let case = |line, events: &[&str], sent: Vec<SignalMessage>| Case {
        line,
        events: events.iter().map(ToString::to_string).collect(),
        sent,
    };
    let not_host = "; you are not the host, so it will probably refuse";
    let kick_bob = format!("asked the server to kick bob (id 7){not_host}");
    let kick_sam = format!("asked the server to kick Sam (id 20){not_host}");
    let mute_bob = format!("asked the server to mute bob (id 7) for everyone{not_host}");
    let unmute_bob = format!("asked the server to unmute bob (id 7) for everyone{not_host}");
    let unmute_self = format!("asked the server to unmute alice (id 1) for everyone{not_host}");

    let cases = vec![
        case("", &[], vec![]),
        case(
            "hello",
            &["chat is not supported, only commands; type /help to list them"],
            vec![],
        ),
        case(
            "/dance",
            &["unknown command \"/dance\"; type /help to list the commands"],
            vec![],
        ),
        case(
            "/kick",
            &["/kick needs a peer name or id; for example /kick bob"],
            vec![],
        ),
        case(
            "/mute loud",
            &["invalid argument \"loud\" for /mute: expected on, off or nothing (toggle)"],
            vec![],
        ),
        case(
            "/leave now",
            &["/leave takes no argument, got \"now\""],
            vec![],
        ),
        case(
            "/kick zed",
            &["no participant has the name or id \"zed\"; type /who to list them"],
            vec![],
        ),
        case(
            "/kick sam",
            &["\"sam\" matches 2 participants (ids 20, 21); use the id instead"],
            vec![],
        ),
        case(
            "/kick alice",
            &["you cannot kick yourself; use /leave to leave"],
            vec![],
        ),
        case(
            "/kick 1",
            &["you cannot kick yourself; use /leave to leave"],
            vec![],
        ),
        case(
            "/forcemute alice",
            &["you cannot force-mute yourself; use /mute"],
            vec![],
        ),
        case("/block alice", &["you cannot block yourself"], vec![]),
        case("/unblock 1", &["you cannot unblock yourself"], vec![]),
        case("/unblock bob", &["bob (id 7) is not blocked"], vec![]),
        case("/mute off", &["you are already unmuted"], vec![]),
        // The id 7 wins over the participant named "7".
        case(
            "/kick 7",
            &[kick_bob.as_str()],
            vec![SignalMessage::Kick { target: 7 }],
        ),
        case(
            "/KICK Bob",
            &[kick_bob.as_str()],
            vec![SignalMessage::Kick { target: 7 }],
        ),
        case(
            "/kick 20",
            &[kick_sam.as_str()],
            vec![SignalMessage::Kick { target: 20 }],
        ),
        case(
            "/forcemute bob",
            &[mute_bob.as_str()],
            vec![SignalMessage::ServerMute {
                target: 7,
                muted: true,
            }],
        ),
        case(
            "/forceunmute bob",
            &[unmute_bob.as_str()],
            vec![SignalMessage::ServerMute {
                target: 7,
                muted: false,
            }],
        ),
        case(
            "/forceunmute alice",
            &[unmute_self.as_str()],
            vec![SignalMessage::ServerMute {
                target: 1,
                muted: false,
            }],
        ),
        case(
            "/mute",
            &["you are now muted"],
            vec![SignalMessage::Mute { muted: true }],
        ),
        case(
            "/block 30",
            &["blocked 7 (id 30): you no longer hear them, and nobody is told"],
            vec![SignalMessage::BlockPeer { target: 30 }],
        ),
    ];

    for case in cases {
        let mut session = room();
        let out = session.command(case.line);
        assert_eq!(lines(&out), case.events, "events for {:?}", case.line);
        assert_eq!(
            sent(&out, Dialect::Legacy),
            case.sent,
            "sent for {:?}",
            case.line
        );
        assert_eq!(close_reason(&out), None, "close for {:?}", case.line);
    }
}

#[test]
fn help_lists_every_command() {
    let mut session = room();
    let out = session.command("/help");
    assert_eq!(lines(&out), HELP_LINES);
    for command in [
        "/mute",
        "/kick",
        "/forcemute",
        "/forceunmute",
        "/block",
        "/unblock",
        "/leave",
    ] {
        assert!(
            HELP_LINES.iter().any(|line| line.contains(command)),
            "help does not mention {command}"
        );
    }
}

#[test]
fn who_lists_roster() {
    let mut session = room();
    let out = session.command("/who");
    assert_eq!(
        lines(&out),
        ["in room \"abc\": alice (id 1, you), bob (id 7, host), Sam (id 20), sam (id 21), 7 (id 30)"]
    );
}

#[test]
fn mute_toggles_and_sets() {
    let mut session = room();
    let out = session.command("/mute");
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [SignalMessage::Mute { muted: true }]
    );
    assert!(session.client.is_muted());
    assert!(session.client.roster().self_entry().unwrap().muted);

    let out = session.command("/mute on");
    assert_eq!(lines(&out), ["you are already muted"]);
    assert!(sent(&out, Dialect::Legacy).is_empty());

    let out = session.command("/mute");
    assert_eq!(lines(&out), ["you are now unmuted"]);
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [SignalMessage::Mute { muted: false }]
    );
    assert!(!session.client.is_muted());
}

#[test]
fn unmute_while_force_muted_warns() {
    let mut session = room();
    session.command("/mute on");
    session.push(&muted_msg(1, true, true));
    let out = session.command("/mute off");
    assert_eq!(
        lines(&out),
        [
            "you are now unmuted",
            "warning: the host still mutes you, so nobody hears you until the host unmutes you",
        ]
    );
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [SignalMessage::Mute { muted: false }]
    );
    assert!(session.client.is_server_muted());
}

#[test]
fn kick_by_non_host_awaits_server() {
    let mut session = room();
    let out = session.command("/kick bob");
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [SignalMessage::Kick { target: 7 }]
    );
    // Nothing changes locally until the server replies.
    assert_eq!(session.roster_ids(), [1, 7, 20, 21, 30]);

    let out = session.bidi(&SignalMessage::Error {
        message: "only the host can kick".to_string(),
    });
    assert_eq!(lines(&out), ["error from server: only the host can kick"]);
    assert_eq!(session.roster_ids(), [1, 7, 20, 21, 30]);
}

#[test]
fn kick_by_host_confirmed_by_left() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    session.push(&joined_msg(7, "bob"));
    let out = session.command("/kick bob");
    assert_eq!(lines(&out), ["asked the server to kick bob (id 7)"]);
    let out = session.push(&left_msg(7));
    assert_eq!(lines(&out), ["bob (id 7) left"]);
}

#[test]
fn force_mute_waits_for_server() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    session.push(&joined_msg(7, "bob"));
    let out = session.command("/forcemute bob");
    assert_eq!(
        lines(&out),
        ["asked the server to mute bob (id 7) for everyone"]
    );
    assert!(!session.client.roster().get(7).unwrap().server_muted);

    let out = session.push(&muted_msg(7, true, true));
    assert_eq!(lines(&out), ["bob (id 7) was muted by the host"]);
    assert!(session.client.roster().get(7).unwrap().server_muted);
}

#[test]
fn block_and_unblock_tracked_locally() {
    let mut session = room();
    let out = session.command("/block bob");
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [SignalMessage::BlockPeer { target: 7 }]
    );
    assert!(session.client.blocked().contains(&7));
    assert!(session.client.roster().get(7).unwrap().blocked);

    let out = session.command("/block 7");
    assert_eq!(lines(&out), ["bob (id 7) is already blocked"]);
    assert!(sent(&out, Dialect::Legacy).is_empty());

    let out = session.command("/unblock bob");
    assert_eq!(lines(&out), ["unblocked bob (id 7): you hear them again"]);
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [SignalMessage::UnblockPeer { target: 7 }]
    );
    assert!(session.client.blocked().is_empty());
    assert!(!session.client.roster().get(7).unwrap().blocked);
}

#[test]
fn blocked_peer_leaving_clears_block() {
    let mut session = room();
    session.command("/block bob");
    session.push(&left_msg(7));
    assert!(session.client.blocked().is_empty());
}

#[test]
fn leave_aliases_send_leave_and_close() {
    for line in ["/leave", "/quit", "/q", "/LEAVE"] {
        let mut session = room();
        let out = session.command(line);
        assert_eq!(
            sent(&out, Dialect::Legacy),
            [SignalMessage::Leave],
            "{line}"
        );
        assert_eq!(lines(&out), ["left the room"], "{line}");
        assert_eq!(
            close_reason(&out).as_deref(),
            Some("left the room"),
            "{line}"
        );
        assert_eq!(session.client.state(), ClientState::Closed);

        let out = session.command("/leave");
        assert_eq!(lines(&out), ["the session has already ended"]);
        assert!(sent(&out, Dialect::Legacy).is_empty());
    }
}

#[test]
fn commands_before_join_wait_for_roster() {
    let mut session = Session::connect(Dialect::Legacy);
    let out = session.command("/mute");
    assert!(lines(&out).is_empty(), "{:?}", lines(&out));
    assert!(sent(&out, Dialect::Legacy).is_empty());
    let out = session.command("/block bob");
    assert!(sent(&out, Dialect::Legacy).is_empty());

    // Help runs at once; the queued commands wait for Joined and the roster.
    let out = session.command("/help");
    assert_eq!(out.len(), HELP_LINES.len());
    let out = session.bidi(&SignalMessage::Joined { client_id: 1 });
    assert!(sent(&out, Dialect::Legacy).is_empty());

    let out = session.bidi(&room_info(vec![host(7, "bob"), info(1, "alice")]));
    assert_eq!(
        sent(&out, Dialect::Legacy),
        [
            SignalMessage::Mute { muted: true },
            SignalMessage::BlockPeer { target: 7 }
        ]
    );
    assert!(session.client.is_muted());
}

#[test]
fn leave_before_join_runs_at_once() {
    let mut session = Session::connect(Dialect::Legacy);
    session.command("/mute");
    let out = session.command("/leave");
    assert_eq!(sent(&out, Dialect::Legacy), [SignalMessage::Leave]);
    assert_eq!(close_reason(&out).as_deref(), Some("left the room"));
    assert_eq!(session.client.poll_timeout(), None);

    // The queued /mute never runs once the session has ended.
    let out = session.bidi(&SignalMessage::Joined { client_id: 1 });
    assert!(sent(&out, Dialect::Legacy).is_empty());
}

#[test]
fn queued_commands_are_capped() {
    let mut session = Session::connect(Dialect::Native);
    for _ in 0..MAX_QUEUED_COMMANDS {
        assert!(lines(&session.command("/who")).is_empty());
    }
    let out = session.command("/who");
    assert_eq!(
        lines(&out),
        ["not in the room yet and 32 commands are already waiting; try again once joined"]
    );
}
