//! gRPC-Web (`application/grpc-web`, `+proto`, `-text`, `-text+proto`) over HTTP/1.1 and
//! HTTP/2, translated to gRPC towards the upstream with payloads passed through as bytes.
//!
//! - Unary and server-streaming methods, also ones the schema does not know. Client- and
//!   bidirectional-streaming methods known to the schema are refused with
//!   `INVALID_ARGUMENT` (grpc-status 3) and a message naming the protocols that carry them
//!   (native gRPC and the WebSocket): gRPC-Web requests are one message long.
//! - The response's messages are frames in the body; the trailers follow as the last frame
//!   (flag `0x80`, `name: value\r\n` lines). Failures found before the upstream answers are
//!   "trailers-only": HTTP 200 with `grpc-status` and `grpc-message` in the headers.
//! - `-text` bodies are base64, both ways; a request made of several separately padded
//!   base64 chunks is accepted.
//! - gzip as for native gRPC (`grpc-encoding`, `grpc-accept-encoding`).
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
use futures::StreamExt as _;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use tonic::Status;

use super::grpc::method_path;
use crate::context::call::{
    effective_timeout, grpc_timeout_header, read_body, refuse_streaming, Carries,
};
use crate::context::{CallScope, GatewayState, ShutdownSignal};
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Protocol};
use crate::upstream::forward::{self, reply, ReplyEvent, ReplyOptions, UpstreamCall};
use crate::wire::compression::{self, Encoding};
use crate::wire::framing::{
    encode_frame, FrameDecoder, FramingError, FLAG_COMPRESSED, FLAG_TRAILERS,
};
use crate::wire::metadata::{is_hop_by_hop, request_metadata};

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

    /// The request's frames: base64-decoded first for text (chunks may each be padded).
    pub fn decode_request(
        self,
        body: &[u8],
        max_message_bytes: usize,
    ) -> Result<Vec<crate::wire::framing::Frame>, GatewayError> {
        let binary;
        let bytes = if self.text {
            binary = decode_base64_chunks(body)?;
            &binary[..]
        } else {
            body
        };
        Ok(FrameDecoder::decode_all(bytes, max_message_bytes)?)
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

/// Decode a grpc-web-text body: base64 chunks, each possibly padded, concatenated (line
/// breaks and other ASCII white space ignored).
pub fn decode_base64_chunks(body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let cleaned: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(cleaned.len() / 4 * 3 + 3);
    let mut rest = &cleaned[..];
    while !rest.is_empty() {
        // A chunk ends after its padding (or at the end of the body).
        let end = match rest.iter().position(|b| *b == b'=') {
            Some(first_pad) => {
                let pads = rest
                    .get(first_pad..)
                    .map_or(0, |tail| tail.iter().take_while(|b| **b == b'=').count());
                first_pad + pads
            }
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(end.min(rest.len()));
        LENIENT_BASE64.decode_vec(chunk, &mut out).map_err(|e| {
            GatewayError::BadRequest(format!("the grpc-web-text body is not valid base64: {e}"))
        })?;
        rest = tail;
    }
    Ok(out)
}

/// Serve one gRPC-Web request.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let scope = CallScope::new(state, request.extensions());
    let mut tracker = scope.track(Protocol::GrpcWeb);
    let CallScope {
        state, shutdown, ..
    } = scope;
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
    match run(&state, codec, request, shutdown, &mut tracker).await {
        Ok(answer) => answer.into_response(codec, tracker),
        Err(error) => {
            let status = error.to_status();
            tracker.finish(status.code(), status.message());
            trailers_only(codec, HeaderMap::new(), &status)
        }
    }
}

struct Answer {
    headers: HeaderMap,
    trailers_only: bool,
    events: futures::stream::BoxStream<'static, ReplyEvent>,
    accept: Encoding,
    metrics: Arc<crate::metrics::Metrics>,
}

async fn run(
    state: &GatewayState,
    codec: GrpcWebCodec,
    request: Request,
    shutdown: Option<ShutdownSignal>,
    tracker: &mut CallTracker,
) -> Result<Answer, GatewayError> {
    let (parts, body) = request.into_parts();
    let mut path = method_path(parts.uri.path()).map_err(GatewayError::Upstream)?;
    // Methods the schema knows go upstream under their full name (whatever the spelling);
    // others pass through by path, bytes being all gRPC-Web needs.
    match state.resolve_path(path.as_str()) {
        Ok(resolved) => {
            tracker.set_method(Arc::clone(&resolved.label));
            refuse_streaming(
                &resolved.descriptor,
                Carries::ServerStreams,
                "gRPC-Web",
                "native gRPC (application/grpc) or the WebSocket /ws",
            )?;
            path = resolved.path;
        }
        Err(GatewayError::Lookup(_)) => {
            tracker.set_method(Arc::from(path.as_str().trim_start_matches('/')));
            state.authorize(path.as_str())?;
        }
        Err(error) => return Err(error),
    }
    let encoding = Encoding::from_header(&parts.headers, "grpc-encoding")?;
    let accept = compression::accepted(&parts.headers, "grpc-accept-encoding");
    let requested = grpc_timeout_header(&parts.headers).map_err(GatewayError::BadRequest)?;
    let timeout = effective_timeout(&state.upstream, requested)?;
    let limit = state.config.max_body_bytes;
    let body = read_body(&parts.headers, body, limit).await?;
    state
        .metrics
        .add_bytes_in(Protocol::GrpcWeb, body.len() as u64);
    let frames = codec.decode_request(&body, limit)?;
    let mut upstream_body = BytesMut::with_capacity(body.len());
    for frame in frames {
        let payload = compression::request_message(
            frame,
            encoding,
            limit,
            "grpc-encoding",
            "request frames carry a message, flags 0x00 or 0x01",
        )?;
        encode_frame(0, &payload, &mut upstream_body)?;
    }
    let call = UpstreamCall {
        path,
        content_type: HeaderValue::from_static("application/grpc+proto"),
        metadata: request_metadata(&parts.headers),
        timeout,
    };
    let body = tonic::body::Body::new(http_body_util::Full::new(upstream_body.freeze()));
    let response = forward::send(&state.upstream, call, body).await?;
    let reply = reply(
        response,
        ReplyOptions {
            max_message_bytes: state.upstream.config().max_message_bytes,
            shutdown: shutdown.map(ShutdownSignal::boxed),
            request_failure: None,
        },
    )?;
    let mut headers = HeaderMap::with_capacity(reply.headers.len() + 3);
    for (name, value) in &reply.headers {
        if !is_hop_by_hop(name)
            && !matches!(
                name.as_str(),
                "content-type" | "grpc-accept-encoding" | "grpc-encoding"
            )
        {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(Answer {
        headers,
        trailers_only: reply.trailers_only,
        events: reply.events,
        accept,
        metrics: Arc::clone(&state.metrics),
    })
}

impl Answer {
    fn into_response(self, codec: GrpcWebCodec, tracker: CallTracker) -> Response {
        let Answer {
            mut headers,
            trailers_only: only_trailers,
            mut events,
            accept,
            metrics,
        } = self;
        if only_trailers {
            return async_trailers_only(codec, headers, events, tracker);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(codec.content_type()),
        );
        headers.insert(
            HeaderName::from_static("grpc-accept-encoding"),
            HeaderValue::from_static(compression::SUPPORTED),
        );
        if accept == Encoding::Gzip {
            headers.insert(
                HeaderName::from_static("grpc-encoding"),
                HeaderValue::from_static("gzip"),
            );
        }
        let body = async_stream::stream! {
            let mut tracker = Some(tracker);
            while let Some(event) = events.next().await {
                let chunk = match event {
                    ReplyEvent::Message(payload) => {
                        let encoded = if compression::worth_compressing(accept, &payload) {
                            codec.encode_frame(FLAG_COMPRESSED, &accept.compress(&payload))
                        } else {
                            codec.encode_frame(0, &payload)
                        };
                        match encoded {
                            Ok(chunk) => chunk,
                            Err(error) => {
                                let status = Status::resource_exhausted(error.to_string());
                                if let Some(tracker) = tracker.take() {
                                    tracker.finish(status.code(), status.message());
                                }
                                yield Ok::<Bytes, std::convert::Infallible>(
                                    codec.encode_trailers(&crate::wire::metadata::status_trailers(&status)),
                                );
                                break;
                            }
                        }
                    }
                    ReplyEvent::End(status, trailers) => {
                        if let Some(tracker) = tracker.take() {
                            tracker.finish(status.code(), status.message());
                        }
                        let chunk = codec.encode_trailers(&trailers);
                        metrics.add_bytes_out(Protocol::GrpcWeb, chunk.len() as u64);
                        yield Ok(chunk);
                        break;
                    }
                };
                metrics.add_bytes_out(Protocol::GrpcWeb, chunk.len() as u64);
                yield Ok(chunk);
            }
        };
        let mut response = Response::new(Body::from_stream(body));
        *response.headers_mut() = headers;
        response
    }
}

/// The upstream answered trailers-only: so does the gateway (status in the headers).
fn async_trailers_only(
    codec: GrpcWebCodec,
    mut headers: HeaderMap,
    mut events: futures::stream::BoxStream<'static, ReplyEvent>,
    tracker: CallTracker,
) -> Response {
    // A trailers-only reply's single event is ready at once (it was built from headers).
    let event = futures::FutureExt::now_or_never(events.next()).flatten();
    let status = match event {
        Some(ReplyEvent::End(status, trailers)) => {
            headers.extend(trailers);
            status
        }
        _ => Status::internal("the upstream's trailers-only answer had no status"),
    };
    tracker.finish(status.code(), status.message());
    trailers_only(codec, headers, &status)
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
