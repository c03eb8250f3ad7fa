//! `POST /batch`: many original-proxy JSON calls in one request, answered in order.
//!
//! The body is a JSON array of calls, each in the form of the original proxy's JSON route:
//!
//! ```json
//! [{"service": "ApiItem", "method": "name", "params": {"objectPtr": {"handle": "1"}}},
//!  {"method": "LiveLink/GetCamera", "id": "cam"}]
//! ```
//!
//! - `service` and `method` name the method as in `POST /{service}/{method}` (lenient
//!   service names); or `method` alone holds a whole path (`LiveLink/GetCamera`,
//!   `octaneapi.ApiItemService/name`).
//! - `params` is the request message (proto3 JSON with the JSON route's original-proxy
//!   leniencies: `objectPtr` for the only object reference, `0`/`1` for booleans); `message`
//!   and `body` are accepted as other names for it; absent = the empty message.
//! - `id` (any JSON value) is echoed in that call's answer; `timeout_ms` bounds that call
//!   (the request's `X-Timeout-Ms`/`grpc-timeout` headers bound every call).
//! - `json_names` (`proto`/`camel`) and `json_defaults` (`emit`/`omit`) choose that call's
//!   JSON shape; the request's `X-Json-Names`/`X-Json-Defaults` headers (or `?json_names=`,
//!   `?json_defaults=`) choose it for every call (see [`crate::context::json_shape`]).
//!
//! The answer is `200` with a JSON array in the same order, each element exactly the JSON
//! route's answer body — `{"success":true,"data":...}` or
//! `{"success":false,"error":"...","code":"..."}` — plus `"id"` when the call had one. One
//! call failing (unknown method, bad params, streaming method, upstream error) does not fail
//! the others. Calls run concurrently, at most [`MAX_CONCURRENT`] at once.
//!
//! Only unary methods can be batched; a streaming method is a per-call `INVALID_ARGUMENT`.
//! A body that is not an array is `400`; more than [`MAX_CALLS`] calls is `413`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use tonic::Code;

use super::json::{success_body, unary_call};
use crate::context::call::{
    effective_timeout, read_body, refuse_streaming, requested_timeout, unresolved_label, Carries,
};
use crate::context::{CallId, GatewayState, JsonRoute, ShapeChoice};
use crate::error::GatewayError;
use crate::metrics::Protocol;
use crate::wire::trace_context::CallTrace;

/// Most calls in one batch.
pub const MAX_CALLS: usize = 1000;
/// Most calls of one batch running at once.
pub const MAX_CONCURRENT: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    service: Option<String>,
    method: Option<String>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    timeout_ms: Option<u64>,
    json_names: Option<String>,
    json_defaults: Option<String>,
}

/// The route handler.
pub async fn handle(State(state): State<GatewayState>, request: Request) -> Response {
    let batch_id = request
        .extensions()
        .get::<CallId>()
        .map(|c| Arc::clone(&c.0))
        .unwrap_or_else(|| Arc::from("batch"));
    match run(&state, request, &batch_id).await {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(BatchError::TooMany(count)) => {
            let body = serde_json::json!({
                "success": false,
                "error": format!("a batch holds at most {MAX_CALLS} calls; this one has {count}"),
                "code": "RESOURCE_EXHAUSTED",
            });
            (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
        }
        Err(BatchError::Gateway(error)) => error.into_response(),
    }
}

enum BatchError {
    TooMany(usize),
    Gateway(GatewayError),
}

impl From<GatewayError> for BatchError {
    fn from(error: GatewayError) -> Self {
        BatchError::Gateway(error)
    }
}

async fn run(
    state: &GatewayState,
    request: Request,
    batch_id: &str,
) -> Result<Vec<u8>, BatchError> {
    let timeout = requested_timeout(request.headers())?;
    let batch_shape = ShapeChoice::of_request(request.headers(), request.uri())?;
    // Each call of the batch is a span of its own within the batch request's trace.
    let trace = request.extensions().get::<CallTrace>().cloned();
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
    state
        .metrics
        .add_bytes_in(Protocol::Json, body.len() as u64);
    let items: Vec<Box<RawValue>> = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::BadRequest(format!("the batch body must be a JSON array of calls: {e}"))
    })?;
    if items.len() > MAX_CALLS {
        return Err(BatchError::TooMany(items.len()));
    }
    let answers: Vec<Vec<u8>> = futures::stream::iter(items.into_iter().enumerate())
        .map(|(index, item)| {
            let call_id = format!("{batch_id}/{index}");
            let trace = trace.as_ref().map(CallTrace::child);
            one_call(state.clone(), item, timeout, batch_shape, call_id, trace)
        })
        .buffered(MAX_CONCURRENT)
        .collect()
        .await;
    let mut out = Vec::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (index, answer) in answers.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(answer);
    }
    out.push(b']');
    state
        .metrics
        .add_bytes_out(Protocol::Json, out.len() as u64);
    Ok(out)
}

