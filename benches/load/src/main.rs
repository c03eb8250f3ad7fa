//! Load harness for the gateway's unary JSON route (not a test: it prints figures).
//!
//! In one run on one machine it measures the same unary call made four ways against the
//! reference render server:
//!
//! - direct: a tonic client straight to the render server (the baseline),
//! - gateway: `POST /LiveLink/GetCamera` JSON through octaneweb's gateway,
//! - pass-through: the direct tonic client pointed at the gateway instead (the hop alone),
//! - python: the same JSON call through `benches/python-proxy/proxy.py` (aiohttp + grpc.aio,
//!   generated message classes), the way the original proxy was built,
//!
//! at each concurrency level, several rounds each, and reports medians: throughput, p50, p99,
//! the ratios the targets are stated in, and the CPU time one call costs in each process
//! (load generator, render server, proxy), read from `/proc`, which is what bounds the
//! throughput when all of them share the machine's cores.
//!
//! The render server and the gateway run as the real `octaneweb` binary (`render-server`
//! and `serve`), each in its own process, as users run them; this process only generates
//! load. Run it with `benches/run-load` (which builds the binary and prepares the Python
//! baseline's virtualenv) or directly:
//!
//! ```sh
//! cargo build --release -p octaneweb -p octaneweb-load
//! target/release/octaneweb-load --python target/bench-venv/bin/python
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use octaneweb_load::{drive, print_row, CpuMeter, CpuPerUnit, Round};
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::livelinkapi::Empty;
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    about = "Measure the gateway's unary JSON calls against direct gRPC and the Python baseline"
)]
struct Args {
    /// Concurrent callers per level.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Python interpreter with benches/python-proxy/requirements.txt installed; without it the
    /// Python baseline is skipped.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The `octaneweb` binary to measure; default: the one next to this harness.
    #[arg(long)]
    octaneweb: Option<PathBuf>,
    /// RUST_LOG of the gateway process. The default (info) writes one log line per call, as
    /// a gateway started without settings does; the lines go to /dev/null.
    #[arg(long, default_value = "info")]
    gateway_log: String,
}

// The same allocator as the `octaneweb` binary, so the load generator does not contend on
// glibc's arena locks either.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();

    let octaneweb = match &args.octaneweb {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the harness binary has no directory")?
            .join("octaneweb"),
    };
    // The render server idles after one sample per pixel, so rendering does not compete with
    // the calls for the CPU.
    let render_addr = free_loopback_addr().await?;
    let render_server = spawn_octaneweb(
        &octaneweb,
        &[
            "render-server",
            "--listen",
            &render_addr.to_string(),
            "--width",
            "64",
            "--height",
            "32",
            "--max-spp",
            "1",
        ],
        "warn",
        render_addr,
    )
    .await?;
    let gateway_addr = free_loopback_addr().await?;
    let gateway_process = spawn_octaneweb(
        &octaneweb,
        &[
            "serve",
            "--listen",
            &gateway_addr.to_string(),
            "--upstream",
            &render_addr.to_string(),
        ],
        &args.gateway_log,
        gateway_addr,
    )
    .await?;
    let mut python = match &args.python {
        Some(interpreter) => Some(start_python(interpreter, render_addr).await?),
        None => None,
    };

    // Each path is metered with the processes it runs through, so the CPU time a call costs
    // in each of them explains the throughput ratios on a machine whose cores they share.
    let direct_meter = CpuMeter::new().with("render server", render_server.id());
    let gateway_meter = direct_meter.clone().with("gateway", gateway_process.id());
    let python_meter = direct_meter.clone().with(
        "python proxy",
        python.as_ref().and_then(|(_, child)| child.id()),
    );

    println!("| callers | path | calls/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let mut summary = Vec::new();
    let mut cpu_rows: Vec<(usize, &str, CpuPerUnit)> = Vec::new();
    for &callers in &args.concurrency {
        let seconds = Duration::from_secs_f64(args.seconds);
        let (direct, direct_cpu) = direct_meter
            .median(args.rounds, || run_direct(render_addr, callers, seconds))
            .await?;
        let (gateway, gateway_cpu) = gateway_meter
            .median(args.rounds, || {
                run_http(
                    format!("http://{gateway_addr}/LiveLink/GetCamera"),
                    callers,
                    seconds,
                )
            })
            .await?;
        // The same tonic client through the gateway's gRPC pass-through: the cost of the hop
        // alone, with no JSON and no HTTP/1.1.
        let (passthrough, passthrough_cpu) = gateway_meter
            .median(args.rounds, || run_direct(gateway_addr, callers, seconds))
            .await?;
        print_row(callers, "direct tonic", direct);
        print_row(callers, "gateway JSON", gateway);
        print_row(callers, "gateway gRPC pass-through", passthrough);
        cpu_rows.push((callers, "direct tonic", direct_cpu));
        cpu_rows.push((callers, "gateway JSON", gateway_cpu));
        cpu_rows.push((callers, "gateway gRPC pass-through", passthrough_cpu));
        let python_round = match &python {
            Some((addr, _)) => {
                let (round, cpu) = python_meter
                    .median(args.rounds, || {
                        run_http(
                            format!("http://{addr}/LiveLink/GetCamera"),
                            callers,
                            seconds,
                        )
                    })
                    .await?;
                print_row(callers, "python proxy JSON", round);
                cpu_rows.push((callers, "python proxy JSON", cpu));
                Some(round)
            }
            None => None,
        };
        summary.push((callers, direct, gateway, passthrough, python_round));
    }
    println!();
    println!("CPU time per call, µs (median over rounds):");
    println!();
    println!("| callers | path | load generator | render server | proxy | total |");
    println!("|---|---|---|---|---|---|");
    for (callers, path, cpu) in &cpu_rows {
        let of = |name: &str| {
            cpu.processes
                .iter()
                .find(|(process, _)| process == name)
                .map(|(_, us)| *us)
        };
        let proxy = of("gateway").or_else(|| of("python proxy"));
        println!(
            "| {callers} | {path} | {:.1} | {:.1} | {} | {:.1} |",
            of("harness").unwrap_or(0.0),
            of("render server").unwrap_or(0.0),
            proxy.map_or("–".to_owned(), |us| format!("{us:.1}")),
            cpu.total()
        );
    }
    println!();
    for (callers, direct, gateway, passthrough, python_round) in summary {
        println!(
            "{callers} callers: gateway/direct throughput {:.2}; added p50 {:.0} µs; pass-through/direct {:.2}",
            gateway.per_second / direct.per_second,
            gateway.p50.as_secs_f64() * 1e6 - direct.p50.as_secs_f64() * 1e6,
            passthrough.per_second / direct.per_second,
        );
        if let Some(py) = python_round {
            println!(
                "{callers} callers: gateway/python throughput {:.1}x",
                gateway.per_second / py.per_second
            );
        }
    }
    if let Some((_, child)) = python.as_mut() {
        let _ = child.kill().await;
    }
    Ok(())
}

