//! gRPC-Web (`application/grpc-web`, `+proto`, `-text`, `-text+proto`) over HTTP/1.1 and
//! HTTP/2, as a translation over the native gRPC pass-through (the shape of tonic-web): the
//! request becomes a gRPC request, [`super::grpc::pass_through`] forwards it, and its gRPC
//! answer is translated back. Payloads pass as bytes; deadlines, metadata, gzip and every
//! check of the frames are the pass-through's.
//!
//! - All four RPC kinds, also methods the schema does not know. A unary or server-streaming
//!   method's request is read whole (one message, within the body limit); client and
//!   bidirectional streams (and unknown methods) stream their body into the pass-through as
//!   it arrives (`-text` decoded as it comes, [`TextDecoder`]), full duplex over HTTP/2. Over
//!   HTTP/1.1 a bidirectional method known to the schema is refused at once with
//!   `INVALID_ARGUMENT` naming HTTP/2 and the WebSocket: no answer can be read there before
//!   the request ends.
//! - The response's messages are frames in the body; the trailers follow as the last frame
//!   (flag `0x80`, `name: value\r\n` lines). A trailers-only gRPC answer (a failure before
//!   any message) stays trailers-only: HTTP 200 with `grpc-status` and `grpc-message` in the
//!   headers.
//! - `-text` bodies are base64, both ways; a request made of several separately padded
//!   base64 chunks is accepted; each response frame is base64 on its own.
//! - Another content type under `application/grpc-web` (such as `+thrift` or `+json`) is
//!   refused with HTTP 415; a method other than POST with 405.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use tonic::Status;

use super::grpc::{method_path, pass_through};
use crate::context::call::{read_body, refuse_streaming, Carries};
use crate::context::{CallScope, GatewayState};
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Protocol};
use crate::wire::compression;
use crate::wire::framing::{encode_frame, FrameDecoder, FramingError, FLAG_TRAILERS};

/// The content types served.
pub const CONTENT_TYPES: &str = "application/grpc-web, application/grpc-web+proto, application/grpc-web-text, application/grpc-web-text+proto";

/// The framing of one gRPC-Web exchange: binary or base64 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcWebCodec {
    /// True for `application/grpc-web-text` (base64 bodies).
    pub text: bool,
}

/// Base64 that accepts missing padding at the end of the last chunk.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl GrpcWebCodec {
    /// The codec for a request's content type; `None` if it is not a gRPC-Web type this
    /// gateway serves (only the protobuf message format is: payloads pass through).
    pub fn for_content_type(content_type: &str) -> Option<GrpcWebCodec> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/grpc-web" | "application/grpc-web+proto" => {
                Some(GrpcWebCodec { text: false })
            }
            "application/grpc-web-text" | "application/grpc-web-text+proto" => {
                Some(GrpcWebCodec { text: true })
            }
            _ => None,
        }
    }

    /// The response content type.
    pub fn content_type(self) -> &'static str {
        if self.text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        }
    }

    /// One frame as it goes on the wire (base64 for text).
    pub fn encode_frame(self, flags: u8, payload: &[u8]) -> Result<Bytes, FramingError> {
        let mut out = BytesMut::new();
        encode_frame(flags, payload, &mut out)?;
        Ok(self.wire(out.freeze()))
    }

    /// The trailer frame: `name: value\r\n` for each trailer, names in lower case.
    pub fn encode_trailers(self, trailers: &HeaderMap) -> Bytes {
        let mut block = Vec::with_capacity(64);
        for (name, value) in trailers {
            block.extend_from_slice(name.as_str().as_bytes());
            block.extend_from_slice(b": ");
            block.extend_from_slice(value.as_bytes());
            block.extend_from_slice(b"\r\n");
        }
        // A trailer block is a few hundred bytes, far below the frame length limit.
        self.encode_frame(FLAG_TRAILERS, &block)
            .unwrap_or_else(|_| Bytes::new())
    }

    fn wire(self, bytes: Bytes) -> Bytes {
        if self.text {
            Bytes::from(STANDARD.encode(&bytes))
        } else {
            bytes
        }
    }
}

