//! Memory of the gateway with many render viewers, some of which never read (not a test: it
//! prints figures).
//!
//! It starts the real binary as users run it, `octaneweb demo --listen 127.0.0.1:0 --no-open`
//! (reference render server in the same process, default 1024×512 image, default 10 s
//! send-stall timeout), and for each transport (`/render/ws` WebSocket viewers, and
//! optionally `/render/stream` SSE viewers), in a fresh process per round, measures:
//!
//! - (a) idle: no viewers (after one viewer has come and gone, so encoders are warm);
//! - (b) `--viewers` viewers that all read (the default 1,000);
//! - (c) `--stalled` of them (200) replaced by clients that send their request and never read
//!   a byte (`SO_RCVBUF` of `--rcvbuf` bytes), sampled for at least `--stall-window` seconds
//!   (30) and on until the stall timeout has dropped every one of them (at most
//!   `--max-stall-window`, 120; a write stalls only once the kernel's send buffer is full):
//!   the peak; the value once the gateway has dropped them while their clients still hold the
//!   sockets, as a frozen tab would; the `octaneweb_connections_closed_total{reason="send_stall"}`
//!   counter and when it got there; then the value after the stalled clients hang up, which
//!   is the same process with only the readers left.
//!
//! In each phase it samples, every 250 ms, the gateway process's resident memory (`VmRSS` in
//! `/proc/PID/status`) and the kernel's TCP memory (`mem` of the `TCP:` line of
//! `/proc/net/sockstat`, pages of 4 KiB, machine-wide: both ends of every loopback
//! connection, and anything else on the machine), and with `ss -tm` (iproute2) the bytes
//! queued in the gateway's client-facing sockets, closed ones the kernel still holds
//! included. Steady phases report the median of their samples; each figure in the tables is the median over the rounds. Memory per reading
//! viewer is (b − a) / viewers; per stalled viewer, (peak of c − c after the hang-up) /
//! stalled, and what is still held after the drop, (c after the drop − c after the hang-up) /
//! stalled.
//!
//! Client sockets are bound to 127.0.0.2, 127.0.0.3, … (`--source-addresses`) so the
//! gateway's default cap of 256 connections per address is not reached; everything stays on
//! 127.0.0.0/8, counts and times are bounded, and the run stops by itself.
//!
//! `--ws-encoding raw` makes the WebSocket viewers ask for raw RGBA frames (2 MiB each at
//! 1024×512) instead of the default JPEG; `--timeline` prints every sample of phase (c).
//!
//! ```sh
//! CARGO_INCREMENTAL=0 cargo build --release -p octaneweb -p octaneweb-load
//! target/release/load-viewers --rounds 3 --transports ws,sse
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use clap::{Parser, ValueEnum};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Most viewers a run may open (the gateway's default `--max-connections` is 4096).
const MAX_VIEWERS: usize = 4000;
/// Between two samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Left to settle after viewers connect or leave, before sampling.
const SETTLE: Duration = Duration::from_secs(3);
/// Connection attempts in flight at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Longest wait for one step (a connection, the gateway's first frame, viewers to register).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes in a page of the kernel's TCP memory accounting.
const PAGE: f64 = 4096.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// `GET /render/ws`: binary frame messages (JPEG q85 by default).
    Ws,
    /// `GET /render/stream`: the original proxy's SSE events (base64 RGBA in JSON).
    Sse,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Ws => "/render/ws",
            Transport::Sse => "/render/stream (SSE)",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Gateway RSS and kernel TCP memory with many render viewers, some never reading")]
struct Args {
    /// The `octaneweb` binary to measure; default: the one next to this harness.
    #[arg(long, env = "OCTANEWEB_BIN")]
    octaneweb: Option<PathBuf>,
    /// Viewers in phase (b); phase (c) keeps viewers − stalled of them reading.
    #[arg(long, default_value_t = 1000)]
    viewers: usize,
    /// Viewers that connect and never read in phase (c).
    #[arg(long, default_value_t = 200)]
    stalled: usize,
    /// Rounds (a fresh gateway process each, per transport); medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    rounds: u32,
    /// Which viewers: ws, sse, or both (ws,sse).
    #[arg(long, value_delimiter = ',', default_value = "ws")]
    transports: Vec<Transport>,
    /// Seconds phase (c) is sampled at least, from the moment the stalled clients connect.
    #[arg(long, default_value_t = 30.0)]
    stall_window: f64,
    /// Seconds phase (c) is sampled at most: it goes on past --stall-window until every
    /// stalled viewer has been dropped and --sample-seconds more have been sampled. (A
    /// write stalls only once the kernel's send buffer is full, which can take a while.)
    #[arg(long, default_value_t = 120.0)]
    max_stall_window: f64,
    /// Seconds each steady phase is sampled (also what phase (c) samples after the drop).
    #[arg(long, default_value_t = 5.0)]
    sample_seconds: f64,
    /// SO_RCVBUF of a stalled client's socket, in bytes (the kernel doubles it).
    #[arg(long, default_value_t = 4096)]
    rcvbuf: u32,
    /// Client sockets are bound to 127.0.0.2 … 127.0.0.(1+N), round robin.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_addresses: u8,
    /// RUST_LOG of the gateway process (its log goes to /dev/null).
    #[arg(long, default_value = "info")]
    gateway_log: String,
    /// Encoding the /render/ws viewers ask for (jpeg, png or raw); default: the gateway's
    /// (JPEG quality 85). Stalled viewers send the same request right after their upgrade.
    #[arg(long, value_parser = ["jpeg", "png", "raw"])]
    ws_encoding: Option<String>,
    /// Print every sample of phase (c) to stderr.
    #[arg(long)]
    timeline: bool,
    /// One more argument for `octaneweb demo` (repeatable), e.g. --gateway-arg=--max-spp=64.
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
}

// The same allocator as the `octaneweb` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MAX_VIEWERS).contains(&args.viewers),
        "--viewers must be 1..={MAX_VIEWERS}"
    );
    ensure!(
        args.stalled <= args.viewers,
        "--stalled must not exceed --viewers"
    );
    ensure!(
        (5.0..=300.0).contains(&args.stall_window)
            && (args.stall_window..=300.0).contains(&args.max_stall_window),
        "--stall-window must be 5..=300 s, and --max-stall-window from it to 300 s"
    );
    ensure!(
        (1.0..=60.0).contains(&args.sample_seconds) && args.sample_seconds < args.stall_window,
        "--sample-seconds must be 1..=60 s and shorter than --stall-window"
    );
    ensure!(
        (256..=1 << 20).contains(&args.rcvbuf),
        "--rcvbuf must be 256..=1048576"
    );
    let per_address = args.viewers.div_ceil(usize::from(args.source_addresses));
    if per_address > 256 {
        eprintln!(
            "note: {per_address} connections per source address exceed the gateway's default cap \
             of 256; raise --source-addresses or pass --gateway-arg=--max-connections-per-address=N"
        );
    }
    let binary = match &args.octaneweb {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the harness binary has no directory")?
            .join("octaneweb"),
    };
    let mut transports = args.transports.clone();
    transports.dedup();

    // Everything is bounded: a round takes its phases plus their timeouts at most.
    let per_round = Duration::from_secs_f64(
        args.max_stall_window + 4.0 * args.sample_seconds + 4.0 * STEP_TIMEOUT.as_secs_f64(),
    );
    let budget = per_round * args.rounds * transports.len() as u32;
    eprintln!(
        "load-viewers: {} viewers, {} stalled, {} round(s) of {}; stops within {:.0} s at most",
        args.viewers,
        args.stalled,
        args.rounds,
        transports
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(" and "),
        budget.as_secs_f64()
    );
    let results = tokio::time::timeout(budget, run_all(&args, &binary, &transports))
        .await
        .context("the run did not finish within its time budget")??;
    print_tables(&args, &results);
    Ok(())
}

