//! The routes of octaneWebR's Node.js server that know Octane, so its React client runs
//! against octaneweb with no Node.js server (see docs/octanewebr.md). Its call route,
//! `POST /api/grpc/{service}/{method}`, is the gateway's
//! ([`octaneweb_gateway::protocol::octanewebr`]); every Octane call made here goes through
//! that module's [`call`], so it is resolved, refused by the method policy and counted like
//! one made there, and fails in the same format ([`error_response`]).
//!
//! - `GET /api/health`: `{status, octane, server, timestamp}`, from `rootNodeGraph`;
//! - `GET /api/system/info`: the render statistics bar's figures;
//! - `GET /api/device/info?index=N`: one device's name, ray-tracing hardware and memory;
//! - `GET /api/scene/geometry`: `getGeometryStatistics`'s `stats`;
//! - `GET /api/callbacks`: a WebSocket of `{type, data, timestamp}` messages fed by the
//!   frame hub: `newImage`, `newStatistics`, `renderFailure`, `projectManagerChanged`, and
//!   `pong` for a `ping`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::Extensions;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use octaneweb_gateway::context::CallScope;
use octaneweb_gateway::protocol::octanewebr::{call, error_response};
use octaneweb_gateway::{ConnectionSlot, GatewayError, GatewayState, MethodPolicy, ShutdownSignal};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ws::{MAX_CONTROL_BYTES, SEND_TIMEOUT};
use super::{refused_render_method, unavailable};
use crate::encode::Format;
use crate::hub::{FrameHub, HubEvent, Viewer};

/// What the routes share.
#[derive(Clone)]
struct WebrState {
    hub: FrameHub,
    gateway: GatewayState,
    /// The statistics fetched for the newest `newStatistics` event, by the event's arrival
    /// time: one upstream call per event, whatever the number of callback sockets.
    statistics: Arc<tokio::sync::Mutex<Option<FetchedStatistics>>>,
}

/// An event's key (its arrival time's bits) and the statistics fetched for it (`None`: the
/// call failed).
type FetchedStatistics = (u64, Option<Value>);

impl WebrState {
    fn scope(&self, extensions: &Extensions) -> CallScope {
        CallScope::new(self.gateway.clone(), extensions)
    }
}

/// octaneWebR's server's Octane routes, calling through `gateway` and streaming from `hub`.
/// `/api/callbacks` is refused (403) when the method policy refuses a method the frame
/// subscription calls, as the render routes are.
pub fn routes(hub: FrameHub, gateway: GatewayState) -> Router {
    let policy: &MethodPolicy = &gateway.config.methods;
    let refused = refused_render_method(&hub, policy);
    let state = WebrState {
        hub,
        gateway,
        statistics: Arc::default(),
    };
    let callbacks = Router::new()
        .route("/api/callbacks", get(callbacks))
        .with_state(state.clone());
    let callbacks = match refused {
        None => callbacks,
        Some(method) => callbacks.route_layer(axum::middleware::from_fn(
            move |_request: axum::extract::Request, _next: axum::middleware::Next| {
                let method = method.clone();
                async move { GatewayError::MethodRefused { method }.into_response() }
            },
        )),
    };
    Router::new()
        .route("/api/health", get(health))
        .route("/api/system/info", get(system_info))
        .route("/api/device/info", get(device_info))
        .route("/api/scene/geometry", get(scene_geometry))
        .with_state(state)
        .merge(callbacks)
}

/// `Date.prototype.toISOString`'s form, which its server's timestamps have.
fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `Date.now()`: milliseconds since the Unix epoch.
fn millis_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 200 whether or not Octane answers, as its server does (its client only checks that the
/// server is up); `octane` says whether `rootNodeGraph` answered. Its server asked
/// `getPing`, which Octane's API does not have; its Vite plugin asks `rootNodeGraph`.
async fn health(State(state): State<WebrState>, extensions: Extensions) -> Response {
    let scope = state.scope(&extensions);
    let reached = call(&scope, "ApiProjectManager", "rootNodeGraph", &json!({})).await;
    if let Err(error) = &reached {
        tracing::debug!(%error, "octaneWebR health: Octane did not answer");
    }
    let healthy = reached.is_ok();
    Json(json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "octane": if healthy { "connected" } else { "disconnected" },
        "server": "octaneweb",
        "timestamp": iso_now(),
    }))
    .into_response()
}

