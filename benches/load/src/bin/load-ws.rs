//! Load harness for the multiplexed WebSocket `/ws` and `POST /batch` (not a test: it prints
//! figures). Everything runs in one process against the reference render server:
//!
//! - unary `LiveLink/GetCamera` over `/ws` (one socket) vs the HTTP JSON route, with 1 and
//!   with 64 calls in flight;
//! - bidi echo: one `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` stream, each
//!   `list_services` request answered before the next is sent (ping-pong) and with 32 in
//!   flight, over `/ws` vs a native tonic bidi stream straight to the render server;
//! - 100 unary calls as one `POST /batch` vs 100 sequential HTTP JSON calls.
//!
//! Each figure is the median of several rounds after one warm-up round.
//!
//! ```sh
//! cargo run --release -p octaneweb-load --bin load-ws -- --rounds 5 --seconds 2
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use octaneweb_load::{median, start_in_process_gateway, summarize, Round};
use octaneweb_render_server::{RenderServer, RenderServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[derive(Debug, Parser)]
#[command(about = "Measure /ws and /batch against the HTTP JSON route and native gRPC")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Rounds per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Calls in each batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Run only these measurements (default: all).
    #[arg(long, value_delimiter = ',', value_parser = ["unary", "bidi", "batch"])]
    only: Vec<String>,
}

impl Args {
    fn runs(&self, what: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == what)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let length = Duration::from_secs_f64(args.seconds);

    let render_listener = TcpListener::bind("127.0.0.1:0").await?;
    let render_addr = render_listener.local_addr()?;
    // Idle after one sample per pixel, so rendering does not compete with the calls.
    let server = RenderServer::start(RenderServerConfig {
        width: 64,
        height: 32,
        max_samples_per_pixel: Some(1),
        ..RenderServerConfig::default()
    })?;
    tokio::spawn(server.serve(render_listener, std::future::pending()));
    let gateway = start_in_process_gateway(
        render_addr,
        &[("reflection", tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)],
    )
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    println!("| measurement | path | rate | p50 |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for window in [1usize, 64].into_iter().filter(|_| args.runs("unary")) {
        let ws = median(args.rounds, || ws_unary(gateway, window, length)).await?;
        let json = median(args.rounds, || {
            http_unary(http.clone(), gateway, window, length)
        })
        .await?;
        row(
            &format!("unary GetCamera, {window} in flight"),
            "/ws",
            ws,
            "calls/s",
        );
        row(
            &format!("unary GetCamera, {window} in flight"),
            "HTTP JSON route",
            json,
            "calls/s",
        );
        ratios.push(format!(
            "unary, {window} in flight: /ws / JSON route = {:.2}",
            ws.per_second / json.per_second
        ));
    }
    for window in [1usize, 32].into_iter().filter(|_| args.runs("bidi")) {
        let ws = median(args.rounds, || ws_bidi(gateway, window, length, false)).await?;
        let binary = median(args.rounds, || ws_bidi(gateway, window, length, true)).await?;
        let native = median(args.rounds, || native_bidi(render_addr, window, length)).await?;
        row(
            &format!("bidi echo (reflection), {window} in flight"),
            "/ws JSON",
            ws,
            "messages/s",
        );
        row(
            &format!("bidi echo (reflection), {window} in flight"),
            "/ws binary frames",
            binary,
            "messages/s",
        );
        row(
            &format!("bidi echo (reflection), {window} in flight"),
            "native gRPC",
            native,
            "messages/s",
        );
        ratios.push(format!(
            "bidi, {window} in flight: /ws JSON / native gRPC = {:.2}, /ws binary / native gRPC = {:.2}",
            ws.per_second / native.per_second,
            binary.per_second / native.per_second
        ));
    }
    if args.runs("batch") {
        measure_batches(&args, &http, gateway, length, &mut ratios).await?;
    }
    println!();
    for ratio in ratios {
        println!("{ratio}");
    }
    Ok(())
}

