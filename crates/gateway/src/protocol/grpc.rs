//! Native gRPC pass-through: `application/grpc` requests over h2c on the gateway's port are
//! forwarded to the upstream, for any method (also ones the schema does not know) and all
//! four RPC kinds. Messages pass as bytes, never decoded. Its forwarder
//! (`forward_stream`: request frames upstream as they arrive, answers back as they come)
//! is also the one gRPC-Web and Connect streams use.
//!
//! Carried both ways: request metadata (minus hop-by-hop headers), the `grpc-timeout`
//! deadline (capped by the gateway's default timeout, and enforced by the upstream stack), response
//! headers, trailers, and cancellation (a client that goes away resets the upstream stream).
//!
//! The gateway checks the framing of what clients send: a message longer than the upstream
//! message limit is refused with `RESOURCE_EXHAUSTED`, a body that ends inside a frame or a
//! compressed frame without `grpc-encoding` with `INVALID_ARGUMENT`. Clients may compress
//! with gzip (`grpc-encoding: gzip`); the gateway decompresses (bounded by the message limit)
//! and sends the upstream uncompressed messages, and compresses responses of 1 KiB or more
//! when the client lists gzip in `grpc-accept-encoding`. An unreachable upstream is a
//! trailers-only `UNAVAILABLE`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt as _;
use http::header::{self, HeaderName};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use octaneweb_schema::json_to_message;
use prost::Message as _;
use prost_reflect::MessageDescriptor;
use tokio::sync::oneshot;
use tonic::Status;

use crate::context::call::{effective_timeout, grpc_timeout_header};
use crate::context::{CallScope, GatewayState, ShutdownSignal};
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Metrics, Protocol};
use crate::upstream::forward::{self, reply, ReplyEvent, ReplyOptions, UpstreamCall};
use crate::wire::compression::{self, Encoding};
use crate::wire::framing::{FrameDecoder, FRAME_HEADER_LEN};
use crate::wire::metadata::{is_hop_by_hop, request_metadata};
use crate::wire::trace_context::CallTrace;

/// Longest method path accepted (`/package.Service/Method`).
const MAX_PATH_LEN: usize = 512;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serve one gRPC request by forwarding it upstream.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let scope = CallScope::new(state, request.extensions());
    let tracker = scope.track(Protocol::Grpc);
    let limit = scope.state.upstream.config().max_message_bytes;
    pass_through(scope, request, tracker, limit).await
}

/// Forward a gRPC request upstream and answer it as gRPC. Also the core of gRPC-Web, which
/// translates its requests into gRPC ones and the answers back (`super::grpc_web`). The
/// tracker's protocol labels the byte counts; the tracker is finished when the answer ends.
/// A request message longer than `request_limit` (after decompression) is refused with
/// `RESOURCE_EXHAUSTED`.
pub(crate) async fn pass_through(
    scope: CallScope,
    request: Request,
    mut tracker: CallTracker,
    request_limit: usize,
) -> Response {
    let CallScope {
        state,
        shutdown,
        trace,
        ..
    } = scope;
    let call = forward_call(
        &state,
        request,
        shutdown,
        trace,
        &mut tracker,
        request_limit,
    );
    match call.await {
        Ok(Forwarded::Stream(response)) => attach_tracker(response, tracker),
        Ok(Forwarded::TrailersOnly { status, headers }) => {
            tracker.finish(status.code(), status.message());
            trailers_only_with(headers)
        }
        Err(status) => {
            tracker.finish(status.code(), status.message());
            trailers_only(&status)
        }
    }
}

enum Forwarded {
    /// A streaming answer; the tracker is finished by the body.
    Stream(StreamingAnswer),
    /// The upstream answered with headers only (`headers` include the status).
    TrailersOnly { status: Status, headers: HeaderMap },
}

struct StreamingAnswer {
    headers: HeaderMap,
    events: futures::stream::BoxStream<'static, ReplyEvent>,
    accept: Encoding,
    metrics: Arc<Metrics>,
    protocol: Protocol,
}

