//! The render routes (axum): the WebSocket frame stream, single-frame endpoints and the
//! original proxy's callback/SSE endpoints. Merge [`routes`] into the gateway's router.

mod callback;
mod frame;
pub mod octanewebr;
mod sse;
mod ws;
mod ws_wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use octaneweb_gateway::{GatewayError, MethodPolicy};
use tokio::sync::mpsc;

use crate::hub::FrameHub;

/// Shared state of the render routes.
#[derive(Clone)]
pub(crate) struct RenderState {
    pub hub: FrameHub,
    /// Original-proxy SSE clients by `client_id`, for `/render/ping-client`.
    pub sse_clients: Arc<Mutex<HashMap<String, mpsc::Sender<()>>>>,
}

impl RenderState {
    fn sse_client_count(&self) -> usize {
        self.sse_clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The render routes for `hub`:
///
/// - `GET /render/ws`: WebSocket frame stream (binary header + image; JSON control and events)
/// - `GET /render/frame.png`, `/render/frame.jpg?quality=N`, `/render/frame.raw` (and
///   `/render/frame?encoding=...`): the newest frame once, with ETag / If-None-Match
/// - `POST /render/register-callback`, `GET /render/stream` (SSE),
///   `GET /render/callback-status`, `POST /render/ping-client`: the original proxy's shapes
pub fn routes(hub: FrameHub) -> Router {
    routes_with_policy(hub, &MethodPolicy::default())
}

/// [`routes`] under the gateway's method policy: when it refuses any method the render
/// subscription calls, every render route answers 403 `PERMISSION_DENIED` naming it.
pub fn routes_with_policy(hub: FrameHub, policy: &MethodPolicy) -> Router {
    let refused = refused_render_method(&hub, policy);
    let state = RenderState {
        hub,
        sse_clients: Arc::new(Mutex::new(HashMap::new())),
    };
    let router = Router::new()
        .route("/render/ws", get(ws::upgrade))
        .route("/render/frame", get(frame::any))
        .route("/render/frame.png", get(frame::png))
        .route("/render/frame.jpg", get(frame::jpeg))
        .route("/render/frame.jpeg", get(frame::jpeg))
        .route("/render/frame.raw", get(frame::raw))
        .route("/render/register-callback", post(callback::register))
        .route("/render/callback-status", get(callback::status))
        .route("/render/ping-client", post(callback::ping_client))
        .route("/render/stream", get(sse::stream))
        .with_state(state);
    match refused {
        None => router,
        Some(method) => router.route_layer(axum::middleware::from_fn(
            move |_request: axum::extract::Request, _next: axum::middleware::Next| {
                let method = method.clone();
                async move { GatewayError::MethodRefused { method }.into_response() }
            },
        )),
    }
}

/// The first method the frame subscription calls that `policy` refuses, if any.
fn refused_render_method(hub: &FrameHub, policy: &MethodPolicy) -> Option<String> {
    hub.upstream_methods()
        .into_iter()
        .find(|method| !policy.permits(method))
}

/// `{"success": false, "error": message}` with `status`.
pub(crate) fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "success": false, "error": message.into() });
    (status, Json(body)).into_response()
}

/// 503 with `Retry-After: 1` and a JSON error.
pub(crate) fn unavailable(message: impl Into<String>) -> Response {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