async fn run_all(
    args: &Args,
    binary: &PathBuf,
    transports: &[Transport],
) -> anyhow::Result<Vec<(Transport, Vec<RoundResult>)>> {
    let mut results = Vec::new();
    for &transport in transports {
        let mut rounds = Vec::new();
        for round in 1..=args.rounds {
            eprintln!("{}: round {round} of {}", transport.name(), args.rounds);
            let result = run_round(args, binary, transport).await?;
            eprintln!("  {}", result.summary(args));
            rounds.push(result);
            // Let the kernel finish closing the round's sockets before the next idle baseline.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        results.push((transport, rounds));
    }
    Ok(results)
}

/// The gateway and memory figures of one sample.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Gateway process VmRSS, KiB.
    rss_kib: f64,
    /// Kernel TCP memory, pages.
    tcp_pages: f64,
    /// Orphaned TCP sockets (closed by their process, still holding data), machine-wide.
    orphans: f64,
    /// Bytes queued in the gateway's own sockets (local port = its port, orphans included),
    /// send plus receive, from `ss -tm`; 0 where `ss` is missing.
    gateway_socket_bytes: f64,
}

impl Sample {
    async fn read(gateway: &Gateway) -> anyhow::Result<Sample> {
        let pid = gateway.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("reading the gateway's /proc/PID/status (has it exited?)")?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .context("no VmRSS in /proc/PID/status")?;
        let sockstat = std::fs::read_to_string("/proc/net/sockstat")?;
        let tcp: Vec<&str> = sockstat
            .lines()
            .find_map(|l| l.strip_prefix("TCP:"))
            .context("no TCP line in /proc/net/sockstat")?
            .split_whitespace()
            .collect();
        let field = |name: &str| {
            tcp.iter()
                .position(|w| *w == name)
                .and_then(|i| tcp.get(i + 1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        Ok(Sample {
            rss_kib,
            tcp_pages: field("mem").context("no TCP mem in /proc/net/sockstat")?,
            orphans: field("orphan").unwrap_or(0.0),
            gateway_socket_bytes: socket_bytes(gateway.addr.port()).await.unwrap_or(0.0),
        })
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kib / 1024.0
    }

    fn tcp_mib(&self) -> f64 {
        self.tcp_pages * PAGE / (1024.0 * 1024.0)
    }

    fn gateway_socket_mib(&self) -> f64 {
        self.gateway_socket_bytes / (1024.0 * 1024.0)
    }
}

/// The bytes queued for sending and received-but-unread (`w` and `r` of `skmem`) in every
/// TCP socket, in any state, whose local port is `port`, as `ss` reports them.
async fn socket_bytes(port: u16) -> Option<f64> {
    let output = tokio::process::Command::new("ss")
        .args(["-tmnHO", "state", "all"])
        .arg(format!("sport = :{port}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut total = 0.0;
    for line in text.lines() {
        let Some(skmem) = line
            .split("skmem:(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
        else {
            continue;
        };
        for field in skmem.split(',') {
            // r<bytes> (receive queue) and w<bytes> (send queue); not rb/tb/wmem limits.
            let value = match field.as_bytes().first() {
                Some(b'r' | b'w') => field[1..].parse::<f64>().ok(),
                _ => None,
            };
            total += value.unwrap_or(0.0);
        }
    }
    Some(total)
}

/// Each field's median over `samples`.
fn median_sample(samples: &[Sample]) -> Sample {
    Sample {
        rss_kib: median(samples.iter().map(|s| s.rss_kib).collect()),
        tcp_pages: median(samples.iter().map(|s| s.tcp_pages).collect()),
        orphans: median(samples.iter().map(|s| s.orphans).collect()),
        gateway_socket_bytes: median(samples.iter().map(|s| s.gateway_socket_bytes).collect()),
    }
}

/// Each field's maximum over `samples`.
fn max_sample(samples: &[Sample]) -> Sample {
    let max = |pick: fn(&Sample) -> f64| samples.iter().map(pick).fold(0.0, f64::max);
    Sample {
        rss_kib: max(|s| s.rss_kib),
        tcp_pages: max(|s| s.tcp_pages),
        orphans: max(|s| s.orphans),
        gateway_socket_bytes: max(|s| s.gateway_socket_bytes),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Samples every [`SAMPLE_EVERY`] for `length`; the median of each figure.
async fn steady(gateway: &Gateway, length: Duration) -> anyhow::Result<Sample> {
    let end = Instant::now() + length;
    let mut samples = Vec::new();
    while Instant::now() < end {
        samples.push(Sample::read(gateway).await?);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    Ok(median_sample(&samples))
}

/// What one round measured for one transport.
#[derive(Debug, Clone, Default)]
struct RoundResult {
    idle: Sample,
    reading: Sample,
    /// Phase (c): the largest sample of each figure.
    peak: Sample,
    /// Phase (c): the median of the last `--sample-seconds`, after the stalled were dropped.
    after: Sample,
    /// After the stalled clients closed their sockets too.
    hung_up: Sample,
    /// send_stall closes counted during phase (c).
    stalls: f64,
    /// Seconds from the stalled clients' connecting to the last of them being counted.
    dropped_after: Option<f64>,
    /// Viewers the gateway reported at the end of phase (c).
    viewers_left: f64,
    /// Frames handed to each reading viewer per second, phases (b) and (c).
    fps_reading: f64,
    fps_mixed: f64,
    /// MB/s the harness's readers received in phases (b) and (c).
    received_mb_s: f64,
    received_mb_s_mixed: f64,
    /// Distinct frames the hub published per second in phase (b).
    published_fps: f64,
    /// Mean size of a frame message handed to a viewer in phase (b), KiB.
    message_kib: f64,
}

impl RoundResult {
    fn summary(&self, args: &Args) -> String {
        format!(
            "idle {:.1} MiB / {:.1} MiB TCP; {} reading {:.1} / {:.1} ({:.1} frames/s each); \
             +{} stalled peak {:.1} / {:.1}, after drop {:.1} / {:.1}, hung up {:.1} / {:.1}; \
             send_stall {} in {}; {} viewers left; {:.1} frames/s published, {:.0} KiB each",
            self.idle.rss_mib(),
            self.idle.tcp_mib(),
            args.viewers,
            self.reading.rss_mib(),
            self.reading.tcp_mib(),
            self.fps_reading,
            args.stalled,
            self.peak.rss_mib(),
            self.peak.tcp_mib(),
            self.after.rss_mib(),
            self.after.tcp_mib(),
            self.hung_up.rss_mib(),
            self.hung_up.tcp_mib(),
            self.stalls,
            self.dropped_after
                .map_or("(not all)".to_owned(), |s| format!("{s:.1} s")),
            self.viewers_left,
            self.published_fps,
            self.message_kib
        )
    }
}

/// The `octaneweb demo` process under test; killed when dropped.
struct Gateway {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
}

impl Gateway {
    async fn start(binary: &PathBuf, args: &Args) -> anyhow::Result<Gateway> {
        let mut child = tokio::process::Command::new(binary)
            .args(["demo", "--listen", "127.0.0.1:0", "--no-open"])
            .args(&args.gateway_args)
            .env("RUST_LOG", &args.gateway_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with `cargo build --release -p octaneweb`)",
                    binary.display()
                )
            })?;
        let pid = child.id().context("the gateway has no pid")?;
        let stdout = child.stdout.take().context("the gateway's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        // "octaneweb demo: open http://127.0.0.1:PORT/ in a browser (Ctrl-C stops)"
        let addr = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("open http://").nth(1) {
                    let authority = rest.split('/').next().unwrap_or_default();
                    return Ok(Some(authority.parse::<SocketAddr>().with_context(
                        || format!("the gateway printed an address I cannot read: {line}"),
                    )?));
                }
            }
            Ok::<_, anyhow::Error>(None)
        })
        .await
        .context("the gateway printed no address within 60 s")??
        .context("the gateway exited before printing its address")?;
        ensure!(
            addr.ip().is_loopback(),
            "the gateway listens on {addr}, not loopback"
        );
        // Keep draining its stdout so a later line never meets a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Gateway { child, pid, addr })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// `GET /metrics`, as `name{labels}` → value.
    async fn metrics(&self) -> anyhow::Result<HashMap<String, f64>> {
        let body = tokio::time::timeout(Duration::from_secs(10), async {
            let mut stream = TcpStream::connect(self.addr).await?;
            stream
                .write_all(
                    format!(
                        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                        self.addr
                    )
                    .as_bytes(),
                )
                .await?;
            let mut body = Vec::new();
            stream.read_to_end(&mut body).await?;
            Ok::<_, std::io::Error>(body)
        })
        .await
        .context("GET /metrics took more than 10 s")??;
        let text = String::from_utf8_lossy(&body);
        ensure!(
            text.starts_with("HTTP/1.1 200"),
            "GET /metrics: {}",
            text.lines().next().unwrap_or("no answer")
        );
        Ok(text
            .lines()
            .filter(|l| l.starts_with("octaneweb_"))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect())
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(self.metrics().await?.get(name).copied().unwrap_or(0.0))
    }

    /// Waits until `name` satisfies `ok`.
    async fn wait_for(&self, name: &str, ok: impl Fn(f64) -> bool) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let value = self.metric(name).await?;
            if ok(value) {
                return Ok(());
            }
            if started.elapsed() > STEP_TIMEOUT {
                bail!("{name} is still {value} after {} s", STEP_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A TCP connection to the gateway from 127.0.0.(2 + index mod addresses).
async fn connect_from(
    index: usize,
    addresses: u8,
    gateway: SocketAddr,
    rcvbuf: Option<u32>,
) -> anyhow::Result<TcpStream> {
    let last_octet = 2 + (index % usize::from(addresses)) as u8;
    let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)), 0);
    let socket = TcpSocket::new_v4()?;
    if let Some(bytes) = rcvbuf {
        // Before connecting, so the window the client offers is small from the start.
        socket.set_recv_buffer_size(bytes)?;
    }
    socket
        .bind(source)
        .with_context(|| format!("binding {source}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(gateway))
        .await
        .context("connecting took more than 10 s")??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The request line and headers a viewer of `transport` sends.
fn request(transport: Transport, gateway: SocketAddr) -> String {
    match transport {
        Transport::Ws => format!(
            "GET /render/ws HTTP/1.1\r\nHost: {gateway}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        ),
        Transport::Sse => format!(
            "GET /render/stream HTTP/1.1\r\nHost: {gateway}\r\nAccept: text/event-stream\r\n\r\n"
        ),
    }
}

/// Bytes every reading viewer received, in total.
#[derive(Default)]
struct Received(AtomicU64);

/// A viewer that reads everything it is sent until its task is aborted.
async fn reading_viewer(
    transport: Transport,
    index: usize,
    args: &Args,
    gateway: SocketAddr,
    received: Arc<Received>,
) -> anyhow::Result<JoinHandle<()>> {
    let stream = connect_from(index, args.source_addresses, gateway, None).await?;
    match transport {
        Transport::Ws => {
            let (mut socket, _) = tokio::time::timeout(
                Duration::from_secs(20),
                tokio_tungstenite::client_async(format!("ws://{gateway}/render/ws"), stream),
            )
            .await
            .context("WebSocket handshake took more than 20 s")??;
            if let Some(encoding) = &args.ws_encoding {
                socket
                    .send(Message::Text(config_message(encoding).into()))
                    .await?;
            }
            Ok(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    let bytes = match &message {
                        Message::Binary(data) => data.len(),
                        Message::Text(text) => text.len(),
                        _ => 0,
                    };
                    received.0.fetch_add(bytes as u64, Ordering::Relaxed);
                }
            }))
        }
        Transport::Sse => {
            let mut stream = stream;
            stream
                .write_all(request(transport, gateway).as_bytes())
                .await?;
            let mut buf = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
                .await
                .context("no SSE answer within 20 s")??;
            ensure!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "GET /render/stream: {}",
                String::from_utf8_lossy(&buf[..n.min(120)])
            );
            received.0.fetch_add(n as u64, Ordering::Relaxed);
            Ok(tokio::spawn(async move {
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    received.0.fetch_add(n as u64, Ordering::Relaxed);
                }
            }))
        }
    }
}

/// A viewer that sends its request and never reads a byte; held open until dropped.
async fn stalled_viewer(
    transport: Transport,
    index: usize,
    args: &Args,
    gateway: SocketAddr,
) -> anyhow::Result<TcpStream> {
    let mut stream = connect_from(index, args.source_addresses, gateway, Some(args.rcvbuf)).await?;
    let mut bytes = request(transport, gateway).into_bytes();
    if let (Transport::Ws, Some(encoding)) = (transport, &args.ws_encoding) {
        // Read by the gateway once the upgrade is done, though this client never reads.
        bytes.extend(masked_text_frame(&config_message(encoding)));
    }
    stream.write_all(&bytes).await?;
    Ok(stream)
}

/// Opens `count` viewers with indexes from `first`, [`CONNECT_CONCURRENCY`] at a time.
async fn open_many<T, F, Fut>(first: usize, count: usize, open: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    futures::stream::iter(first..first + count)
        .map(open)
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The `encoding` label of the frames a viewer of `transport` gets.
fn encoding_label(transport: Transport, args: &Args) -> &str {
    match transport {
        Transport::Ws => args.ws_encoding.as_deref().unwrap_or("jpeg"),
        Transport::Sse => "sse",
    }
}

fn frames_metric(transport: Transport, args: &Args) -> String {
    format!(
        "octaneweb_render_frames_out_total{{encoding=\"{}\"}}",
        encoding_label(transport, args)
    )
}

fn bytes_metric(transport: Transport, args: &Args) -> String {
    format!(
        "octaneweb_render_bytes_out_total{{encoding=\"{}\"}}",
        encoding_label(transport, args)
    )
}

/// The control message that asks for `encoding`.
fn config_message(encoding: &str) -> String {
    format!(r#"{{"type":"config","encoding":"{encoding}"}}"#)
}

/// `text` as one masked WebSocket text frame, as a client sends it (shorter than 126 bytes).
fn masked_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    assert!(payload.len() < 126, "a short control message");
    let mask = [0x5a, 0x13, 0xc7, 0x2e];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

const PUBLISHED: &str = "octaneweb_render_frames_published_total";

const VIEWERS: &str = "octaneweb_render_viewers";
const SEND_STALLS: &str = "octaneweb_connections_closed_total{reason=\"send_stall\"}";

async fn run_round(
    args: &Args,
    binary: &PathBuf,
    transport: Transport,
) -> anyhow::Result<RoundResult> {
    let gateway = Gateway::start(binary, args).await?;
    let outcome = measure_round(args, &gateway, transport).await;
    gateway.stop().await;
    outcome
}

async fn measure_round(
    args: &Args,
    gateway: &Gateway,
    transport: Transport,
) -> anyhow::Result<RoundResult> {
    let addr = gateway.addr;
    let sample_length = Duration::from_secs_f64(args.sample_seconds);
    let mut result = RoundResult::default();
    gateway
        .wait_for(PUBLISHED, |n| n >= 1.0)
        .await
        .context("the demo's render server published no frame")?;

    // Warm-up: one viewer for a moment, so the idle baseline has its encoders and buffers.
    let received = Arc::new(Received::default());
    let warm = reading_viewer(transport, 0, args, addr, Arc::clone(&received)).await?;
    gateway
        .wait_for(&frames_metric(transport, args), |n| n >= 2.0)
        .await?;
    warm.abort();
    gateway.wait_for(VIEWERS, |n| n == 0.0).await?;
    tokio::time::sleep(SETTLE).await;

    // (a) idle.
    result.idle = steady(gateway, sample_length).await?;

    // (b) every viewer reads.
    let mut readers = open_many(0, args.viewers, |i| {
        reading_viewer(transport, i, args, addr, Arc::clone(&received))
    })
    .await
    .context("opening the reading viewers")?;
    gateway
        .wait_for(VIEWERS, |n| n == args.viewers as f64)
        .await?;
    tokio::time::sleep(SETTLE).await;
    let (before, bytes_before, started) = (
        gateway.metrics().await?,
        received.0.load(Ordering::Relaxed),
        Instant::now(),
    );
    result.reading = steady(gateway, sample_length).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = gateway.metrics().await?;
    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    let frames = delta(&frames_metric(transport, args));
    result.fps_reading = frames / elapsed / args.viewers as f64;
    result.published_fps = delta(PUBLISHED) / elapsed;
    result.message_kib = delta(&bytes_metric(transport, args)) / frames.max(1.0) / 1024.0;
    result.received_mb_s =
        (received.0.load(Ordering::Relaxed) - bytes_before) as f64 / elapsed / 1e6;

    // (c) `stalled` of them replaced by viewers that never read.
    let reading_left = args.viewers - args.stalled;
    for reader in readers.drain(reading_left..) {
        reader.abort();
    }
    let stalls_before = gateway.metric(SEND_STALLS).await?;
    let frames_before = gateway.metric(&frames_metric(transport, args)).await?;
    let bytes_before = received.0.load(Ordering::Relaxed);
    let started = Instant::now();
    let (min_window, max_window) = (args.stall_window, args.max_stall_window);
    let connecting = open_many(args.viewers, args.stalled, |i| {
        stalled_viewer(transport, i, args, addr)
    });
    let sampling = async {
        let mut samples: Vec<(f64, Sample)> = Vec::new();
        let mut dropped_after: Option<f64> = None;
        let mut tick = 0u32;
        loop {
            let now = started.elapsed().as_secs_f64();
            // Sampled for a while after the last stalled viewer is gone (1 s to let frees land).
            let sampled_after_drop =
                dropped_after.is_some_and(|t| now >= t + 1.0 + args.sample_seconds);
            if (now >= min_window && sampled_after_drop) || now >= max_window {
                break;
            }
            samples.push((now, Sample::read(gateway).await?));
            if tick.is_multiple_of(4) && dropped_after.is_none() {
                let stalls = gateway.metric(SEND_STALLS).await? - stalls_before;
                if stalls >= args.stalled as f64 {
                    dropped_after = Some(started.elapsed().as_secs_f64());
                }
            }
            tick += 1;
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        Ok::<_, anyhow::Error>((samples, dropped_after))
    };
    let (stalled, sampled) = tokio::join!(connecting, sampling);
    let stalled = stalled.context("opening the stalled viewers")?;
    let (samples, dropped_after) = sampled?;
    let elapsed = started.elapsed().as_secs_f64();
    result.fps_mixed = (gateway.metric(&frames_metric(transport, args)).await? - frames_before)
        / elapsed
        / reading_left.max(1) as f64;
    result.received_mb_s_mixed =
        (received.0.load(Ordering::Relaxed) - bytes_before) as f64 / elapsed / 1e6;
    if args.timeline {
        for (t, sample) in &samples {
            eprintln!(
                "    t={t:5.2} s  RSS {:6.1} MiB  kernel TCP {:7.1} MiB  gateway's sockets {:7.1} MiB  orphans {:.0}",
                sample.rss_mib(),
                sample.tcp_mib(),
                sample.gateway_socket_mib(),
                sample.orphans
            );
        }
    }
    result.stalls = gateway.metric(SEND_STALLS).await? - stalls_before;
    result.dropped_after = dropped_after;
    result.viewers_left = gateway.metric(VIEWERS).await?;
    let all: Vec<Sample> = samples.iter().map(|(_, s)| *s).collect();
    result.peak = max_sample(&all);
    let end = samples.last().map_or(0.0, |(t, _)| *t);
    let after_from = (end - args.sample_seconds).max(dropped_after.map_or(0.0, |t| t + 1.0));
    let after: Vec<Sample> = samples
        .iter()
        .filter(|(t, _)| *t >= after_from)
        .map(|(_, s)| *s)
        .collect();
    result.after = median_sample(&after);
    if dropped_after.is_none() {
        eprintln!(
            "  note: only {} of {} stalled viewers were dropped within {max_window} s",
            result.stalls, args.stalled
        );
    }

    // The stalled clients hang up too; what is left is the 800 readers'.
    drop(stalled);
    tokio::time::sleep(SETTLE).await;
    result.hung_up = steady(gateway, Duration::from_secs(1)).await?;

    for reader in readers {
        reader.abort();
    }
    Ok(result)
}

/// Each figure's median over the rounds.
fn median_round(rounds: &[RoundResult]) -> RoundResult {
    let pick =
        |f: fn(&RoundResult) -> Sample| median_sample(&rounds.iter().map(f).collect::<Vec<_>>());
    let value = |f: fn(&RoundResult) -> f64| median(rounds.iter().map(f).collect());
    let dropped: Vec<f64> = rounds.iter().filter_map(|r| r.dropped_after).collect();
    RoundResult {
        idle: pick(|r| r.idle),
        reading: pick(|r| r.reading),
        peak: pick(|r| r.peak),
        after: pick(|r| r.after),
        hung_up: pick(|r| r.hung_up),
        stalls: value(|r| r.stalls),
        dropped_after: (dropped.len() == rounds.len()).then(|| median(dropped)),
        viewers_left: value(|r| r.viewers_left),
        fps_reading: value(|r| r.fps_reading),
        fps_mixed: value(|r| r.fps_mixed),
        received_mb_s: value(|r| r.received_mb_s),
        received_mb_s_mixed: value(|r| r.received_mb_s_mixed),
        published_fps: value(|r| r.published_fps),
        message_kib: value(|r| r.message_kib),
    }
}

fn print_tables(args: &Args, results: &[(Transport, Vec<RoundResult>)]) {
    let (n, s) = (args.viewers, args.stalled);
    let reading_left = n - s;
    println!();
    println!(
        "| viewers | phase | gateway RSS | Δ vs idle | kernel TCP mem (machine) | Δ vs idle | gateway's sockets (ss) | frames/s per reading viewer |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (transport, rounds) in results {
        let m = median_round(rounds);
        let row = |phase: String, sample: Sample, fps: Option<f64>| {
            println!(
                "| {} | {phase} | {:.1} MiB | {:+.1} MiB | {:.1} MiB | {:+.1} MiB | {:.1} MiB | {} |",
                transport.name(),
                sample.rss_mib(),
                sample.rss_mib() - m.idle.rss_mib(),
                sample.tcp_mib(),
                sample.tcp_mib() - m.idle.tcp_mib(),
                sample.gateway_socket_mib(),
                fps.map_or("–".to_owned(), |f| format!("{f:.2}")),
            );
        };
        row("(a) idle, no viewers".to_owned(), m.idle, None);
        row(format!("(b) {n} reading"), m.reading, Some(m.fps_reading));
        row(
            format!("(c) {reading_left} reading + {s} stalled, peak"),
            m.peak,
            Some(m.fps_mixed),
        );
        row(
            "(c) after the stall timeout dropped them (their clients still connected)".to_owned(),
            m.after,
            None,
        );
        row(
            "(c) after the stalled clients hung up".to_owned(),
            m.hung_up,
            None,
        );
    }
    println!();
    println!("| viewers | per viewer | gateway RSS | kernel TCP mem (machine) | gateway's sockets (ss) |");
    println!("|---|---|---|---|---|");
    for (transport, rounds) in results {
        let m = median_round(rounds);
        let row = |what: String, from: Sample, to: Sample, count: usize| {
            let kib = |mib: f64| mib * 1024.0 / count.max(1) as f64;
            println!(
                "| {} | {what} | {:.0} KiB | {:.0} KiB | {:.0} KiB |",
                transport.name(),
                kib(from.rss_mib() - to.rss_mib()),
                kib(from.tcp_mib() - to.tcp_mib()),
                kib(from.gateway_socket_mib() - to.gateway_socket_mib()),
            );
        };
        row(format!("reading: (b − a) / {n}"), m.reading, m.idle, n);
        // Against the same process with only the readers left.
        row(
            format!("stalled, at the peak: (peak − hung up) / {s}"),
            m.peak,
            m.hung_up,
            s,
        );
        row(
            format!("stalled, still held after the drop: (after − hung up) / {s}"),
            m.after,
            m.hung_up,
            s,
        );
    }
    println!();
    for (transport, rounds) in results {
        let m = median_round(rounds);
        println!(
            "{}: send_stall closes {:.0} of {s}, all of them after {}; {:.0} viewers left; \
             {:.1} frames/s published, {:.0} KiB per frame message",
            transport.name(),
            m.stalls,
            m.dropped_after
                .map_or("(not in every round)".to_owned(), |t| format!("{t:.1} s")),
            m.viewers_left,
            m.published_fps,
            m.message_kib,
        );
    }
    println!();
    for (transport, rounds) in results {
        println!(
            "{}: per round (gateway RSS / kernel TCP mem / gateway's sockets, MiB):",
            transport.name()
        );
        let three = |x: &Sample| {
            format!(
                "{:.1}/{:.1}/{:.1}",
                x.rss_mib(),
                x.tcp_mib(),
                x.gateway_socket_mib()
            )
        };
        for (i, r) in rounds.iter().enumerate() {
            println!(
                "  round {}: idle {}, reading {}, peak {}, after {} ({:.0} orphaned sockets), hung up {}; dropped after {}; readers got {:.0} MB/s in (b), {:.0} MB/s in (c); {:.1} frames/s published, {:.0} KiB each",
                i + 1,
                three(&r.idle),
                three(&r.reading),
                three(&r.peak),
                three(&r.after),
                r.after.orphans,
                three(&r.hung_up),
                r.dropped_after
                    .map_or("(not all)".to_owned(), |s| format!("{s:.1} s")),
                r.received_mb_s,
                r.received_mb_s_mixed,
                r.published_fps,
                r.message_kib,
            );
        }
    }
}