/// Decodes a grpc-web-text body as it arrives: base64 chunks, each possibly padded,
/// concatenated (line breaks and other ASCII white space ignored). Between pushes it holds
/// at most three characters of an unfinished quantum.
#[derive(Debug, Default)]
pub struct TextDecoder {
    pending: Vec<u8>,
}

impl TextDecoder {
    /// Decode the whole quanta of `chunk` (after what is pending) into `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.pending
            .extend(chunk.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.pending.len() / 4 * 4;
        let mut start = 0;
        let mut end = 0;
        while end < whole {
            // A padded quantum ends one separately encoded chunk; the next starts after it.
            let padded = self.pending.get(end + 3) == Some(&b'=');
            end += 4;
            if padded || end == whole {
                let segment = self.pending.get(start..end).unwrap_or_default();
                LENIENT_BASE64
                    .decode_vec(segment, out)
                    .map_err(Self::invalid)?;
                start = end;
            }
        }
        self.pending.drain(..whole);
        Ok(())
    }

    /// The end of the body: the last quantum may lack its padding.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        LENIENT_BASE64
            .decode_vec(&pending, out)
            .map_err(Self::invalid)
    }

    fn invalid(error: base64::DecodeError) -> GatewayError {
        GatewayError::BadRequest(format!(
            "the grpc-web-text body is not valid base64: {error}"
        ))
    }
}

/// Decode a whole grpc-web-text body (see [`TextDecoder`]).
pub fn decode_base64_chunks(body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let mut decoder = TextDecoder::default();
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    decoder.push(body, &mut out)?;
    decoder.finish(&mut out)?;
    Ok(out)
}

/// A grpc-web-text request body decoded as it arrives. A base64 error ends the body with
/// the [`GatewayError`] naming it, which the pass-through reports as the call's status.
fn decoded_text_body(mut body: Body) -> Body {
    Body::from_stream(async_stream::stream! {
        let mut decoder = TextDecoder::default();
        loop {
            let mut out = Vec::new();
            let decoded = match body.frame().await {
                None => {
                    let finished = decoder.finish(&mut out);
                    if let Err(error) = finished {
                        yield Err(axum::Error::new(error));
                    } else if !out.is_empty() {
                        yield Ok(Bytes::from(out));
                    }
                    return;
                }
                Some(Err(error)) => {
                    yield Err(error);
                    return;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        out.reserve(data.len() / 4 * 3 + 3);
                        decoder.push(&data, &mut out)
                    }
                    Err(_) => continue,
                },
            };
            match decoded {
                Ok(()) if out.is_empty() => {}
                Ok(()) => yield Ok(Bytes::from(out)),
                Err(error) => {
                    yield Err(axum::Error::new(error));
                    return;
                }
            }
        }
    })
}

/// Serve one gRPC-Web request: translated into a gRPC request for the pass-through
/// ([`super::grpc::pass_through`]), whose gRPC answer is translated back.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let scope = CallScope::new(state, request.extensions());
    let mut tracker = scope.track(Protocol::GrpcWeb);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(codec) = GrpcWebCodec::for_content_type(&content_type) else {
        let error = GatewayError::UnsupportedMediaType {
            content_type,
            supported: CONTENT_TYPES,
        };
        tracker.finish(error.code(), &error.to_string());
        return http_error(&error);
    };
    if request.method() != http::Method::POST {
        let error = GatewayError::MethodNotAllowed {
            method: request.method().to_string(),
            allowed: "POST",
        };
        tracker.finish(error.code(), &error.to_string());
        return http_error(&error);
    }
    // A browser's message is bounded by the body limit, also once decompressed.
    let limit = scope.state.config.max_body_bytes;
    let http1 = request.version() < http::Version::HTTP_2;
    match grpc_request(&scope.state, codec, request, &mut tracker).await {
        Ok(request) => grpc_web_response(codec, pass_through(scope, request, tracker, limit).await),
        Err(error) => {
            let status = error.to_status();
            tracker.finish(status.code(), status.message());
            let mut headers = HeaderMap::new();
            // A refused bidirectional call over HTTP/1.1: the client may still be sending
            // (and never end its body), so the connection ends with this answer.
            if http1 && matches!(error, GatewayError::UnsupportedStreaming { .. }) {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            trailers_only(codec, headers, &status)
        }
    }
}