async fn forward_call(
    state: &GatewayState,
    request: Request,
    shutdown: Option<ShutdownSignal>,
    trace: CallTrace,
    tracker: &mut CallTracker,
    request_limit: usize,
) -> Result<Forwarded, Status> {
    let (parts, body) = request.into_parts();
    let path = method_path(parts.uri.path())?;
    tracker.set_method(state.label_of_path(path.as_str()));
    state.authorize(path.as_str()).map_err(|e| e.to_status())?;
    let encoding = Encoding::from_header(&parts.headers, "grpc-encoding")
        .map_err(|e| GatewayError::from(e).to_status())?;
    let accept = compression::accepted(&parts.headers, "grpc-accept-encoding");
    let requested = grpc_timeout_header(&parts.headers).map_err(Status::invalid_argument)?;
    let timeout = effective_timeout(&state.upstream, requested).map_err(|e| e.to_status())?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/grpc"));
    let max_message_bytes = state.upstream.config().max_message_bytes;
    let call = UpstreamCall {
        path,
        content_type,
        metadata: request_metadata(&parts.headers),
        timeout,
        trace: Some(trace),
    };
    let framing = RequestFraming {
        encoding,
        encoding_header: "grpc-encoding",
        max_message_bytes: request_limit.min(max_message_bytes),
        json_input: None,
    };
    let reply = forward_stream(state, call, body, framing, tracker.protocol(), shutdown).await?;
    let mut headers = HeaderMap::with_capacity(reply.headers.len() + 2);
    for (name, value) in &reply.headers {
        if !is_hop_by_hop(name) && name.as_str() != "grpc-accept-encoding" {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        HeaderName::from_static("grpc-accept-encoding"),
        HeaderValue::from_static(compression::SUPPORTED),
    );
    if reply.trailers_only {
        let mut events = reply.events;
        let (status, trailers) = match events.next().await {
            Some(ReplyEvent::End(status, trailers)) => (status, trailers),
            _ => {
                let status = Status::internal("the upstream's trailers-only answer had no status");
                let trailers = crate::wire::metadata::status_trailers(&status);
                (status, trailers)
            }
        };
        headers.extend(trailers);
        return Ok(Forwarded::TrailersOnly { status, headers });
    }
    if accept == Encoding::Gzip {
        headers.insert(
            HeaderName::from_static("grpc-encoding"),
            HeaderValue::from_static("gzip"),
        );
    }
    Ok(Forwarded::Stream(StreamingAnswer {
        headers,
        events: reply.events,
        accept,
        metrics: Arc::clone(&state.metrics),
        protocol: tracker.protocol(),
    }))
}

/// `/package.Service/Method` with the characters names can have; anything else is not a
/// gRPC method (UNIMPLEMENTED, as a gRPC server answers an unknown path).
pub(crate) fn method_path(path: &str) -> Result<PathAndQuery, Status> {
    let bad = || {
        Status::unimplemented(format!(
            "{path:?} is not a gRPC method path (/package.Service/Method)"
        ))
    };
    if path.len() > MAX_PATH_LEN {
        return Err(bad());
    }
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let (service, method) = rest.split_once('/').ok_or_else(bad)?;
    let name_ok = |part: &str, dots: bool| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
    };
    if !name_ok(service, true) || !name_ok(method, false) {
        return Err(bad());
    }
    PathAndQuery::try_from(path).map_err(|_| bad())
}

/// How a client's request stream is framed: gRPC frames and Connect envelopes alike (a
/// flags byte, 0x00 or 0x01 "compressed", and a length).
pub(crate) struct RequestFraming {
    /// The encoding of compressed frames.
    pub encoding: Encoding,
    /// The header that named it (`grpc-encoding`, `connect-content-encoding`), for errors.
    pub encoding_header: &'static str,
    /// Longest message, before and after decompression.
    pub max_message_bytes: usize,
    /// `Some` when messages are JSON of this type (Connect `+json`): each is converted to
    /// protobuf through the schema as it arrives. `None`: messages pass as bytes.
    pub json_input: Option<MessageDescriptor>,
}