/// A call whose answer's `field` is the figure wanted.
async fn field_of(
    scope: &CallScope,
    service: &str,
    method: &str,
    request: Value,
    field: &str,
) -> Result<Value, GatewayError> {
    let answer = call(scope, service, method, &request).await?;
    Ok(answer.get(field).cloned().unwrap_or(Value::Null))
}

/// A figure its server shows a stand-in for when Octane cannot give it (an older Octane
/// without the method): the call's failure is logged, the stand-in used.
fn or_stand_in(figure: Result<Value, GatewayError>, what: &str, stand_in: Value) -> Value {
    match figure {
        Ok(Value::Null) => stand_in,
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(%error, "octaneWebR: no {what} from Octane");
            stand_in
        }
    }
}

/// A 64-bit count as proto-loader gives it (a string) or a number, as a float.
fn count(value: &Value) -> f64 {
    match value {
        Value::String(text) => text.parse().unwrap_or(0.0),
        other => other.as_f64().unwrap_or(0.0),
    }
}

/// Bytes to GiB, one decimal, as its server rounds them.
fn gigabytes(bytes: &Value) -> f64 {
    (count(bytes) / f64::from(1u32 << 30) * 10.0).round() / 10.0
}

async fn geometry_stats(scope: &CallScope) -> Result<Value, GatewayError> {
    field_of(
        scope,
        "ApiRenderEngine",
        "getGeometryStatistics",
        json!({}),
        "stats",
    )
    .await
}

async fn memory_usage(scope: &CallScope, device: u32) -> Result<Value, GatewayError> {
    field_of(
        scope,
        "ApiRenderEngine",
        "getMemoryUsage",
        json!({ "deviceIx": device }),
        "memUsage",
    )
    .await
}

async fn device_name(scope: &CallScope, device: u32) -> Value {
    let name = field_of(
        scope,
        "ApiRenderEngine",
        "getDeviceName",
        json!({ "index": device }),
        "result",
    )
    .await;
    or_stand_in(name, "device name", json!("Unknown GPU"))
}

async fn hardware_ray_tracing(scope: &CallScope, device: u32) -> Value {
    let uses = field_of(
        scope,
        "ApiRenderEngine",
        "deviceUsesHardwareRayTracing",
        json!({ "index": device }),
        "result",
    )
    .await;
    or_stand_in(uses, "hardware ray tracing flag", json!(false))
}

