//! The server side of RFC 6455 for `/render/ws`, written for one purpose: a frame goes to
//! the socket as a 2–10 byte header followed by the shared, reference-counted bytes of the
//! encoded frame, never copied into a per-viewer buffer (a general WebSocket library copies
//! every outgoing message into its own write buffer: one frame per viewer, 2 MiB for a raw
//! frame). Viewers send only small control messages, which are read into a bounded buffer.

use std::io;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const OPCODE_CONTINUATION: u8 = 0x0;
const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

// Close codes (RFC 6455 §7.4.1), as axum names them.
pub(crate) use axum::extract::ws::close_code::{
    AWAY as CLOSE_GOING_AWAY, INVALID as CLOSE_INVALID_DATA, NORMAL as CLOSE_NORMAL,
    PROTOCOL as CLOSE_PROTOCOL_ERROR, SIZE as CLOSE_TOO_BIG,
};

/// The 101 answer to a valid upgrade request, and the upgrade to await; or the refusal.
pub(crate) fn accept(
    request: &mut Request,
) -> Result<(Response, hyper::upgrade::OnUpgrade), Box<Response>> {
    let headers = request.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let valid = request.method() == axum::http::Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    let (true, Some(key)) = (valid, key) else {
        return Err(Box::new(refusal(headers)));
    };
    let Some(upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(Box::new(super::json_error(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded to a WebSocket (HTTP/1.1 is needed)",
        )));
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let answer = response.headers_mut();
    answer.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    answer.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        answer.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    Ok((response, upgrade))
}

fn refusal(headers: &HeaderMap) -> Response {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() == b"13");
    let mut response = super::json_error(
        if version_ok {
            StatusCode::UPGRADE_REQUIRED
        } else {
            StatusCode::BAD_REQUEST
        },
        "GET /render/ws must be a WebSocket upgrade (version 13)",
    );
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    response.into_response()
}

/// A message from the viewer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClientMessage {
    Text(String),
    Binary,
    Ping(Bytes),
    /// The viewer closed (or broke the protocol: the code to answer with).
    Close(u16),
}

/// Reads the viewer's (masked) frames; messages over `limit` bytes end the socket with 1009.
pub(crate) struct FrameReader<R> {
    io: R,
    limit: usize,
    /// A fragmented message being assembled (control frames may come between fragments).
    message: Vec<u8>,
    message_opcode: Option<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R, limit: usize) -> Self {
        Self {
            io,
            limit,
            message: Vec::new(),
            message_opcode: None,
        }
    }

    /// The next message; `Err` when the connection is gone.
    pub(crate) async fn next(&mut self) -> io::Result<ClientMessage> {
        loop {
            let mut head = [0u8; 2];
            self.io.read_exact(&mut head).await?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            if head[0] & 0x70 != 0 || head[1] & 0x80 == 0 {
                // Reserved bits without an extension, or a client frame without a mask.
                return Ok(ClientMessage::Close(CLOSE_PROTOCOL_ERROR));
            }
            let length = match head[1] & 0x7f {
                126 => u64::from(self.io.read_u16().await?),
                127 => self.io.read_u64().await?,
                short => u64::from(short),
            };
            let control = opcode & 0x8 != 0;
            if (control && (length > 125 || !fin))
                || length > self.limit as u64
                || self.message.len() as u64 + length > self.limit as u64
            {
                return Ok(ClientMessage::Close(if control {
                    CLOSE_PROTOCOL_ERROR
                } else {
                    CLOSE_TOO_BIG
                }));
            }
            let mut mask = [0u8; 4];
            self.io.read_exact(&mut mask).await?;
            let mut payload = vec![0u8; length as usize];
            self.io.read_exact(&mut payload).await?;
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
            match opcode {
                OPCODE_PING => return Ok(ClientMessage::Ping(Bytes::from(payload))),
                OPCODE_PONG => continue,
                OPCODE_CLOSE => {
                    let code = payload
                        .get(..2)
                        .map_or(CLOSE_NORMAL, |c| u16::from_be_bytes([c[0], c[1]]));
                    return Ok(ClientMessage::Close(code));
                }
                OPCODE_TEXT | OPCODE_BINARY if self.message_opcode.is_none() => {
                    self.message_opcode = Some(opcode);
                    self.message = payload;
                }
                OPCODE_CONTINUATION if self.message_opcode.is_some() => {
                    self.message.extend(payload)
                }
                _ => return Ok(ClientMessage::Close(CLOSE_PROTOCOL_ERROR)),
            }
            if fin {
                let message = std::mem::take(&mut self.message);
                return Ok(match self.message_opcode.take() {
                    Some(OPCODE_TEXT) => match String::from_utf8(message) {
                        Ok(text) => ClientMessage::Text(text),
                        Err(_) => ClientMessage::Close(CLOSE_INVALID_DATA),
                    },
                    _ => ClientMessage::Binary,
                });
            }
        }
    }
}