/// Forward a streaming request upstream: the client's `body` goes upstream frame by frame as
/// it arrives (checked, decompressed, converted per `framing`), while the answer streams
/// back, so a client and the upstream can take turns on one call (full duplex). Nothing is
/// buffered beyond the message being read: the client's body is read only as fast as the
/// upstream takes it (HTTP/2 flow control holds the rest). A bad request frame ends the call
/// with the error that names it, also when the upstream already answered; the upstream
/// stream is reset. The one forwarder of byte-level calls: gRPC, gRPC-Web and Connect.
pub(crate) async fn forward_stream(
    state: &GatewayState,
    call: UpstreamCall,
    body: Body,
    framing: RequestFraming,
    protocol: Protocol,
    shutdown: Option<ShutdownSignal>,
) -> Result<forward::Reply, Status> {
    let (failure_tx, mut failure_rx) = oneshot::channel();
    let frames = client_frames(
        body,
        framing,
        failure_tx,
        (Arc::clone(&state.metrics), protocol),
    );
    let upstream_body = tonic::body::Body::new(StreamBody::new(frames));
    let response = match forward::send(&state.upstream, call, upstream_body).await {
        Ok(response) => response,
        // A request cut off by the gateway explains the upstream's failure best.
        Err(status) => return Err(failure_rx.try_recv().unwrap_or(status)),
    };
    reply(
        response,
        ReplyOptions {
            max_message_bytes: state.upstream.config().max_message_bytes,
            shutdown: shutdown.map(ShutdownSignal::boxed),
            request_failure: Some(failure_rx),
        },
    )
}

