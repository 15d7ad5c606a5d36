//! Length-prefixed framing of signalling messages on a QUIC stream: a 4-byte
//! big-endian length N, then N bytes of one postcard-encoded message.

use super::WireError;

/// Bytes in the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// The largest frame body either dialect accepts, in bytes.
pub const MAX_FRAME_LEN: usize = 65_536;

/// Prefixes `body` with its length. Callers pass bodies from
/// [`super::encode_message`], which are far below [`MAX_FRAME_LEN`].
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(body);
    framed
}

/// Reassembles frames from stream bytes that arrive in arbitrary chunks.
///
/// A length over the limit is reported as soon as its prefix arrives, before
/// any of the body is buffered, so a hostile peer cannot make the decoder
/// hold more than one legal frame.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            max_len,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Returns the next complete frame body, `Ok(None)` when more bytes are
    /// needed, or an error when the next length is over the limit. After an
    /// error the stream is unusable and should be closed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        if self.buffer.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }

        let mut prefix = [0u8; FRAME_HEADER_LEN];
        prefix.copy_from_slice(&self.buffer[..FRAME_HEADER_LEN]);
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_len {
            return Err(WireError::FrameTooLong {
                len,
                max: self.max_len,
            });
        }

        let end = FRAME_HEADER_LEN + len;
        if self.buffer.len() < end {
            return Ok(None);
        }

        let body = self.buffer[FRAME_HEADER_LEN..end].to_vec();
        self.buffer.drain(..end);
        Ok(Some(body))
    }

    /// Whether part of a frame is buffered, waiting for the rest.
    pub fn has_partial_frame(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Bytes buffered and not yet returned as a frame.
    pub fn buffered_len(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_in_small_chunks() {
        let framed = encode_frame(b"hello");
        let mut decoder = FrameDecoder::default();
        for byte in &framed[..framed.len() - 1] {
            decoder.push(std::slice::from_ref(byte));
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        decoder.push(&framed[framed.len() - 1..]);
        assert_eq!(decoder.next_frame(), Ok(Some(b"hello".to_vec())));
        assert!(!decoder.has_partial_frame());
    }

    #[test]
    fn two_frames_in_one_chunk() {
        let mut bytes = encode_frame(b"a");
        bytes.extend(encode_frame(b""));
        let mut decoder = FrameDecoder::default();
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame(), Ok(Some(b"a".to_vec())));
        assert_eq!(decoder.next_frame(), Ok(Some(Vec::new())));
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn hostile_length_rejected_before_body() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            decoder.next_frame(),
            Err(WireError::FrameTooLong {
                len: u32::MAX as usize,
                max: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn length_at_limit_accepted() {
        let body = vec![7u8; MAX_FRAME_LEN];
        let mut decoder = FrameDecoder::default();
        decoder.push(&encode_frame(&body));
        assert_eq!(
            decoder.next_frame().unwrap().map(|b| b.len()),
            Some(MAX_FRAME_LEN)
        );
    }
}
