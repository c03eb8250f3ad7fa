//! `GET /render/stream`: the original proxy's Server-Sent Events stream.
//!
//! Events, each `data: <json>\n\n`: `connected` first, then the newest image if there is one,
//! then `newImage` per frame (8-bit RGBA, base64, type 0, pitch in pixels), `newStatistics`,
//! `renderFailure`, `projectManagerChanged`, and `ping` every ping interval or on
//! `/render/ping-client`. The image event is encoded once per frame and shared by every client.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::Stream;
use octaneweb_gateway::ShutdownSignal;
use serde_json::json;
use tokio::sync::mpsc;

use super::callback::status_json;
use super::{unavailable, RenderState};
use crate::encode::Format;
use crate::frame::unix_seconds_now;
use crate::hub::{HubEvent, Viewer};

/// Removes the client from the ping registry when its stream ends.
struct ClientGuard {
    state: RenderState,
    client_id: String,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.state
            .sse_clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.client_id);
    }
}

fn event(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

pub(crate) async fn stream(
    State(state): State<RenderState>,
    shutdown: Option<Extension<ShutdownSignal>>,
) -> Response {
    let viewer = match state.hub.viewer() {
        Ok(viewer) => viewer,
        Err(error) => return unavailable(error.to_string()),
    };
    let client_id = uuid::Uuid::new_v4().to_string();
    let (ping_tx, ping_rx) = mpsc::channel(1);
    state
        .sse_clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(client_id.clone(), ping_tx);
    let guard = ClientGuard {
        state: state.clone(),
        client_id,
    };
    let shutdown = shutdown.map(|Extension(signal)| signal);
    let body = Body::from_stream(events(state, viewer, guard, ping_rx, shutdown));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask reverse proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn events(
    state: RenderState,
    mut viewer: Viewer,
    guard: ClientGuard,
    mut ping_rx: mpsc::Receiver<()>,
    shutdown: Option<ShutdownSignal>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    async_stream::stream! {
        let guard = guard;
        // The server is shutting down: end the stream so the drain does not wait for it.
        let shutdown = ShutdownSignal::wait_opt(shutdown);
        tokio::pin!(shutdown);
        let mut events = state.hub.events();
        yield Ok(event(&json!({
            "type": "connected",
            "client_id": guard.client_id,
            "timestamp": unix_seconds_now(),
            "status": status_json(&state),
        })));
        let period = state.hub.config().sse_ping_interval.max(std::time::Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let tonemap = state.hub.config().default_tonemap;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                frame = viewer.next_frame() => {
                    match state.hub.encoded(&frame, Format::ProxyJson, tonemap).await {
                        Ok(encoded) => {
                            viewer.sent(&encoded);
                            yield Ok(encoded.message());
                        }
                        Err(error) => tracing::warn!(%error, "SSE image event not encoded"),
                    }
                }
                hub_event = events.next() => {
                    let value = match hub_event {
                        HubEvent::NewStatistics { callback_id, user_data, timestamp } => json!({
                            "type": "newStatistics", "callback_id": callback_id,
                            "user_data": user_data, "timestamp": timestamp,
                        }),
                        HubEvent::RenderFailure { callback_id, user_data, timestamp } => json!({
                            "type": "renderFailure", "callback_id": callback_id,
                            "user_data": user_data, "timestamp": timestamp,
                        }),
                        HubEvent::ProjectManagerChanged { timestamp } => json!({
                            "type": "projectManagerChanged", "timestamp": timestamp,
                        }),
                        // The original stream had no upstream event.
                        HubEvent::Upstream { .. } => continue,
                    };
                    yield Ok(event(&value));
                }
                _ = ping.tick() => {
                    yield Ok(event(&json!({"type": "ping", "timestamp": unix_seconds_now()})));
                }
                Some(()) = ping_rx.recv() => {
                    yield Ok(event(&json!({"type": "ping", "timestamp": unix_seconds_now()})));
                }
            }
        }
    }
}
