//! The multiplexed WebSocket `/ws` over real sockets: every RPC kind against the reference
//! render server, interleaving, cancellation reaching the upstream, half-close, flow control
//! with a slow reader, limits, bad frames and the binary frame form.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, Stream, StreamExt as _};
use octaneweb_gateway::context::WsLimits;
use octaneweb_gateway::GatewayConfig;
use octaneweb_proto::gen1::octaneapi as gen1;
use octaneweb_proto::octaneapi::stream_callback_service_server::{
    StreamCallbackService, StreamCallbackServiceServer,
};
use octaneweb_proto::octaneapi::StreamCallbackRequest;
use octaneweb_schema::{Schema, SchemaBuilder};
use prost::Message as _;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tonic::{Request, Response, Status};

use crate::common::*;
use crate::counting_upstream::{start_counting_server, wait_for_open};

/// A WebSocket client on a gateway's `/ws`.
pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for another call's frames, by id text.
    pending: HashMap<String, Vec<Value>>,
}

/// The frames of one finished call.
#[derive(Debug)]
pub struct Finished {
    pub headers: Option<Value>,
    pub messages: Vec<Value>,
    pub end: Value,
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Ws {
    /// A client on a socket opened elsewhere (with headers of the test's choosing).
    pub fn wrap(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Ws {
        Ws {
            socket,
            pending: HashMap::new(),
        }
    }

    pub async fn connect(gateway: &GatewayHandle) -> Ws {
        let url = gateway.url("/ws").replacen("http://", "ws://", 1);
        let (socket, response) = tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .expect("connect in time")
        .expect("WebSocket handshake");
        assert_eq!(response.status(), 101);
        Ws {
            socket,
            pending: HashMap::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// The next data or close frame (pings are answered by tungstenite).
    pub async fn next_message(&mut self) -> Message {
        loop {
            let message = tokio::time::timeout(EXCHANGE_TIMEOUT, self.socket.next())
                .await
                .expect("a frame in time")
                .expect("socket open")
                .expect("frame");
            match message {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// The next text frame as JSON (from the pending ones first).
    pub async fn next(&mut self) -> Value {
        match self.next_message().await {
            Message::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame of call `id` (frames of other calls are kept for later).
    pub async fn next_for(&mut self, id: &Value) -> Value {
        let key = id_text(id);
        if let Some(frames) = self.pending.get_mut(&key) {
            if !frames.is_empty() {
                return frames.remove(0);
            }
        }
        loop {
            let frame = self.next().await;
            let frame_key = frame.get("id").map(id_text).unwrap_or_default();
            if frame_key == key {
                return frame;
            }
            self.pending.entry(frame_key).or_default().push(frame);
        }
    }

    /// True if an end frame of call `id` was read while waiting for other calls' frames.
    pub fn has_pending_end(&self, id: &Value) -> bool {
        self.pending
            .get(&id_text(id))
            .is_some_and(|frames| frames.iter().any(|f| f.get("end").is_some()))
    }

    /// Read call `id` to its end frame.
    pub async fn finish(&mut self, id: &Value) -> Finished {
        let mut headers = None;
        let mut messages = Vec::new();
        loop {
            let frame = self.next_for(id).await;
            if let Some(end) = frame.get("end") {
                return Finished {
                    headers,
                    messages,
                    end: end.clone(),
                };
            } else if let Some(h) = frame.get("headers") {
                assert!(headers.is_none(), "headers twice: {frame}");
                assert!(messages.is_empty(), "headers after a message: {frame}");
                headers = Some(h.clone());
            } else if let Some(m) = frame.get("message") {
                messages.push(m.clone());
            } else {
                panic!("unexpected frame for {id}: {frame}");
            }
        }
    }

    /// The next socket-level error frame's `error` object (call frames read meanwhile are
    /// kept for [`Ws::next_for`]).
    pub async fn next_error(&mut self) -> Value {
        loop {
            let frame = self.next().await;
            if let Some(error) = frame.get("error") {
                return error.clone();
            }
            let key = frame
                .get("id")
                .map(id_text)
                .unwrap_or_else(|| panic!("expected an error frame, got {frame}"));
            self.pending.entry(key).or_default().push(frame);
        }
    }
}

fn reflection_schema() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in set")
        .add_descriptor_set("reflection", tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .expect("reflection set");
    builder.build().expect("schema")
}

pub fn gen1_schema() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("gen1", octaneweb_proto::DESCRIPTOR_SET_GEN1)
        .expect("gen1 set");
    builder.build().expect("schema")
}

async fn gateway_with_limits(target: &str, limits: WsLimits) -> GatewayHandle {
    start_gateway_with(
        target,
        GatewayOptions {
            config: GatewayConfig {
                websocket: limits,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn unary_call_has_headers_one_message_and_ok_end() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    for (id, method) in [
        (json!(1), "LiveLink/GetCamera"),
        (json!("two"), "livelinkapi.LiveLinkService/GetCamera"),
        (json!(3), "/livelinkapi.LiveLinkService/GetCamera"),
    ] {
        ws.send(json!({"id": id, "method": method, "metadata": {"x-note": "hi"}}))
            .await;
        let call = ws.finish(&id).await;
        let headers = call.headers.expect("headers frame");
        // The render server sends no metadata of its own; content-type and date describe
        // the HTTP/2 response and are not passed on.
        assert_eq!(headers, json!({}));
        assert_eq!(call.messages.len(), 1);
        assert!(
            call.messages[0]["position"].is_object(),
            "{:?}",
            call.messages
        );
        assert_eq!(
            call.end,
            json!({"code": "OK", "message": "", "details": [], "trailers": {}})
        );
    }
    let metrics = gateway.state.metrics.clone();
    assert_eq!(
        metrics.calls(
            octaneweb_gateway::Protocol::WebSocket,
            "livelinkapi.LiveLinkService/GetCamera",
            tonic::Code::Ok
        ),
        3
    );
}

#[tokio::test]
async fn server_stream_delivers_messages_until_cancelled() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    let id = json!("cb");
    ws.send(json!({"id": id, "method": "StreamCallback/callbackChannel"}))
        .await;
    let headers = ws.next_for(&id).await;
    assert!(headers.get("headers").is_some(), "{headers}");
    for _ in 0..2 {
        let frame = ws.next_for(&id).await;
        let message = &frame["message"];
        assert!(
            message.as_object().is_some_and(|m| !m.is_empty()),
            "{frame}"
        );
    }
    ws.send(json!({"id": id, "cancel": true})).await;
    let end = ws.finish(&id).await.end;
    assert_eq!(end["code"], "CANCELLED", "{end}");
    // The id is free again once its end frame arrived.
    ws.send(json!({"id": id, "method": "LiveLink/GetCamera"}))
        .await;
    assert_eq!(ws.finish(&id).await.end["code"], "OK");
}

#[tokio::test]
async fn client_stream_camera_then_get_camera_shows_the_last_one() {
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    let id = json!(10);
    ws.send(json!({"id": id, "method": "LiveLink/StreamCamera",
                   "message": {"position": {"x": 1.0, "y": 2.0, "z": 3.0}}}))
        .await;
    for step in 1..=5 {
        let x = 1.0 + f64::from(step);
        ws.send(json!({"id": id, "message": {"position": {"x": x, "y": 2.0, "z": 9.5}}}))
            .await;
    }
    ws.send(json!({"id": id, "half_close": true})).await;
    let call = ws.finish(&id).await;
    assert_eq!(call.end["code"], "OK", "{:?}", call);
    assert_eq!(
        call.messages.len(),
        1,
        "one StreamStatus: {:?}",
        call.messages
    );
    assert!(
        call.messages[0]["message"].is_string(),
        "{:?}",
        call.messages
    );

    ws.send(json!({"id": 11, "method": "LiveLink/GetCamera"}))
        .await;
    let camera = ws.finish(&json!(11)).await.messages.remove(0);
    assert_eq!(camera["position"], json!({"x": 6.0, "y": 2.0, "z": 9.5}));
    server.stop().await;
}

#[tokio::test]
async fn bidi_reflection_answers_each_request_before_half_close() {
    // Reflection left to the upstream (as under --reflect): a bidirectional call to it.
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            schema: reflection_schema(),
            config: GatewayConfig {
                reflection: octaneweb_gateway::ReflectionAnswers::Upstream,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    let id = json!("refl");
    ws.send(
        json!({"id": id, "method": "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                   "message": {"list_services": ""}}),
    )
    .await;
    let headers = ws.next_for(&id).await;
    assert!(headers.get("headers").is_some(), "{headers}");
    let first = ws.next_for(&id).await;
    let services = first["message"]["list_services_response"]["service"]
        .as_array()
        .unwrap_or_else(|| panic!("{first}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert!(
        services.contains(&"livelinkapi.LiveLinkService".to_owned()),
        "{services:?}"
    );
    // A second request on the same stream, answered while the stream stays open.
    ws.send(
        json!({"id": id, "message": {"file_containing_symbol": "livelinkapi.LiveLinkService"}}),
    )
    .await;
    let second = ws.next_for(&id).await;
    assert!(
        second["message"]["file_descriptor_response"].is_object(),
        "{second}"
    );
    ws.send(json!({"id": id, "half_close": true})).await;
    let rest = ws.finish(&id).await;
    assert!(rest.messages.is_empty(), "{rest:?}");
    assert_eq!(rest.end["code"], "OK");
    assert!(
        gateway.state.upstream.call_stats().answers >= 1,
        "went upstream"
    );
}

#[tokio::test]
async fn many_calls_interleave_on_one_socket() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": "s1", "method": "StreamCallback/callbackChannel"}))
        .await;
    ws.send(json!({"id": "s2", "method": "StreamCallback/callbackChannel"}))
        .await;
    for n in 0..30 {
        let method = if n % 2 == 0 {
            "LiveLink/GetCamera"
        } else {
            "ApiProjectManager/rootNodeGraph"
        };
        ws.send(json!({"id": n, "method": method})).await;
    }
    for n in 0..30 {
        let call = ws.finish(&json!(n)).await;
        assert_eq!(call.end["code"], "OK", "call {n}: {call:?}");
        assert_eq!(call.messages.len(), 1);
        if n % 2 == 0 {
            assert!(call.messages[0]["position"].is_object());
        } else {
            assert!(call.messages[0]["result"]["handle"].is_string());
        }
    }
    for stream in ["s1", "s2"] {
        let id = json!(stream);
        let headers = ws.next_for(&id).await;
        assert!(headers.get("headers").is_some());
        assert!(ws.next_for(&id).await.get("message").is_some());
        ws.send(json!({"id": id, "cancel": true})).await;
        assert_eq!(ws.finish(&id).await.end["code"], "CANCELLED");
    }
    assert_eq!(gateway.state.websocket_stats().open_sockets(), 1);
}

#[tokio::test]
async fn cancel_and_socket_close_reach_the_upstream() {
    let (addr, mut open) = start_counting_server().await;
    let gateway = start_gateway(&addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    let id = json!(1);
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel"}))
        .await;
    // The upstream's metadata, `-bin` values in base64; not its content-type or date.
    let headers = ws.next_for(&id).await;
    assert_eq!(
        headers,
        json!({"id": 1, "headers": {"x-stream-kind": "counting", "x-stream-tag-bin": "AAEC"}})
    );
    let first = ws.next_for(&id).await;
    assert_eq!(
        first["message"]["newStatistics"]["user_data"], "1",
        "{first}"
    );
    wait_for_open(&mut open, 1).await;
    ws.send(json!({"id": 1, "cancel": true})).await;
    wait_for_open(&mut open, 0).await;
    assert_eq!(ws.finish(&id).await.end["code"], "CANCELLED");

    // Two streams, then the socket goes away: both upstream calls end.
    ws.send(json!({"id": 2, "method": "StreamCallback/callbackChannel"}))
        .await;
    ws.send(json!({"id": 3, "method": "StreamCallback/callbackChannel"}))
        .await;
    wait_for_open(&mut open, 2).await;
    drop(ws);
    wait_for_open(&mut open, 0).await;
    let stats_state = gateway.state.clone();
    eventually("the socket to be counted closed", || {
        let state = stats_state.clone();
        async move {
            state.websocket_stats().open_sockets() == 0 && state.websocket_stats().open_calls() == 0
        }
    })
    .await;
}

#[tokio::test]
async fn deadline_ends_a_stream() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel", "timeout_ms": 300}))
        .await;
    let end = ws.finish(&json!(1)).await.end;
    assert_eq!(end["code"], "DEADLINE_EXCEEDED", "{end}");
}

#[tokio::test]
async fn half_close_semantics() {
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    // A client stream with no message at all, half-closed: still one answer and OK.
    ws.send(json!({"id": "empty", "method": "LiveLink/StreamCamera"}))
        .await;
    ws.send(json!({"id": "empty", "half_close": true})).await;
    let call = ws.finish(&json!("empty")).await;
    assert_eq!(call.end["code"], "OK", "{call:?}");

    // Messages after half-close are refused with an error naming the call; it still ends OK.
    ws.send(json!({"id": "hc", "method": "LiveLink/StreamCamera",
                   "message": {"fov": 40.0}}))
        .await;
    ws.send(json!({"id": "hc", "half_close": true})).await;
    ws.send(json!({"id": "hc", "message": {"fov": 10.0}})).await;
    let mut saw_error = false;
    let mut ended = None;
    while ended.is_none() || !saw_error {
        let frame = ws.next().await;
        if let Some(error) = frame.get("error") {
            // The call may have ended already (NOT_FOUND) or not yet (FAILED_PRECONDITION).
            assert!(
                error["code"] == "FAILED_PRECONDITION" || error["code"] == "NOT_FOUND",
                "{frame}"
            );
            assert_eq!(error["id"], "hc");
            saw_error = true;
        } else if let Some(end) = frame.get("end") {
            ended = Some(end.clone());
        }
    }
    assert_eq!(ended.expect("end")["code"], "OK");
    ws.send(json!({"id": 5, "method": "LiveLink/GetCamera"}))
        .await;
    let camera = ws.finish(&json!(5)).await.messages.remove(0);
    assert_eq!(
        camera["fov"], 40.0,
        "the message after half-close was not applied"
    );

    // A unary call takes only its open frame's message.
    ws.send(json!({"id": 6, "method": "StreamCallback/callbackChannel"}))
        .await;
    ws.send(json!({"id": 6, "message": {}})).await;
    let error = ws.next_error().await;
    assert_eq!(error["code"], "FAILED_PRECONDITION", "{error}");
    assert_eq!(error["id"], 6);
    ws.send(json!({"id": 6, "cancel": true})).await;
    assert_eq!(ws.finish(&json!(6)).await.end["code"], "CANCELLED");
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_other_calls_continue() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": "live", "method": "StreamCallback/callbackChannel"}))
        .await;
    assert!(ws.next_for(&json!("live")).await.get("headers").is_some());

    ws.send_text("this is not json").await;
    let error = ws.next_error().await;
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert!(error.get("id").is_none(), "{error}");

    ws.send(json!({"method": "LiveLink/GetCamera"})).await;
    assert!(ws.next_error().await["message"]
        .as_str()
        .unwrap_or_default()
        .contains("id"));

    ws.send(json!({"id": 1, "method": "LiveLink/GetCamera", "extra": true}))
        .await;
    let error = ws.next_error().await;
    assert_eq!(error["id"], 1);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("extra"),
        "{error}"
    );

    ws.send(json!({"id": 2, "method": "LiveLink/NoSuchMethod"}))
        .await;
    let end = ws.finish(&json!(2)).await.end;
    assert_eq!(end["code"], "NOT_FOUND", "{end}");

    ws.send(json!({"id": 3, "method": "NoSuchService/x"})).await;
    assert_eq!(ws.finish(&json!(3)).await.end["code"], "NOT_FOUND");

    ws.send(json!({"id": 4, "method": "not a path"})).await;
    assert_eq!(ws.finish(&json!(4)).await.end["code"], "INVALID_ARGUMENT");

    ws.send(json!({"id": 5, "method": "LiveLink/SetCamera",
                   "message": {"position": {"x": "left"}}}))
        .await;
    let end = ws.finish(&json!(5)).await.end;
    assert_eq!(end["code"], "INVALID_ARGUMENT");
    assert!(
        end["message"]
            .as_str()
            .unwrap_or_default()
            .contains("position.x"),
        "the field path is named: {end}"
    );

    ws.send(json!({"id": "nobody", "message": {}})).await;
    let error = ws.next_error().await;
    assert_eq!(error["code"], "NOT_FOUND");
    assert_eq!(error["id"], "nobody");

    ws.send(json!({"id": "nobody", "cancel": true})).await;
    assert_eq!(ws.next_error().await["code"], "NOT_FOUND");

    ws.send(json!({"id": "live", "method": "LiveLink/GetCamera"}))
        .await;
    let error = ws.next_error().await;
    assert_eq!(error["code"], "ALREADY_EXISTS");
    assert_eq!(error["id"], "live");

    ws.send(json!({"id": 6, "method": "LiveLink/GetCamera", "metadata": {"grpc-timeout": "1S"}}))
        .await;
    assert_eq!(ws.finish(&json!(6)).await.end["code"], "INVALID_ARGUMENT");

    ws.send_binary(vec![0x01]).await;
    let error = ws.next_error().await;
    assert!(error["message"]
        .as_str()
        .unwrap_or_default()
        .contains("binary"));

    // A message that does not fit the schema ends that streaming call, naming the field.
    ws.send(json!({"id": "cam", "method": "LiveLink/StreamCamera"}))
        .await;
    ws.send(json!({"id": "cam", "message": {"fov": {"no": 1}}}))
        .await;
    let end = ws.finish(&json!("cam")).await.end;
    assert_eq!(end["code"], "INVALID_ARGUMENT", "{end}");
    assert!(
        end["message"].as_str().unwrap_or_default().contains("fov"),
        "{end}"
    );

    // The live stream kept going through all of that.
    let frame = ws.next_for(&json!("live")).await;
    assert!(frame.get("message").is_some(), "{frame}");
    ws.send(json!({"id": "live", "cancel": true})).await;
    assert_eq!(ws.finish(&json!("live")).await.end["code"], "CANCELLED");
}

#[tokio::test]
async fn calls_past_the_limit_are_refused() {
    let gateway = gateway_with_limits(
        &shared_render_server().to_string(),
        WsLimits {
            max_calls: 2,
            ..WsLimits::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    for id in [1, 2] {
        ws.send(json!({"id": id, "method": "StreamCallback/callbackChannel"}))
            .await;
    }
    ws.send(json!({"id": 3, "method": "LiveLink/GetCamera"}))
        .await;
    let end = ws.finish(&json!(3)).await.end;
    assert_eq!(end["code"], "RESOURCE_EXHAUSTED", "{end}");
    assert!(end["message"]
        .as_str()
        .unwrap_or_default()
        .contains("limit"));
    ws.send(json!({"id": 1, "cancel": true})).await;
    assert_eq!(ws.finish(&json!(1)).await.end["code"], "CANCELLED");
    ws.send(json!({"id": 3, "method": "LiveLink/GetCamera"}))
        .await;
    assert_eq!(ws.finish(&json!(3)).await.end["code"], "OK");
}

#[tokio::test]
async fn inbound_overflow_ends_only_that_call() {
    // An upstream that accepts TCP connections but never speaks HTTP/2: calls to it never
    // start taking request messages.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = gateway_with_limits(
        &silent.local_addr().expect("addr").to_string(),
        WsLimits {
            inbound_queue_messages: 3,
            ..WsLimits::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": "a", "method": "LiveLink/StreamCamera"}))
        .await;
    for _ in 0..4 {
        ws.send(json!({"id": "a", "message": {"fov": 30.0}})).await;
    }
    let end = ws.finish(&json!("a")).await.end;
    assert_eq!(end["code"], "RESOURCE_EXHAUSTED", "{end}");
    assert!(end["message"]
        .as_str()
        .unwrap_or_default()
        .contains("queue"));
    // The socket still works.
    ws.send_text("{").await;
    assert_eq!(ws.next_error().await["code"], "INVALID_ARGUMENT");
    drop(silent);
}

#[tokio::test]
async fn idle_sockets_are_closed() {
    let gateway = gateway_with_limits(
        &shared_render_server().to_string(),
        WsLimits {
            idle_timeout: Duration::from_millis(300),
            ping_interval: Duration::from_secs(60),
            ..WsLimits::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    match ws.next_message().await {
        Message::Close(Some(close)) => {
            assert_eq!(u16::from(close.code), 1001);
            assert!(close.reason.contains("idle"), "{}", close.reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn pings_keep_a_reading_client_alive() {
    let gateway = gateway_with_limits(
        &shared_render_server().to_string(),
        WsLimits {
            idle_timeout: Duration::from_millis(800),
            ping_interval: Duration::from_millis(100),
            ..WsLimits::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    // The stream runs for 2.4 s, three idle timeouts: the client's pongs keep it open.
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel", "timeout_ms": 2400}))
        .await;
    let call = ws.finish(&json!(1)).await;
    assert_eq!(call.end["code"], "DEADLINE_EXCEEDED", "{:?}", call.end);
    assert!(!call.messages.is_empty());
}

#[tokio::test]
async fn binary_frames_carry_protobuf() {
    use octaneweb_proto::livelinkapi::{CameraState, Vec3};
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;

    // Client streaming with binary request messages and a binary half-close.
    ws.send(json!({"id": "bin", "method": "LiveLink/StreamCamera", "binary": true}))
        .await;
    for x in [1.0f32, 2.0, 7.25] {
        let camera = CameraState {
            pos_set: Some(
                octaneweb_proto::livelinkapi::camera_state::PosSet::Position(Vec3 {
                    x,
                    y: 0.5,
                    z: -4.0,
                }),
            ),
            ..Default::default()
        };
        let mut frame = vec![0x01, 3];
        frame.extend_from_slice(b"bin");
        frame.extend_from_slice(&camera.encode_to_vec());
        ws.send_binary(frame).await;
    }
    ws.send_binary(b"\x02\x03bin".to_vec()).await;
    let headers = ws.next().await;
    assert_eq!(headers["id"], "bin");
    assert!(headers.get("headers").is_some(), "{headers}");
    let Message::Binary(answer) = ws.next_message().await else {
        panic!("expected a binary message frame")
    };
    assert_eq!(&answer[..5], b"\x01\x03bin");
    octaneweb_proto::livelinkapi::StreamStatus::decode(&answer[5..]).expect("a StreamStatus");
    assert_eq!(ws.next().await["end"]["code"], "OK");

    // Unary with a binary answer.
    ws.send(json!({"id": 42, "method": "LiveLink/GetCamera", "binary": true}))
        .await;
    assert!(ws.next().await.get("headers").is_some());
    let Message::Binary(answer) = ws.next_message().await else {
        panic!("expected a binary message frame")
    };
    assert_eq!(&answer[..4], b"\x01\x0242");
    let camera = CameraState::decode(&answer[4..]).expect("a CameraState");
    let Some(octaneweb_proto::livelinkapi::camera_state::PosSet::Position(position)) =
        camera.pos_set
    else {
        panic!("no position: {camera:?}")
    };
    assert_eq!((position.x, position.y, position.z), (7.25, 0.5, -4.0));
    assert_eq!(ws.next().await["end"]["code"], "OK");

    // A binary message to a unary call opened with a numeric id: the error echoes the id as
    // the open frame gave it.
    ws.send(json!({"id": 77, "method": "StreamCallback/callbackChannel"}))
        .await;
    ws.send_binary(b"\x01\x0277".to_vec()).await;
    let error = ws.next_error().await;
    assert_eq!(error["id"], 77, "{error}");
    ws.send_binary(b"\x03\x0277".to_vec()).await;
    assert_eq!(ws.finish(&json!(77)).await.end["code"], "CANCELLED");

    // Binary cancel of a JSON stream.
    ws.send(json!({"id": "s", "method": "StreamCallback/callbackChannel"}))
        .await;
    assert!(ws.next_for(&json!("s")).await.get("headers").is_some());
    ws.send_binary(b"\x03\x01s".to_vec()).await;
    assert_eq!(ws.finish(&json!("s")).await.end["code"], "CANCELLED");
    server.stop().await;
}

/// A generation-1 callback server streaming large messages as fast as it may, counting
/// how many it has produced.
pub struct Firehose {
    pub produced: Arc<AtomicU64>,
}

pub const FIREHOSE_MESSAGE_BYTES: usize = 64 * 1024;

#[tonic::async_trait]
impl gen1::stream_callback_service_server::StreamCallbackService for Firehose {
    type callbackChannelStream =
        Pin<Box<dyn Stream<Item = Result<gen1::StreamCallbackRequest, Status>> + Send>>;

    async fn callback_channel(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::callbackChannelStream>, Status> {
        let produced = Arc::clone(&self.produced);
        let stream = async_stream::stream! {
            loop {
                let n = produced.fetch_add(1, Ordering::SeqCst);
                yield Ok(gen1::StreamCallbackRequest {
                    payload: Some(gen1::stream_callback_request::Payload::NewImage(
                        gen1::OnNewImageRequest {
                            callback_source: "x".repeat(FIREHOSE_MESSAGE_BYTES),
                            user_data: n,
                            ..Default::default()
                        },
                    )),
                });
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tokio::test]
async fn a_slow_reader_pauses_the_upstream_with_bounded_buffers() {
    let produced = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                gen1::stream_callback_service_server::StreamCallbackServiceServer::new(Firehose {
                    produced: Arc::clone(&produced),
                }),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let outbound_frames = 4;
    let gateway = start_gateway_with(
        &addr.to_string(),
        GatewayOptions {
            schema: gen1_schema(),
            config: GatewayConfig {
                websocket: WsLimits {
                    outbound_queue_frames: outbound_frames,
                    ..WsLimits::default()
                },
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel", "binary": true}))
        .await;
    assert!(ws.next().await.get("headers").is_some());

    // Read nothing: the upstream must come to a stop (HTTP/2 flow control), not fill memory.
    let mut last = produced.load(Ordering::SeqCst);
    let mut still_for = 0;
    let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
    while still_for < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream never paused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = produced.load(Ordering::SeqCst);
        still_for = if now == last { still_for + 1 } else { 0 };
        last = now;
    }
    let paused_at = last;
    // Bounded: socket buffers, the HTTP/2 windows and the gateway's small queue, far below
    // what an unbounded relay would hold by now.
    assert!(
        paused_at < 2000,
        "{paused_at} messages of 64 KiB produced while the client read nothing"
    );
    // The queue, the frame being written and the frame the call waits to queue.
    let frame_bytes = (FIREHOSE_MESSAGE_BYTES + 64) as i64;
    let queued = gateway.state.websocket_stats().outbound_bytes();
    assert!(
        queued <= (outbound_frames as i64 + 2) * frame_bytes,
        "the gateway holds {queued} bytes for the client"
    );

    // Reading resumes the upstream.
    let mut seen = 0u64;
    while produced.load(Ordering::SeqCst) <= paused_at + 50 {
        match ws.next_message().await {
            Message::Binary(frame) => {
                let message = gen1::StreamCallbackRequest::decode(&frame[3..]).expect("decodes");
                let Some(gen1::stream_callback_request::Payload::NewImage(image)) = message.payload
                else {
                    panic!("not an image")
                };
                assert_eq!(image.user_data, seen, "in order, none lost");
                seen += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(json!({"id": 1, "cancel": true})).await;
}

#[tokio::test]
async fn telemetry_example_bidi_commands_and_metrics_stream() {
    use octaneweb_example_telemetry::{TelemetryConfig, TelemetryServer};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = TelemetryServer::new(TelemetryConfig {
        steps_per_second: 200.0,
        ..TelemetryConfig::default()
    })
    .expect("telemetry server");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set(
            "telemetry",
            octaneweb_example_telemetry::FILE_DESCRIPTOR_SET,
        )
        .expect("telemetry schema");
    let gateway = start_gateway_with(
        &addr.to_string(),
        GatewayOptions {
            schema: builder.build().expect("schema"),
            ..GatewayOptions::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;

    // The dashboard watches metrics...
    let watch = json!("watch");
    ws.send(
        json!({"id": watch, "method": "TrainingService/WatchMetrics",
                   "message": {"every_steps": 1}}),
    )
    .await;
    assert!(ws.next_for(&watch).await.get("headers").is_some());
    let event = ws.next_for(&watch).await;
    assert!(event["message"].is_object(), "{event}");

    // ...and talks back over the bidi stream: each command is acknowledged as it is sent.
    let control = json!(7);
    ws.send(
        json!({"id": control, "method": "telemetry.v1.TrainingService/Control",
                   "message": {"command_id": "c1", "pause": {}}}),
    )
    .await;
    assert!(ws.next_for(&control).await.get("headers").is_some());
    let ack = ws.next_for(&control).await;
    assert_eq!(ack["message"]["command_id"], "c1", "{ack}");
    assert_eq!(ack["message"]["accepted"], true, "{ack}");
    assert_eq!(
        ack["message"]["status"]["state"], "JOB_STATE_PAUSED",
        "{ack}"
    );
    ws.send(json!({"id": control,
                   "message": {"command_id": "c2", "set_learning_rate": {"learning_rate": 0.5}}}))
        .await;
    let ack = ws.next_for(&control).await;
    assert_eq!(ack["message"]["command_id"], "c2", "{ack}");
    assert_eq!(ack["message"]["accepted"], true, "{ack}");
    ws.send(json!({"id": control, "message": {"command_id": "c3", "resume": {}}}))
        .await;
    let ack = ws.next_for(&control).await;
    assert_eq!(
        ack["message"]["status"]["state"], "JOB_STATE_RUNNING",
        "{ack}"
    );
    ws.send(json!({"id": control, "half_close": true})).await;
    assert_eq!(ws.finish(&control).await.end["code"], "OK");

    ws.send(json!({"id": "job", "method": "TrainingService/GetJob"}))
        .await;
    let job = ws.finish(&json!("job")).await;
    assert_eq!(job.messages[0]["learning_rate"], 0.5, "{job:?}");

    ws.send(json!({"id": watch, "cancel": true})).await;
    assert_eq!(ws.finish(&watch).await.end["code"], "CANCELLED");
    let _ = stop.send(());
    let _ = task.await;
}

#[tokio::test]
async fn cancel_of_a_client_stream_ends_it_cancelled() {
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    for n in 0..10 {
        ws.send(json!({"id": n, "method": "LiveLink/StreamCamera"}))
            .await;
        ws.send(json!({"id": n, "message": {"fov": 41.0}})).await;
        ws.send(json!({"id": n, "cancel": true})).await;
        let end = ws.finish(&json!(n)).await.end;
        assert_eq!(end["code"], "CANCELLED", "call {n}: {end}");
    }
    server.stop().await;
}

#[tokio::test]
async fn pages_from_other_origins_cannot_open_the_socket() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let url = gateway.url("/ws").replacen("http://", "ws://", 1);
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert(
        "origin",
        "https://evil.example".parse().expect("header value"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("evil.example"), "{body}");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Nor may a page on another loopback port that is not listed.
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert(
        "origin",
        "http://localhost:5173".parse().expect("header value"),
    );
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    // The gateway's own origin may.
    for origin in [gateway.base.clone()] {
        let mut request = url.as_str().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header value"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        socket.close(None).await.expect("close");
    }
}

#[tokio::test]
async fn frames_past_the_size_limit_close_the_socket() {
    let gateway = gateway_with_limits(
        &shared_render_server().to_string(),
        WsLimits {
            max_frame_bytes: 1024,
            ..WsLimits::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    let big = json!({"id": 1, "method": "LiveLink/SetCamera",
                     "message": {"position": {"x": 1.0}}, "pad": "x".repeat(2048)});
    let _ = ws.socket.send(Message::Text(big.to_string().into())).await;
    match ws.next_message().await {
        Message::Close(Some(close)) => {
            assert_eq!(u16::from(close.code), 1009);
            assert!(close.reason.contains("limit"), "{}", close.reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    let state = gateway.state.clone();
    eventually("the socket to close", || {
        let state = state.clone();
        async move { state.websocket_stats().open_sockets() == 0 }
    })
    .await;
}

#[tokio::test]
async fn plain_http_on_ws_gets_json_errors() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let answer = read_answer(
        client()
            .get(gateway.url("/ws"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert!(
        answer.status >= 400 && answer.status < 500,
        "{}",
        answer.status
    );
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("WebSocket"),
        "{}",
        answer.body
    );
    let answer = read_answer(
        client()
            .post(gateway.url("/ws"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.body["success"], false);
}

#[tokio::test]
async fn shutdown_ends_calls_unavailable_and_closes_the_socket() {
    let (addr, mut open) = start_counting_server().await;
    let gateway = start_gateway(&addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel"}))
        .await;
    assert!(ws.next_for(&json!(1)).await.get("headers").is_some());
    wait_for_open(&mut open, 1).await;
    let shutdown = tokio::spawn(gateway.shutdown());
    let end = ws.finish(&json!(1)).await.end;
    assert_eq!(end["code"], "UNAVAILABLE", "{end}");
    match ws.next_message().await {
        Message::Close(Some(close)) => assert_eq!(u16::from(close.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    wait_for_open(&mut open, 0).await;
    tokio::time::timeout(EXCHANGE_TIMEOUT, shutdown)
        .await
        .expect("serve returns")
        .expect("task")
        .expect("serve ok");
}

/// `google.rpc.Status` and `google.protobuf.Any`, to build `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// A callback server that refuses every stream with a detailed status and a trailer.
struct Refusing;

#[tonic::async_trait]
impl StreamCallbackService for Refusing {
    type callbackChannelStream =
        Pin<Box<dyn Stream<Item = Result<StreamCallbackRequest, Status>> + Send>>;

    async fn callback_channel(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::callbackChannelStream>, Status> {
        let details = RpcStatus {
            code: tonic::Code::FailedPrecondition as i32,
            message: "no scene".into(),
            details: vec![
                RpcAny {
                    type_url: "type.googleapis.com/livelinkapi.Vec3".into(),
                    value: octaneweb_proto::livelinkapi::Vec3 {
                        x: 1.5,
                        y: 0.0,
                        z: 0.0,
                    }
                    .encode_to_vec(),
                },
                RpcAny {
                    type_url: "type.googleapis.com/unknown.Thing".into(),
                    value: vec![1, 2, 3],
                },
            ],
        };
        let mut status = Status::with_details(
            tonic::Code::FailedPrecondition,
            "no scene",
            details.encode_to_vec().into(),
        );
        status
            .metadata_mut()
            .insert("x-scene", "none".parse().expect("ascii"));
        Err(status)
    }
}

#[tokio::test]
async fn end_frames_carry_details_and_trailers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(StreamCallbackServiceServer::new(Refusing))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let gateway = start_gateway(&addr.to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel"}))
        .await;
    let end = ws.finish(&json!(1)).await.end;
    assert_eq!(end["code"], "FAILED_PRECONDITION", "{end}");
    assert_eq!(end["message"], "no scene");
    assert_eq!(end["trailers"]["x-scene"], "none", "{end}");
    assert_eq!(
        end["details"],
        json!([
            {"@type": "type.googleapis.com/livelinkapi.Vec3", "x": 1.5, "y": 0.0, "z": 0.0},
            {"@type": "type.googleapis.com/unknown.Thing", "value": "AQID"},
        ])
    );
}

#[tokio::test]
async fn a_message_larger_than_the_queue_budget_still_goes_through() {
    use octaneweb_proto::livelinkapi::CameraState;
    let server = start_render_server(small_config()).await;
    let gateway = gateway_with_limits(
        &server.addr.to_string(),
        WsLimits {
            inbound_queue_bytes: 100,
            ..WsLimits::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": "big", "method": "LiveLink/StreamCamera"}))
        .await;
    let mut message = CameraState {
        fov_set: Some(octaneweb_proto::livelinkapi::camera_state::FovSet::Fov(
            33.0,
        )),
        ..Default::default()
    }
    .encode_to_vec();
    // An unknown length-delimited field 15 of 1000 bytes: skipped by the server.
    message.extend_from_slice(&[15 << 3 | 2, 0xe8, 0x07]);
    message.extend_from_slice(&[0u8; 1000]);
    let mut frame = vec![0x01, 3];
    frame.extend_from_slice(b"big");
    frame.extend_from_slice(&message);
    ws.send_binary(frame).await;
    ws.send(json!({"id": "big", "half_close": true})).await;
    let call = ws.finish(&json!("big")).await;
    assert_eq!(call.end["code"], "OK", "{call:?}");
    ws.send(json!({"id": 1, "method": "LiveLink/GetCamera"}))
        .await;
    assert_eq!(ws.finish(&json!(1)).await.messages[0]["fov"], 33.0);
    server.stop().await;
}
