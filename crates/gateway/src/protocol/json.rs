//! `POST /{Service}/{method}`: the original proxy's JSON route.
//!
//! The body is the request message as proto3 JSON (proto or lowerCamelCase field names,
//! 64-bit integers as numbers or strings); an empty body is the empty message. Any
//! `Content-Type` is accepted, as the original proxy did.
//!
//! Bodies get the original proxy's leniencies ([`JsonOptions::proxy_compat`]): a top-level
//! `objectPtr` stands for the request's only `ObjectRef` field whatever it is called, and `0`/`1`
//! are booleans. Only this route and `POST /batch` (whose calls are this route's) are lenient;
//! Connect, gRPC-Web, SSE and the WebSocket read strict proto3 JSON.
//!
//! - Unary methods answer `200 {"success":true,"data":<response>}`, the response in the
//!   request's JSON shape (`X-Json-Names`, `X-Json-Defaults`, `?json_names=`,
//!   `?json_defaults=`; by default proto field names with defaults, see
//!   [`crate::context::json_shape`]).
//! - Server-streaming methods answer `200` with `Content-Type: application/x-ndjson`: one line
//!   `{"data":<response>}` per message, then one final line
//!   `{"end":{"code":"OK","message":""}}` (or the failure's code and message). Errors found
//!   before the stream starts answer like unary failures.
//! - Client- and bidirectional-streaming methods answer 400: they need the WebSocket (`/ws`)
//!   or gRPC (gRPC-Web, Connect, pass-through).
//! - Failures answer `{"success":false,"error":"<text>","code":"<GRPC_CODE>"}` with the HTTP
//!   status of [`GatewayError::http_status`].

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use http::{header, HeaderValue, StatusCode};
use octaneweb_schema::{json_to_message_with, write_message_json, JsonOptions, JsonShape};
use prost_reflect::DynamicMessage;
use tonic::{Code, Streaming};

use super::status_json;
use crate::context::call::{
    effective_timeout, pump, read_body, requested_timeout, resolve_for_browser, upstream_request,
    StreamEvent,
};
use crate::context::{CallScope, GatewayState, JsonRoute, ShapeChoice, ShutdownSignal};
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Protocol};
use crate::wire::trace_context::CallTrace;

/// Content type of streamed answers.
pub const NDJSON: &str = "application/x-ndjson";

enum Answer {
    Unary(DynamicMessage, JsonShape),
    Stream(Box<Streaming<DynamicMessage>>, JsonShape),
}

/// The route handler.
pub async fn handle(
    scope: CallScope,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    let mut tracker = scope.track(Protocol::Json);
    let CallScope {
        state,
        id: call_id,
        shutdown,
        ..
    } = scope;
    match run(&state, path, request, &call_id, &mut tracker).await {
        Ok(Answer::Unary(message, shape)) => {
            let body = success_body(&message, shape);
            state
                .metrics
                .add_bytes_out(Protocol::Json, body.len() as u64);
            tracker.finish(Code::Ok, "");
            json_response(StatusCode::OK, body)
        }
        Ok(Answer::Stream(messages, shape)) => {
            ndjson_response(&state, messages, shape, shutdown, tracker)
        }
        Err(error) => {
            tracker.finish(error.code(), &error.to_string());
            error.into_response()
        }
    }
}

async fn run(
    state: &GatewayState,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
    call_id: &str,
    tracker: &mut CallTracker,
) -> Result<Answer, GatewayError> {
    let resolved = resolve_for_browser(state, path, tracker, "the JSON route")?;
    let descriptor = &resolved.descriptor;
    let timeout = effective_timeout(&state.upstream, requested_timeout(request.headers())?)?;
    let shape = state.json_shape(
        JsonRoute::Json,
        ShapeChoice::of_request(request.headers(), request.uri())?,
    );
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
    state
        .metrics
        .add_bytes_in(Protocol::Json, body.len() as u64);
    if descriptor.is_server_streaming() {
        let message = json_to_message_with(&descriptor.input(), &body, JsonOptions::PROXY_COMPAT)?;
        let (request, options) = upstream_request(message, timeout, call_id, tracker.trace());
        let response = state
            .upstream
            .server_streaming(descriptor, request, options)
            .await?;
        Ok(Answer::Stream(Box::new(response.into_inner()), shape))
    } else {
        unary_call(state, descriptor, &body, timeout, call_id, tracker.trace())
            .await
            .map(|message| Answer::Unary(message, shape))
    }
}

/// One unary call as the JSON route makes it: `body` (proto3 JSON with the original proxy's
/// leniencies, empty = empty message) parsed as the method's input and sent upstream with the deadline and call id. Shared with
/// `POST /batch`.
pub(crate) async fn unary_call(
    state: &GatewayState,
    descriptor: &prost_reflect::MethodDescriptor,
    body: &[u8],
    timeout: Option<std::time::Duration>,
    call_id: &str,
    trace: Option<&CallTrace>,
) -> Result<DynamicMessage, GatewayError> {
    let message = json_to_message_with(&descriptor.input(), body, JsonOptions::PROXY_COMPAT)?;
    let (request, options) = upstream_request(message, timeout, call_id, trace);
    let response = state.upstream.unary(descriptor, request, options).await?;
    Ok(response.into_inner())
}

/// `{"success":true,"data":<message>}` without building an intermediate wrapper value.
pub(crate) fn success_body(message: &DynamicMessage, shape: JsonShape) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"success\":true,\"data\":");
    write_message_json(message, shape, &mut body);
    body.push(b'}');
    body
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn ndjson_response(
    state: &GatewayState,
    messages: Box<Streaming<DynamicMessage>>,
    shape: JsonShape,
    shutdown: Option<ShutdownSignal>,
    tracker: CallTracker,
) -> Response {
    let metrics = Arc::clone(&state.metrics);
    let events = pump(*messages, shutdown);
    // The tracker lives in the stream: if the client disconnects, the body (and with it the
    // upstream stream) is dropped and the tracker records the call as cancelled.
    let mut tracker = Some(tracker);
    let lines = events.map(move |event| {
        let mut line = Vec::with_capacity(256);
        match event {
            StreamEvent::Message(message) => {
                line.extend_from_slice(b"{\"data\":");
                write_message_json(&message, shape, &mut line);
                line.push(b'}');
            }
            StreamEvent::End(status) => {
                let _ = serde_json::to_writer(
                    &mut line,
                    &serde_json::json!({ "end": status_json(&status) }),
                );
                if let Some(tracker) = tracker.take() {
                    tracker.finish(status.code(), status.message());
                }
            }
        }
        line.push(b'\n');
        metrics.add_bytes_out(Protocol::Json, line.len() as u64);
        Ok::<Bytes, Infallible>(Bytes::from(line))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(NDJSON)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(lines),
    )
        .into_response()
}
