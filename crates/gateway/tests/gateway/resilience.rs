//! The shared upstream under load and abuse: stream counts beyond one HTTP/2 connection's
//! limit, an oversized request header, an oversized upstream error, and an upstream that dies
//! mid-call. Whatever one caller does, the others' calls and streams go on.

use futures::FutureExt as _;
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::livelinkapi::Empty;
use octaneweb_proto::octaneapi::stream_callback_service_client::StreamCallbackServiceClient;
use octaneweb_proto::octaneapi::StreamCallbackRequest;
use octaneweb_testkit::KillableRenderServer;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::common::*;
use crate::passthrough::{channel, frame};
use crate::ws::Ws;

/// Channels (one HTTP/2 connection each) to the gateway.
async fn channels(base: &str, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(channel(base).await);
    }
    channels
}

/// Open `count` `callbackChannel` streams through the gateway's pass-through, spread over
/// `channels`; each has its response headers when this returns.
async fn open_callback_streams(
    channels: &[Channel],
    count: usize,
) -> Vec<Streaming<StreamCallbackRequest>> {
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = StreamCallbackServiceClient::new(channels[i % channels.len()].clone());
        opening.push(tokio::spawn(
            async move { client.callback_channel(()).await },
        ));
    }
    let mut streams = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for open in opening {
        match tokio::time::timeout(EXCHANGE_TIMEOUT, open).await {
            Ok(Ok(Ok(response))) => streams.push(response.into_inner()),
            Ok(Ok(Err(status))) => {
                failures.push(format!("{:?} {}", status.code(), status.message()))
            }
            other => failures.push(format!("{other:?}")),
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "streams failed to open: {failures:?}");
    streams
}

/// Fail if any stream has ended (with an error or otherwise); messages waiting are read.
fn assert_all_open(streams: &mut [Streaming<StreamCallbackRequest>]) {
    for (i, stream) in streams.iter_mut().enumerate() {
        loop {
            match stream.message().now_or_never() {
                None => break,
                Some(Ok(Some(_))) => continue,
                Some(Ok(None)) => panic!("stream {i} ended"),
                Some(Err(status)) => panic!("stream {i} failed: {status:?}"),
            }
        }
    }
}

