//! `SignalMessage`, the signalling vocabulary, encoded with postcard 1.x.
//!
//! Variants 0 to 14 are voicemcu 0.1's, in its order, so their postcard
//! encoding (variant index as a LEB128 varint, then the fields) is the 0.1
//! wire format. Native extensions are appended from index 15 on and are
//! never sent to, or accepted from, a legacy peer.

use serde::{Deserialize, Serialize};

use super::{Dialect, WireError};

/// The index of `Error`, the last variant voicemcu 0.1 knows.
pub(super) const LAST_LEGACY_VARIANT: u32 = 14;

/// The index of the last native extension.
pub(super) const LAST_NATIVE_VARIANT: u32 = 17;

/// One participant as a roster lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: u64,
    pub display_name: String,
    /// Muted by the participant.
    pub muted: bool,
    /// Muted by the host (force-mute).
    pub server_muted: bool,
    pub is_host: bool,
}

/// A signalling message in either direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalMessage {
    // Client to server.
    Join {
        room_code: String,
        display_name: String,
    },
    Leave,
    Mute {
        muted: bool,
    },
    Kick {
        target: u64,
    },
    ServerMute {
        target: u64,
        muted: bool,
    },
    BlockPeer {
        target: u64,
    },
    UnblockPeer {
        target: u64,
    },

    // Server to client.
    Joined {
        client_id: u64,
    },
    RoomInfo {
        clients: Vec<ClientInfo>,
    },
    ClientJoined {
        client_id: u64,
        display_name: String,
    },
    ClientLeft {
        client_id: u64,
    },
    YouAreHost,
    Kicked {
        reason: String,
    },
    PeerMuted {
        client_id: u64,
        muted: bool,
        by_server: bool,
    },
    Error {
        message: String,
    },

    // Native extensions, in index order.
    /// 15, server to client: the server is going away. Legacy peers get an
    /// `Error` instead.
    ShuttingDown {
        reason: String,
    },

    /// 16, client to server: `Join` with a room password. The first joiner's password becomes the
    /// room's, and later joiners must present the same one.
    JoinWithPassword {
        room_code: String,
        display_name: String,
        password: String,
    },
    /// 17, server to client: the room members this listener may hear whom
    /// the server's VAD now hears talking, in ascending id order. Sent only
    /// when that set changes, and never to a legacy peer.
    TalkingPeers {
        client_ids: Vec<u64>,
    },
}

impl SignalMessage {
    /// The variant's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            SignalMessage::Join { .. } => "Join",
            SignalMessage::Leave => "Leave",
            SignalMessage::Mute { .. } => "Mute",
            SignalMessage::Kick { .. } => "Kick",
            SignalMessage::ServerMute { .. } => "ServerMute",
            SignalMessage::BlockPeer { .. } => "BlockPeer",
            SignalMessage::UnblockPeer { .. } => "UnblockPeer",
            SignalMessage::Joined { .. } => "Joined",
            SignalMessage::RoomInfo { .. } => "RoomInfo",
            SignalMessage::ClientJoined { .. } => "ClientJoined",
            SignalMessage::ClientLeft { .. } => "ClientLeft",
            SignalMessage::YouAreHost => "YouAreHost",
            SignalMessage::Kicked { .. } => "Kicked",
            SignalMessage::PeerMuted { .. } => "PeerMuted",
            SignalMessage::Error { .. } => "Error",
            SignalMessage::ShuttingDown { .. } => "ShuttingDown",
            SignalMessage::JoinWithPassword { .. } => "JoinWithPassword",
            SignalMessage::TalkingPeers { .. } => "TalkingPeers",
        }
    }

    /// Whether clients send this variant (servers send the others).
    pub fn is_client_to_server(&self) -> bool {
        matches!(
            self,
            SignalMessage::Join { .. }
                | SignalMessage::Leave
                | SignalMessage::Mute { .. }
                | SignalMessage::Kick { .. }
                | SignalMessage::ServerMute { .. }
                | SignalMessage::BlockPeer { .. }
                | SignalMessage::UnblockPeer { .. }
                | SignalMessage::JoinWithPassword { .. }
        )
    }

    /// Whether voicemcu 0.1 knows this variant.
    pub fn is_legacy(&self) -> bool {
        !matches!(
            self,
            SignalMessage::ShuttingDown { .. }
                | SignalMessage::JoinWithPassword { .. }
                | SignalMessage::TalkingPeers { .. }
        )
    }
}

/// Encodes `message` for `dialect`, without the frame length prefix.
pub fn encode_message(message: &SignalMessage, dialect: Dialect) -> Result<Vec<u8>, WireError> {
    if dialect == Dialect::Legacy && !message.is_legacy() {
        return Err(WireError::NotInDialect {
            variant: message.name(),
        });
    }

    postcard::to_stdvec(message).map_err(|error| WireError::Malformed {
        detail: error.to_string(),
    })
}

