//! Legacy servers push each roster change on its own stream, so the client
//! can receive them in any order. These tests deliver pushes swapped and
//! check the roster still ends up right, and that native servers, whose
//! messages stay in order, get a strict `RoomInfo` replacement.

#[path = "client_harness.rs"]
mod harness;

use harness::*;
use voicemcu_core::client::{ClientInput, ClientState};
use voicemcu_core::wire::{ClientInfo, Dialect, SignalMessage};

#[test]
fn left_before_joined_ignored() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    assert!(lines(&session.push(&left_msg(7))).is_empty());
    assert!(lines(&session.push(&joined_msg(7, "bob"))).is_empty());
    assert_eq!(session.roster_ids(), [1]);
    assert!(session.client.roster().has_departed(7));
}

#[test]
fn mute_before_joined_applied() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    assert!(lines(&session.push(&muted_msg(7, true, false))).is_empty());
    assert!(lines(&session.push(&muted_msg(7, true, true))).is_empty());
    let out = session.push(&joined_msg(7, "bob"));
    assert_eq!(
        lines(&out),
        [
            "bob (id 7) joined",
            "bob (id 7) muted themselves",
            "bob (id 7) was muted by the host",
        ]
    );
    let entry = session.client.roster().get(7).unwrap();
    assert!(entry.muted);
    assert!(entry.server_muted);
}

#[test]
fn unmute_before_joined_is_silent() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    session.push(&muted_msg(7, false, false));
    let out = session.push(&joined_msg(7, "bob"));
    assert_eq!(lines(&out), ["bob (id 7) joined"]);
    assert!(!session.client.roster().get(7).unwrap().muted);
}

#[test]
fn mute_after_leave_ignored() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(7, "bob")]);
    session.push(&left_msg(7));
    assert!(session.push(&muted_msg(7, true, false)).is_empty());
    assert!(session.push(&joined_msg(7, "bob")).is_empty());
    assert_eq!(session.roster_ids(), [1]);
}

#[test]
fn native_mute_for_unknown_peer_reported() {
    let mut session = Session::joined(Dialect::Native, 1, &[]);
    let out = session.push(&muted_msg(7, true, false));
    assert_eq!(
        lines(&out),
        ["protocol error: the server reported a mute change for unknown peer id 7; ignored"]
    );
    // Nothing was held, so a later join shows an unmuted peer.
    session.push(&joined_msg(7, "bob"));
    assert!(!session.client.roster().get(7).unwrap().muted);
}

#[test]
fn room_info_before_client_joined() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "host")]);
    let out = session.push(&room_info(vec![
        info(1, NAME),
        host(2, "host"),
        info(7, "bob"),
    ]));
    assert_eq!(
        lines(&out),
        [
            "bob (id 7) joined",
            "roster: alice (id 1, you), host (id 2, host), bob (id 7)",
        ]
    );
    // The ClientJoined that the RoomInfo overtook repeats nothing.
    assert!(session.push(&joined_msg(7, "bob")).is_empty());
    assert_eq!(session.roster_ids(), [1, 2, 7]);
}

#[test]
fn room_info_before_client_left() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "host"), (7, "bob")]);
    let out = session.push(&room_info(vec![info(1, NAME), host(2, "host")]));
    assert_eq!(
        lines(&out),
        [
            "bob (id 7) left",
            "roster: alice (id 1, you), host (id 2, host)"
        ]
    );
    assert!(session.push(&left_msg(7)).is_empty());
    assert_eq!(session.roster_ids(), [1, 2]);
}

#[test]
fn push_before_own_join_survives_snapshot() {
    // The server replies to Join on the bidirectional stream, then carol joins
    // and her ClientJoined push overtakes the reply.
    let mut session = Session::connect(Dialect::Legacy);
    let out = session.push(&joined_msg(9, "carol"));
    assert_eq!(lines(&out), ["carol (id 9) joined"]);
    session.bidi(&SignalMessage::Joined { client_id: 1 });
    let out = session.bidi(&room_info(vec![host(1, NAME)]));
    assert_eq!(
        lines(&out),
        [
            "you are now the host",
            "roster: alice (id 1, you, host), carol (id 9)"
        ]
    );
    assert_eq!(session.roster_ids(), [1, 9]);
}

#[test]
fn native_room_info_is_strict() {
    // In order, a RoomInfo without bob means bob is gone.
    let mut session = Session::joined(Dialect::Native, 1, &[(2, "host")]);
    session.push(&joined_msg(7, "bob"));
    let out = session.push(&room_info(vec![info(1, NAME), host(2, "host")]));
    assert_eq!(
        lines(&out),
        [
            "bob (id 7) left",
            "roster: alice (id 1, you), host (id 2, host)"
        ]
    );
    assert_eq!(session.roster_ids(), [1, 2]);
}

