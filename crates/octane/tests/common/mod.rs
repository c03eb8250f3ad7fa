//! Shared set-up for the render stream tests: a real reference render server on an ephemeral
//! port, a real `Upstream`, the hub, and the render routes served by axum.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use octaneweb_gateway::upstream::{Upstream, UpstreamConfig};
use octaneweb_octane::{routes, FrameHeader, FrameHub, FrameHubConfig};
use octaneweb_render_server::{CallbackGeneration, ImageFormat, RenderServerConfig};
use octaneweb_schema::{Schema, SchemaBuilder};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound of any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running reference render server (the shared fixture).
pub use octaneweb_testkit::RenderServerHandle as Server;

/// A small render server of one callback generation and image format.
pub fn server_config(generation: CallbackGeneration, format: ImageFormat) -> RenderServerConfig {
    RenderServerConfig {
        callback_generation: generation,
        image_format: format,
        ..octaneweb_testkit::small_config()
    }
}

pub fn schema(generation: CallbackGeneration) -> Schema {
    SchemaBuilder::new()
        .add_descriptor_set("octaneweb", generation.descriptor_set())
        .expect("descriptor set loads")
        .build()
        .expect("schema builds")
}

/// Hub config for tests: short idle grace and backoff so tests stay fast.
pub fn hub_config() -> FrameHubConfig {
    FrameHubConfig {
        idle_grace: Duration::from_millis(300),
        backoff_max: Duration::from_millis(500),
        default_encoding: octaneweb_octane::EncodingKind::Raw,
        ..FrameHubConfig::default()
    }
}

/// The hub on `upstream_addr` with its routes served on an ephemeral port.
pub struct Gateway {
    pub hub: FrameHub,
    pub addr: SocketAddr,
}

impl Gateway {
    pub async fn start(
        upstream_addr: SocketAddr,
        generation: CallbackGeneration,
        config: FrameHubConfig,
    ) -> Gateway {
        let upstream_config = UpstreamConfig::with_target(upstream_addr.to_string());
        Gateway::start_with(upstream_config, generation, config).await
    }

    pub async fn start_with(
        upstream_config: UpstreamConfig,
        generation: CallbackGeneration,
        config: FrameHubConfig,
    ) -> Gateway {
        let upstream = Upstream::new(upstream_config).expect("upstream");
        Gateway::start_on(upstream, generation, config).await
    }

    /// The hub on an upstream the test also calls itself.
    pub async fn start_on(
        upstream: Upstream,
        generation: CallbackGeneration,
        config: FrameHubConfig,
    ) -> Gateway {
        let hub = FrameHub::start(upstream, &schema(generation), config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = routes(hub.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Gateway { hub, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn ws(&self) -> Ws {
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async(format!("ws://{}/render/ws", self.addr)),
        )
        .await
        .expect("ws connect in time")
        .expect("ws connects");
        ws
    }
}

/// Next message of `ws`, bounded by [`WAIT`].
pub async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a message in time")
        .expect("the socket stays open")
        .expect("a valid message")
}

/// Next text message parsed as JSON (binary messages are skipped).
pub async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        if let Message::Text(text) = next_message(ws).await {
            return serde_json::from_str(text.as_str()).expect("server text is JSON");
        }
    }
}

/// Next text message whose `type` is `kind` (others skipped).
pub async fn next_json_of(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let value = next_json(ws).await;
        if value["type"] == kind {
            return value;
        }
    }
}

/// Next binary frame: header and payload (text messages skipped).
pub async fn next_frame(ws: &mut Ws) -> (FrameHeader, Vec<u8>) {
    loop {
        if let Message::Binary(data) = next_message(ws).await {
            let (header, payload) = FrameHeader::parse(&data).expect("valid frame header");
            return (header, payload.to_vec());
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// Polls `check` every 20 ms until it is true, bounded by [`WAIT`].
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
