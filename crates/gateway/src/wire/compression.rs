//! Message compression shared by gRPC, gRPC-Web and Connect: `identity` and `gzip`.
//!
//! The gateway decompresses what clients send (the upstream may not support gzip, so it
//! always gets uncompressed messages) with a bound on the decompressed size, and compresses
//! what it sends back when the client said it accepts gzip. Messages smaller than
//! [`COMPRESS_MIN_BYTES`] are sent uncompressed: every protocol allows that per message
//! (gRPC and Connect streams by the frame flag; Connect unary by leaving out
//! `Content-Encoding`), and gzip only makes them bigger.

use std::io::{Read as _, Write as _};

use bytes::Bytes;
use http::HeaderMap;

use super::framing::{Frame, FramingError, FLAG_COMPRESSED};

/// Smallest message the gateway compresses.
pub const COMPRESS_MIN_BYTES: usize = 1024;
/// The encodings the gateway understands, as advertised in `*-accept-encoding` headers.
pub const SUPPORTED: &str = "gzip,identity";

/// A message encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Uncompressed.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
}

/// Why a message could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The client used an encoding the gateway does not support.
    #[error("{header} {name:?} is not supported; supported: {SUPPORTED}")]
    Unsupported {
        /// The header naming the encoding.
        header: &'static str,
        /// The encoding named.
        name: String,
    },
    /// The decompressed message is larger than allowed.
    #[error("the decompressed message is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The compressed data is corrupt.
    #[error("cannot decompress the {encoding} message: {reason}")]
    Corrupt {
        /// The encoding.
        encoding: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl Encoding {
    /// The encoding named in header `header` of `headers`; identity when absent.
    pub fn from_header(
        headers: &HeaderMap,
        header: &'static str,
    ) -> Result<Self, CompressionError> {
        let Some(value) = headers.get(header) else {
            return Ok(Encoding::Identity);
        };
        let unsupported = || CompressionError::Unsupported {
            header,
            name: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        };
        let name = value.to_str().map_err(|_| unsupported())?.trim();
        if name.eq_ignore_ascii_case("gzip") {
            Ok(Encoding::Gzip)
        } else if name.eq_ignore_ascii_case("identity") || name.is_empty() {
            Ok(Encoding::Identity)
        } else {
            Err(unsupported())
        }
    }

    /// The header value naming this encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
        }
    }

    /// Decompress `data`, refusing more than `limit` decompressed bytes.
    pub fn decompress(self, data: Bytes, limit: usize) -> Result<Bytes, CompressionError> {
        match self {
            Encoding::Identity => {
                if data.len() > limit {
                    return Err(CompressionError::TooLarge { limit });
                }
                Ok(data)
            }
            Encoding::Gzip => {
                let mut out = Vec::with_capacity(data.len().saturating_mul(2).min(limit));
                // One byte more than the limit tells "exactly at the limit" from "over it".
                let read_limit = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
                flate2::read::GzDecoder::new(&data[..])
                    .take(read_limit)
                    .read_to_end(&mut out)
                    .map_err(|e| CompressionError::Corrupt {
                        encoding: "gzip",
                        reason: e.to_string(),
                    })?;
                if out.len() > limit {
                    return Err(CompressionError::TooLarge { limit });
                }
                Ok(Bytes::from(out))
            }
        }
    }

    /// Compress `data` (identity returns it as is).
    pub fn compress(self, data: &[u8]) -> Bytes {
        match self {
            Encoding::Identity => Bytes::copy_from_slice(data),
            Encoding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2 + 64),
                    flate2::Compression::fast(),
                );
                // Writing into a Vec cannot fail.
                let _ = encoder.write_all(data);
                Bytes::from(encoder.finish().unwrap_or_default())
            }
        }
    }
}

/// Why a request frame's message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The frame's flags or length are wrong.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// Its compressed payload could not be decompressed.
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

/// The message a client's request frame carries: flags 0x00 as sent, flags 0x01 decompressed
/// with `encoding` (at most `limit` bytes). A compressed frame under `identity` names the
/// `encoding_header` that should have announced it; other flags are refused, `what` saying
/// which are allowed.
pub fn request_message(
    frame: Frame,
    encoding: Encoding,
    limit: usize,
    encoding_header: &'static str,
    what: &'static str,
) -> Result<Bytes, MessageError> {
    match frame.flags {
        0 => Ok(frame.payload),
        FLAG_COMPRESSED if encoding == Encoding::Identity => {
            Err(FramingError::CompressedWithoutEncoding {
                header: encoding_header,
            }
            .into())
        }
        FLAG_COMPRESSED => Ok(encoding.decompress(frame.payload, limit)?),
        flags => Err(FramingError::UnexpectedFlags { flags, what }.into()),
    }
}

/// The encoding to compress responses with: gzip if header `header` (a comma-separated list,
/// as in `grpc-accept-encoding: identity,gzip`) names it, identity otherwise.
pub fn accepted(headers: &HeaderMap, header: &str) -> Encoding {
    let gzip = headers.get_all(header).iter().any(|value| {
        value.to_str().unwrap_or("").split(',').any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            // `gzip;q=0` means "not gzip".
            let refused = parts.any(|param| {
                param
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
    });
    if gzip {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// True if `payload` is worth compressing with `encoding`.
pub fn worth_compressing(encoding: Encoding, payload: &[u8]) -> bool {
    encoding != Encoding::Identity && payload.len() >= COMPRESS_MIN_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_is_bounded() {
        let data = vec![42u8; 10_000];
        let packed = Encoding::Gzip.compress(&data);
        assert!(packed.len() < data.len());
        let unpacked = Encoding::Gzip.decompress(packed.clone(), 10_000).unwrap();
        assert_eq!(&unpacked[..], &data[..]);
        assert_eq!(
            Encoding::Gzip.decompress(packed, 9_999),
            Err(CompressionError::TooLarge { limit: 9_999 })
        );
        assert!(matches!(
            Encoding::Gzip.decompress(Bytes::from_static(b"not gzip"), 100),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn encodings_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            Encoding::from_header(&headers, "grpc-encoding"),
            Ok(Encoding::Identity)
        );
        headers.insert("grpc-encoding", "GZIP".parse().unwrap());
        assert_eq!(
            Encoding::from_header(&headers, "grpc-encoding"),
            Ok(Encoding::Gzip)
        );
        headers.insert("grpc-encoding", "br".parse().unwrap());
        assert!(Encoding::from_header(&headers, "grpc-encoding")
            .unwrap_err()
            .to_string()
            .contains("\"br\""));
        headers.insert("accept-encoding", "deflate, gzip;q=0.5".parse().unwrap());
        assert_eq!(accepted(&headers, "accept-encoding"), Encoding::Gzip);
        headers.insert("accept-encoding", "gzip;q=0, br".parse().unwrap());
        assert_eq!(accepted(&headers, "accept-encoding"), Encoding::Identity);
    }
}
