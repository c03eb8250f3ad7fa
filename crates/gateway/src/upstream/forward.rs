//! HTTP-level forwarding of gRPC requests to the upstream: the request's frames, metadata,
//! deadline and trailers pass through the connection pool without being decoded.
//!
//! [`send`] makes one gRPC request over the channel and waits for the response headers;
//! [`reply`] turns the response into a stream of [`ReplyEvent`]s (message payloads, then
//! exactly one final status with the upstream's trailers). gRPC pass-through, gRPC-Web and
//! Connect are built on these two (their streaming requests through
//! `protocol::grpc::forward_stream`, which feeds [`send`] a body that streams as it arrives).

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use http::header;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use tonic::Status;
use tower::ServiceExt as _;

use super::{CallDeadline, Upstream};
use crate::wire::codes::grpc_code_for_http;
use crate::wire::compression::Encoding;
use crate::wire::framing::{FrameDecoder, FramingError};
use crate::wire::metadata::{is_status_header, status_trailers};
use crate::wire::trace_context::CallTrace;

/// One gRPC call to make upstream.
#[derive(Debug)]
pub struct UpstreamCall {
    /// `/package.Service/Method`.
    pub path: PathAndQuery,
    /// `application/grpc` or `application/grpc+proto`, ...
    pub content_type: HeaderValue,
    /// Request metadata (already stripped of protocol and hop-by-hop headers).
    pub metadata: HeaderMap,
    /// The call's deadline (already capped by the gateway's default); the stack enforces it.
    pub timeout: Option<Duration>,
    /// The gateway's span of the call: its `traceparent` (and the caller's `tracestate`)
    /// replace the client's in the metadata.
    pub trace: Option<CallTrace>,
}

/// Send `call` with `body` (gRPC frames, uncompressed) through the upstream's call stack
/// and wait for the response headers; the stack applies the deadline (to the headers and then
/// to the response body) and names failures with their codes.
pub async fn send(
    upstream: &Upstream,
    call: UpstreamCall,
    body: tonic::body::Body,
) -> Result<http::Response<tonic::body::Body>, Status> {
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::from(call.path);
    let headers = request.headers_mut();
    *headers = call.metadata;
    headers.insert(header::CONTENT_TYPE, call.content_type);
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(trace) = &call.trace {
        trace.write_headers(headers);
    }
    if let Some(timeout) = call.timeout {
        request.extensions_mut().insert(CallDeadline(timeout));
    }
    upstream.service().oneshot(request).await
}

/// What an upstream response stream yields.
#[derive(Debug)]
pub enum ReplyEvent {
    /// One response message's payload (uncompressed).
    Message(Bytes),
    /// The call's final status and the trailers that carried it (as the upstream sent them,
    /// or built by the gateway for failures it detected itself). Nothing follows.
    End(Status, HeaderMap),
}

/// Bounds and interruptions of a reply stream.
#[derive(Default)]
pub struct ReplyOptions {
    /// Largest response message accepted (after decompression).
    pub max_message_bytes: usize,
    /// Ends the stream (`UNAVAILABLE`, "the gateway is shutting down") when it resolves.
    pub shutdown: Option<futures::future::BoxFuture<'static, ()>>,
    /// A failure of the request side (a bad frame from the client), reported instead of
    /// whatever the upstream answers after the request was cut off.
    pub request_failure: Option<oneshot::Receiver<Status>>,
}

impl std::fmt::Debug for ReplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyOptions")
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

/// An upstream response: its headers and its events.
pub struct Reply {
    /// Response headers (metadata); for a trailers-only answer, empty of status headers.
    pub headers: HeaderMap,
    /// True if the upstream answered with headers only (the status is in the only event).
    pub trailers_only: bool,
    /// Messages, then one [`ReplyEvent::End`].
    pub events: BoxStream<'static, ReplyEvent>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("headers", &self.headers)
            .field("trailers_only", &self.trailers_only)
            .finish_non_exhaustive()
    }
}

