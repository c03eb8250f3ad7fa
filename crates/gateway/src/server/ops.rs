//! Operations routes: health (as the original proxy), liveness, readiness, metrics, schema
//! (as JSON and as a descriptor set).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use super::GatewayState;

/// `GET /health`: `{"status":"ok","connected":bool}`, exactly as the original proxy. When no
/// call has reached the upstream yet, a readiness probe (bounded to ~2 s) decides.
pub async fn health(State(state): State<GatewayState>) -> Json<serde_json::Value> {
    let connected = state.upstream.is_connected() || state.upstream.check_ready().await;
    Json(json!({ "status": "ok", "connected": connected }))
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the upstream answers a health check, else 503 with the reason.
pub async fn readyz(State(state): State<GatewayState>) -> Response {
    if state.upstream.check_ready().await {
        Json(json!({ "status": "ready", "upstream": state.upstream.target() })).into_response()
    } else {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "upstream": state.upstream.target(),
                "reason": format!(
                    "the upstream at {} does not answer a gRPC health check",
                    state.upstream.target()
                ),
            })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<GatewayState>) -> Response {
    let text = state.metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// `GET /schema`: every service, method and message of the loaded schema as JSON.
pub async fn schema(State(state): State<GatewayState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.schema_json(),
    )
        .into_response()
}

/// `GET /schema.binpb`: the loaded schema as an encoded `google.protobuf.FileDescriptorSet`
/// (every file after its imports, source info kept), for code generators and tools such as
/// `protoc --descriptor_set_in`, `buf` or `grpcurl -protoset`.
pub async fn schema_descriptor_set(State(state): State<GatewayState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"schema.binpb\""),
            ),
        ],
        state.descriptor_set(),
    )
        .into_response()
}
