//! The length-prefixed message framing shared by gRPC, gRPC-Web and Connect streams: one flags
//! byte, a 4-byte big-endian length, then that many bytes of payload.
//!
//! Flag bits: `0x01` the payload is compressed (all three protocols), `0x80` the frame holds
//! gRPC-Web trailers, `0x02` the frame is Connect's end-of-stream message.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

/// Bytes before every frame's payload.
pub const FRAME_HEADER_LEN: usize = 5;
/// Flag: the payload is compressed with the stream's declared encoding.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Flag: Connect's end-of-stream message.
pub const FLAG_END_STREAM: u8 = 0x02;
/// Flag: gRPC-Web's trailer frame.
pub const FLAG_TRAILERS: u8 = 0x80;

/// Why a sequence of frames could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A frame announces more bytes than a message may have.
    #[error("a message of {length} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The announced length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The body ended inside a frame.
    #[error("the body ended inside a frame: {have} of {need} bytes")]
    Truncated {
        /// Bytes present (header included).
        have: usize,
        /// Bytes the frame needs (header included).
        need: usize,
    },
    /// A frame has the compressed flag but the stream declared no compression.
    #[error("a frame has the compressed flag set, but the request declared no compression ({header} is absent or identity)")]
    CompressedWithoutEncoding {
        /// The header that declares the encoding.
        header: &'static str,
    },
    /// A frame carries flags this protocol does not allow here.
    #[error("a frame has the unexpected flags 0x{flags:02x} ({what})")]
    UnexpectedFlags {
        /// The flags byte.
        flags: u8,
        /// What was expected instead.
        what: &'static str,
    },
    /// The request has a number of messages the method does not take.
    #[error("{0}")]
    MessageCount(String),
}

/// One frame: its flags and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The flags byte.
    pub flags: u8,
    /// The payload (still compressed if [`Frame::is_compressed`]).
    pub payload: Bytes,
}

impl Frame {
    /// True if the compressed flag is set.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }
}

/// Splits a byte stream, arriving in arbitrary chunks, into frames. Holds at most one frame
/// (bounded by the message limit) plus one chunk.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    max_message_bytes: usize,
}

impl FrameDecoder {
    /// A decoder refusing payloads longer than `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            max_message_bytes,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        let Some(header) = self.buffer.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let flags = header.first().copied().unwrap_or(0);
        let mut length_bytes = [0u8; 4];
        length_bytes.copy_from_slice(header.get(1..).unwrap_or(&[0; 4]));
        let length = u32::from_be_bytes(length_bytes) as usize;
        if length > self.max_message_bytes {
            return Err(FramingError::TooLarge {
                length,
                limit: self.max_message_bytes,
            });
        }
        let need = FRAME_HEADER_LEN + length;
        if self.buffer.len() < need {
            // The buffer grows with the bytes that actually arrive, never to the announced
            // length up front: a peer announcing large frames it never sends costs nothing.
            return Ok(None);
        }
        self.buffer.advance(FRAME_HEADER_LEN);
        let payload = self.buffer.split_to(length).freeze();
        Ok(Some(Frame { flags, payload }))
    }

    /// Call at the end of the input: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), FramingError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let need = match self.buffer.get(1..FRAME_HEADER_LEN) {
            Some(length) => {
                let mut length_bytes = [0u8; 4];
                length_bytes.copy_from_slice(length);
                FRAME_HEADER_LEN + u32::from_be_bytes(length_bytes) as usize
            }
            None => FRAME_HEADER_LEN,
        };
        Err(FramingError::Truncated {
            have: self.buffer.len(),
            need,
        })
    }

    /// All frames of a complete body.
    pub fn decode_all(body: &[u8], max_message_bytes: usize) -> Result<Vec<Frame>, FramingError> {
        let mut decoder = FrameDecoder::new(max_message_bytes);
        decoder.push(body);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
        decoder.finish()?;
        Ok(frames)
    }
}

/// Append one frame to `out`.
pub fn encode_frame(flags: u8, payload: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
    let length = u32::try_from(payload.len()).map_err(|_| FramingError::TooLarge {
        length: payload.len(),
        limit: u32::MAX as usize,
    })?;
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.put_u8(flags);
    out.put_u32(length);
    out.extend_from_slice(payload);
    Ok(())
}

/// One frame as bytes.
pub fn frame(flags: u8, payload: &[u8]) -> Result<Bytes, FramingError> {
    let mut out = BytesMut::new();
    encode_frame(flags, payload, &mut out)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_are_reassembled() {
        let mut body = BytesMut::new();
        encode_frame(0, b"hello", &mut body).unwrap();
        encode_frame(FLAG_COMPRESSED, b"", &mut body).unwrap();
        encode_frame(FLAG_TRAILERS, b"abc", &mut body).unwrap();
        let mut decoder = FrameDecoder::new(16);
        let mut frames = Vec::new();
        for byte in body.iter() {
            decoder.push(&[*byte]);
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[0].payload[..], b"hello");
        assert!(frames[1].is_compressed());
        assert_eq!(frames[2].flags, FLAG_TRAILERS);
    }

    #[test]
    fn oversize_and_truncated_frames_are_errors() {
        let body = frame(0, &[7; 20]).unwrap();
        assert_eq!(
            FrameDecoder::decode_all(&body, 10),
            Err(FramingError::TooLarge {
                length: 20,
                limit: 10
            })
        );
        assert_eq!(
            FrameDecoder::decode_all(&body[..12], 100),
            Err(FramingError::Truncated { have: 12, need: 25 })
        );
        assert_eq!(
            FrameDecoder::decode_all(&body[..3], 100),
            Err(FramingError::Truncated { have: 3, need: 5 })
        );
        assert_eq!(FrameDecoder::decode_all(&[], 100), Ok(Vec::new()));
    }
}
