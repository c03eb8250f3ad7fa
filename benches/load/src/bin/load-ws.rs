//! Load harness for the multiplexed WebSocket `/ws`, `POST /batch`, and bidirectional streams
//! on every path (not a test: it prints figures). Everything runs in one process against the
//! reference render server:
//!
//! - unary `LiveLink/GetCamera` over `/ws` (one socket) vs the HTTP JSON route, with 1 and
//!   with 64 calls in flight;
//! - bidi echo: one `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` stream per
//!   round, each `list_services` request counted when its answer arrives, with 1 (ping-pong)
//!   and 32 requests in flight, over seven paths: native gRPC (tonic) straight to the render
//!   server and through the gateway's pass-through, `/ws` JSON messages and `/ws` binary
//!   frames, Connect `application/connect+proto` and `+json`, and gRPC-Web
//!   `application/grpc-web+proto`. Connect and gRPC-Web use hyper's HTTP/2 client (h2c, prior
//!   knowledge) with the request body fed by a channel, full duplex: 5-byte envelopes out,
//!   answers parsed as their bytes arrive (Connect's end-of-stream flag `0x02`, gRPC-Web's
//!   trailer frame `0x80`). The gateway here sends reflection upstream
//!   (`ReflectionAnswers::Upstream`), so every gateway path makes the same hop to the render
//!   server as the native one does; by default the gateway answers reflection itself. The
//!   paths' rounds are interleaved (one round of each path in turn) so that load from other
//!   work on the machine falls on all of them alike; each row also gives the CPU time of this
//!   whole process (client, gateway and render server together) per message, from
//!   `/proc/self/stat`;
//! - 100 unary calls as one `POST /batch` vs 100 sequential HTTP JSON calls.
//!
//! Each figure is the median of several rounds after one warm-up round.
//!
//! ```sh
//! cargo run --release -p octaneweb-load --bin load-ws -- --rounds 5 --seconds 2
//! cargo run --release -p octaneweb-load --bin load-ws -- --rounds 5 --seconds 2 --only bidi
//! ```

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::{BufMut as _, Bytes, BytesMut};
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use octaneweb_gateway::{GatewayConfig, ReflectionAnswers};
use octaneweb_load::{
    median, median_rounds, start_in_process_gateway_with, summarize, CpuMeter, CpuPerUnit, Round,
};
use octaneweb_render_server::{RenderServer, RenderServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

#[derive(Debug, Parser)]
#[command(
    about = "Measure /ws and /batch against the HTTP JSON route, and bidi streams over every path"
)]
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
    // Reflection goes upstream like any other call, so the bidi echo makes the same hop on
    // every path through the gateway.
    let gateway = start_in_process_gateway_with(
        render_addr,
        &[("reflection", tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)],
        GatewayConfig {
            reflection: ReflectionAnswers::Upstream,
            ..GatewayConfig::default()
        },
    )
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    if args.runs("unary") || args.runs("batch") {
        println!("| measurement | path | rate | p50 |");
        println!("|---|---|---|---|");
    }
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
    if args.runs("batch") {
        measure_batches(&args, &http, gateway, length, &mut ratios).await?;
    }
    if args.runs("bidi") {
        measure_bidi(&args, &http, gateway, render_addr, length, &mut ratios).await?;
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
    let mut sent = VecDeque::new();
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

/// One native bidi stream to `target` (the render server, or the gateway's gRPC
/// pass-through), `window` requests in flight.
async fn native_bidi(target: SocketAddr, window: usize, length: Duration) -> anyhow::Result<Round> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))?
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
    let mut sent = VecDeque::new();
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

/// The paths of the bidi echo, in the order their rounds run and their rows print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BidiPath {
    NativeDirect,
    NativeGateway,
    WsJson,
    WsBinary,
    Connect(Envelope),
}

impl BidiPath {
    const ALL: [BidiPath; 7] = [
        BidiPath::NativeDirect,
        BidiPath::NativeGateway,
        BidiPath::WsJson,
        BidiPath::WsBinary,
        BidiPath::Connect(Envelope::ConnectProto),
        BidiPath::Connect(Envelope::ConnectJson),
        BidiPath::Connect(Envelope::GrpcWeb),
    ];

    fn name(self) -> &'static str {
        match self {
            BidiPath::NativeDirect => "native gRPC, straight to the render server",
            BidiPath::NativeGateway => "native gRPC through the gateway",
            BidiPath::WsJson => "/ws JSON",
            BidiPath::WsBinary => "/ws binary frames",
            BidiPath::Connect(Envelope::ConnectProto) => "Connect +proto, HTTP/2",
            BidiPath::Connect(Envelope::ConnectJson) => "Connect +json, HTTP/2",
            BidiPath::Connect(Envelope::GrpcWeb) => "gRPC-Web +proto, HTTP/2",
        }
    }

    async fn round(
        self,
        gateway: SocketAddr,
        render_addr: SocketAddr,
        window: usize,
        length: Duration,
    ) -> anyhow::Result<Round> {
        match self {
            BidiPath::NativeDirect => native_bidi(render_addr, window, length).await,
            BidiPath::NativeGateway => native_bidi(gateway, window, length).await,
            BidiPath::WsJson => ws_bidi(gateway, window, length, false).await,
            BidiPath::WsBinary => ws_bidi(gateway, window, length, true).await,
            BidiPath::Connect(kind) => envelope_bidi(gateway, kind, window, length).await,
        }
    }
}