async fn measure_batches(
    args: &Args,
    http: &reqwest::Client,
    gateway: SocketAddr,
    length: Duration,
    ratios: &mut Vec<String>,
) -> anyhow::Result<()> {
    let batch = median(args.rounds, || {
        batch_calls(http.clone(), gateway, args.batch, length)
    })
    .await?;
    let sequential = median(args.rounds, || {
        sequential_calls(http.clone(), gateway, args.batch, length)
    })
    .await?;
    let what = format!("{} GetCamera calls", args.batch);
    row(&what, "one POST /batch", batch, "sets/s");
    row(&what, "sequential HTTP JSON calls", sequential, "sets/s");
    ratios.push(format!(
        "{} calls: sequential time / batch time = {:.1}",
        args.batch,
        sequential.p50.as_secs_f64() / batch.p50.as_secs_f64()
    ));
    Ok(())
}

fn row(what: &str, path: &str, round: Round, unit: &str) {
    println!(
        "| {what} | {path} | {:.0} {unit} | {:.0} µs |",
        round.per_second,
        round.p50.as_secs_f64() * 1e6
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gateway: SocketAddr) -> anyhow::Result<Socket> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{gateway}/ws")).await?;
    Ok(socket)
}

async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await.context("socket closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => bail!("unexpected frame {other:?}"),
        }
    }
}

/// Unary calls over one socket, `window` in flight.
async fn ws_unary(gateway: SocketAddr, window: usize, length: Duration) -> anyhow::Result<Round> {
    let mut socket = connect(gateway).await?;
    let started = Instant::now();
    let deadline = started + length;
    let mut next_id = 0u64;
    let mut in_flight: HashMap<u64, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    for _ in 0..window {
        socket
            .send(Message::Text(
                json!({"id": next_id, "method": "LiveLink/GetCamera"})
                    .to_string()
                    .into(),
            ))
            .await?;
        in_flight.insert(next_id, Instant::now());
        next_id += 1;
    }
    while !in_flight.is_empty() {
        let frame = next_json(&mut socket).await?;
        let Some(end) = frame.get("end") else {
            continue;
        };
        if end["code"] != "OK" {
            bail!("call failed: {frame}");
        }
        let id = frame["id"].as_u64().context("numeric id")?;
        let begun = in_flight.remove(&id).context("unknown id")?;
        latencies.push(begun.elapsed());
        if Instant::now() < deadline {
            socket
                .send(Message::Text(
                    json!({"id": next_id, "method": "LiveLink/GetCamera"})
                        .to_string()
                        .into(),
                ))
                .await?;
            in_flight.insert(next_id, Instant::now());
            next_id += 1;
        }
    }
    let elapsed = started.elapsed();
    let _ = socket.close(None).await;
    summarize(latencies, elapsed)
}

