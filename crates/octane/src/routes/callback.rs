//! The original proxy's callback endpoints: register-callback, callback-status, ping-client.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{json_error, RenderState};
use crate::hub::HubError;

/// `POST /render/register-callback` → `{"success": true, "callback_id": N, "status": {...}}`.
pub(crate) async fn register(State(state): State<RenderState>) -> Response {
    match state.hub.register().await {
        Ok(callback_id) => Json(json!({
            "success": true,
            "callback_id": callback_id,
            "status": status_json(&state),
        }))
        .into_response(),
        Err(error) => {
            let code = match error {
                HubError::Registration(_) | HubError::RegistrationTimeout(_) => {
                    StatusCode::BAD_GATEWAY
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let body = json!({
                "success": false,
                "error": error.to_string(),
                "status": status_json(&state),
            });
            (code, Json(body)).into_response()
        }
    }
}

/// `GET /render/callback-status` → `{"success": true, "status": {...}}`.
pub(crate) async fn status(State(state): State<RenderState>) -> Response {
    Json(json!({ "success": true, "status": status_json(&state) })).into_response()
}

/// The `status` object: the hub's status plus the SSE client count.
pub(crate) fn status_json(state: &RenderState) -> serde_json::Value {
    let mut status = serde_json::to_value(state.hub.status()).unwrap_or_else(|_| json!({}));
    if let Some(object) = status.as_object_mut() {
        object.insert("sse_clients".into(), json!(state.sse_client_count()));
    }
    status
}

/// `POST /render/ping-client` with `{"client_id": "..."}`: sends a `ping` event to that SSE
/// client. 400 without a client_id, 404 for an unknown one.
pub(crate) async fn ping_client(State(state): State<RenderState>, body: Bytes) -> Response {
    let client_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("client_id")
                .and_then(|id| id.as_str())
                .map(str::to_owned)
        });
    let Some(client_id) = client_id.filter(|id| !id.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "client_id is required: send {\"client_id\": \"<id from the connected event>\"}",
        );
    };
    let sender = state
        .sse_clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&client_id)
        .cloned();
    match sender {
        Some(sender) => {
            // A full channel means a ping is already pending: that one answers this request.
            let _ = sender.try_send(());
            Json(json!({
                "success": true,
                "message": format!("ping sent to client {client_id}"),
            }))
            .into_response()
        }
        None => json_error(
            StatusCode::NOT_FOUND,
            format!("no SSE client with client_id {client_id} is connected"),
        ),
    }
}
