//! Load harness for the standard wire protocols (not a test: it prints figures).
//!
//! In one run, against one in-process reference render server, it measures:
//!
//! - gRPC pass-through, unary: a tonic `GetCamera` through the gateway vs straight to the
//!   render server;
//! - gRPC pass-through, server streaming: `callbackChannel` notifications received per
//!   second, one stream per caller, through the gateway vs straight (a second render server
//!   that keeps rendering and notifies up to 1000 times a second);
//! - gRPC-Web binary, unary: `GetCamera` through the gateway vs through tonic-web
//!   (`GrpcWebLayer`) in front of the same render services in-process, the Rust peer;
//! - Connect JSON, unary: `GetCamera` through the gateway's Connect protocol vs its
//!   original-proxy JSON route (`POST /LiveLink/GetCamera`).
//!
//! Each at every concurrency level, several rounds after a warm-up round, medians reported
//! with the ratios the targets are stated in.
//!
//! ```sh
//! cargo run --release -p octaneweb-load --bin load-wire -- --seconds 2 --rounds 3
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use octaneweb_load::{drive, median, print_row, start_in_process_gateway, summarize, Round};
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::livelinkapi::Empty;
use octaneweb_proto::octaneapi::api_render_engine::RestartRenderingRequest;
use octaneweb_proto::octaneapi::api_render_engine_service_client::ApiRenderEngineServiceClient;
use octaneweb_proto::octaneapi::stream_callback_service_client::StreamCallbackServiceClient;
use octaneweb_render_server::{RenderServer, RenderServerConfig};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(about = "Measure gRPC pass-through, gRPC-Web and Connect against their baselines")]
struct Args {
    /// Concurrent callers per level.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Rounds per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure only the server streams.
    #[arg(long)]
    streams_only: bool,
}

/// One measured round.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = Duration::from_secs_f64(args.seconds);

    // The unary peer idles after one sample per pixel, so rendering does not compete with
    // the calls for the CPU.
    let idle_listener = TcpListener::bind("127.0.0.1:0").await?;
    let idle_addr = idle_listener.local_addr()?;
    let idle = RenderServer::start(RenderServerConfig {
        width: 64,
        height: 32,
        max_samples_per_pixel: Some(1),
        ..RenderServerConfig::default()
    })?;
    let routes = idle.routes().await?;
    tokio::spawn(idle.serve(idle_listener, std::future::pending()));
    let tonic_web_addr = start_tonic_web(routes).await?;
    let tonic_web_proxy_addr = start_tonic_web_proxy(idle_addr).await?;
    let gateway_addr = start_in_process_gateway(idle_addr, &[]).await?;

    println!("| callers | path | per second | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let unary_levels: &[usize] = if args.streams_only {
        &[]
    } else {
        &args.concurrency
    };
    for &callers in unary_levels {
        let direct = median(args.rounds, || unary_tonic(idle_addr, callers, seconds)).await?;
        let through = median(args.rounds, || unary_tonic(gateway_addr, callers, seconds)).await?;
        print_row(callers, "gRPC unary, direct", direct);
        print_row(callers, "gRPC unary, gateway pass-through", through);
        ratios.push(format!(
            "{callers} callers: gRPC pass-through / direct, unary: {:.2}",
            through.per_second / direct.per_second
        ));

        let peer = median(args.rounds, || grpc_web(tonic_web_addr, callers, seconds)).await?;
        let proxy_peer = median(args.rounds, || {
            grpc_web(tonic_web_proxy_addr, callers, seconds)
        })
        .await?;
        let ours = median(args.rounds, || grpc_web(gateway_addr, callers, seconds)).await?;
        print_row(callers, "gRPC-Web binary, tonic-web in-process", peer);
        print_row(
            callers,
            "gRPC-Web binary, tonic-web proxy in-process",
            proxy_peer,
        );
        print_row(callers, "gRPC-Web binary, gateway", ours);
        ratios.push(format!(
            "{callers} callers: gRPC-Web gateway / tonic-web serving the service: {:.2}",
            ours.per_second / peer.per_second
        ));
        ratios.push(format!(
            "{callers} callers: gRPC-Web gateway / tonic-web proxy to the same upstream: {:.2}",
            ours.per_second / proxy_peer.per_second
        ));

        let json = median(args.rounds, || {
            http_json(gateway_addr, JsonRoute::OriginalProxy, callers, seconds)
        })
        .await?;
        let connect = median(args.rounds, || {
            http_json(gateway_addr, JsonRoute::Connect, callers, seconds)
        })
        .await?;
        print_row(callers, "JSON, original-proxy route", json);
        print_row(callers, "JSON, Connect", connect);
        ratios.push(format!(
            "{callers} callers: Connect JSON / original-proxy JSON: {:.2}",
            connect.per_second / json.per_second
        ));
    }

    // Streaming: a render server that keeps rendering and notifies up to 1000 times a second.
    let busy_listener = TcpListener::bind("127.0.0.1:0").await?;
    let busy_addr = busy_listener.local_addr()?;
    let busy = RenderServer::start(RenderServerConfig {
        width: 64,
        height: 32,
        max_callback_rate: 1000.0,
        ..RenderServerConfig::default()
    })?;
    tokio::spawn(busy.serve(busy_listener, std::future::pending()));
    let busy_gateway = start_in_process_gateway(busy_addr, &[]).await?;
    eprintln!("streaming: render server {busy_addr}, gateway {busy_gateway}");
    for &callers in &args.concurrency {
        let direct = median(args.rounds, || async {
            restart_rendering(busy_addr).await?;
            callback_stream(busy_addr, callers, seconds).await
        })
        .await?;
        let through = median(args.rounds, || async {
            restart_rendering(busy_addr).await?;
            callback_stream(busy_gateway, callers, seconds).await
        })
        .await?;
        print_row(callers, "gRPC server stream (messages), direct", direct);
        print_row(callers, "gRPC server stream (messages), gateway", through);
        ratios.push(format!(
            "{callers} callers: gRPC pass-through / direct, server stream messages: {:.2}",
            through.per_second / direct.per_second
        ));
    }
    println!();
    for line in ratios {
        println!("{line}");
    }
    Ok(())
}

