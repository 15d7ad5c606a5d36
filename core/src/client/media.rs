//! The client's audio path: captured frames to Opus datagrams on the way
//! out, and server datagrams through a jitter buffer to decoded frames on
//! the way in.
//!
//! The Opus encoder and decoder are built with the client, so invalid
//! settings fail [`super::Client::new`].

use crate::audio::{PcmFrame, FRAME_SAMPLES, SILENCE};
use crate::codec::{CodecError, Decoder, Encoder, OpusDecoder, OpusEncoder, OpusSettings};
use crate::ids::ClientId;
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::wire::{self, AudioHeader, MAX_AUDIO_PAYLOAD};

/// Samples the timestamp advances per frame.
const TIMESTAMP_STEP: u32 = FRAME_SAMPLES as u32;

/// Audio counters, for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// Frames encoded and queued as datagrams.
    pub frames_sent: u64,
    /// Frames the encoder failed on; they were not sent.
    pub encode_errors: u64,
    /// Datagrams handed in while joined, valid or not.
    pub datagrams_received: u64,
    /// Datagrams dropped because their header or size was invalid.
    pub datagrams_malformed: u64,
    /// Datagrams dropped because the client was not joined.
    pub datagrams_ignored: u64,
    /// Packets the decoder rejected; each was concealed instead.
    pub decode_errors: u64,
    /// Concealments the decoder failed on; each played silence instead.
    pub conceal_errors: u64,
    pub jitter: JitterStats,
}

/// A failure while playing one frame, for the client to log.
#[derive(Debug)]
pub(crate) enum PlayoutFailure {
    /// The packet was concealed instead.
    Decode(CodecError),
    /// Silence was played instead.
    Conceal(CodecError),
}

pub(crate) struct AudioPath {
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    jitter: JitterBuffer,
    next_sequence: u32,
    next_timestamp: u32,
    stats: ClientStats,
}

impl AudioPath {
    pub(crate) fn new(opus: OpusSettings, jitter_config: JitterConfig) -> Result<Self, CodecError> {
        Ok(AudioPath {
            encoder: OpusEncoder::new(opus)?,
            decoder: OpusDecoder::new()?,
            jitter: JitterBuffer::new(jitter_config),
            next_sequence: 0,
            next_timestamp: 0,
            stats: ClientStats::default(),
        })
    }

    pub(crate) fn stats(&self) -> ClientStats {
        ClientStats {
            jitter: self.jitter.stats(),
            ..self.stats
        }
    }

    /// Encodes `pcm` into a datagram stamped with `client_id` and the next
    /// sequence number and timestamp. Both advance only for frames that are
    /// sent, so muting leaves no gap in the sequence.
    pub(crate) fn encode(
        &mut self,
        client_id: ClientId,
        pcm: &PcmFrame,
    ) -> Result<Vec<u8>, CodecError> {
        let mut packet = [0u8; MAX_AUDIO_PAYLOAD];
        let len = match self.encoder.encode(pcm, &mut packet) {
            Ok(len) if (1..=MAX_AUDIO_PAYLOAD).contains(&len) => len,
            Ok(len) => {
                self.stats.encode_errors += 1;
                return Err(CodecError::Encode(format!(
                    "encoder returned a packet of {len} bytes, outside 1 to {MAX_AUDIO_PAYLOAD}"
                )));
            }
            Err(error) => {
                self.stats.encode_errors += 1;
                return Err(error);
            }
        };

        let header = AudioHeader {
            client_id,
            sequence: self.next_sequence,
            timestamp: self.next_timestamp,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.next_timestamp = self.next_timestamp.wrapping_add(TIMESTAMP_STEP);
        self.stats.frames_sent += 1;
        Ok(wire::encode_datagram(header, &packet[..len]))
    }

    /// Starts the outgoing stream over at `sequence`, with the timestamp
    /// back at 0.
    pub(crate) fn restart_sequence(&mut self, sequence: u32) {
        self.next_sequence = sequence;
        self.next_timestamp = 0;
    }

    /// Counts a datagram that arrived while the client was not joined.
    pub(crate) fn ignore_datagram(&mut self) {
        self.stats.datagrams_ignored += 1;
    }

    /// Stores one datagram from the server in the jitter buffer. The client
    /// id in its header is not checked: the server addresses datagrams by
    /// connection, and the id only echoes the listener's own.
    pub(crate) fn receive(&mut self, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        match wire::decode_datagram(datagram) {
            Ok((header, payload)) => {
                tracing::trace!(
                    sequence = header.sequence,
                    len = payload.len(),
                    "audio datagram"
                );
                self.jitter.push(header.sequence, payload);
            }
            Err(error) => {
                self.stats.datagrams_malformed += 1;
                tracing::trace!(%error, len = datagram.len(), "malformed audio datagram dropped");
            }
        }
    }

    /// Fills `out` with the next 20 ms. `out` is always written, with
    /// silence when there is nothing to play or decoding failed.
    pub(crate) fn playout(&mut self, out: &mut PcmFrame) -> Result<(), PlayoutFailure> {
        *out = SILENCE;
        let decode_failure = match self.jitter.pop() {
            Playout::Packet(packet) => match self.decoder.decode(&packet, out) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    self.stats.decode_errors += 1;
                    Some(error)
                }
            },
            Playout::Conceal => None,
            Playout::Silent => return Ok(()),
        };

        if let Err(error) = self.decoder.conceal(out) {
            self.stats.conceal_errors += 1;
            *out = SILENCE;
            return Err(PlayoutFailure::Conceal(error));
        }
        match decode_failure {
            Some(error) => Err(PlayoutFailure::Decode(error)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_and_timestamp_wrap() {
        let mut path = AudioPath::new(OpusSettings::default(), JitterConfig::default()).unwrap();
        path.next_sequence = u32::MAX;
        path.next_timestamp = u32::MAX - 100;

        let first = path.encode(5, &SILENCE).unwrap();
        let second = path.encode(5, &SILENCE).unwrap();
        let (first, _) = wire::decode_datagram(&first).unwrap();
        let (second, _) = wire::decode_datagram(&second).unwrap();
        assert_eq!(
            (first.sequence, first.timestamp),
            (u32::MAX, u32::MAX - 100)
        );
        assert_eq!(
            (second.sequence, second.timestamp),
            (0, TIMESTAMP_STEP - 101)
        );
    }

    #[test]
    fn restart_sets_sequence_and_timestamp() {
        let mut path = AudioPath::new(OpusSettings::default(), JitterConfig::default()).unwrap();
        path.encode(5, &SILENCE).unwrap();
        path.encode(5, &SILENCE).unwrap();

        path.restart_sequence(70_000);
        let datagram = path.encode(5, &SILENCE).unwrap();
        let (header, _) = wire::decode_datagram(&datagram).unwrap();
        assert_eq!((header.sequence, header.timestamp), (70_000, 0));
    }
}