/// Writes server frames (unmasked). A binary message's bytes go to the socket as they are.
pub(crate) struct FrameWriter<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(io: W) -> Self {
        Self { io }
    }

    async fn frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut head = [0u8; 10];
        head[0] = 0x80 | opcode;
        let used = match payload.len() {
            len @ 0..=125 => {
                head[1] = len as u8;
                2
            }
            len @ 126..=0xffff => {
                head[1] = 126;
                head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                head[1] = 127;
                head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                10
            }
        };
        // Header and payload in one (vectored) write: one segment, not a tiny one first.
        let mut frame = bytes::Buf::chain(&head[..used], payload);
        self.io.write_all_buf(&mut frame).await?;
        self.io.flush().await
    }

    pub(crate) async fn text(&mut self, text: &str) -> io::Result<()> {
        self.frame(OPCODE_TEXT, text.as_bytes()).await
    }

    /// A binary message straight from the shared bytes.
    pub(crate) async fn binary(&mut self, bytes: &Bytes) -> io::Result<()> {
        self.frame(OPCODE_BINARY, bytes).await
    }

    pub(crate) async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame(OPCODE_PONG, payload).await
    }

    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
        self.frame(OPCODE_CLOSE, &payload).await?;
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [9u8, 8, 7, 6];
        let mut out = vec![opcode_byte];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn reads_masked_text_fragments_pings_and_refuses_what_it_must() {
        let mut input = masked(0x01, b"{\"type\":");
        input.extend(masked(0x89, b"hi"));
        input.extend(masked(0x80, b"\"pause\"}"));
        input.extend(masked(0x82, &[1, 2, 3]));
        input.extend(masked(0x81, &[0xff, 0xfe]));
        let mut reader = FrameReader::new(&input[..], 1024);
        assert_eq!(
            reader.next().await.unwrap(),
            ClientMessage::Ping(Bytes::from_static(b"hi"))
        );
        assert_eq!(
            reader.next().await.unwrap(),
            ClientMessage::Text("{\"type\":\"pause\"}".into())
        );
        assert_eq!(reader.next().await.unwrap(), ClientMessage::Binary);
        assert_eq!(
            reader.next().await.unwrap(),
            ClientMessage::Close(CLOSE_INVALID_DATA)
        );
        let unmasked = [0x81u8, 0x01, b'x'];
        let mut reader = FrameReader::new(&unmasked[..], 1024);
        assert_eq!(
            reader.next().await.unwrap(),
            ClientMessage::Close(CLOSE_PROTOCOL_ERROR)
        );
        let big = masked(0x81, &[b'a'; 300]);
        let mut reader = FrameReader::new(&big[..], 100);
        assert_eq!(
            reader.next().await.unwrap(),
            ClientMessage::Close(CLOSE_TOO_BIG)
        );
    }

    #[tokio::test]
    async fn writes_headers_of_each_length_class() {
        let mut out = Vec::new();
        let mut writer = FrameWriter::new(&mut out);
        writer
            .binary(&Bytes::from(vec![7u8; 70_000]))
            .await
            .unwrap();
        assert_eq!(&out[..2], &[0x82, 127]);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 70_000);
        assert_eq!(out.len(), 10 + 70_000);
        let mut out = Vec::new();
        FrameWriter::new(&mut out).text("hello").await.unwrap();
        assert_eq!(&out, &[0x81, 5, b'h', b'e', b'l', b'l', b'o']);
    }
}
