//! The original proxy's render endpoints and the single-frame endpoints, over real sockets.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use futures::StreamExt;
use octaneweb_render_server::{CallbackGeneration, ImageFormat};
use serde_json::Value;

/// Reads Server-Sent Events (`data: <json>` lines) from a streaming response.
struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
}

impl SseReader {
    fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
        }
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(event).expect("SSE is UTF-8");
                let data = text
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("every event has a data line");
                return serde_json::from_str(data).expect("event data is JSON");
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event in time")
                .expect("the stream stays open")
                .expect("body chunk");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let event = self.next().await;
            if event["type"] == kind {
                return event;
            }
        }
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

async fn sse_shapes(format: ImageFormat) {
    let server = Server::start(server_config(CallbackGeneration::Gen2, format)).await;
    let config = octaneweb_octane::FrameHubConfig {
        sse_ping_interval: Duration::from_millis(300),
        ..hub_config()
    };
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, config).await;
    let client = reqwest::Client::new();
    let response = client
        .get(gateway.url("/render/stream"))
        .send()
        .await
        .expect("stream request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut sse = SseReader::new(response);

    let connected = sse.next().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(
        keys(&connected),
        set(&["type", "client_id", "timestamp", "status"])
    );
    let client_id = connected["client_id"]
        .as_str()
        .expect("client_id is text")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok(), "{client_id}");
    assert!(
        connected["timestamp"]
            .as_f64()
            .expect("timestamp is a number")
            > 1.6e9
    );
    assert!(connected["status"].is_object());

    let image_event = sse.next_of("newImage").await;
    assert_eq!(
        keys(&image_event),
        set(&[
            "type",
            "callback_id",
            "user_data",
            "timestamp",
            "render_images"
        ])
    );
    assert!(image_event["callback_id"].is_i64());
    assert!(image_event["user_data"].is_u64());
    assert!(image_event["timestamp"].is_f64());
    let images = image_event["render_images"]["data"]
        .as_array()
        .expect("data is an array");
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(
        keys(image),
        set(&[
            "index",
            "type",
            "colorSpace",
            "isLinear",
            "size",
            "pitch",
            "renderPassId",
            "tonemappedSamplesPerPixel",
            "calculatedSamplesPerPixel",
            "samplesPerSecond",
            "renderTime",
            "changeLevel",
            "hasPendingUpdates",
            "hasAlpha",
            "buffer",
        ])
    );
    assert_eq!(image["index"], 0);
    assert_eq!(image["type"], 0, "8-bit RGBA for the original viewer");
    assert!(image["colorSpace"].is_i64());
    assert!(image["isLinear"].is_boolean());
    assert_eq!(image["size"], serde_json::json!({"x": 64, "y": 32}));
    assert_eq!(image["pitch"], 64, "pitch in pixels");
    assert!(image["renderPassId"].is_i64());
    for float in [
        "tonemappedSamplesPerPixel",
        "calculatedSamplesPerPixel",
        "samplesPerSecond",
        "renderTime",
    ] {
        assert!(image[float].is_number(), "{float}");
    }
    assert!(image["tonemappedSamplesPerPixel"].as_f64().unwrap() >= 1.0);
    assert_eq!(keys(&image["changeLevel"]), set(&["level"]));
    assert!(image["hasPendingUpdates"].is_boolean());
    assert!(image["hasAlpha"].is_boolean());
    let buffer = &image["buffer"];
    assert_eq!(keys(buffer), set(&["data", "size", "encoding"]));
    assert_eq!(buffer["encoding"], "base64");
    assert_eq!(buffer["size"], 64 * 32 * 4);
    let pixels = base64::engine::general_purpose::STANDARD
        .decode(buffer["data"].as_str().expect("data is text"))
        .expect("valid base64");
    assert_eq!(pixels.len(), 64 * 32 * 4);
    if format == ImageFormat::Hdr {
        assert_eq!(image["colorSpace"], 1, "tonemapped HDR is sRGB");
        assert_eq!(image["isLinear"], false);
    }

    let statistics = sse.next_of("newStatistics").await;
    assert_eq!(
        keys(&statistics),
        set(&["type", "callback_id", "user_data", "timestamp"])
    );

    let ping = sse.next_of("ping").await;
    assert_eq!(keys(&ping), set(&["type", "timestamp"]));

    // ping-client answers and makes a ping arrive on that client's stream.
    let answer = client
        .post(gateway.url("/render/ping-client"))
        .json(&serde_json::json!({ "client_id": client_id }))
        .send()
        .await
        .expect("ping-client");
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("JSON");
    assert_eq!(answer["success"], true);
    assert!(answer["message"].is_string());
    sse.next_of("ping").await;

    let missing = client
        .post(gateway.url("/render/ping-client"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("ping-client");
    assert_eq!(missing.status(), 400);
    let missing: Value = missing.json().await.expect("JSON");
    assert_eq!(missing["success"], false);
    assert!(missing["error"].as_str().unwrap().contains("client_id"));
    let unknown = client
        .post(gateway.url("/render/ping-client"))
        .body("{\"client_id\":\"nobody\"}")
        .send()
        .await
        .expect("ping-client");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_match_the_original_shapes() {
    sse_shapes(ImageFormat::Ldr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_serves_tonemapped_rgba8_for_hdr_sources() {
    sse_shapes(ImageFormat::Hdr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_callback_and_status_have_the_original_shapes() {
    let server = Server::start(server_config(CallbackGeneration::Gen1, ImageFormat::Ldr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen1, hub_config()).await;
    let client = reqwest::Client::new();
    let registered: Value = client
        .post(gateway.url("/render/register-callback"))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("JSON");
    assert_eq!(registered["success"], true, "{registered}");
    assert!(registered["callback_id"].as_i64().expect("callback_id") > 0);
    assert!(registered["status"].is_object());

    let status: Value = client
        .get(gateway.url("/render/callback-status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["success"], true);
    let status = &status["status"];
    assert_eq!(status["registered"], true);
    assert_eq!(status["generation"], 1);
    assert_eq!(status["callback_id"], registered["callback_id"]);
    assert_eq!(status["upstream"], server.addr.to_string());
    for key in [
        "connected",
        "viewers",
        "sse_clients",
        "metrics",
        "latest_frame",
    ] {
        assert!(status.get(key).is_some(), "status has {key}");
    }
    assert!(status["metrics"]["frames_out"].is_object());

    let registry = octaneweb_gateway::Metrics::new();
    registry.add_collector(gateway.hub.metrics_collector());
    let text = registry.render();
    assert!(text.contains("# TYPE octaneweb_render_frame_latency_seconds histogram"));
    assert!(text.contains("octaneweb_render_subscriptions_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_callback_without_an_upstream_is_a_clear_error() {
    // A port nobody listens on.
    let vacant = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let config = octaneweb_octane::FrameHubConfig {
        register_wait: Duration::from_secs(3),
        ..hub_config()
    };
    let gateway = Gateway::start(vacant, CallbackGeneration::Gen2, config).await;
    let response = reqwest::Client::new()
        .post(gateway.url("/render/register-callback"))
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["success"], false);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("setOnNewImageCallback"),
        "{body}"
    );
    // No frame: the poll endpoints say so with 503 and Retry-After.
    let poll = reqwest::get(gateway.url("/render/frame.png"))
        .await
        .expect("poll");
    assert_eq!(poll.status(), 503);
    assert_eq!(poll.headers()["retry-after"], "1");
    let body: Value = poll.json().await.expect("JSON");
    assert_eq!(body["success"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_polls_get_304_and_every_format_is_served() {
    let mut config = server_config(CallbackGeneration::Gen2, ImageFormat::Ldr);
    config.max_samples_per_pixel = Some(4);
    let server = Server::start(config).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    let client = reqwest::Client::new();

    // The first poll starts the subscription; no frame can be there yet.
    let first = client
        .get(gateway.url("/render/frame.raw"))
        .send()
        .await
        .expect("poll");
    assert_eq!(first.status(), 503);

    // Poll until the render has finished: the same ETag twice, well apart.
    let mut previous = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let (etag, body, headers) = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "render never settled"
        );
        let response = client
            .get(gateway.url("/render/frame.raw"))
            .send()
            .await
            .expect("poll");
        if response.status() == 200 {
            let headers = response.headers().clone();
            let etag = headers["etag"].to_str().expect("etag").to_owned();
            let body = response.bytes().await.expect("body");
            if etag == previous {
                break (etag, body, headers);
            }
            previous = etag;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(headers["x-frame-width"], "64");
    assert_eq!(headers["x-frame-height"], "32");
    assert_eq!(
        format!("\"{}\"", headers["x-frame-seq"].to_str().unwrap()),
        etag
    );
    assert_eq!(body.len(), 64 * 32 * 4);

    let repeat = client
        .get(gateway.url("/render/frame.raw"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional poll");
    assert_eq!(repeat.status(), 304);
    assert_eq!(repeat.headers()["etag"].to_str().unwrap(), etag);
    let repeat = client
        .get(gateway.url("/render/frame.png"))
        .header("if-none-match", format!("W/\"0\", {etag}"))
        .send()
        .await
        .expect("conditional poll");
    assert_eq!(repeat.status(), 304);
    let changed = client
        .get(gateway.url("/render/frame.png"))
        .header("if-none-match", "\"0\"")
        .send()
        .await
        .expect("poll");
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.headers()["content-type"], "image/png");
    let png = changed.bytes().await.expect("png");
    let mut reader = png::Decoder::new(std::io::Cursor::new(&png[..]))
        .read_info()
        .expect("valid PNG");
    let mut decoded = vec![0; reader.output_buffer_size().expect("size")];
    reader.next_frame(&mut decoded).expect("PNG decodes");
    assert_eq!(decoded, body.to_vec(), "PNG holds exactly the raw pixels");

    let jpeg = client
        .get(gateway.url("/render/frame.jpg?quality=80"))
        .send()
        .await
        .expect("jpeg");
    assert_eq!(jpeg.status(), 200);
    assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
    assert_eq!(&jpeg.bytes().await.expect("jpeg")[..3], &[0xFF, 0xD8, 0xFF]);

    let bad = client
        .get(gateway.url("/render/frame.jpg?quality=0"))
        .send()
        .await
        .expect("bad quality");
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.expect("JSON");
    assert!(bad["error"].as_str().unwrap().contains("quality"));
    for (query, expected) in [
        ("/render/frame.png?exposure=99", "exposure"),
        ("/render/frame.raw?gamma=zero", "gamma"),
        ("/render/frame?encoding=gif", "encoding"),
    ] {
        let bad = client.get(gateway.url(query)).send().await.expect("bad");
        assert_eq!(bad.status(), 400, "{query}");
        let bad: Value = bad.json().await.expect("JSON");
        assert!(bad["error"].as_str().unwrap().contains(expected), "{bad}");
    }
    let default = client
        .get(gateway.url("/render/frame"))
        .send()
        .await
        .expect("default encoding");
    assert_eq!(default.status(), 200);
    assert_eq!(
        default.headers()["content-type"],
        "application/octet-stream"
    );
    let out = gateway.hub.status().metrics.frames_out;
    assert!(
        out["png"] >= 1 && out["jpeg"] >= 1 && out["raw"] >= 2,
        "{out:?}"
    );
}

/// Served by the gateway's own server, WebSocket and SSE viewers end promptly at shutdown
/// instead of holding the drain until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_gateway_shuts_down() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let upstream = octaneweb_gateway::upstream::Upstream::new(
        octaneweb_gateway::upstream::UpstreamConfig::with_target(server.addr.to_string()),
    )
    .expect("upstream");
    let hub = octaneweb_octane::FrameHub::start(
        upstream,
        &schema(CallbackGeneration::Gen2),
        hub_config(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(octaneweb_gateway::serve(
        listener,
        octaneweb_octane::routes(hub),
        async move {
            let _ = stopped.await;
        },
    ));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/render/ws"))
        .await
        .expect("ws connects");
    next_frame(&mut ws).await;
    let response = reqwest::get(format!("http://{addr}/render/stream"))
        .await
        .expect("sse");
    let mut sse = SseReader::new(response);
    sse.next_of("newImage").await;

    let began = std::time::Instant::now();
    stop.send(()).expect("server running");
    let close = loop {
        match next_message(&mut ws).await {
            Message::Close(frame) => break frame,
            _ => continue,
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    // The SSE body ends (the reader sees the stream close).
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = sse.body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the SSE stream ended");
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("serve returns")
        .expect("serve task")
        .expect("serve ok");
    assert!(
        began.elapsed() < octaneweb_gateway::server::DRAIN_TIMEOUT,
        "shutdown took {:?}",
        began.elapsed()
    );
}