/// The client's request frames, checked, decompressed (and converted from JSON), as an
/// upstream request body. A bad frame (too long, cut off, badly compressed, with flags other
/// than "compressed", or JSON that is not the method's input) is reported on `failure` and
/// ends the body with an error, which resets the upstream stream.
fn client_frames(
    body: Body,
    framing: RequestFraming,
    failure: oneshot::Sender<Status>,
    (metrics, protocol): (Arc<Metrics>, Protocol),
) -> impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + 'static {
    let RequestFraming {
        encoding,
        encoding_header,
        max_message_bytes,
        json_input,
    } = framing;
    async_stream::stream! {
        let mut body = body;
        let mut failure = Some(failure);
        let mut decoder = FrameDecoder::new(max_message_bytes);
        let mut fail = move |error: GatewayError| -> BoxError {
            let status = error.to_status();
            let message = status.message().to_owned();
            if let Some(failure) = failure.take() {
                let _ = failure.send(status);
            }
            message.into()
        };
        loop {
            match body.frame().await {
                None => {
                    if let Err(error) = decoder.finish() {
                        yield Err(fail(error.into()));
                    }
                    break;
                }
                Some(Err(error)) => {
                    match error.into_inner().downcast::<GatewayError>() {
                        // A body the gateway decodes on the way (grpc-web-text's base64)
                        // found the request malformed.
                        Ok(error) => yield Err(fail(*error)),
                        // The client went away or reset its stream; the upstream stream is
                        // reset too.
                        Err(error) => yield Err(error),
                    }
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    decoder.push(&data);
                    loop {
                        match decoder.next_frame() {
                            Ok(Some(frame)) => {
                                let payload = compression::request_message(
                                    frame,
                                    encoding,
                                    max_message_bytes,
                                    encoding_header,
                                    "request frames carry a message, flags 0x00 or 0x01",
                                )
                                .map_err(GatewayError::from)
                                .inspect(|payload| {
                                    metrics.add_bytes_in(protocol, payload.len() as u64);
                                })
                                .and_then(|payload| match &json_input {
                                    None => Ok(payload),
                                    Some(input) => json_to_message(input, &payload)
                                        .map(|message| Bytes::from(message.encode_to_vec()))
                                        .map_err(GatewayError::from),
                                });
                                let payload = match payload {
                                    Ok(payload) => payload,
                                    Err(error) => {
                                        yield Err(fail(error));
                                        return;
                                    }
                                };
                                let (first, rest) = frame_chunks(0, payload);
                                yield Ok(Frame::data(first));
                                if let Some(rest) = rest {
                                    yield Ok(Frame::data(rest));
                                }
                            }
                            Ok(None) => break,
                            Err(error) => {
                                yield Err(fail(error.into()));
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Payloads at least this long go out as their own DATA frame after the 5-byte header (no
/// copy); shorter ones are copied behind the header into one buffer.
const SEPARATE_PAYLOAD_BYTES: usize = 64 * 1024;

/// A frame as one or two DATA chunks. HTTP/2 peers (h2 among them) count a stream of tiny
/// DATA frames as abuse and close the connection with ENHANCE_YOUR_CALM, so a small message
/// never goes out as a separate 5-byte header frame.
pub(crate) fn frame_chunks(flags: u8, payload: Bytes) -> (Bytes, Option<Bytes>) {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0] = flags;
    header[1..].copy_from_slice(&length.to_be_bytes());
    if payload.len() >= SEPARATE_PAYLOAD_BYTES {
        return (Bytes::copy_from_slice(&header), Some(payload));
    }
    let mut joined = bytes::BytesMut::with_capacity(FRAME_HEADER_LEN + payload.len());
    joined.extend_from_slice(&header);
    joined.extend_from_slice(&payload);
    (joined.freeze(), None)
}

/// The answer's body: messages as frames (compressed if the client accepts gzip), then the
/// trailers. The tracker records the final code when the trailers go out, or CANCELLED if
/// the client goes away first (the body is dropped, and with it the upstream stream).
fn attach_tracker(answer: StreamingAnswer, tracker: CallTracker) -> Response {
    let StreamingAnswer {
        headers,
        mut events,
        accept,
        metrics,
        protocol,
    } = answer;
    let body = async_stream::stream! {
        let mut tracker = Some(tracker);
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Message(payload) => {
                    metrics.add_bytes_out(protocol, payload.len() as u64);
                    let (flags, payload) = if compression::worth_compressing(accept, &payload) {
                        (1, accept.compress(&payload))
                    } else {
                        (0, payload)
                    };
                    let (first, rest) = frame_chunks(flags, payload);
                    yield Ok::<_, std::convert::Infallible>(Frame::data(first));
                    if let Some(rest) = rest {
                        yield Ok(Frame::data(rest));
                    }
                }
                ReplyEvent::End(status, trailers) => {
                    if let Some(tracker) = tracker.take() {
                        tracker.finish(status.code(), status.message());
                    }
                    yield Ok(Frame::trailers(trailers));
                    break;
                }
            }
        }
    };
    let mut response = Response::new(Body::new(StreamBody::new(body)));
    *response.headers_mut() = headers;
    response
}

/// A trailers-only gRPC answer carrying `status`.
pub(crate) fn trailers_only(status: &Status) -> Response {
    let mut headers = crate::wire::metadata::status_trailers(status);
    headers.insert(
        HeaderName::from_static("grpc-accept-encoding"),
        HeaderValue::from_static(compression::SUPPORTED),
    );
    trailers_only_with(headers)
}

fn trailers_only_with(mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let mut response = Response::new(Body::new(NoBody));
    *response.status_mut() = StatusCode::OK;
    *response.headers_mut() = headers;
    response
}

/// An empty body whose size is not announced: the answer goes out as one HEADERS frame
/// ending the stream, as gRPC servers send trailers-only answers, without the
/// `content-length: 0` that an empty body of known size would add.
struct NoBody;

impl http_body::Body for NoBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_are_checked() {
        assert!(method_path("/grpc.health.v1.Health/Check").is_ok());
        assert!(method_path("/a/b").is_ok());
        for bad in [
            "", "/", "/a", "/a/", "//b", "/a/b/c", "/a b/c", "/a/b.c", "a/b",
        ] {
            let status = method_path(bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented, "{bad:?}");
        }
    }

    #[test]
    fn small_frames_are_one_chunk_large_ones_two() {
        let (first, rest) = frame_chunks(1, Bytes::from_static(b"abc"));
        assert_eq!(&first[..], &[1, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert!(rest.is_none());
        let big = Bytes::from(vec![7u8; SEPARATE_PAYLOAD_BYTES]);
        let (first, rest) = frame_chunks(0, big.clone());
        assert_eq!(&first[..], &[0, 0, 1, 0, 0]);
        assert_eq!(rest, Some(big));
    }
}
