//! Test harness: real render servers and gateways on ephemeral loopback ports, real clients.

use std::net::SocketAddr;
use std::time::Duration;

use octaneweb_gateway::{
    router, serve_with, GatewayConfig, GatewayState, ServeOptions, Upstream, UpstreamConfig,
};
use octaneweb_render_server::RenderServerConfig;
use octaneweb_schema::{Schema, SchemaBuilder};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on any single HTTP exchange in tests, so a hang fails instead of blocking CI.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The built-in schema (callback generation 2).
pub fn builtin_schema() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in descriptor set loads");
    builder.build().expect("built-in schema builds")
}

pub use octaneweb_testkit::{shared_render_server, small_config, RenderServerHandle};

/// Start a render server on `listener`.
pub fn start_render_server_on(
    listener: TcpListener,
    config: RenderServerConfig,
) -> RenderServerHandle {
    RenderServerHandle::start_on(listener, config)
}

/// Start a render server on an ephemeral port.
pub async fn start_render_server(config: RenderServerConfig) -> RenderServerHandle {
    RenderServerHandle::start(config).await
}

/// A gateway served by `octaneweb_gateway::serve` until dropped.
pub struct GatewayHandle {
    pub base: String,
    pub state: GatewayState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl GatewayHandle {
    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Begin shutdown and wait until `serve` returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("serve task"),
            None => Ok(()),
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Options of a test gateway.
pub struct GatewayOptions {
    pub schema: Schema,
    pub config: GatewayConfig,
    pub default_timeout: Option<Duration>,
    /// Routes merged in front of the gateway's own (as the binary merges the render routes).
    pub extra: axum::Router,
    /// Connection limits and TLS of the listening side.
    pub serve: ServeOptions,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            schema: builtin_schema(),
            config: GatewayConfig::default(),
            default_timeout: None,
            extra: axum::Router::new(),
            serve: ServeOptions::default(),
        }
    }
}

/// Start a gateway in front of `target` with the built-in schema and default settings.
pub async fn start_gateway(target: &str) -> GatewayHandle {
    start_gateway_with(target, GatewayOptions::default()).await
}

/// Start a gateway in front of `target`.
pub async fn start_gateway_with(target: &str, options: GatewayOptions) -> GatewayHandle {
    let upstream = Upstream::new(UpstreamConfig {
        default_timeout: options.default_timeout,
        ..UpstreamConfig::with_target(target)
    })
    .expect("upstream");
    let state = GatewayState::new(options.schema, upstream, options.config);
    let app = router(state.clone(), options.extra);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let scheme = if options.serve.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let serve_options = ServeOptions {
        stats: state.connection_stats(),
        ..options.serve
    };
    let task = tokio::spawn(serve_with(listener, app, serve_options, async move {
        let _ = stopped.await;
    }));
    GatewayHandle {
        base: format!("{scheme}://{addr}"),
        state,
        stop: Some(stop),
        task: Some(task),
    }
}

/// The gateway's `/metrics` text.
pub async fn metrics_text(gateway: &GatewayHandle) -> String {
    client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// An HTTP client without proxies or pooling surprises.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(EXCHANGE_TIMEOUT)
        .build()
        .expect("client")
}

/// A JSON answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// POST `body` (raw text) to `url` and parse the JSON answer.
pub async fn post(url: &str, body: &str) -> Answer {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    read_answer(response).await
}

/// Read a JSON answer.
pub async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text:?}"));
    Answer {
        status,
        headers,
        body,
    }
}

/// POST and expect `{"success":true,"data":...}`; returns `data`.
pub async fn call_ok(gateway: &GatewayHandle, path: &str, body: &str) -> Value {
    let answer = post(&gateway.url(path), body).await;
    assert_eq!(
        answer.status, 200,
        "{path} {body}: unexpected answer {}",
        answer.body
    );
    assert_eq!(answer.body["success"], true, "{path}: {}", answer.body);
    answer.body["data"].clone()
}

/// POST and expect a failure with `status` and gRPC `code`; returns the error text.
pub async fn call_err(
    gateway: &GatewayHandle,
    path: &str,
    body: &str,
    status: u16,
    code: &str,
) -> String {
    let answer = post(&gateway.url(path), body).await;
    assert_eq!(answer.status, status, "{path} {body}: {}", answer.body);
    assert_eq!(answer.body["success"], false, "{path}: {}", answer.body);
    assert_eq!(answer.body["code"], code, "{path}: {}", answer.body);
    answer.body["error"]
        .as_str()
        .expect("error text")
        .to_owned()
}

/// Reads a streamed body line by line (NDJSON) or event by event (SSE).
pub struct BodyReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl BodyReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next chunk of text ending with `separator` (without it); `None` at the end.
    pub async fn next_until(&mut self, separator: &[u8]) -> Option<String> {
        loop {
            if let Some(at) = self
                .buffer
                .windows(separator.len())
                .position(|w| w == separator)
            {
                let piece: Vec<u8> = self.buffer.drain(..at + separator.len()).collect();
                let text = String::from_utf8(piece[..at].to_vec()).expect("utf-8");
                return Some(text);
            }
            let chunk = tokio::time::timeout(EXCHANGE_TIMEOUT, self.response.chunk())
                .await
                .expect("stream stalled")
                .expect("stream error")?;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// The next NDJSON line as JSON.
    pub async fn next_line(&mut self) -> Option<Value> {
        let line = self.next_until(b"\n").await?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
    }

    /// The next SSE event that is not only comments: (event name, data).
    pub async fn next_event(&mut self) -> Option<(String, String)> {
        loop {
            let block = self.next_until(b"\n\n").await?;
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                }
            }
            if !data.is_empty() {
                return Some((name, data.join("\n")));
            }
        }
    }
}

/// An address that nothing listens on (bound, then released). It is on 127.0.0.2, where
/// no other test listens, so a parallel test cannot take it over in between.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.2:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// Poll `check` every 20 ms until it returns true, failing after `EXCHANGE_TIMEOUT`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The built-in scene's camera node, found over the JSON route as the original client finds
/// it (root graph, owned items, the one named `Camera`).
pub async fn camera_node(gateway: &GatewayHandle) -> Value {
    let root = call_ok(gateway, "/ApiProjectManager/rootNodeGraph", "").await["result"].clone();
    let owned = call_ok(
        gateway,
        "/ApiNodeGraph/getOwnedItems",
        &json!({ "objectPtr": root }).to_string(),
    )
    .await["list"]
        .clone();
    let size = call_ok(
        gateway,
        "/ApiItemArray/size",
        &json!({ "objectPtr": owned }).to_string(),
    )
    .await["result"]
        .as_u64()
        .expect("size");
    for index in 0..size {
        let item = call_ok(
            gateway,
            "/ApiItemArray/get",
            &json!({ "objectPtr": owned, "index": index }).to_string(),
        )
        .await["result"]
            .clone();
        let name = call_ok(
            gateway,
            "/ApiItem/name",
            &json!({ "objectPtr": item }).to_string(),
        )
        .await;
        if name["result"] == "Camera" {
            return item;
        }
    }
    panic!("the built-in scene has no item named Camera");
}