/// tonic-web in front of a service that forwards every gRPC request to the upstream over one
/// tonic channel: a gRPC-Web proxy built from tonic's own parts, the like-for-like peer of the
/// gateway's gRPC-Web (which also forwards to an upstream, a hop tonic-web serving the
/// service in-process does not make).
async fn start_tonic_web_proxy(upstream: SocketAddr) -> anyhow::Result<SocketAddr> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{upstream}"))?.connect_lazy();
    let forward = tower::service_fn(move |request: http::Request<axum::body::Body>| {
        let mut channel = channel.clone();
        async move {
            use tower::{Service as _, ServiceExt as _};
            let request = request.map(tonic::body::Body::new);
            let answer = match channel.ready().await {
                Ok(channel) => channel.call(request).await,
                Err(error) => Err(error),
            };
            Ok::<_, std::convert::Infallible>(match answer {
                Ok(response) => response.map(axum::body::Body::new),
                Err(error) => tonic::Status::unavailable(error.to_string())
                    .into_http()
                    .map(|_: tonic::body::Body| axum::body::Body::empty()),
            })
        }
    });
    let routes = tonic::service::Routes::from(axum::Router::new().fallback_service(forward));
    start_tonic_web(routes).await
}

/// tonic-web in front of `routes` (the render server's own services, or the forwarding
/// proxy), on its own port.
async fn start_tonic_web(routes: tonic::service::Routes) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    Ok(addr)
}

async fn unary_tonic(addr: SocketAddr, callers: usize, length: Duration) -> anyhow::Result<Round> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    drive(callers, length, move |_caller| {
        let mut client = LiveLinkServiceClient::new(channel.clone());
        async move {
            client.get_camera(Empty {}).await?;
            Ok(())
        }
    })
    .await
}