#[test]
fn stale_room_info_keeps_departed_out() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "host"), (7, "bob")]);
    session.push(&left_msg(7));
    // A RoomInfo taken before bob left arrives after his ClientLeft.
    let out = session.push(&room_info(vec![
        info(1, NAME),
        host(2, "host"),
        info(7, "bob"),
    ]));
    assert_eq!(
        lines(&out),
        ["roster: alice (id 1, you), host (id 2, host)"]
    );
    assert_eq!(session.roster_ids(), [1, 2]);
}

#[test]
fn host_handover_either_order() {
    let handover = room_info(vec![host(1, NAME)]);
    for you_are_host_first in [true, false] {
        let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "old")]);
        session.push(&left_msg(2));
        let mut all = Vec::new();
        if you_are_host_first {
            all.extend(session.push(&SignalMessage::YouAreHost));
            all.extend(session.push(&handover));
        } else {
            all.extend(session.push(&handover));
            all.extend(session.push(&SignalMessage::YouAreHost));
        }
        assert_eq!(
            lines(&all),
            ["you are now the host", "roster: alice (id 1, you, host)"],
            "YouAreHost first: {you_are_host_first}"
        );
        assert!(session.client.is_host());
    }
}

#[test]
fn you_are_host_before_joined() {
    let mut session = Session::connect(Dialect::Legacy);
    let out = session.push(&SignalMessage::YouAreHost);
    assert_eq!(lines(&out), ["you are now the host"]);
    session.bidi(&SignalMessage::Joined { client_id: 4 });
    assert!(session.client.is_host());
    assert!(session.client.roster().self_entry().unwrap().is_host);
}

#[test]
fn force_mute_before_joined() {
    let mut session = Session::connect(Dialect::Legacy);
    session.push(&muted_msg(4, true, true));
    let out = session.bidi(&SignalMessage::Joined { client_id: 4 });
    assert_eq!(
        lines(&out),
        [
            "joined room \"abc\" as \"alice\" (id 4)",
            "you were muted by the host"
        ]
    );
    assert!(session.client.is_server_muted());
}

#[test]
fn swapped_own_mute_echoes_ignored() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "host")]);
    session.command("/mute on");
    session.command("/mute off");
    // The echoes of both commands arrive in the wrong order.
    assert!(session.push(&muted_msg(1, false, false)).is_empty());
    assert!(session.push(&muted_msg(1, true, false)).is_empty());
    assert!(!session.client.is_muted());
    assert!(!session.client.roster().self_entry().unwrap().muted);
}

#[test]
fn room_info_keeps_own_mute() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[(2, "host")]);
    session.command("/mute on");
    // A RoomInfo taken before the server saw the Mute.
    session.push(&room_info(vec![info(1, NAME), host(2, "host")]));
    assert!(session.client.is_muted());
    assert!(session.client.roster().self_entry().unwrap().muted);
}

#[test]
fn own_leave_reported_as_error() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    let out = session.push(&left_msg(1));
    assert_eq!(
        lines(&out),
        ["protocol error: the server reported this client (id 1) as having left; ignored"]
    );
    assert_eq!(session.roster_ids(), [1]);
    assert_eq!(session.client.state(), ClientState::Joined);
}

/// Heap's algorithm: calls `visit` with every ordering of `items`.
fn permutations<T: Clone>(items: &mut Vec<T>, k: usize, visit: &mut dyn FnMut(&[T])) {
    if k <= 1 {
        visit(items);
        return;
    }
    for i in 0..k - 1 {
        permutations(items, k - 1, visit);
        if k % 2 == 0 {
            items.swap(i, k - 1);
        } else {
            items.swap(0, k - 1);
        }
    }
    permutations(items, k - 1, visit);
}

#[test]
fn every_push_order_converges() {
    // bob joins, mutes and leaves; carol joins and the host force-mutes her.
    let pushes = vec![
        joined_msg(7, "bob"),
        muted_msg(7, true, false),
        left_msg(7),
        joined_msg(8, "carol"),
        muted_msg(8, true, true),
    ];
    let expected = vec![
        ClientInfo {
            is_host: true,
            ..info(1, NAME)
        },
        ClientInfo {
            server_muted: true,
            ..info(8, "carol")
        },
    ];

    let mut orders = 0;
    let mut items = pushes.clone();
    let len = items.len();
    permutations(&mut items, len, &mut |order| {
        orders += 1;
        let mut session = Session::joined(Dialect::Legacy, 1, &[]);
        for message in order {
            let bytes = frame(message, Dialect::Legacy);
            session.input(ClientInput::PushStream(&bytes));
        }
        let roster: Vec<ClientInfo> = session
            .client
            .roster()
            .iter()
            .map(|entry| ClientInfo {
                client_id: entry.client_id,
                display_name: entry.display_name.clone(),
                muted: entry.muted,
                server_muted: entry.server_muted,
                is_host: entry.is_host,
            })
            .collect();
        assert_eq!(roster, expected, "push order {order:?}");
    });
    assert_eq!(orders, 120);
}