/// The bidi echo on every path, 1 and 32 in flight; rounds interleaved across the paths.
async fn measure_bidi(
    args: &Args,
    http: &reqwest::Client,
    gateway: SocketAddr,
    render_addr: SocketAddr,
    length: Duration,
    ratios: &mut Vec<String>,
) -> anyhow::Result<()> {
    // Every gateway path must reach the render server: each call adds one upstream answer.
    for path in BidiPath::ALL.iter().skip(1) {
        let before = upstream_answers(http, gateway).await?;
        path.round(gateway, render_addr, 1, Duration::from_millis(20))
            .await
            .with_context(|| path.name())?;
        if upstream_answers(http, gateway).await? != before + 1 {
            bail!("{}: the call did not reach the render server", path.name());
        }
    }
    let meter = CpuMeter::new();
    println!();
    println!("| bidi echo (reflection list_services) | path | rate | p50 | p99 | CPU per message (whole process) |");
    println!("|---|---|---|---|---|---|");
    for window in [1usize, 32] {
        let mut measured: Vec<Vec<(Round, CpuPerUnit)>> = vec![Vec::new(); BidiPath::ALL.len()];
        // Round 0 warms every path up and is not counted.
        for round in 0..=args.rounds.max(1) {
            for (path, rounds) in BidiPath::ALL.iter().zip(&mut measured) {
                let result = meter
                    .round(path.round(gateway, render_addr, window, length))
                    .await
                    .with_context(|| format!("{}, {window} in flight", path.name()))?;
                if round > 0 {
                    rounds.push(result);
                }
            }
        }
        let medians = measured
            .iter()
            .map(|rounds| median_rounds(rounds).context("no rounds measured"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (path, (round, cpu)) in BidiPath::ALL.iter().zip(&medians) {
            println!(
                "| {window} in flight | {} | {:.0} messages/s | {:.0} µs | {:.0} µs | {:.1} µs |",
                path.name(),
                round.per_second,
                round.p50.as_secs_f64() * 1e6,
                round.p99.as_secs_f64() * 1e6,
                cpu.total()
            );
        }
        let (direct, _) = &medians[0];
        let (through, through_cpu) = &medians[1];
        for (path, (round, cpu)) in BidiPath::ALL.iter().zip(&medians).skip(1) {
            ratios.push(format!(
                "bidi, {window} in flight, {}: rate ÷ native through the gateway = {:.2}, \
                 ÷ native direct = {:.2}; CPU per message ÷ native through the gateway = {:.2}",
                path.name(),
                round.per_second / through.per_second,
                round.per_second / direct.per_second,
                cpu.total() / through_cpu.total()
            ));
        }
    }
    Ok(())
}

/// Upstream calls the gateway has had answered so far, from its `/metrics`.
async fn upstream_answers(http: &reqwest::Client, gateway: SocketAddr) -> anyhow::Result<u64> {
    let text = http
        .get(format!("http://{gateway}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let count = text
        .lines()
        .find_map(|line| line.strip_prefix("octaneweb_upstream_answer_seconds_count "))
        .context("octaneweb_upstream_answer_seconds_count in /metrics")?;
    Ok(count.trim().parse()?)
}

/// The enveloped protocols over HTTP/2 that carry a bidi call in one request and one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Envelope {
    /// `application/connect+proto`.
    ConnectProto,
    /// `application/connect+json`: the gateway converts each message to and from protobuf.
    ConnectJson,
    /// `application/grpc-web+proto`.
    GrpcWeb,
}

type BodyItem = Result<Frame<Bytes>, Infallible>;

impl Envelope {
    fn content_type(self) -> &'static str {
        match self {
            Envelope::ConnectProto => "application/connect+proto",
            Envelope::ConnectJson => "application/connect+json",
            Envelope::GrpcWeb => "application/grpc-web+proto",
        }
    }

    /// The flags of the envelope that ends the answer.
    fn end_flags(self) -> u8 {
        match self {
            Envelope::ConnectProto | Envelope::ConnectJson => 0x02,
            Envelope::GrpcWeb => 0x80,
        }
    }

    /// One enveloped `list_services` request.
    fn request(self) -> anyhow::Result<Bytes> {
        use prost::Message as _;
        let payload = match self {
            Envelope::ConnectJson => br#"{"listServices":""}"#.to_vec(),
            Envelope::ConnectProto | Envelope::GrpcWeb => ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }
            .encode_to_vec(),
        };
        let mut envelope = BytesMut::with_capacity(5 + payload.len());
        envelope.put_u8(0);
        envelope.put_u32(u32::try_from(payload.len())?);
        envelope.extend_from_slice(&payload);
        Ok(envelope.freeze())
    }

    /// Decode one answer as a client would, and check it is the list of services.
    fn check_answer(self, payload: &[u8]) -> anyhow::Result<()> {
        use prost::Message as _;
        match self {
            Envelope::ConnectJson => {
                let answer: Value = serde_json::from_slice(payload)?;
                if answer.get("listServicesResponse").is_none() {
                    bail!("unexpected answer {answer}");
                }
            }
            Envelope::ConnectProto | Envelope::GrpcWeb => {
                let answer = ServerReflectionResponse::decode(payload)?;
                if !matches!(
                    answer.message_response,
                    Some(MessageResponse::ListServicesResponse(_))
                ) {
                    bail!("unexpected answer {answer:?}");
                }
            }
        }
        Ok(())
    }

    /// Check the call's end says it succeeded.
    fn check_end(self, payload: &[u8]) -> anyhow::Result<()> {
        match self {
            Envelope::ConnectProto | Envelope::ConnectJson => {
                let end: Value = serde_json::from_slice(payload)?;
                if let Some(error) = end.get("error") {
                    bail!("the call failed: {error}");
                }
            }
            Envelope::GrpcWeb => {
                let trailers = String::from_utf8_lossy(payload);
                let ok = trailers.lines().any(|line| {
                    line.split_once(':').is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case("grpc-status") && value.trim() == "0"
                    })
                });
                if !ok {
                    bail!("the call failed: {trailers}");
                }
            }
        }
        Ok(())
    }
}