/// gRPC-Web binary over HTTP/1.1 (as browsers mostly speak it), checking the answer's
/// message frame and `grpc-status: 0` trailer frame.
async fn grpc_web(addr: SocketAddr, callers: usize, length: Duration) -> anyhow::Result<Round> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(callers)
        .build()?;
    let url = Arc::new(format!(
        "http://{addr}/livelinkapi.LiveLinkService/GetCamera"
    ));
    drive(callers, length, move |_caller| {
        let client = client.clone();
        let url = Arc::clone(&url);
        async move {
            let response = client
                .post(url.as_str())
                .header("content-type", "application/grpc-web+proto")
                .header("x-grpc-web", "1")
                .body(vec![0u8, 0, 0, 0, 0])
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("HTTP {}", response.status());
            }
            let body = response.bytes().await?;
            check_grpc_web(&body)
        }
    })
    .await
}

fn check_grpc_web(body: &[u8]) -> anyhow::Result<()> {
    let mut rest = body;
    let mut messages = 0;
    while let Some(header) = rest.get(..5) {
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let payload = rest
            .get(5..5 + length)
            .context("truncated gRPC-Web frame")?;
        if header[0] & 0x80 != 0 {
            let trailers = String::from_utf8_lossy(payload);
            if !trailers.contains("grpc-status:0") && !trailers.contains("grpc-status: 0") {
                bail!("unexpected trailers {trailers:?}");
            }
            return if messages == 1 {
                Ok(())
            } else {
                bail!("{messages} messages in a unary answer")
            };
        }
        messages += 1;
        rest = rest.get(5 + length..).unwrap_or_default();
    }
    bail!("no trailer frame")
}

#[derive(Clone, Copy)]
enum JsonRoute {
    OriginalProxy,
    Connect,
}

async fn http_json(
    addr: SocketAddr,
    route: JsonRoute,
    callers: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(callers)
        .build()?;
    let url = Arc::new(match route {
        JsonRoute::OriginalProxy => format!("http://{addr}/LiveLink/GetCamera"),
        JsonRoute::Connect => format!("http://{addr}/livelinkapi.LiveLinkService/GetCamera"),
    });
    drive(callers, length, move |_caller| {
        let client = client.clone();
        let url = Arc::clone(&url);
        async move {
            let mut request = client
                .post(url.as_str())
                .header("content-type", "application/json")
                .body("{}");
            if let JsonRoute::Connect = route {
                request = request.header("connect-protocol-version", "1");
            }
            let response = request.send().await?;
            if !response.status().is_success() {
                bail!("HTTP {}", response.status());
            }
            let body = response.bytes().await?;
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            let camera = match route {
                JsonRoute::OriginalProxy => answer.get("data"),
                JsonRoute::Connect => Some(&answer),
            };
            if camera.and_then(|c| c.get("fov")).is_none() {
                bail!("unexpected answer: {}", String::from_utf8_lossy(&body));
            }
            Ok(())
        }
    })
    .await
}

/// `callers` callback streams for `length`: messages received per second in total, and the
/// gaps between messages as the latency figures.
/// Start accumulation over, so that every measurement sees a render that is still refining: a
/// 64x32 image reaches the server's sample cap (and stops sending new images) in about 30 s.
async fn restart_rendering(render_server: SocketAddr) -> anyhow::Result<()> {
    let mut engine =
        ApiRenderEngineServiceClient::connect(format!("http://{render_server}")).await?;
    engine.restart_rendering(RestartRenderingRequest {}).await?;
    Ok(())
}

async fn callback_stream(
    addr: SocketAddr,
    callers: usize,
    length: Duration,
) -> anyhow::Result<Round> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + length;
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers.max(1) {
        let mut client = StreamCallbackServiceClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = client.callback_channel(()).await?.into_inner();
            let mut gaps = Vec::new();
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    message = stream.message() => {
                        if message?.is_none() {
                            bail!("the callback stream ended early");
                        }
                        gaps.push(last.elapsed());
                        last = Instant::now();
                    }
                }
            }
            Ok::<_, anyhow::Error>(gaps)
        }));
    }
    let mut gaps = Vec::new();
    for task in tasks {
        gaps.extend(
            task.await?
                .with_context(|| format!("callback stream from {addr}"))?,
        );
    }
    let elapsed = started.elapsed();
    // Every gap is one message received, so the rate is messages per second.
    summarize(gaps, elapsed)
}
