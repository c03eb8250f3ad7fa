//! What operators see: unknown paths under one metric label on every protocol, and W3C trace
//! context continued from the client through the gateway to a real upstream that records
//! what it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use octaneweb_schema::SchemaBuilder;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::common::*;
use crate::passthrough::{frame, raw_grpc};
use crate::ws::Ws;

/// Distinct unknown paths sent on each protocol.
const UNKNOWN_PATHS: usize = 4;

#[tokio::test]
async fn unknown_paths_count_under_one_label_on_every_protocol() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    for i in 0..UNKNOWN_PATHS {
        let path = format!("/nope.Missing{i}/Do{i}");
        let answer = post(&gateway.url(&path), "{}").await;
        assert_eq!(answer.status, 404, "JSON: {}", answer.body);

        let sse = client()
            .get(gateway.url(&format!("/sse{path}")))
            .send()
            .await
            .expect("SSE answer");
        assert_eq!(sse.status(), 404, "SSE");

        // Binary Connect and gRPC-Web forward what the schema does not know: the upstream
        // answers UNIMPLEMENTED.
        let connect = client()
            .post(gateway.url(&path))
            .header("content-type", "application/proto")
            .header("connect-protocol-version", "1")
            .body(Vec::new())
            .send()
            .await
            .expect("Connect answer");
        assert_eq!(connect.status(), 501, "Connect");

        let web = client()
            .post(gateway.url(&path))
            .header("content-type", "application/grpc-web+proto")
            .body(frame(0, b"").to_vec())
            .send()
            .await
            .expect("gRPC-Web answer");
        assert_eq!(
            web.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"12"[..]),
            "gRPC-Web: {:?}",
            web.headers()
        );

        let grpc = raw_grpc(&gateway, &path, &[], frame(0, b"")).await;
        assert_eq!(grpc.status(), 12, "gRPC: {grpc:?}");

        let id = json!(i);
        ws.send(json!({"id": i, "method": path, "message": {}}))
            .await;
        let end = ws.finish(&id).await.end;
        assert_eq!(end["code"], "NOT_FOUND", "/ws: {end}");
    }

    let text = metrics_text(&gateway).await;
    assert!(
        !text.contains("Missing"),
        "an unknown path became a label:\n{text}"
    );
    for protocol in ["json", "sse", "connect", "grpc-web", "grpc", "websocket"] {
        let prefix = format!("octaneweb_calls_total{{protocol=\"{protocol}\",");
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(series.len(), 1, "{protocol}: one series, got {series:?}");
        assert!(
            series[0].contains("method=\"unresolved\""),
            "{protocol}: {}",
            series[0]
        );
        let count: f64 = series[0]
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert_eq!(count, UNKNOWN_PATHS as f64, "{protocol}: {}", series[0]);
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

/// What the upstream received in one call's metadata.
#[derive(Clone, Debug, Default)]
struct Seen {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// A health service that records the trace headers of every call it receives.
async fn start_recording_upstream() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let recorder = move |request: tonic::Request<()>| {
        let text = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let entry = Seen {
            traceparent: text("traceparent"),
            tracestate: text("tracestate"),
        };
        record.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
        Ok(request)
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(recorder))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, seen)
}

fn last_seen(seen: &Mutex<Vec<Seen>>) -> Seen {
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    seen.last().cloned().expect("the upstream got a call")
}

/// The parts of a `traceparent`: (trace id, span id, flags).
fn parts(traceparent: &str) -> (String, String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[0], "00", "{traceparent}");
    (
        fields[1].to_owned(),
        fields[2].to_owned(),
        fields[3].to_owned(),
    )
}

/// The upstream saw the client's trace continued by a span of the gateway's own, with the
/// client's tracestate; returns that span's traceparent.
fn assert_continued(seen: &Seen, what: &str) -> String {
    let upstream = seen
        .traceparent
        .clone()
        .unwrap_or_else(|| panic!("{what}: no traceparent upstream"));
    let (trace, span, flags) = parts(&upstream);
    assert_eq!(trace, TRACE_ID, "{what}: the trace id is kept");
    assert_ne!(span, CALLER_SPAN, "{what}: the gateway's span is new");
    assert_eq!(flags, "01", "{what}: the sampled flag is kept");
    assert_eq!(seen.tracestate.as_deref(), Some(TRACESTATE), "{what}");
    upstream
}

