//! A gRPC-Web forwarding proxy built from tonic's own parts, the like-for-like peer of the
//! gateway's gRPC-Web route in `benches/run-proxies` (issue 12, item 5).
//!
//! tonic-web's `GrpcWebLayer` turns gRPC-Web requests into gRPC ones; behind it, one generic
//! tower service forwards every request, whatever its path, over one tonic `Channel` (one
//! HTTP/2 connection) to the upstream, without decoding any message. The server accepts
//! HTTP/1.1 and h2c with prior knowledge on the same port.
//!
//! ```sh
//! target/release/tonic-web-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:51022
//! ```
//!
//! It prints `listening on ADDR` on stdout once it accepts connections.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(about = "gRPC-Web → gRPC forwarding proxy built from tonic-web (a benchmark peer)")]
struct Args {
    /// Address to listen on (port 0: an ephemeral port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The gRPC server every request is forwarded to, HOST:PORT.
    #[arg(long)]
    upstream: String,
}

// The same allocator as the `octaneweb` binary, so the comparison is about the code paths.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Set up like the gateway's upstream channel: one connection, no Nagle.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.upstream))?
        .tcp_nodelay(true)
        .http2_adaptive_window(true)
        .connect_lazy();
    let forward = tower::service_fn(move |request: http::Request<axum::body::Body>| {
        let mut channel = channel.clone();
        async move {
            use tower::{Service as _, ServiceExt as _};
            let request = request.map(tonic::body::Body::new);
            let answer = match channel.ready().await {
                Ok(channel) => channel.call(request).await,
                Err(error) => Err(error),
            };
            Ok::<_, Infallible>(match answer {
                Ok(response) => response.map(axum::body::Body::new),
                Err(error) => tonic::Status::unavailable(error.to_string())
                    .into_http()
                    .map(|_: tonic::body::Body| axum::body::Body::empty()),
            })
        }
    });
    // Route everything to the forwarder.
    let routes = tonic::service::Routes::from(axum::Router::new().fallback_service(forward));

    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .tcp_nodelay(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming(incoming);
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    server.await?;
    Ok(())
}
