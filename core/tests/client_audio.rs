//! The client's audio path against the real Opus codec and jitter buffer:
//! datagram headers, mute gating, decoding, concealment and counters.

#[path = "client_harness.rs"]
mod harness;

use std::f32::consts::TAU;

use harness::*;
use voicemcu_core::audio::{PcmFrame, FRAME_SAMPLES, SAMPLE_RATE, SILENCE};
use voicemcu_core::client::{ClientInput, ClientOutput};
use voicemcu_core::wire::{
    decode_datagram, encode_datagram, AudioHeader, Dialect, MAX_AUDIO_PAYLOAD,
};

/// Frame `index` of a 440 Hz tone at half scale.
fn tone(index: usize) -> PcmFrame {
    let mut frame = SILENCE;
    for (i, sample) in frame.iter_mut().enumerate() {
        let t = (index * FRAME_SAMPLES + i) as f32 / SAMPLE_RATE as f32;
        *sample = 0.5 * (TAU * 440.0 * t).sin();
    }
    frame
}

fn datagrams(outputs: &[ClientOutput]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|output| match output {
            ClientOutput::SendDatagram(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

/// Captures `count` tone frames starting at frame `first`.
fn capture(session: &mut Session, first: usize, count: usize) -> Vec<Vec<u8>> {
    for index in first..first + count {
        session.client.send_audio(session.now, &tone(index));
    }
    datagrams(&session.drain())
}

fn energy(frame: &PcmFrame) -> f32 {
    frame.iter().map(|s| s * s).sum()
}

#[test]
fn datagrams_carry_id_sequence_timestamp() {
    let mut session = Session::joined(Dialect::Legacy, 123, &[]);
    let sent = capture(&mut session, 0, 3);
    assert_eq!(sent.len(), 3);
    for (index, datagram) in sent.iter().enumerate() {
        let (header, payload) = decode_datagram(datagram).expect("client datagrams decode");
        assert_eq!(
            header,
            AudioHeader {
                client_id: 123,
                sequence: index as u32,
                timestamp: 960 * index as u32,
            }
        );
        assert!(!payload.is_empty());
        assert!(payload.len() <= MAX_AUDIO_PAYLOAD);
    }
    assert_eq!(session.client.stats().frames_sent, 3);
}

#[test]
fn muted_frames_leave_no_gap() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    assert_eq!(capture(&mut session, 0, 2).len(), 2);

    session.command("/mute on");
    assert!(capture(&mut session, 2, 5).is_empty());

    session.command("/mute off");
    let resumed = capture(&mut session, 7, 1);
    let (header, _) = decode_datagram(&resumed[0]).unwrap();
    assert_eq!(header.sequence, 2);
    assert_eq!(header.timestamp, 2 * 960);
}

#[test]
fn no_audio_after_leave() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    session.command("/leave");
    assert!(capture(&mut session, 0, 1).is_empty());
}

#[test]
fn loopback_plays_tone() {
    let mut sender = Session::joined(Dialect::Native, 1, &[]);
    let mut listener = Session::joined(Dialect::Native, 2, &[]);
    let sent = capture(&mut sender, 0, 20);

    let mut played = Vec::new();
    for datagram in &sent {
        // The server addresses its mix to the listener.
        let (header, payload) = decode_datagram(datagram).unwrap();
        let relabelled = encode_datagram(
            AudioHeader {
                client_id: 2,
                ..header
            },
            payload,
        );
        listener.input(ClientInput::Datagram(&relabelled));
        let mut out = SILENCE;
        listener.client.playout(listener.now, &mut out);
        played.push(out);
    }

    let stats = listener.client.stats();
    assert_eq!(stats.datagrams_received, 20);
    assert_eq!(stats.datagrams_malformed, 0);
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(stats.jitter.received, 20);
    assert!(stats.jitter.played > 0, "{stats:?}");
    let loud = played.iter().filter(|frame| energy(frame) > 1.0).count();
    assert!(loud >= 10, "only {loud} of 20 frames carry the tone");
}

#[test]
fn loss_is_concealed() {
    let mut sender = Session::joined(Dialect::Native, 1, &[]);
    let mut listener = Session::joined(Dialect::Native, 2, &[]);
    let sent = capture(&mut sender, 0, 12);

    let mut out = SILENCE;
    for (index, datagram) in sent.iter().enumerate() {
        // Frame 6 is lost.
        if index != 6 {
            listener.input(ClientInput::Datagram(datagram));
        }
        listener.client.playout(listener.now, &mut out);
    }
    let stats = listener.client.stats();
    assert_eq!(stats.jitter.concealed, 1, "{stats:?}");
    assert_eq!(stats.decode_errors, 0);
}

#[test]
fn undecodable_packet_concealed_and_counted() {
    let mut listener = Session::joined(Dialect::Native, 2, &[]);
    let mut sender = Session::joined(Dialect::Native, 1, &[]);
    let sent = capture(&mut sender, 0, 8);

    let mut out = SILENCE;
    for (index, datagram) in sent.iter().enumerate() {
        if index == 4 {
            // TOC byte 0xF0 is a single 10 ms CELT frame: valid Opus, but
            // not the 20 ms every voicemcu packet must hold.
            let header = AudioHeader {
                client_id: 2,
                sequence: 4,
                timestamp: 4 * 960,
            };
            listener.input(ClientInput::Datagram(&encode_datagram(header, &[0xf0, 0])));
        } else {
            listener.input(ClientInput::Datagram(datagram));
        }
        listener.client.playout(listener.now, &mut out);
    }
    for _ in 0..4 {
        listener.client.playout(listener.now, &mut out);
        assert!(out.iter().all(|s| s.is_finite()));
    }
    assert_eq!(listener.client.stats().decode_errors, 1);
}

#[test]
fn playout_without_audio_is_silent() {
    let mut session = Session::joined(Dialect::Legacy, 1, &[]);
    let mut out = [0.25; FRAME_SAMPLES];
    session.client.playout(session.now, &mut out);
    assert_eq!(out, SILENCE);
    assert_eq!(session.client.stats().jitter.played, 0);
}