/// The gRPC request a gRPC-Web one stands for: `application/grpc` as its type, a method the
/// schema knows under its full name, and the body base64-decoded for `-text`. A unary or
/// server-streaming method the schema knows takes one message: its body is read whole
/// (within the body limit). Client and bidirectional streams, and methods the schema does
/// not know, stream their body upstream as it arrives; over HTTP/1.1 a bidirectional method
/// is refused at once (no answer can be read there before the request ends).
async fn grpc_request(
    state: &GatewayState,
    codec: GrpcWebCodec,
    request: Request,
    tracker: &mut CallTracker,
) -> Result<Request, GatewayError> {
    let (mut parts, body) = request.into_parts();
    let path = method_path(parts.uri.path()).map_err(GatewayError::Upstream)?;
    // Methods the schema knows go upstream under their full name (whatever the spelling);
    // others pass through by path, bytes being all gRPC-Web needs.
    let mut request_stream = true;
    match state.resolve_path(path.as_str()) {
        Ok(resolved) => {
            tracker.set_method(Arc::clone(&resolved.label));
            if parts.version < http::Version::HTTP_2 {
                refuse_streaming(
                    &resolved.descriptor,
                    Carries::AllButBidi,
                    "gRPC-Web over HTTP/1.1",
                )?;
            }
            request_stream = resolved.descriptor.is_client_streaming();
            parts.uri = http::Uri::from(resolved.path);
        }
        Err(GatewayError::Lookup(_)) => {}
        Err(error) => return Err(error),
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let body = match (request_stream, codec.text) {
        (true, false) => body,
        (true, true) => decoded_text_body(body),
        (false, text) => {
            let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
            Body::from(if text {
                Bytes::from(decode_base64_chunks(&body)?)
            } else {
                body
            })
        }
    };
    Ok(Request::from_parts(parts, body))
}

/// The gRPC answer as gRPC-Web: a trailers-only answer keeps its status in the headers; a
/// streamed one gets its trailers as the body's last frame (`-text`: every frame base64).
fn grpc_web_response(codec: GrpcWebCodec, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.content_type()),
    );
    if parts.headers.contains_key("grpc-status") {
        return Response::from_parts(parts, Body::empty());
    }
    let body = if codec.text {
        Body::from_stream(text_frames(body))
    } else {
        Body::new(body.map_frame(move |frame| match frame.into_trailers() {
            Ok(trailers) => Frame::data(codec.encode_trailers(&trailers)),
            Err(frame) => frame,
        }))
    };
    Response::from_parts(parts, body)
}