/// Decodes one frame body as a message of `dialect`. The whole body must be
/// one message: trailing bytes are an error.
pub fn decode_message(body: &[u8], dialect: Dialect) -> Result<SignalMessage, WireError> {
    let index = read_variant_index(body)?;
    let max = dialect.max_variant();
    if index > max {
        return Err(WireError::UnknownVariant { index, max });
    }

    let (message, rest) =
        postcard::take_from_bytes::<SignalMessage>(body).map_err(map_postcard_error)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes { count: rest.len() });
    }
    Ok(message)
}

/// Reads the leading LEB128 varint that postcard writes for an enum variant.
fn read_variant_index(body: &[u8]) -> Result<u32, WireError> {
    let mut value: u64 = 0;
    for (position, byte) in body.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * position);
        if byte & 0x80 == 0 {
            return u32::try_from(value).map_err(|_| WireError::Malformed {
                detail: format!("variant index {value} does not fit in 32 bits"),
            });
        }
    }

    if body.len() < 5 {
        Err(WireError::TooShort {
            needed: body.len() + 1,
            got: body.len(),
        })
    } else {
        Err(WireError::Malformed {
            detail: "variant index varint is longer than 5 bytes".to_string(),
        })
    }
}

fn map_postcard_error(error: postcard::Error) -> WireError {
    match error {
        postcard::Error::DeserializeBadUtf8 => WireError::InvalidUtf8,
        postcard::Error::DeserializeUnexpectedEnd => WireError::Malformed {
            detail: "message ends in the middle of a field".to_string(),
        },
        other => WireError::Malformed {
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_frame;

    #[test]
    fn join_matches_protocol_example() {
        let join = SignalMessage::Join {
            room_code: "ab".to_string(),
            display_name: "c".to_string(),
        };
        let body = encode_message(&join, Dialect::Legacy).unwrap();
        assert_eq!(body, [0x00, 0x02, 0x61, 0x62, 0x01, 0x63]);
        assert_eq!(
            encode_frame(&body),
            [0x00, 0x00, 0x00, 0x06, 0x00, 0x02, 0x61, 0x62, 0x01, 0x63]
        );
        assert_eq!(decode_message(&body, Dialect::Legacy), Ok(join));
    }

    #[test]
    fn variant_indices_match_legacy_table() {
        let cases: Vec<(SignalMessage, u8)> = vec![
            (SignalMessage::Leave, 1),
            (SignalMessage::Mute { muted: true }, 2),
            (SignalMessage::Kick { target: 1 }, 3),
            (
                SignalMessage::ServerMute {
                    target: 1,
                    muted: false,
                },
                4,
            ),
            (SignalMessage::BlockPeer { target: 1 }, 5),
            (SignalMessage::UnblockPeer { target: 1 }, 6),
            (SignalMessage::Joined { client_id: 1 }, 7),
            (SignalMessage::RoomInfo { clients: vec![] }, 8),
            (
                SignalMessage::ClientJoined {
                    client_id: 1,
                    display_name: String::new(),
                },
                9,
            ),
            (SignalMessage::ClientLeft { client_id: 1 }, 10),
            (SignalMessage::YouAreHost, 11),
            (
                SignalMessage::Kicked {
                    reason: String::new(),
                },
                12,
            ),
            (
                SignalMessage::PeerMuted {
                    client_id: 1,
                    muted: true,
                    by_server: true,
                },
                13,
            ),
            (
                SignalMessage::Error {
                    message: String::new(),
                },
                14,
            ),
        ];
        for (message, index) in cases {
            let body = encode_message(&message, Dialect::Legacy).unwrap();
            assert_eq!(body[0], index, "{}", message.name());
        }
    }

    #[test]
    fn peer_muted_fields_in_order() {
        let message = SignalMessage::PeerMuted {
            client_id: 300,
            muted: true,
            by_server: false,
        };
        let body = encode_message(&message, Dialect::Legacy).unwrap();
        assert_eq!(body, [13, 0xac, 0x02, 1, 0]);
    }

    #[test]
    fn room_info_encodes_client_info_fields() {
        let message = SignalMessage::RoomInfo {
            clients: vec![ClientInfo {
                client_id: 5,
                display_name: "x".to_string(),
                muted: false,
                server_muted: true,
                is_host: true,
            }],
        };
        let body = encode_message(&message, Dialect::Legacy).unwrap();
        assert_eq!(body, [8, 1, 5, 1, b'x', 0, 1, 1]);
    }

    #[test]
    fn extension_refused_in_legacy() {
        let message = SignalMessage::ShuttingDown {
            reason: "bye".to_string(),
        };
        assert_eq!(
            encode_message(&message, Dialect::Legacy),
            Err(WireError::NotInDialect {
                variant: "ShuttingDown"
            })
        );
        let body = encode_message(&message, Dialect::Native).unwrap();
        assert_eq!(body[0], 15);
        assert_eq!(
            decode_message(&body, Dialect::Legacy),
            Err(WireError::UnknownVariant { index: 15, max: 14 })
        );
        assert_eq!(decode_message(&body, Dialect::Native), Ok(message));
    }

    #[test]
    fn join_with_password_is_native_only() {
        let message = SignalMessage::JoinWithPassword {
            room_code: "ab".to_string(),
            display_name: "c".to_string(),
            password: "pw".to_string(),
        };
        assert!(message.is_client_to_server());
        assert_eq!(
            encode_message(&message, Dialect::Legacy),
            Err(WireError::NotInDialect {
                variant: "JoinWithPassword"
            })
        );

        let body = encode_message(&message, Dialect::Native).unwrap();
        assert_eq!(body, [16, 2, b'a', b'b', 1, b'c', 2, b'p', b'w']);
        assert_eq!(
            decode_message(&body, Dialect::Legacy),
            Err(WireError::UnknownVariant { index: 16, max: 14 })
        );
        assert_eq!(decode_message(&body, Dialect::Native), Ok(message));
    }

    #[test]
    fn malformed_bodies_rejected() {
        assert_eq!(
            decode_message(&[], Dialect::Legacy),
            Err(WireError::TooShort { needed: 1, got: 0 })
        );
        assert_eq!(
            decode_message(&[99], Dialect::Native),
            Err(WireError::UnknownVariant { index: 99, max: 17 })
        );
        assert_eq!(
            decode_message(&[0, 1, 0xff, 0], Dialect::Legacy),
            Err(WireError::InvalidUtf8)
        );
        assert_eq!(
            decode_message(&[1, 0], Dialect::Legacy),
            Err(WireError::TrailingBytes { count: 1 })
        );
        assert!(matches!(
            decode_message(&[0, 5, b'a'], Dialect::Legacy),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            decode_message(&[2, 7], Dialect::Legacy),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn native_variant_indices() {
        let cases: Vec<(SignalMessage, u8)> = vec![
            (
                SignalMessage::ShuttingDown {
                    reason: String::new(),
                },
                15,
            ),
            (SignalMessage::TalkingPeers { client_ids: vec![] }, 17),
        ];
        for (message, index) in cases {
            let body = encode_message(&message, Dialect::Native).unwrap();
            assert_eq!(body[0], index, "{}", message.name());
        }
    }

    #[test]
    fn talking_peers_byte_layout_and_roundtrip() {
        let message = SignalMessage::TalkingPeers {
            client_ids: vec![5, 300, u64::MAX],
        };
        let body = encode_message(&message, Dialect::Native).unwrap();
        let mut expected = vec![17, 3, 5, 0xac, 0x02];
        expected.extend([0xff; 9]);
        expected.push(0x01);
        assert_eq!(body, expected);
        assert_eq!(decode_message(&body, Dialect::Native), Ok(message));

        let empty = SignalMessage::TalkingPeers { client_ids: vec![] };
        let body = encode_message(&empty, Dialect::Native).unwrap();
        assert_eq!(body, [17, 0]);
        assert_eq!(decode_message(&body, Dialect::Native), Ok(empty));
    }

    #[test]
    fn talking_peers_matches_protocol_example() {
        let message = SignalMessage::TalkingPeers {
            client_ids: vec![5, 300],
        };
        let body = encode_message(&message, Dialect::Native).unwrap();
        assert_eq!(body, [0x11, 0x02, 0x05, 0xac, 0x02]);
        assert_eq!(
            encode_frame(&body),
            [0x00, 0x00, 0x00, 0x05, 0x11, 0x02, 0x05, 0xac, 0x02]
        );
        assert_eq!(decode_message(&body, Dialect::Native), Ok(message));
    }

    #[test]
    fn talking_peers_not_in_legacy() {
        let message = SignalMessage::TalkingPeers {
            client_ids: vec![1],
        };
        assert!(!message.is_legacy());
        assert!(!message.is_client_to_server());
        assert_eq!(
            encode_message(&message, Dialect::Legacy),
            Err(WireError::NotInDialect {
                variant: "TalkingPeers"
            })
        );
        assert_eq!(
            decode_message(&[17, 1, 1], Dialect::Legacy),
            Err(WireError::UnknownVariant { index: 17, max: 14 })
        );
    }

    #[test]
    fn truncated_talking_peers_rejected() {
        // Two ids announced, one present.
        assert!(matches!(
            decode_message(&[17, 2, 5], Dialect::Native),
            Err(WireError::Malformed { .. })
        ));
    }
}