/// The next whole envelope in `buffer` (flags, payload), if it has one.
fn next_envelope(buffer: &mut BytesMut) -> Option<(u8, Bytes)> {
    let header = buffer.get(..5)?;
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if buffer.len() < 5 + length {
        return None;
    }
    let flags = header[0];
    let mut envelope = buffer.split_to(5 + length);
    let payload = envelope.split_off(5).freeze();
    Some((flags, payload))
}

/// One Connect or gRPC-Web bidi call over a fresh h2c connection to the gateway, full duplex:
/// the request body is a channel the loop writes to as answers come back, `window` requests
/// in flight.
async fn envelope_bidi(
    gateway: SocketAddr,
    kind: Envelope,
    window: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let stream = tokio::net::TcpStream::connect(gateway).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await?;
    let connection = tokio::spawn(connection);
    // Room for every request in flight: a send never waits while answers are to be read.
    let (requests, receiver) = tokio::sync::mpsc::channel::<BodyItem>(window.max(1) * 2);
    let mut request = http::Request::post(format!("http://{gateway}{REFLECTION}"))
        .header(http::header::CONTENT_TYPE, kind.content_type());
    request = match kind {
        Envelope::ConnectProto | Envelope::ConnectJson => {
            request.header("connect-protocol-version", "1")
        }
        Envelope::GrpcWeb => request.header("x-grpc-web", "1"),
    };
    let request = request.body(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(receiver),
    ))?;
    let message = kind.request()?;
    let closed = || anyhow!("the request body closed early");

    let started = Instant::now();
    let deadline = started + length;
    let mut sent = VecDeque::new();
    for _ in 0..window.max(1) {
        requests
            .send(Ok(Frame::data(message.clone())))
            .await
            .map_err(|_| closed())?;
        sent.push_back(Instant::now());
    }
    let response = sender.send_request(request).await?;
    if response.status() != http::StatusCode::OK {
        bail!("HTTP {}: {:?}", response.status(), response.headers());
    }
    if let Some(status) = response.headers().get("grpc-status") {
        bail!(
            "a trailers-only answer, grpc-status {status:?}: {:?}",
            response.headers()
        );
    }
    let mut body = response.into_body();
    let mut requests = Some(requests);
    let mut buffer = BytesMut::new();
    let mut latencies = Vec::new();
    let mut elapsed = None;
    let mut ended = false;
    while !ended {
        while let Some((flags, payload)) = next_envelope(&mut buffer) {
            if flags == kind.end_flags() {
                kind.check_end(&payload)?;
                ended = true;
                break;
            }
            if flags != 0 {
                bail!("unexpected envelope flags {flags:#x}");
            }
            kind.check_answer(&payload)?;
            let begun = sent.pop_front().context("an answer too many")?;
            latencies.push(begun.elapsed());
            if Instant::now() < deadline {
                requests
                    .as_ref()
                    .ok_or_else(closed)?
                    .send(Ok(Frame::data(message.clone())))
                    .await
                    .map_err(|_| closed())?;
                sent.push_back(Instant::now());
            } else if sent.is_empty() {
                // Every answer is in: end the request stream; the call then ends.
                elapsed = Some(started.elapsed());
                requests = None;
            }
        }
        if ended {
            break;
        }
        let frame = body
            .frame()
            .await
            .context("the answer ended without its end envelope")??;
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    if !sent.is_empty() {
        bail!("the call ended with {} answers missing", sent.len());
    }
    drop(requests);
    connection.abort();
    summarize(latencies, elapsed.unwrap_or_else(|| started.elapsed()))
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
