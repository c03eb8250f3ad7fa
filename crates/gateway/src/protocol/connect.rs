//! The Connect protocol: unary (JSON or binary, POST or GET) and server streaming
//! (`application/connect+json` / `+proto` envelopes).
//!
//! (Skeleton: implemented by the wire-protocols work.)

use axum::extract::Request;
use axum::response::Response;

use crate::server::GatewayState;

/// Serve one Connect request.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let _ = (&state, &request);
    super::not_yet("Connect")
}
