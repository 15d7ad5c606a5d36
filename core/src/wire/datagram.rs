//! The audio datagram: a 16-byte header (client id, sequence number,
//! timestamp, all big-endian) followed by one Opus packet.

use super::WireError;

/// Bytes in the audio header.
pub const HEADER_LEN: usize = 16;

/// The largest Opus packet a datagram may carry. voicemcu 0.1 keeps every
/// encoded frame at or under 480 bytes, and so do we.
pub const MAX_AUDIO_PAYLOAD: usize = 480;

/// The header in front of every audio datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioHeader {
    /// From a client: its own id, which servers ignore. From a server: the
    /// receiving listener's id.
    pub client_id: u64,
    /// Counts frames, wrapping at 2^32.
    pub sequence: u32,
    /// In 48 kHz samples, advancing 960 per frame.
    pub timestamp: u32,
}

/// Writes `header` and `payload` into one datagram.
pub fn encode_datagram(header: AudioHeader, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(HEADER_LEN + payload.len());
    datagram.extend_from_slice(&header.client_id.to_be_bytes());
    datagram.extend_from_slice(&header.sequence.to_be_bytes());
    datagram.extend_from_slice(&header.timestamp.to_be_bytes());
    datagram.extend_from_slice(payload);
    datagram
}

/// Splits a datagram into its header and Opus payload. The payload must hold
/// at least one byte and at most [`MAX_AUDIO_PAYLOAD`].
pub fn decode_datagram(datagram: &[u8]) -> Result<(AudioHeader, &[u8]), WireError> {
    if datagram.len() <= HEADER_LEN {
        return Err(WireError::TooShort {
            needed: HEADER_LEN + 1,
            got: datagram.len(),
        });
    }

    let (head, payload) = datagram.split_at(HEADER_LEN);
    if payload.len() > MAX_AUDIO_PAYLOAD {
        return Err(WireError::PayloadTooLong {
            len: payload.len(),
            max: MAX_AUDIO_PAYLOAD,
        });
    }

    let mut id = [0u8; 8];
    id.copy_from_slice(&head[0..8]);
    let mut sequence = [0u8; 4];
    sequence.copy_from_slice(&head[8..12]);
    let mut timestamp = [0u8; 4];
    timestamp.copy_from_slice(&head[12..16]);

    let header = AudioHeader {
        client_id: u64::from_be_bytes(id),
        sequence: u32::from_be_bytes(sequence),
        timestamp: u32::from_be_bytes(timestamp),
    };
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_big_endian() {
        let header = AudioHeader {
            client_id: 0x0102030405060708,
            sequence: 0x090a0b0c,
            timestamp: 0x0d0e0f10,
        };
        let datagram = encode_datagram(header, &[0xaa]);
        assert_eq!(
            datagram,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xaa]
        );
        assert_eq!(decode_datagram(&datagram), Ok((header, &[0xaa][..])));
    }

    #[test]
    fn header_only_datagram_rejected() {
        assert_eq!(
            decode_datagram(&[0; HEADER_LEN]),
            Err(WireError::TooShort {
                needed: 17,
                got: 16
            })
        );
    }

    #[test]
    fn oversized_payload_rejected() {
        let datagram = vec![0; HEADER_LEN + MAX_AUDIO_PAYLOAD + 1];
        assert_eq!(
            decode_datagram(&datagram),
            Err(WireError::PayloadTooLong { len: 481, max: 480 })
        );
    }
}
