//! A minimal scan of a RIFF/WAVE file's chunk list.
//!
//! hound does the actual decoding. This scan exists for what hound does not
//! report: which format an unsupported file uses, where a truncated data
//! chunk ends, and where the data chunk's length field sits, so that a data
//! chunk ending mid-frame can be shortened to whole frames before hound
//! rejects it.

/// `WAVE_FORMAT_PCM`: integer samples.
pub(crate) const FORMAT_PCM: u16 = 0x0001;
/// `WAVE_FORMAT_IEEE_FLOAT`: floating-point samples.
pub(crate) const FORMAT_IEEE_FLOAT: u16 = 0x0003;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is in the sub-format GUID.
pub(crate) const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// The fields of a `fmt ` chunk that decide whether we can read the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FmtChunk {
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    /// Bytes per frame: one sample of every channel.
    pub block_align: u16,
    /// Bits per sample container, as stored in the common part of the chunk.
    pub bits_per_sample: u16,
    /// `wValidBitsPerSample` of a `WAVE_FORMAT_EXTENSIBLE` chunk.
    pub valid_bits: Option<u16>,
    /// The format tag embedded in the first two bytes of a
    /// `WAVE_FORMAT_EXTENSIBLE` sub-format GUID.
    pub sub_format: Option<u16>,
}

impl FmtChunk {
    /// Returns the format tag that defines how samples are coded, looking
    /// through `WAVE_FORMAT_EXTENSIBLE`.
    pub fn effective_format(&self) -> u16 {
        match (self.format_tag, self.sub_format) {
            (FORMAT_EXTENSIBLE, Some(sub_format)) => sub_format,
            (tag, _) => tag,
        }
    }

    /// Returns the number of meaningful bits per sample.
    pub fn effective_bits(&self) -> u16 {
        match self.valid_bits {
            Some(bits) if bits > 0 => bits,
            _ => self.bits_per_sample,
        }
    }

    /// Returns the size of one sample's container in bytes, or 0 when the
    /// chunk is inconsistent.
    pub fn container_bytes(&self) -> u16 {
        self.block_align.checked_div(self.channels).unwrap_or(0)
    }

    /// Describes the sample coding when hound (3.5) cannot decode it, or
    /// returns `None` when it can.
    pub fn unsupported_coding(&self) -> Option<String> {
        let format = self.effective_format();
        let bits = self.effective_bits();
        let bytes = self.container_bytes();
        match format {
            FORMAT_PCM => match (bytes, bits) {
                (1, 8) | (2, 16) | (3, 24) | (4, 24) | (4, 32) => None,
                _ => Some(format!(
                    "{bits}-bit integer samples in {bytes}-byte containers \
                     (supported: 8, 16, 24 and 32 bits)"
                )),
            },
            FORMAT_IEEE_FLOAT => match (bytes, bits) {
                (4, 32) => None,
                _ => Some(format!(
                    "{bits}-bit floating-point samples (supported: 32-bit float)"
                )),
            },
            // The sub-format could not be read; hound reports the header.
            FORMAT_EXTENSIBLE => None,
            other => Some(format!("format tag {other:#06x} ({})", format_name(other))),
        }
    }
}

/// Names the common compressed WAV format tags.
fn format_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x00FF => "AAC",
        0x0161..=0x0163 => "Windows Media Audio",
        0x2000 => "AC-3",
        0xF1AC => "FLAC",
        _ => "compressed or vendor-specific",
    }
}

/// The position of the `data` chunk in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataChunk {
    /// Offset of the chunk's 4-byte little-endian length field.
    pub length_offset: usize,
    /// Offset of the first audio byte.
    pub body_offset: usize,
    /// Length the header declares, in bytes.
    pub declared_len: u32,
}

impl DataChunk {
    /// Returns how many bytes of the chunk body the file actually contains.
    pub fn available_len(&self, file_len: usize) -> usize {
        file_len.saturating_sub(self.body_offset)
    }
}

/// Chunks found before the data chunk or the end of the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RiffLayout {
    pub fmt: Option<FmtChunk>,
    pub data: Option<DataChunk>,
}

/// Returns whether `bytes` starts with a RIFF/WAVE header.
pub(crate) fn is_riff_wave(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE"
}

