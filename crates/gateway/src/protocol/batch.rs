//! `POST /batch`: many original-proxy JSON calls in one request, answered in order.
//!
//! (Skeleton: implemented by the WebSocket work.)

use axum::extract::{Request, State};
use axum::response::Response;

use crate::server::GatewayState;

/// The route handler.
pub async fn handle(State(state): State<GatewayState>, request: Request) -> Response {
    let _ = (&state, &request);
    super::not_yet("POST /batch")
}