/// A loopback address with a port that was free a moment ago.
async fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?)
}

/// Start `octaneweb ARGS` and wait until it accepts connections on `addr`.
async fn spawn_octaneweb(
    binary: &PathBuf,
    args: &[&str],
    log: &str,
    addr: SocketAddr,
) -> anyhow::Result<tokio::process::Child> {
    let mut child = tokio::process::Command::new(binary)
        .args(args)
        .env("RUST_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with `cargo build --release -p octaneweb`)",
                binary.display()
            )
        })?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("octaneweb {} exited with {status}", args.join(" "));
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "octaneweb {} did not listen on {addr} within 30 s",
                args.join(" ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

async fn start_python(
    interpreter: &PathBuf,
    render_addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::process::Child)> {
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python-proxy/proxy.py");
    let mut child = tokio::process::Command::new(interpreter)
        .arg(&script)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(render_addr.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let stdout = child.stdout.take().context("python proxy stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("listening") {
                return Ok::<bool, std::io::Error>(true);
            }
        }
        Ok(false)
    })
    .await
    .context("python proxy did not start within 60 s")??;
    if !ready {
        bail!("python proxy exited before listening");
    }
    Ok((SocketAddr::from(([127, 0, 0, 1], port)), child))
}

async fn run_direct(addr: SocketAddr, callers: usize, length: Duration) -> anyhow::Result<Round> {
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

async fn run_http(url: String, callers: usize, length: Duration) -> anyhow::Result<Round> {
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().context("URL without host")?.clone();
    let addr: SocketAddr = authority.as_str().parse()?;
    // Each caller keeps one HTTP/1.1 connection, as a browser tab does. A bare hyper
    // connection rather than a pooled client keeps the load generator's own CPU use small on
    // a machine whose cores it shares with the servers it measures.
    let mut senders = Vec::with_capacity(callers);
    for _ in 0..callers.max(1) {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        senders.push(Arc::new(tokio::sync::Mutex::new(sender)));
    }
    drive(callers, length, move |caller| {
        let sender = Arc::clone(&senders[caller % senders.len()]);
        let uri = uri.clone();
        let authority = authority.clone();
        async move {
            let mut sender = sender.lock().await;
            let request = http::Request::post(uri.path())
                .header(http::header::HOST, authority.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await?
                .to_bytes();
            if !status.is_success() {
                bail!("HTTP {status}");
            }
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            if answer.get("success") != Some(&serde_json::Value::Bool(true)) {
                bail!("unexpected answer: {}", String::from_utf8_lossy(&body));
            }
            Ok(())
        }
    })
    .await
}