/// One call of the batch, answered as the JSON route would (plus the item's `id`).
async fn one_call(
    state: GatewayState,
    item: Box<RawValue>,
    timeout: Option<Duration>,
    batch_shape: ShapeChoice,
    call_id: String,
    trace: Option<CallTrace>,
) -> Vec<u8> {
    let mut tracker = state.metrics.start_call(
        Protocol::Json,
        unresolved_label(),
        Arc::from(call_id.as_str()),
    );
    if let Some(trace) = trace {
        tracker.set_trace(trace);
    }
    let parsed: Result<Item<'_>, _> = serde_json::from_str(item.get());
    let id = parsed.as_ref().ok().and_then(|item| item.id);
    let outcome = match parsed {
        Err(error) => Err(GatewayError::BadRequest(format!(
            "a batch call must be an object {{\"service\", \"method\", \"params\"?, \"id\"?}}: {error}"
        ))),
        Ok(item) => {
            async {
                let resolved = resolve(&state, &item)?;
                tracker.set_method(Arc::clone(&resolved.label));
                let choice =
                    ShapeChoice::of_fields(item.json_names.as_deref(), item.json_defaults.as_deref())?;
                let shape = state.json_shape(JsonRoute::Batch, choice.or(batch_shape));
                let params = item.params.or(item.message).or(item.body);
                let body = params.map(|p| p.get().as_bytes()).unwrap_or_default();
                let timeout = match (timeout, item.timeout_ms.map(Duration::from_millis)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let timeout = effective_timeout(&state.upstream, timeout)?;
                let message =
                    unary_call(
                    &state,
                    &resolved.descriptor,
                    body,
                    timeout,
                    &call_id,
                    tracker.trace(),
                )
                .await?;
                Ok((message, shape))
            }
            .await
        }
    };
    match outcome {
        Ok((message, shape)) => {
            tracker.finish(Code::Ok, "");
            let body = success_body(&message, shape);
            match id {
                // `{"id":<id>,` + the rest of `{"success":true,...}`.
                Some(id) => {
                    let mut with_id = Vec::with_capacity(body.len() + id.get().len() + 8);
                    with_id.extend_from_slice(b"{\"id\":");
                    with_id.extend_from_slice(id.get().as_bytes());
                    with_id.push(b',');
                    with_id.extend_from_slice(body.get(1..).unwrap_or_default());
                    with_id
                }
                None => body,
            }
        }
        Err(error) => {
            tracker.finish(error.code(), &error.to_string());
            let mut body = error.json_body();
            if let Some(id) = id.and_then(|id| serde_json::from_str(id.get()).ok()) {
                body["id"] = id;
            }
            serde_json::to_vec(&body).unwrap_or_default()
        }
    }
}

fn resolve(
    state: &GatewayState,
    item: &Item<'_>,
) -> Result<crate::context::ResolvedMethod, GatewayError> {
    let method = item.method.as_deref().ok_or_else(|| {
        GatewayError::BadRequest("a batch call needs \"method\" (and usually \"service\")".into())
    })?;
    let resolved = match &item.service {
        Some(service) => state.resolve_method(service, method)?,
        None => state.resolve_path(method)?,
    };
    refuse_streaming(&resolved.descriptor, Carries::Unary, "POST /batch")?;
    Ok(resolved)
}