/// Walks the chunks of a RIFF/WAVE file up to the first `data` chunk.
/// Stops quietly at the end of the file or at a chunk that does not fit, and
/// returns what it found so far.
pub(crate) fn scan(bytes: &[u8]) -> RiffLayout {
    let mut layout = RiffLayout::default();
    if !is_riff_wave(bytes) {
        return layout;
    }
    let mut position = 12usize;
    while let Some(header) = bytes.get(position..position + 8) {
        let id = &header[0..4];
        let size = read_u32(header, 4);
        let body_offset = position + 8;
        if id == b"data" {
            layout.data = Some(DataChunk {
                length_offset: position + 4,
                body_offset,
                declared_len: size,
            });
            break;
        }
        if id == b"fmt " {
            layout.fmt = parse_fmt(bytes.get(body_offset..).unwrap_or(&[]), size);
        }
        // Chunk bodies of odd length are followed by one padding byte.
        let padded = size as usize + (size as usize & 1);
        position = body_offset.saturating_add(padded);
    }
    layout
}

fn parse_fmt(body: &[u8], size: u32) -> Option<FmtChunk> {
    if size < 16 || body.len() < 16 {
        return None;
    }
    let mut fmt = FmtChunk {
        format_tag: read_u16(body, 0),
        channels: read_u16(body, 2),
        sample_rate: read_u32(body, 4),
        block_align: read_u16(body, 12),
        bits_per_sample: read_u16(body, 14),
        valid_bits: None,
        sub_format: None,
    };
    if fmt.format_tag == FORMAT_EXTENSIBLE && size >= 40 && body.len() >= 40 {
        fmt.valid_bits = Some(read_u16(body, 18));
        fmt.sub_format = Some(read_u16(body, 24));
    }
    Some(fmt)
}

/// Reads a little-endian `u16`. The callers check `offset + 2 <= bytes.len()`.
fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

/// Reads a little-endian `u32`. The callers check `offset + 4 <= bytes.len()`.
fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    fn pcm_fmt(channels: u16, bits: u16) -> Vec<u8> {
        let block_align = channels * bits / 8;
        let mut body = Vec::new();
        body.extend_from_slice(&FORMAT_PCM.to_le_bytes());
        body.extend_from_slice(&channels.to_le_bytes());
        body.extend_from_slice(&8000u32.to_le_bytes());
        body.extend_from_slice(&(8000 * u32::from(block_align)).to_le_bytes());
        body.extend_from_slice(&block_align.to_le_bytes());
        body.extend_from_slice(&bits.to_le_bytes());
        body
    }

    fn wave(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn scan_finds_fmt_and_data_after_odd_chunk() {
        let bytes = wave(&[
            chunk(b"fmt ", &pcm_fmt(2, 16)),
            chunk(b"LIST", &[1, 2, 3]),
            chunk(b"data", &[0; 8]),
        ]);
        let layout = scan(&bytes);
        let fmt = layout.fmt.unwrap();
        assert_eq!(fmt.channels, 2);
        assert_eq!(fmt.block_align, 4);
        assert_eq!(fmt.sample_rate, 8000);
        let data = layout.data.unwrap();
        assert_eq!(data.declared_len, 8);
        assert_eq!(data.body_offset, bytes.len() - 8);
        assert_eq!(data.length_offset, bytes.len() - 12);
    }

    #[test]
    fn scan_stops_at_truncated_chunk_list() {
        let mut bytes = wave(&[chunk(b"fmt ", &pcm_fmt(1, 16))]);
        bytes.extend_from_slice(b"da");
        let layout = scan(&bytes);
        assert!(layout.fmt.is_some());
        assert!(layout.data.is_none());
    }

    #[test]
    fn scan_ignores_non_wave_input() {
        assert_eq!(scan(b"hello, world, this is text"), RiffLayout::default());
        assert_eq!(scan(b""), RiffLayout::default());
    }

    #[test]
    fn unsupported_coding_names_the_format() {
        let mut fmt = scan(&wave(&[chunk(b"fmt ", &pcm_fmt(1, 16))])).fmt.unwrap();
        assert_eq!(fmt.unsupported_coding(), None);
        fmt.format_tag = 0x0055;
        assert_eq!(fmt.unsupported_coding().unwrap(), "format tag 0x0055 (MP3)");
        fmt.format_tag = FORMAT_IEEE_FLOAT;
        fmt.bits_per_sample = 64;
        fmt.block_align = 8;
        assert!(fmt
            .unsupported_coding()
            .unwrap()
            .contains("64-bit floating-point"));
    }
}