#[tokio::test]
async fn a_traceparent_is_continued_upstream_and_echoed_on_every_call_path() {
    let (upstream, seen) = start_recording_upstream().await;
    let mut schema = SchemaBuilder::new();
    schema
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in");
    schema
        .add_descriptor_set("health", tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("health");
    let gateway = start_gateway_with(
        &upstream.to_string(),
        GatewayOptions {
            schema: schema.build().expect("schema"),
            ..GatewayOptions::default()
        },
    )
    .await;
    let path = "/grpc.health.v1.Health/Check";
    let trace_headers = [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)];

    // JSON: a typed call.
    let mut request = client().post(gateway.url(path)).body("{}");
    for (name, value) in trace_headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("JSON answer");
    assert_eq!(answer.status(), 200);
    let echoed = answer.headers()["traceparent"].to_str().expect("text");
    let upstream_saw = assert_continued(&last_seen(&seen), "JSON");
    assert_eq!(
        echoed, upstream_saw,
        "JSON: the echo names the gateway's span"
    );

    // SSE: a typed server stream (the health service's Watch).
    let mut request = client().get(gateway.url("/sse/grpc.health.v1.Health/Watch?message=%7B%7D"));
    for (name, value) in trace_headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("SSE answer");
    assert_eq!(answer.status(), 200);
    let echoed = answer.headers()["traceparent"]
        .to_str()
        .expect("text")
        .to_owned();
    let mut events = BodyReader::new(answer);
    let (name, data) = events.next_event().await.expect("the first status");
    assert!(data.contains("SERVING"), "{name}: {data}");
    let upstream_saw = assert_continued(&last_seen(&seen), "SSE");
    assert_eq!(echoed, upstream_saw, "SSE");
    drop(events);

    // /batch: each entry is a span of its own within the batch request's trace.
    let mut request = client().post(gateway.url("/batch")).body(
        json!([{"service": "grpc.health.v1.Health", "method": "Check", "params": {}}]).to_string(),
    );
    for (name, value) in trace_headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("batch answer");
    assert_eq!(answer.status(), 200);
    let echoed = answer.headers()["traceparent"]
        .to_str()
        .expect("text")
        .to_owned();
    let upstream_saw = assert_continued(&last_seen(&seen), "/batch");
    assert_ne!(
        parts(&upstream_saw).1,
        parts(&echoed).1,
        "a batch entry is a span of its own"
    );

    // Connect (JSON, forwarded as bytes).
    let mut request = client()
        .post(gateway.url(path))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body("{}");
    for (name, value) in trace_headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("Connect answer");
    assert_eq!(answer.status(), 200);
    let echoed = answer.headers()["traceparent"].to_str().expect("text");
    let upstream_saw = assert_continued(&last_seen(&seen), "Connect");
    assert_eq!(echoed, upstream_saw, "Connect");

    // gRPC-Web (through the pass-through).
    let mut request = client()
        .post(gateway.url(path))
        .header("content-type", "application/grpc-web+proto")
        .body(frame(0, b"").to_vec());
    for (name, value) in trace_headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("gRPC-Web answer");
    assert_eq!(answer.status(), 200);
    let echoed = answer.headers()["traceparent"].to_str().expect("text");
    let upstream_saw = assert_continued(&last_seen(&seen), "gRPC-Web");
    assert_eq!(echoed, upstream_saw, "gRPC-Web");

    // Native gRPC: continued upstream; the answer is the upstream's own.
    let answer = raw_grpc(&gateway, path, &trace_headers, frame(0, b"")).await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    assert_continued(&last_seen(&seen), "gRPC");

    // /ws: each call is a span within the socket's trace ...
    let mut request = gateway
        .url("/ws")
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("ws request");
    for (name, value) in trace_headers {
        request
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket handshake");
    let socket_span = response.headers()["traceparent"]
        .to_str()
        .expect("text")
        .to_owned();
    assert_eq!(parts(&socket_span).0, TRACE_ID);
    let mut ws = Ws::wrap(socket);
    ws.send(json!({"id": 1, "method": path, "message": {}}))
        .await;
    assert_eq!(ws.finish(&json!(1)).await.end["code"], "OK");
    let upstream_saw = assert_continued(&last_seen(&seen), "/ws");
    assert_ne!(
        parts(&upstream_saw).1,
        parts(&socket_span).1,
        "a /ws call is a span of its own"
    );
    // ... or continues the traceparent its open frame carries.
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    ws.send(json!({"id": 2, "method": path, "message": {},
                   "metadata": {"traceparent": other}}))
        .await;
    assert_eq!(ws.finish(&json!(2)).await.end["code"], "OK");
    let (trace, span, flags) = parts(&last_seen(&seen).traceparent.expect("traceparent"));
    assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
    assert_ne!(span, "b7ad6b7169203331");
    assert_eq!(flags, "00", "not sampled, as the caller said");

    // An invalid traceparent is replaced by a new trace, and its tracestate dropped.
    let answer = client()
        .post(gateway.url(path))
        .header(
            "traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        )
        .header("tracestate", TRACESTATE)
        .body("{}")
        .send()
        .await
        .expect("JSON answer");
    assert_eq!(answer.status(), 200);
    let echoed = answer.headers()["traceparent"].to_str().expect("text");
    let seen_now = last_seen(&seen);
    let upstream_saw = seen_now.traceparent.expect("a new traceparent");
    assert_eq!(echoed, upstream_saw);
    let (trace, _, flags) = parts(&upstream_saw);
    assert_ne!(trace.to_ascii_uppercase(), TRACE_ID.to_ascii_uppercase());
    assert_eq!(trace.len(), 32);
    assert_eq!(
        flags, "00",
        "nothing records spans: a new trace is not sampled"
    );
    assert_eq!(seen_now.tracestate, None);

    // No traceparent at all: a new trace, echoed.
    let answer = post(&gateway.url(path), "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let upstream_saw = last_seen(&seen).traceparent.expect("a traceparent");
    assert_ne!(
        parts(&upstream_saw).0,
        trace,
        "every new trace has its own id"
    );
    assert_eq!(answer.headers["traceparent"], upstream_saw.as_str());
}
