//! What every protocol does to make a call: the deadline (`X-Timeout-Ms`, `grpc-timeout`,
//! capped by the gateway's default; shorter than [`MIN_DEADLINE`] is already over), the
//! request body within its limit, the method of a browser route, the upstream request, and
//! reading a response stream to exactly one final status.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use prost_reflect::DynamicMessage;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status, Streaming};

use super::{GatewayState, ResolvedMethod, ShutdownSignal};
use crate::error::{BodyReadError, GatewayError};
use crate::metrics::CallTracker;
use crate::upstream::{CallOptions, Upstream};
use crate::wire::deadline::parse_grpc_timeout;
use crate::wire::trace_context::CallTrace;

/// Request header with a call deadline in milliseconds.
pub const X_TIMEOUT_MS: &str = "x-timeout-ms";

/// Shortest deadline a call can be given. Timers tick in milliseconds and no call through the
/// gateway is answered sooner, so a shorter deadline is over before the call can start; left
/// to the timer, a `1n` call could run for a millisecond and succeed, as if it had none.
pub const MIN_DEADLINE: Duration = Duration::from_millis(1);

/// Resolves the `/{Service}/{method}` of a browser-facing route, records the method on the
/// call's metrics, and refuses client- and bidi-streaming methods, which `protocol` (a
/// request-then-response protocol) cannot carry.
pub(crate) fn resolve_for_browser(
    state: &GatewayState,
    path: Result<Path<(String, String)>, PathRejection>,
    tracker: &mut CallTracker,
    protocol: &'static str,
) -> Result<ResolvedMethod, GatewayError> {
    let Path((service, method)) =
        path.map_err(|e| GatewayError::BadRequest(format!("bad call path: {e}")))?;
    let resolved = state.resolve_method(&service, &method)?;
    tracker.set_method(Arc::clone(&resolved.label));
    refuse_streaming(&resolved.descriptor, Carries::ServerStreams, protocol)?;
    Ok(resolved)
}

/// Which RPC kinds a protocol can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carries {
    /// Unary calls only (one request, one answer: `/batch`).
    Unary,
    /// Unary and server-streaming calls (request-then-response protocols: the JSON route,
    /// SSE).
    ServerStreams,
    /// Every kind but bidirectional streams: Connect and gRPC-Web over HTTP/1.1, where a
    /// request body streams in but no answer can be read before it ends.
    AllButBidi,
}

/// What carries client-streaming calls through the gateway: the paths that stream requests.
const CLIENT_STREAM_CARRIERS: &str = "Connect (application/connect+json or +proto), gRPC-Web, \
     native gRPC (application/grpc) or the WebSocket /ws (rpc.js)";

/// What carries bidirectional calls: the paths that stream both ways at once, which over
/// HTTP takes HTTP/2.
const BIDI_STREAM_CARRIERS: &str = "HTTP/2 (Connect, gRPC-Web or native gRPC) \
     or the WebSocket /ws (rpc.js)";

/// What carries server-streaming calls, for a route that takes unary calls only.
const SERVER_STREAM_CARRIERS: &str =
    "the JSON route (NDJSON), SSE, Connect, gRPC-Web, the WebSocket /ws or native gRPC";

/// Refuse a method whose RPC kind `protocol` cannot carry, naming the kind and the paths
/// that do carry it: the one place this refusal is written.
pub(crate) fn refuse_streaming(
    method: &prost_reflect::MethodDescriptor,
    carries: Carries,
    protocol: &'static str,
) -> Result<(), GatewayError> {
    let instead = match (method.is_client_streaming(), method.is_server_streaming()) {
        (true, true) => BIDI_STREAM_CARRIERS,
        (true, false) if carries != Carries::AllButBidi => CLIENT_STREAM_CARRIERS,
        (false, true) if carries == Carries::Unary => SERVER_STREAM_CARRIERS,
        _ => return Ok(()),
    };
    Err(GatewayError::UnsupportedStreaming {
        method: method.full_name().to_owned(),
        kind: kind_name(method),
        protocol,
        instead,
    })
}

/// The RPC kind of `method`, as error messages name it.
pub(crate) fn kind_name(method: &prost_reflect::MethodDescriptor) -> &'static str {
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (true, true) => "bidirectional-streaming",
        (true, false) => "client-streaming",
        (false, true) => "server-streaming",
        (false, false) => "unary",
    }
}