/// Read an upstream response as events. Errors if the answer is not a gRPC response.
pub fn reply(
    response: http::Response<tonic::body::Body>,
    options: ReplyOptions,
) -> Result<Reply, Status> {
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        return Err(Status::new(
            grpc_code_for_http(parts.status),
            format!(
                "the upstream answered HTTP {} instead of gRPC",
                parts.status
            ),
        ));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/grpc") {
        return Err(Status::unknown(format!(
            "the upstream answered with content type {content_type:?} instead of gRPC"
        )));
    }
    let mut headers = parts.headers;
    if let Some(status) = Status::from_header_map(&headers) {
        let mut trailers = HeaderMap::new();
        let mut metadata = HeaderMap::new();
        for (name, value) in headers.drain().filter_map(|(n, v)| n.map(|n| (n, v))) {
            if is_status_header(&name) {
                trailers.append(name, value);
            } else {
                metadata.append(name, value);
            }
        }
        let event = ReplyEvent::End(status, trailers);
        return Ok(Reply {
            headers: metadata,
            trailers_only: true,
            events: futures::stream::iter([event]).boxed(),
        });
    }
    let encoding = Encoding::from_header(&headers, "grpc-encoding")
        .map_err(|e| Status::internal(format!("the upstream's response cannot be read: {e}")))?;
    headers.remove("grpc-encoding");
    let events = reply_events(body, encoding, options);
    Ok(Reply {
        headers,
        trailers_only: false,
        events: events.boxed(),
    })
}

fn reply_events(
    mut body: tonic::body::Body,
    encoding: Encoding,
    options: ReplyOptions,
) -> impl futures::Stream<Item = ReplyEvent> + Send + 'static {
    let ReplyOptions {
        max_message_bytes,
        shutdown,
        mut request_failure,
    } = options;
    async_stream::stream! {
        let mut decoder = FrameDecoder::new(max_message_bytes);
        let mut shutdown = shutdown.unwrap_or_else(|| Box::pin(std::future::pending()));
        let end = loop {
            let failed = async {
                match request_failure.as_mut() {
                    Some(receiver) => receiver.await.ok(),
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                next = body.frame() => next,
                () = &mut shutdown => break Status::unavailable("the gateway is shutting down"),
                failure = failed => match failure {
                    Some(status) => break status,
                    // The request side finished cleanly: stop watching it.
                    None => {
                        request_failure = None;
                        continue;
                    }
                },
            };
            match next {
                None => {
                    if let Err(error) = decoder.finish() {
                        break Status::internal(format!("the upstream's response: {error}"));
                    }
                    break Status::internal("the upstream ended the response without a gRPC status");
                }
                Some(Err(error)) => {
                    // The request side's own failure explains a cut-off upstream best.
                    if let Some(status) = request_failure.as_mut().and_then(|r| r.try_recv().ok()) {
                        break status;
                    }
                    break Status::from_error(error.into());
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        decoder.push(&data);
                        let mut failure = None;
                        loop {
                            match decoder.next_frame() {
                                Ok(Some(frame)) => {
                                    let payload = if frame.is_compressed() {
                                        match encoding.decompress(frame.payload, max_message_bytes) {
                                            Ok(payload) => payload,
                                            Err(error) => {
                                                failure = Some(Status::internal(format!(
                                                    "the upstream's response: {error}"
                                                )));
                                                break;
                                            }
                                        }
                                    } else {
                                        frame.payload
                                    };
                                    yield ReplyEvent::Message(payload);
                                }
                                Ok(None) => break,
                                Err(error) => {
                                    failure = Some(response_framing_status(&error));
                                    break;
                                }
                            }
                        }
                        if let Some(status) = failure {
                            break status;
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            let status = Status::from_header_map(&trailers).unwrap_or_else(|| {
                                Status::internal("the upstream's trailers carry no grpc-status")
                            });
                            yield ReplyEvent::End(status, trailers);
                            return;
                        }
                    }
                },
            }
        };
        let trailers = status_trailers(&end);
        yield ReplyEvent::End(end, trailers);
    }
}

fn response_framing_status(error: &FramingError) -> Status {
    match error {
        FramingError::TooLarge { .. } => {
            Status::resource_exhausted(format!("the upstream's response: {error}"))
        }
        _ => Status::internal(format!("the upstream's response: {error}")),
    }
}
