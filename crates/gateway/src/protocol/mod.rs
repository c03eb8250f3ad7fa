//! Browser-facing protocols. Each turns its own framing into schema-driven upstream calls:
//!
//! - [`json`]: `POST /{Service}/{method}`, the original proxy's JSON route (plus NDJSON for
//!   server streams);
//! - [`sse`]: `GET /sse/{Service}/{method}`, Server-Sent Events for server streams;
//! - [`grpc`]: native gRPC pass-through (`application/grpc`, h2c), bytes never decoded;
//! - [`grpc_web`]: gRPC-Web (binary and base64 text) translated to gRPC;
//! - [`connect`]: the Connect protocol (unary JSON/binary, GET, server streaming);
//! - [`ws`]: `GET /ws`, one WebSocket multiplexing calls of all four RPC kinds;
//! - [`batch`]: `POST /batch`, many JSON calls in one round trip.
//!
//! gRPC, gRPC-Web and Connect share paths with the JSON route (`/pkg.Service/Method`); a
//! request is handed to them by its content type and headers ([`WireProtocol::of`]) before
//! routing.
//!
//! # Deadlines
//!
//! Clients may bound a call with the `X-Timeout-Ms` header (milliseconds) or a gRPC-style
//! `grpc-timeout` header (`250m`, `5S`, ...); if both are present the smaller wins, and the
//! gateway's `--timeout` default caps either. SSE also reads `?timeout_ms=` because
//! `EventSource` cannot set headers.
//!
//! Every protocol treats a deadline shorter than [`MIN_DEADLINE`] (`0`, `1n`,
//! `Connect-Timeout-Ms: 0`, ...) as one that has passed: the call ends `DEADLINE_EXCEEDED`
//! before it starts ([`effective_timeout`]), as a gRPC server ends a call whose deadline is over.

pub mod batch;
pub mod compression;
pub mod connect;
pub mod framing;
pub mod grpc;
pub mod grpc_web;
pub mod json;
pub mod sse;
mod status_details;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use prost_reflect::DynamicMessage;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status, Streaming};

use axum::extract::rejection::PathRejection;
use axum::extract::Path;

use crate::error::{BodyReadError, GatewayError};
use crate::metrics::CallTracker;
use crate::server::{GatewayState, ResolvedMethod, ShutdownSignal};
use crate::upstream::{clamp_grpc_timeout, parse_grpc_timeout, Upstream};

/// Request header with a call deadline in milliseconds.
pub const X_TIMEOUT_MS: &str = "x-timeout-ms";

/// Shortest deadline a call can be given. Timers tick in milliseconds and no call through the
/// gateway is answered sooner, so a shorter deadline is over before the call can start; left
/// to the timer, a `1n` call could run for a millisecond and succeed, as if it had none.
pub const MIN_DEADLINE: Duration = Duration::from_millis(1);

/// A standard wire protocol recognised from a request's headers, before routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireProtocol {
    /// `application/grpc` (and `application/grpc+proto`, `+json`, ...).
    Grpc,
    /// `application/grpc-web`, `application/grpc-web+proto`, `application/grpc-web-text`...
    GrpcWeb,
    /// Connect: a `Connect-Protocol-Version` header, an `application/connect+*` or
    /// `application/proto` content type, or a GET with `connect=v1` in the query.
    Connect,
}

impl WireProtocol {
    /// The wire protocol of `request`, or `None` for the gateway's own routes (JSON, SSE,
    /// WebSocket, operations, static files).
    pub fn of<B>(request: &http::Request<B>) -> Option<WireProtocol> {
        let headers = request.headers();
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if content_type.starts_with("application/grpc-web") {
            return Some(WireProtocol::GrpcWeb);
        }
        if content_type == "application/grpc" || content_type.starts_with("application/grpc+") {
            return Some(WireProtocol::Grpc);
        }
        if content_type.starts_with("application/connect+")
            || content_type == "application/proto"
            || headers.contains_key("connect-protocol-version")
        {
            return Some(WireProtocol::Connect);
        }
        if request.method() == http::Method::GET
            && request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|pair| pair == "connect=v1"))
        {
            return Some(WireProtocol::Connect);
        }
        None
    }
}

/// A refusal made before a request reaches its protocol (the server's front door: host,
/// origin, token, rate), answered in the request's own wire format so every client reads
/// the code: trailers-only for gRPC and gRPC-Web, Connect's error JSON, and the JSON error
/// body for everything else.
pub fn refusal<B>(request: &http::Request<B>, error: GatewayError) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match WireProtocol::of(request) {
        Some(WireProtocol::Grpc) => grpc::trailers_only(&error.to_status()),
        Some(WireProtocol::GrpcWeb) => grpc_web::refusal(request.headers(), &error),
        Some(WireProtocol::Connect) => connect::refusal(&error),
        None => error.into_response(),
    }
}

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
    let descriptor = &resolved.descriptor;
    if descriptor.is_client_streaming() {
        return Err(GatewayError::UnsupportedStreaming {
            method: descriptor.full_name().to_owned(),
            kind: if descriptor.is_server_streaming() {
                "bidirectional-streaming"
            } else {
                "client-streaming"
            },
            protocol,
            instead: "the WebSocket /ws, gRPC-Web, Connect or gRPC",
        });
    }
    Ok(resolved)
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
    let timeout = upstream.cap_timeout(requested);
    match timeout {
        Some(timeout) if timeout < MIN_DEADLINE => Err(GatewayError::DeadlinePassed { timeout }),
        _ => Ok(timeout),
    }
}

/// A tonic request for the upstream carrying the deadline and the call id.
pub(crate) fn upstream_request<T>(
    message: T,
    timeout: Option<Duration>,
    call_id: &str,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(timeout) = timeout {
        request.set_timeout(clamp_grpc_timeout(timeout));
    }
    if let Ok(value) = MetadataValue::try_from(call_id) {
        request.metadata_mut().insert("x-call-id", value);
    }
    request
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

/// Read an upstream response stream until it ends, the deadline passes or the server shuts
/// down, always finishing with exactly one [`StreamEvent::End`]. Dropping the returned stream
/// drops the upstream stream, which cancels the upstream call.
pub(crate) fn pump(
    upstream: Upstream,
    mut messages: Streaming<DynamicMessage>,
    deadline: Option<Instant>,
    shutdown: Option<ShutdownSignal>,
) -> impl Stream<Item = StreamEvent> + Send {
    async_stream::stream! {
        let shutdown = ShutdownSignal::wait_opt(shutdown);
        tokio::pin!(shutdown);
        loop {
            let expired = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            // The flag says whether the status came from the upstream (and so tells
            // something about its reachability) or from the gateway itself.
            let next = tokio::select! {
                next = messages.message() => next.map_err(|status| (status, true)),
                () = expired => Err((
                    Status::deadline_exceeded("the call's deadline passed while streaming"),
                    false,
                )),
                () = &mut shutdown => Err((
                    Status::unavailable("the gateway is shutting down"),
                    false,
                )),
            };
            match next {
                Ok(Some(message)) => yield StreamEvent::Message(message),
                Ok(None) => {
                    yield StreamEvent::End(Status::new(Code::Ok, ""));
                    break;
                }
                Err((status, from_upstream)) => {
                    if from_upstream {
                        upstream.observe(Some(&status));
                    }
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

/// The absolute deadline for a call starting now.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// `{"code":"OK","message":""}`, the final status object of streaming answers.
pub(crate) fn status_json(status: &Status) -> serde_json::Value {
    serde_json::json!({
        "code": crate::error::code_name(status.code()),
        "message": status.message(),
    })
}