pub(crate) fn unresolved_label() -> Arc<str> {
    // Shared rather than allocated per call: every call starts out unresolved.
    static LABEL: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    Arc::clone(LABEL.get_or_init(|| Arc::from("unresolved")))
}

/// The deadline the client asked for in `X-Timeout-Ms` or `grpc-timeout` (the smaller).
pub fn requested_timeout(headers: &HeaderMap) -> Result<Option<Duration>, GatewayError> {
    let mut timeout: Option<Duration> = None;
    if let Some(value) = headers.get(X_TIMEOUT_MS) {
        let ms = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "header X-Timeout-Ms must be a whole number of milliseconds, got {value:?}"
                ))
            })?;
        timeout = Some(Duration::from_millis(ms));
    }
    if let Some(value) = headers.get("grpc-timeout") {
        let parsed = value.to_str().ok().and_then(parse_grpc_timeout).ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "header grpc-timeout must be up to 8 digits and a unit (H, M, S, m, u, n), got {value:?}"
            ))
        })?;
        timeout = Some(timeout.map_or(parsed, |t| t.min(parsed)));
    }
    Ok(timeout)
}

/// The deadline of a call: `requested` (the client's) capped by the gateway's default. A
/// deadline shorter than [`MIN_DEADLINE`] has passed already: the call is refused with
/// `DEADLINE_EXCEEDED` instead of being made.
pub(crate) fn effective_timeout(
    upstream: &Upstream,
    requested: Option<Duration>,
) -> Result<Option<Duration>, GatewayError> {
    let timeout = upstream.deadline(CallOptions::with_timeout(requested));
    match timeout {
        Some(timeout) if timeout < MIN_DEADLINE => Err(GatewayError::DeadlinePassed { timeout }),
        _ => Ok(timeout),
    }
}

/// A tonic request for the upstream carrying the call id and the gateway's span of the call
/// (`traceparent`, `tracestate`), and the options (the deadline) to make it with.
pub(crate) fn upstream_request<T>(
    message: T,
    timeout: Option<Duration>,
    call_id: &str,
    trace: Option<&CallTrace>,
) -> (tonic::Request<T>, CallOptions) {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(call_id) {
        headers.insert("x-call-id", value);
    }
    if let Some(trace) = trace {
        trace.write_headers(&mut headers);
    }
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = MetadataMap::from_headers(headers);
    (request, CallOptions::with_timeout(timeout))
}

/// Read a whole request body, refusing more than `limit` bytes.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(error) => Err(BodyReadError::from_cause(&*error).into()),
    }
}

/// What a response stream yields to a front protocol.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// One response message.
    Message(DynamicMessage),
    /// The final status; nothing follows.
    End(Status),
}

/// Read an upstream response stream until it ends (the upstream stack ends it at the
/// deadline) or the server shuts down, always finishing with exactly one
/// [`StreamEvent::End`]. Dropping the returned stream drops the upstream stream, which
/// cancels the upstream call.
pub(crate) fn pump(
    mut messages: Streaming<DynamicMessage>,
    shutdown: Option<ShutdownSignal>,
) -> impl Stream<Item = StreamEvent> + Send {
    async_stream::stream! {
        let shutdown = ShutdownSignal::wait_opt(shutdown);
        tokio::pin!(shutdown);
        loop {
            let next = tokio::select! {
                next = messages.message() => next,
                () = &mut shutdown => Err(Status::unavailable("the gateway is shutting down")),
            };
            match next {
                Ok(Some(message)) => yield StreamEvent::Message(message),
                Ok(None) => {
                    yield StreamEvent::End(Status::new(Code::Ok, ""));
                    break;
                }
                Err(status) => {
                    yield StreamEvent::End(status);
                    break;
                }
            }
        }
    }
}

/// The `grpc-timeout` header of a gRPC or gRPC-Web request, if any; `Err` says what is wrong
/// with it.
pub(crate) fn grpc_timeout_header(headers: &HeaderMap) -> Result<Option<Duration>, String> {
    match headers.get("grpc-timeout") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(parse_grpc_timeout)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "header grpc-timeout must be up to 8 digits and a unit (H, M, S, m, u, n), got {value:?}"
                )
            }),
    }
}