/// `count` concurrent GetCamera calls over `channels`; the distinct failures.
async fn unary_burst(channels: &[Channel], count: usize) -> Vec<String> {
    let mut calls = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = LiveLinkServiceClient::new(channels[i % channels.len()].clone());
        calls.push(tokio::spawn(
            async move { client.get_camera(Empty {}).await },
        ));
    }
    let mut failures = Vec::new();
    for call in calls {
        match tokio::time::timeout(EXCHANGE_TIMEOUT, call).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(status))) => {
                failures.push(format!("{:?} {}", status.code(), status.message()))
            }
            other => failures.push(format!("{other:?}")),
        }
    }
    failures.sort();
    failures.dedup();
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_concurrent_unary_calls_all_succeed() {
    let render = start_render_server(small_config()).await;
    let gateway = start_gateway(&render.addr.to_string()).await;
    let channels = channels(&gateway.base, 8).await;
    let failures = unary_burst(&channels, 4000).await;
    assert!(failures.is_empty(), "failures: {failures:?}");
    let pool = gateway.state.upstream.pool_stats();
    assert!(
        pool.opened >= 2,
        "4,000 calls in flight need more than one upstream connection: {pool:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_open_server_streams_leave_room_for_calls_and_websocket_streams() {
    let render = start_render_server(small_config()).await;
    let gateway = start_gateway(&render.addr.to_string()).await;
    let channels = channels(&gateway.base, 8).await;
    let mut streams = open_callback_streams(&channels, 1000).await;

    // 250 more server streams over the multiplexed WebSocket (100 calls per socket at most).
    let mut sockets = Vec::new();
    for socket in 0..3 {
        let mut ws = Ws::connect(&gateway).await;
        for n in 0..84 {
            ws.send(json!({"id": socket * 100 + n, "method": "StreamCallback/callbackChannel"}))
                .await;
        }
        sockets.push(ws);
    }
    for (socket, ws) in sockets.iter_mut().enumerate() {
        for n in 0..84 {
            let id = json!(socket * 100 + n);
            let first = ws.next_for(&id).await;
            assert!(
                first.get("headers").is_some(),
                "stream {id} did not open: {first}"
            );
        }
    }

    let failures = unary_burst(&channels, 400).await;
    assert!(
        failures.is_empty(),
        "calls beside 1,250 open streams failed: {failures:?}"
    );
    assert_all_open(&mut streams);
    // A WebSocket stream that had ended would have sent its end frame by now: a unary call on
    // each socket answers after anything already queued on it.
    for (socket, ws) in sockets.iter_mut().enumerate() {
        let id = json!(format!("probe{socket}"));
        ws.send(json!({"id": id, "method": "LiveLink/GetCamera"}))
            .await;
        let finished = ws.finish(&id).await;
        assert_eq!(finished.end["code"], "OK", "{:?}", finished.end);
        for n in 0..84 {
            let key = json!(socket * 100 + n);
            assert!(
                !ws.has_pending_end(&key),
                "WebSocket stream {key} ended while others were opened"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_header_fails_its_own_call_only() {
    let render = start_render_server(small_config()).await;
    let gateway = start_gateway(&render.addr.to_string()).await;
    let channels = channels(&gateway.base, 1).await;
    let mut streams = open_callback_streams(&channels, 4).await;

    let big = "a".repeat(100 * 1024);
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/GetCamera"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-big", big.as_str())
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("gRPC-Web call");
    let status = grpc_web_status(response).await;
    assert_eq!(status.0, "8", "RESOURCE_EXHAUSTED expected: {status:?}");
    assert!(
        status.1.contains("metadata") && status.1.contains("16384"),
        "the message names the size and the limit: {status:?}"
    );

    // The same over native gRPC (the header on a tonic call).
    let mut client = LiveLinkServiceClient::new(channels[0].clone());
    let mut request = tonic::Request::new(Empty {});
    request
        .metadata_mut()
        .insert("x-big", big[..20_000].parse().expect("ascii"));
    // (A tonic client refuses to send more than its peer's limit itself; 20 KB passes the
    // gateway's listener and meets the per-call limit toward the upstream.)
    let refused = client.get_camera(request).await.expect_err("refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    assert_all_open(&mut streams);
    assert!(unary_burst(&channels, 20).await.is_empty());
    assert_all_open(&mut streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upstream_error_fails_its_own_call_only() {
    // GetFile echoes the requested path in its errors.
    let root = tempfile::tempdir().expect("file root");
    let render = start_render_server(octaneweb_render_server::RenderServerConfig {
        file_root: Some(root.path().to_path_buf()),
        ..small_config()
    })
    .await;
    let gateway = start_gateway(&render.addr.to_string()).await;
    let channels = channels(&gateway.base, 1).await;
    let mut streams = open_callback_streams(&channels, 4).await;

    let long_path = "x".repeat(100_000);
    for _ in 0..3 {
        let answer = post(
            &gateway.url("/LiveLink/GetFile"),
            &json!({"filepath": long_path}).to_string(),
        )
        .await;
        assert!(answer.status >= 400, "{}", answer.status);
        let message = answer.body.to_string();
        assert!(
            message.len() < 8 * 1024 && message.contains("cut from"),
            "the echoed path is cut: {} bytes: {}",
            message.len(),
            &message[..message.len().min(300)]
        );
    }
    // Over native gRPC the client sees the cut message too, not a connection error.
    let mut client = LiveLinkServiceClient::new(channels[0].clone());
    let status = client
        .get_file(octaneweb_proto::livelinkapi::FileRequest {
            filepath: long_path.clone(),
        })
        .await
        .expect_err("no such file");
    assert_ne!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().len() < 8 * 1024);

    assert_all_open(&mut streams);
    assert!(unary_burst(&channels, 20).await.is_empty());
    assert_all_open(&mut streams);
}

/// gRPC-Web answer's `grpc-status` and `grpc-message` (from headers or the trailer frame).
async fn grpc_web_status(response: reqwest::Response) -> (String, String) {
    let headers = response.headers().clone();
    if let Some(status) = headers.get("grpc-status") {
        let message = headers
            .get("grpc-message")
            .map(|m| percent_decode(m.to_str().unwrap_or("")))
            .unwrap_or_default();
        return (status.to_str().unwrap_or("").to_owned(), message);
    }
    let body = response.bytes().await.expect("body");
    let mut rest = &body[..];
    while rest.len() >= 5 {
        let flags = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + len];
        if flags & 0x80 != 0 {
            let text = String::from_utf8_lossy(payload);
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            return (
                field("grpc-status:"),
                percent_decode(&field("grpc-message:")),
            );
        }
        rest = &rest[5 + len..];
    }
    panic!("no grpc-status in the answer");
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_dies_mid_call_is_unavailable_on_every_protocol() {
    let mut render = KillableRenderServer::start(small_config());
    let gateway = start_gateway(&render.addr.to_string()).await;
    let channels = channels(&gateway.base, 1).await;
    let mut grpc = open_callback_streams(&channels, 1).await;
    let stream_path = "/octaneapi.StreamCallbackService/callbackChannel";
    let grpc_web = client()
        .post(gateway.url(stream_path))
        .header("content-type", "application/grpc-web+proto")
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("gRPC-Web stream");
    let connect = client()
        .post(gateway.url(stream_path))
        .header("content-type", "application/connect+json")
        .body(frame(0, b"{}").to_vec())
        .send()
        .await
        .expect("Connect stream");
    let ndjson = client()
        .post(gateway.url("/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("NDJSON stream");
    let sse = client()
        .get(gateway.url("/sse/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("SSE stream");
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "StreamCallback/callbackChannel"}))
        .await;
    assert!(ws.next_for(&json!(1)).await.get("headers").is_some());
    for response in [&grpc_web, &connect, &ndjson, &sse] {
        assert_eq!(response.status(), 200, "{:?}", response.url());
    }

    render.kill();

    let status = loop {
        match tokio::time::timeout(EXCHANGE_TIMEOUT, grpc[0].message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("gRPC stream ended OK after the upstream died"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("gRPC stream still open after the upstream died"),
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "gRPC: {status:?}");

    let (code, message) = grpc_web_status(grpc_web).await;
    assert_eq!(code, "14", "gRPC-Web: {message}");

    let body = tokio::time::timeout(EXCHANGE_TIMEOUT, connect.bytes())
        .await
        .expect("Connect stream ends")
        .expect("Connect body");
    let end = last_envelope(&body);
    assert_eq!(end["error"]["code"], "unavailable", "Connect: {end}");

    let text = tokio::time::timeout(EXCHANGE_TIMEOUT, ndjson.text())
        .await
        .expect("NDJSON stream ends")
        .expect("NDJSON body");
    let last: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["end"]["code"], "UNAVAILABLE", "NDJSON: {last}");

    let text = tokio::time::timeout(EXCHANGE_TIMEOUT, sse.text())
        .await
        .expect("SSE stream ends")
        .expect("SSE body");
    let end = text
        .split("\n\n")
        .filter(|event| event.contains("event: end"))
        .find_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .expect("an end event");
    let end: Value = serde_json::from_str(end).expect("JSON");
    assert_eq!(end["code"], "UNAVAILABLE", "SSE: {end}");

    let finished = ws.finish(&json!(1)).await;
    assert_eq!(
        finished.end["code"], "UNAVAILABLE",
        "WebSocket: {:?}",
        finished.end
    );

    // Calls made now fail fast with UNAVAILABLE too.
    let refused = LiveLinkServiceClient::new(channels[0].clone())
        .get_camera(Empty {})
        .await
        .expect_err("no upstream");
    assert_eq!(refused.code(), Code::Unavailable);
}

/// The last Connect envelope of a streaming answer, as JSON.
fn last_envelope(body: &[u8]) -> Value {
    let mut rest = body;
    let mut last = Value::Null;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        last = serde_json::from_slice(&rest[5..5 + len]).unwrap_or(Value::Null);
        rest = &rest[5 + len..];
    }
    last
}
