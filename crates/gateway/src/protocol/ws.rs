//! `GET /ws`: one WebSocket multiplexing many calls of all four RPC kinds.
//!
//! (Skeleton: implemented by the WebSocket work.)

use axum::extract::{Request, State};
use axum::response::Response;

use crate::server::GatewayState;

/// The route handler.
pub async fn handle(State(state): State<GatewayState>, request: Request) -> Response {
    let _ = (&state, &request);
    super::not_yet("the multiplexed WebSocket")
}
