//! gRPC-Web (`application/grpc-web`, `+proto`, `-text`) over HTTP/1.1 and HTTP/2, translated
//! to gRPC towards the upstream with payloads passed through as bytes.
//!
//! (Skeleton: implemented by the wire-protocols work.)

use axum::extract::Request;
use axum::response::Response;

use crate::server::GatewayState;

/// Serve one gRPC-Web request.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let _ = (&state, &request);
    super::not_yet("gRPC-Web")
}
