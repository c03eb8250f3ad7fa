//! `GET /sse/{Service}/{method}?message=<url-encoded JSON>`: Server-Sent Events.
//!
//! For server-streaming methods, and unary methods marked `option idempotency_level =
//! NO_SIDE_EFFECTS` (one event, then the end); other unary methods get 405 naming POST, since
//! any web page can make a GET. The
//! request message is the `message` query parameter (absent = empty message); `timeout_ms`
//! sets a deadline, since `EventSource` cannot send headers.
//!
//! Each response message is one unnamed event whose `data:` is the message as proto3 JSON in
//! the request's shape (`?json_names=`, `?json_defaults=`, or the `X-Json-*` headers; by
//! default proto field names with defaults, see [`crate::context::json_shape`]). The stream
//! always finishes with one `event: end` whose data is `{"code":"OK","message":""}` or the
//! failure's gRPC code name and message (including failures of the upstream call itself);
//! clients should close the `EventSource` on it, or the browser reconnects. A comment line
//! is sent every 15 s to keep proxies from timing out. A client that disconnects cancels the
//! upstream call.
//!
//! Problems found before calling the upstream (unknown method, malformed `message`,
//! client-streaming method) answer with the JSON error body and HTTP status, not a stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt as _};
use http::{HeaderMap, Uri};
use octaneweb_schema::{json_to_message, write_message_json, JsonShape};
use prost_reflect::DynamicMessage;
use serde::Deserialize;
use tonic::{Code, Status, Streaming};

use super::status_json;
use crate::context::call::{
    effective_timeout, pump, requested_timeout, resolve_for_browser, upstream_request, StreamEvent,
};
use crate::context::{CallScope, GatewayState, JsonRoute, ShapeChoice, ShutdownSignal};
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Protocol};

/// Interval of keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Query parameters of the SSE route.
#[derive(Debug, Deserialize)]
pub struct SseQuery {
    /// The request message as JSON.
    pub message: Option<String>,
    /// Deadline in milliseconds.
    pub timeout_ms: Option<u64>,
}

enum Start {
    Unary(DynamicMessage),
    Stream(Box<Streaming<DynamicMessage>>),
    Failed(Status),
}

/// The route handler.
pub async fn handle(
    scope: CallScope,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<SseQuery>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut tracker = scope.track(Protocol::Sse);
    let CallScope {
        state,
        id: call_id,
        shutdown,
        ..
    } = scope;
    let (start, shape) =
        match start(&state, path, query, &uri, &headers, &call_id, &mut tracker).await {
            Ok(started) => started,
            Err(error) => {
                tracker.finish(error.code(), &error.to_string());
                return error.into_response();
            }
        };
    let events = events(&state, start, shape, shutdown, tracker);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    response.headers_mut().insert(
        http::header::HeaderName::from_static("x-accel-buffering"),
        http::HeaderValue::from_static("no"),
    );
    response
}

async fn start(
    state: &GatewayState,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<SseQuery>, QueryRejection>,
    uri: &Uri,
    headers: &HeaderMap,
    call_id: &str,
    tracker: &mut CallTracker,
) -> Result<(Start, JsonShape), GatewayError> {
    let resolved = resolve_for_browser(state, path, tracker, "Server-Sent Events")?;
    let descriptor = &resolved.descriptor;
    // Any page can make a GET (an image, a link): it may only read.
    if !descriptor.is_server_streaming() && !octaneweb_schema::has_no_side_effects(descriptor) {
        return Err(GatewayError::UnsafeGet {
            method: descriptor.full_name().to_owned(),
        });
    }
    let Query(query) =
        query.map_err(|e| GatewayError::BadRequest(format!("bad query string: {e}")))?;
    let shape = state.json_shape(JsonRoute::Sse, ShapeChoice::of_request(headers, uri)?);
    let text = query.message.unwrap_or_default();
    if text.len() > state.config.max_body_bytes {
        return Err(GatewayError::BodyTooLarge {
            limit: state.config.max_body_bytes,
        });
    }
    state.metrics.add_bytes_in(Protocol::Sse, text.len() as u64);
    let message = json_to_message(&descriptor.input(), text.as_bytes())?;
    let mut timeout = requested_timeout(headers)?;
    if let Some(ms) = query.timeout_ms {
        let asked = Duration::from_millis(ms);
        timeout = Some(timeout.map_or(asked, |t| t.min(asked)));
    }
    let timeout = effective_timeout(&state.upstream, timeout)?;
    let (request, options) = upstream_request(message, timeout, call_id, tracker.trace());
    let start = if descriptor.is_server_streaming() {
        match state
            .upstream
            .server_streaming(descriptor, request, options)
            .await
        {
            Ok(response) => Start::Stream(Box::new(response.into_inner())),
            Err(status) => Start::Failed(status),
        }
    } else {
        match state.upstream.unary(descriptor, request, options).await {
            Ok(response) => Start::Unary(response.into_inner()),
            Err(status) => Start::Failed(status),
        }
    };
    Ok((start, shape))
}

fn events(
    state: &GatewayState,
    start: Start,
    shape: JsonShape,
    shutdown: Option<ShutdownSignal>,
    tracker: CallTracker,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let metrics = Arc::clone(&state.metrics);
    let source: futures::stream::BoxStream<'static, StreamEvent> = match start {
        Start::Unary(message) => futures::stream::iter([
            StreamEvent::Message(message),
            StreamEvent::End(Status::new(Code::Ok, "")),
        ])
        .boxed(),
        Start::Failed(status) => futures::stream::iter([StreamEvent::End(status)]).boxed(),
        Start::Stream(messages) => pump(*messages, shutdown).boxed(),
    };
    // Owned by the stream: dropped with it when the client goes away (recorded as cancelled).
    let mut tracker = Some(tracker);
    source.map(move |event| {
        let event = match event {
            StreamEvent::Message(message) => {
                let mut data = Vec::with_capacity(256);
                write_message_json(&message, shape, &mut data);
                // serde_json writes UTF-8.
                let data = String::from_utf8(data).unwrap_or_default();
                metrics.add_bytes_out(Protocol::Sse, data.len() as u64);
                Event::default().data(data)
            }
            StreamEvent::End(status) => {
                if let Some(tracker) = tracker.take() {
                    tracker.finish(status.code(), status.message());
                }
                Event::default()
                    .event("end")
                    .data(status_json(&status).to_string())
            }
        };
        Ok(event)
    })
}
