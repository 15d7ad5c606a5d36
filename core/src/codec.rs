//! The codec seam: encoder and decoder traits, and their Opus implementation.
//!
//! STUB: signatures are fixed; bodies to be written.

use crate::audio::PcmFrame;

/// Opus's audio bandwidth cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Bandwidth {
    Narrowband,
    Mediumband,
    Wideband,
    Superwideband,
    Fullband,
}

/// Opus's application mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Application {
    Voip,
    Audio,
}

/// Encoder settings. Every encoder in voicemcu is 48 kHz mono, 20 ms frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpusSettings {
    /// Target bitrate in bits per second.
    pub bitrate: u32,
    /// The widest audio bandwidth the encoder may use.
    pub max_bandwidth: Bandwidth,
    pub application: Application,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            bitrate: 32_000,
            max_bandwidth: Bandwidth::Fullband,
            application: Application::Voip,
        }
    }
}

/// Why the codec failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("invalid Opus setting {setting}: {detail}")]
    InvalidSetting { setting: &'static str, detail: String },
    #[error("Opus encoding failed: {0}")]
    Encode(String),
    #[error("Opus packet could not be decoded: {0}")]
    Decode(String),
}

/// Turns 20 ms frames into packets.
pub trait Encoder: Send {
    /// Encodes one frame into `out` and returns the packet length.
    fn encode(&mut self, pcm: &PcmFrame, out: &mut [u8]) -> Result<usize, CodecError>;
}

/// Turns packets back into 20 ms frames, and conceals lost ones.
pub trait Decoder: Send {
    /// Decodes one packet holding exactly one 20 ms frame.
    fn decode(&mut self, packet: &[u8], out: &mut PcmFrame) -> Result<(), CodecError>;

    /// Fills `out` with packet loss concealment for one missing frame.
    fn conceal(&mut self, out: &mut PcmFrame) -> Result<(), CodecError>;
}

pub struct OpusEncoder {}

impl OpusEncoder {
    pub fn new(_settings: OpusSettings) -> Result<Self, CodecError> {
        todo!()
    }
}

impl Encoder for OpusEncoder {
    fn encode(&mut self, _pcm: &PcmFrame, _out: &mut [u8]) -> Result<usize, CodecError> {
        todo!()
    }
}

pub struct OpusDecoder {}

impl OpusDecoder {
    pub fn new() -> Result<Self, CodecError> {
        todo!()
    }
}

impl Decoder for OpusDecoder {
    fn decode(&mut self, _packet: &[u8], _out: &mut PcmFrame) -> Result<(), CodecError> {
        todo!()
    }

    fn conceal(&mut self, _out: &mut PcmFrame) -> Result<(), CodecError> {
        todo!()
    }
}