/// `{primitiveCount, meshCount, gpuName, hasHardwareRT, totalMemoryGB, octaneVersion}` for
/// device 0. Geometry and memory are required (500 naming the failure without them); the
/// device name, the ray-tracing flag and the version fall back to its server's stand-ins.
/// `meshCount` is 1, as its server answers (it has no count of meshes).
async fn system_info(State(state): State<WebrState>, extensions: Extensions) -> Response {
    let scope = state.scope(&extensions);
    let (geometry, memory, gpu_name, hardware_rt, version) = tokio::join!(
        geometry_stats(&scope),
        memory_usage(&scope, 0),
        device_name(&scope, 0),
        hardware_ray_tracing(&scope, 0),
        field_of(&scope, "ApiInfo", "octaneName", json!({}), "result"),
    );
    let (geometry, memory) = match (geometry, memory) {
        (Ok(geometry), Ok(memory)) => (geometry, memory),
        (Err(error), _) | (_, Err(error)) => return error_response(&error, None),
    };
    let primitives: f64 = [
        "triCount",
        "dispTriCount",
        "hairSegCount",
        "sphereCount",
        "emitPriCount",
    ]
    .iter()
    .map(|key| count(&geometry[*key]))
    .sum();
    Json(json!({
        "primitiveCount": primitives as u64,
        "meshCount": 1,
        "gpuName": gpu_name,
        "hasHardwareRT": hardware_rt,
        "totalMemoryGB": gigabytes(&memory["totalDeviceMemory"]),
        "octaneVersion": or_stand_in(version, "Octane version", json!("Unknown Version")),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DeviceQuery {
    index: Option<String>,
}

/// `{index, name, hasHardwareRT, memory: {used, free, total, totalGB}}`; the byte counts
/// are strings, as proto-loader gives 64-bit values.
async fn device_info(
    State(state): State<WebrState>,
    query: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
    extensions: Extensions,
) -> Response {
    let index = match query {
        Ok(Query(DeviceQuery { index: None })) => Ok(0),
        Ok(Query(DeviceQuery { index: Some(text) })) => text.trim().parse::<u32>().map_err(|_| {
            GatewayError::BadRequest(format!(
                "device index {text:?} is not a whole number from 0 up (?index=0 is the first device)"
            ))
        }),
        Err(error) => Err(GatewayError::BadRequest(format!("bad query: {error}"))),
    };
    let index = match index {
        Ok(index) => index,
        Err(error) => return error_response(&error, None),
    };
    let scope = state.scope(&extensions);
    let (name, hardware_rt, memory) = tokio::join!(
        device_name(&scope, index),
        hardware_ray_tracing(&scope, index),
        memory_usage(&scope, index),
    );
    let memory = match memory {
        Ok(memory) => memory,
        Err(error) => return error_response(&error, None),
    };
    Json(json!({
        "index": index,
        "name": name,
        "hasHardwareRT": hardware_rt,
        "memory": {
            "used": memory["usedDeviceMemory"],
            "free": memory["freeDeviceMemory"],
            "total": memory["totalDeviceMemory"],
            "totalGB": gigabytes(&memory["totalDeviceMemory"]),
        },
    }))
    .into_response()
}

/// `getGeometryStatistics`'s `stats`, in proto-loader's shape.
async fn scene_geometry(State(state): State<WebrState>, extensions: Extensions) -> Response {
    match geometry_stats(&state.scope(&extensions)).await {
        Ok(stats) => Json(stats).into_response(),
        Err(error) => error_response(&error, None),
    }
}

async fn callbacks(
    State(state): State<WebrState>,
    upgrade: WebSocketUpgrade,
    shutdown: Option<Extension<ShutdownSignal>>,
    slot: Option<Extension<ConnectionSlot>>,
    extensions: Extensions,
) -> Response {
    let viewer = match state.hub.viewer() {
        Ok(viewer) => viewer,
        Err(error) => return unavailable(error.to_string()),
    };
    let scope = state.scope(&extensions);
    upgrade
        .max_message_size(MAX_CONTROL_BYTES)
        .max_frame_size(MAX_CONTROL_BYTES)
        .on_upgrade(move |socket| async move {
            // The socket counts against the connection caps until it closes.
            let _slot = slot;
            serve(socket, viewer, state, scope, shutdown.map(|Extension(s)| s)).await;
        })
}

/// `{type, data, timestamp}`, as its server sends every message.
fn message(kind: &str, data: Value) -> Message {
    Message::Text(
        json!({ "type": kind, "data": data, "timestamp": millis_now() })
            .to_string()
            .into(),
    )
}

/// What the client sent, answered: `pong` for `ping`; `subscribe` (sent on connect) needs
/// nothing; anything else is named back as an error the stream survives.
fn answer_to(text: &str) -> Option<Message> {
    let kind = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| value.get("type").and_then(Value::as_str).map(str::to_owned));
    let error = match kind.as_deref() {
        Some("ping") => {
            let pong = json!({ "type": "pong", "timestamp": millis_now() });
            return Some(Message::Text(pong.to_string().into()));
        }
        Some("subscribe") => return None,
        Some(other) => format!("unknown message type {other:?} (expected ping or subscribe)"),
        None => "messages must be JSON objects with a string \"type\" (ping or subscribe)".into(),
    };
    Some(Message::Text(
        json!({ "type": "error", "message": error })
            .to_string()
            .into(),
    ))
}

/// The frame's `newImage` message (encoded once per frame and shared by every callback
/// socket, the bytes handed to each socket as they are): its `render_images` are what
/// octaneWebR's viewport decodes (8-bit RGBA, base64, pitch = width).
fn image_message(message: bytes::Bytes) -> Result<Message, std::str::Utf8Error> {
    Utf8Bytes::try_from(message).map(Message::Text)
}

/// `newStatistics`'s data: the render's statistics, fetched as its server does, once per
/// event (`arrived`: the event's arrival time, the same for every socket): the first socket
/// to ask calls the upstream, the others wait for and reuse its answer.
async fn statistics_message(
    state: &WebrState,
    scope: &CallScope,
    arrived: f64,
    callback_id: i32,
    user_data: u64,
) -> Option<Message> {
    let key = arrived.to_bits();
    let statistics = {
        let mut last = state.statistics.lock().await;
        match &*last {
            Some((seen, statistics)) if *seen == key => statistics.clone(),
            _ => {
                let fetched = call(scope, "ApiRenderEngine", "getRenderStatistics", &json!({}))
                    .await
                    .map_err(
                        |error| tracing::debug!(%error, "octaneWebR newStatistics: no statistics"),
                    )
                    .ok()
                    .map(|answer| answer["statistics"].clone());
                *last = Some((key, fetched.clone()));
                fetched
            }
        }
    }?;
    Some(message(
        "newStatistics",
        json!({
            "statistics": statistics,
            "callback_id": callback_id,
            "user_data": user_data.to_string(),
            "timestamp": millis_now(),
        }),
    ))
}

/// Sends `message`, or fails if the client takes nothing for [`SEND_TIMEOUT`].
async fn send(socket: &mut WebSocket, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::debug!(%error, "octaneWebR callback socket closed");
            Err(())
        }
        Err(_) => {
            tracing::debug!("octaneWebR callback socket stalled");
            Err(())
        }
    }
}

async fn serve(
    mut socket: WebSocket,
    mut viewer: Viewer,
    state: WebrState,
    scope: CallScope,
    shutdown: Option<ShutdownSignal>,
) {
    let shutdown = ShutdownSignal::wait_opt(shutdown);
    tokio::pin!(shutdown);
    let mut events = state.hub.events();
    let tonemap = state.hub.config().default_tonemap;
    loop {
        let outgoing = tokio::select! {
            _ = &mut shutdown => {
                let close = CloseFrame { code: 1001, reason: "server shutting down".into() };
                let _ = send(&mut socket, Message::Close(Some(close))).await;
                return;
            }
            frame = viewer.next_frame() => {
                match state.hub.encoded(&frame, Format::CallbackJson, tonemap).await {
                    Ok(encoded) => match image_message(encoded.message()) {
                        Ok(image) => {
                            viewer.sent(&encoded);
                            Some(image)
                        }
                        Err(error) => {
                            tracing::warn!(%error, "octaneWebR image event is not text");
                            None
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "octaneWebR image event not encoded");
                        None
                    }
                }
            }
            event = events.next() => match event {
                HubEvent::NewStatistics { callback_id, user_data, timestamp } => {
                    statistics_message(&state, &scope, timestamp, callback_id, user_data).await
                }
                HubEvent::RenderFailure { callback_id, user_data, .. } => Some(message(
                    "renderFailure",
                    json!({ "callback_id": callback_id, "user_data": user_data.to_string(),
                            "timestamp": millis_now() }),
                )),
                HubEvent::ProjectManagerChanged { .. } => Some(message(
                    "projectManagerChanged",
                    json!({ "timestamp": millis_now() }),
                )),
                // Its server had no such message.
                HubEvent::Upstream { .. } => None,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => answer_to(text.as_str()),
                Some(Ok(Message::Binary(_))) => Some(Message::Text(
                    json!({ "type": "error", "message": "binary messages are not understood; send JSON text (ping or subscribe)" })
                        .to_string()
                        .into(),
                )),
                // Pings are answered by the socket itself; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(error)) => {
                    // Oversized or malformed: the library has closed with the right code.
                    tracing::debug!(%error, "octaneWebR callback socket: bad message");
                    return;
                }
            },
        };
        if let Some(outgoing) = outgoing {
            if send(&mut socket, outgoing).await.is_err() {
                return;
            }
        }
    }
}
