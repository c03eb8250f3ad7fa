//! Native gRPC pass-through: `application/grpc` requests over h2c on the gateway's port are
//! forwarded to the upstream as bytes, for any method (also ones the schema does not know).
//!
//! (Skeleton: implemented by the wire-protocols work; until then every call answers
//! `UNIMPLEMENTED` as a proper gRPC trailers-only response.)

use axum::extract::Request;
use axum::response::Response;

use crate::server::GatewayState;

/// Serve one gRPC request by forwarding it upstream.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let _ = (&state, &request);
    super::not_yet("gRPC pass-through")
}