async fn http_unary(
    client: reqwest::Client,
    gateway: SocketAddr,
    callers: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let url = format!("http://{gateway}/LiveLink/GetCamera");
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let begun = Instant::now();
                json_call(&client, &url, "{}").await?;
                latencies.push(begun.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    summarize(latencies, started.elapsed())
}

async fn json_call(client: &reqwest::Client, url: &str, body: &str) -> anyhow::Result<Value> {
    let response = client.post(url).body(body.to_owned()).send().await?;
    if !response.status().is_success() {
        bail!("HTTP {}", response.status());
    }
    Ok(serde_json::from_slice(&response.bytes().await?)?)
}

/// One bidi stream over `/ws`, `window` requests in flight.
async fn ws_bidi(
    gateway: SocketAddr,
    window: usize,
    length: Duration,
    binary: bool,
) -> anyhow::Result<Round> {
    use prost::Message as _;
    let mut socket = connect(gateway).await?;
    // JSON: a text frame; binary: kind 1, id "1", the protobuf request.
    let request = if binary {
        let mut frame = vec![0x01, 1, b'1'];
        frame.extend_from_slice(
            &ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }
            .encode_to_vec(),
        );
        Message::Binary(frame.into())
    } else {
        Message::Text(
            json!({"id": 1, "message": {"list_services": ""}})
                .to_string()
                .into(),
        )
    };
    socket
        .send(Message::Text(
            json!({"id": 1, "method": "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                   "binary": binary})
            .to_string()
            .into(),
        ))
        .await?;
    let started = Instant::now();
    let deadline = started + length;
    let mut sent = std::collections::VecDeque::new();
    for _ in 0..window {
        socket.send(request.clone()).await?;
        sent.push_back(Instant::now());
    }
    let mut latencies = Vec::new();
    while !sent.is_empty() {
        match socket.next().await.context("socket closed")?? {
            Message::Binary(frame) => {
                let answer = frame.get(3..).context("short binary frame")?;
                tonic_reflection::pb::v1::ServerReflectionResponse::decode(answer)?;
            }
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text)?;
                if frame.get("headers").is_some() {
                    continue;
                }
                if frame.get("message").is_none() {
                    bail!("unexpected frame {frame}");
                }
            }
            _ => continue,
        }
        let begun = sent.pop_front().context("an answer too many")?;
        latencies.push(begun.elapsed());
        if Instant::now() < deadline {
            socket.send(request.clone()).await?;
            sent.push_back(Instant::now());
        }
    }
    let elapsed = started.elapsed();
    socket
        .send(Message::Text(
            json!({"id": 1, "half_close": true}).to_string().into(),
        ))
        .await?;
    loop {
        let frame = next_json(&mut socket).await?;
        if frame.get("end").is_some() {
            break;
        }
    }
    let _ = socket.close(None).await;
    summarize(latencies, elapsed)
}

/// One native bidi stream straight to the render server, `window` requests in flight.
async fn native_bidi(
    render_addr: SocketAddr,
    window: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{render_addr}"))?
        .connect()
        .await?;
    let mut client = ServerReflectionClient::new(channel);
    let (requests, receiver) = tokio::sync::mpsc::channel(window.max(1) * 2);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await?
        .into_inner();
    let started = Instant::now();
    let deadline = started + length;
    let mut sent = std::collections::VecDeque::new();
    for _ in 0..window {
        requests.send(request.clone()).await?;
        sent.push_back(Instant::now());
    }
    let mut latencies = Vec::new();
    while !sent.is_empty() {
        answers.message().await?.context("stream ended early")?;
        let begun = sent.pop_front().context("an answer too many")?;
        latencies.push(begun.elapsed());
        if Instant::now() < deadline {
            requests.send(request.clone()).await?;
            sent.push_back(Instant::now());
        }
    }
    let elapsed = started.elapsed();
    drop(requests);
    while answers.message().await?.is_some() {}
    summarize(latencies, elapsed)
}

/// Sets of `size` GetCamera calls as one `POST /batch` each, back to back.
async fn batch_calls(
    client: reqwest::Client,
    gateway: SocketAddr,
    size: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let url = format!("http://{gateway}/batch");
    let body = Value::Array(
        (0..size)
            .map(|_| json!({"service": "LiveLink", "method": "GetCamera"}))
            .collect(),
    )
    .to_string();
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < length {
        let begun = Instant::now();
        let answer = json_call(&client, &url, &body).await?;
        let answers = answer.as_array().context("an array")?;
        if answers.len() != size || answers.iter().any(|a| a["success"] != true) {
            bail!("unexpected batch answer");
        }
        latencies.push(begun.elapsed());
    }
    summarize(latencies, started.elapsed())
}

/// Sets of `size` GetCamera calls made one after another over HTTP.
async fn sequential_calls(
    client: reqwest::Client,
    gateway: SocketAddr,
    size: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let url = format!("http://{gateway}/LiveLink/GetCamera");
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < length {
        let begun = Instant::now();
        for _ in 0..size {
            let answer = json_call(&client, &url, "{}").await?;
            if answer["success"] != true {
                bail!("unexpected answer {answer}");
            }
        }
        latencies.push(begun.elapsed());
    }
    summarize(latencies, started.elapsed())
}