/// A gRPC body's frames, each whole frame base64 on its own (with the trailers as the last
/// frame), so no padding falls inside a frame.
fn text_frames(
    mut body: Body,
) -> impl futures::Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
    let codec = GrpcWebCodec { text: true };
    async_stream::stream! {
        // The pass-through has checked every frame's length already.
        let mut decoder = FrameDecoder::new(usize::MAX);
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            match frame.into_trailers() {
                Ok(trailers) => {
                    yield Ok(codec.encode_trailers(&trailers));
                    return;
                }
                Err(frame) => {
                    let Ok(data) = frame.into_data() else { continue };
                    decoder.push(&data);
                    while let Ok(Some(frame)) = decoder.next_frame() {
                        match codec.encode_frame(frame.flags, &frame.payload) {
                            Ok(chunk) => yield Ok(chunk),
                            Err(error) => {
                                yield Err(axum::Error::new(error));
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A refusal before the call started (see [`super::refusal`]): trailers-only in the
/// request's codec, or an HTTP error when the content type names none.
pub(crate) fn refusal(headers: &HeaderMap, error: &GatewayError) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match GrpcWebCodec::for_content_type(content_type) {
        Some(codec) => trailers_only(codec, HeaderMap::new(), &error.to_status()),
        None => http_error(error),
    }
}

/// A trailers-only gRPC-Web answer: HTTP 200, the status in the headers, no body.
fn trailers_only(codec: GrpcWebCodec, mut headers: HeaderMap, status: &Status) -> Response {
    if !headers.contains_key("grpc-status") {
        headers.extend(crate::wire::metadata::status_trailers(status));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.content_type()),
    );
    headers.insert(
        HeaderName::from_static("grpc-accept-encoding"),
        HeaderValue::from_static(compression::SUPPORTED),
    );
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = headers;
    response
}

/// An HTTP-level refusal (415, 405): the HTTP status, the gRPC status in headers for clients
/// that read it, and the message as text.
fn http_error(error: &GatewayError) -> Response {
    let status = error.to_status();
    let mut headers = crate::wire::metadata::status_trailers(&status);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let GatewayError::MethodNotAllowed { allowed, .. } = error {
        headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    let mut response = (error.http_status(), error.to_string()).into_response();
    response.headers_mut().extend(headers);
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_select_the_codec() {
        assert_eq!(
            GrpcWebCodec::for_content_type("application/grpc-web"),
            Some(GrpcWebCodec { text: false })
        );
        assert_eq!(
            GrpcWebCodec::for_content_type("application/grpc-web-text+proto; charset=utf-8"),
            Some(GrpcWebCodec { text: true })
        );
        assert_eq!(
            GrpcWebCodec::for_content_type("application/grpc-web+thrift"),
            None
        );
        assert_eq!(
            GrpcWebCodec::for_content_type("application/grpc-web+json"),
            None
        );
    }

    #[test]
    fn chunked_base64_is_decoded() {
        let whole = STANDARD.encode(b"hello world");
        let chunked = format!(
            "{}{}",
            STANDARD.encode(b"hello"),
            STANDARD.encode(b" world")
        );
        assert_eq!(
            decode_base64_chunks(whole.as_bytes()).unwrap(),
            b"hello world"
        );
        assert_eq!(
            decode_base64_chunks(chunked.as_bytes()).unwrap(),
            b"hello world"
        );
        assert_eq!(decode_base64_chunks(b"aGk\r\n").unwrap(), b"hi");
        assert!(decode_base64_chunks(b"@@@@").is_err());
    }

    #[test]
    fn text_decodes_as_it_arrives_whatever_the_split() {
        let body = format!(
            "{}\r\n{}{}",
            STANDARD.encode(b"first frame"),
            STANDARD.encode(b"second"),
            STANDARD.encode(b"x")
        );
        for split in 0..body.len() {
            let (head, tail) = body.as_bytes().split_at(split);
            let mut decoder = TextDecoder::default();
            let mut out = Vec::new();
            decoder.push(head, &mut out).unwrap();
            decoder.push(tail, &mut out).unwrap();
            decoder.finish(&mut out).unwrap();
            assert_eq!(out, b"first framesecondx", "split at {split}");
        }
        let mut decoder = TextDecoder::default();
        assert!(decoder.push(b"@@@@", &mut Vec::new()).is_err());
    }

    #[test]
    fn trailers_become_the_last_frame() {
        let codec = GrpcWebCodec { text: false };
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frame = codec.encode_trailers(&trailers);
        assert_eq!(frame[0], FLAG_TRAILERS);
        assert_eq!(&frame[5..], b"grpc-status: 0\r\n");
        let text = GrpcWebCodec { text: true }.encode_trailers(&trailers);
        assert_eq!(STANDARD.decode(&text).unwrap(), frame);
    }
}
