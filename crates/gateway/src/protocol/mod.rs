//! Browser-facing protocols. Each turns its own framing into schema-driven upstream calls:
//!
//! - [`json`]: `POST /{Service}/{method}`, the original proxy's JSON route (plus NDJSON for
//!   server streams);
//! - [`sse`]: `GET /sse/{Service}/{method}`, Server-Sent Events for server streams;
//! - [`grpc`]: native gRPC pass-through (`application/grpc`, h2c), bytes never decoded;
//! - [`grpc_web`]: gRPC-Web (binary and base64 text) translated to gRPC;
//! - [`connect`]: the Connect protocol (unary JSON/binary, GET, server streaming);
//! - [`ws`]: `GET /ws`, one WebSocket multiplexing calls of all four RPC kinds;
//! - [`batch`]: `POST /batch`, many JSON calls in one round trip;
//! - [`octanewebr`]: `POST /api/grpc/{service}/{method}`, octaneWebR's server's call route.
//!
//! gRPC, gRPC-Web and Connect share paths with the JSON route (`/pkg.Service/Method`); a
//! request is handed to them by its content type and headers ([`WireProtocol::of`]) before
//! routing.
//!
//! # Deadlines (see [`crate::context::call`])
//!
//! Clients may bound a call with the `X-Timeout-Ms` header (milliseconds) or a gRPC-style
//! `grpc-timeout` header (`250m`, `5S`, ...); if both are present the smaller wins, and the
//! gateway's `--timeout` default caps either. SSE also reads `?timeout_ms=` because
//! `EventSource` cannot set headers.
//!
//! Every protocol treats a deadline shorter than [`MIN_DEADLINE`](crate::context::call::MIN_DEADLINE) (`0`, `1n`,
//! `Connect-Timeout-Ms: 0`, ...) as one that has passed: the call ends `DEADLINE_EXCEEDED`
//! before it starts (`context::call::effective_timeout`), as a gRPC server ends a call whose deadline is over.

pub mod batch;
pub mod connect;
pub mod grpc;
pub mod grpc_web;
pub mod json;
pub mod octanewebr;
pub mod sse;
pub mod ws;

use tonic::Status;

use crate::error::GatewayError;

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

/// `{"code":"OK","message":""}`, the final status object of streaming answers.
pub(crate) fn status_json(status: &Status) -> serde_json::Value {
    serde_json::json!({
        "code": crate::wire::codes::code_name(status.code()),
        "message": status.message(),
    })
}
