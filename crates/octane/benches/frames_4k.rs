//! 4K frames to browsers (issue 17): a plain harness, `cargo bench -p octaneweb-octane --bench
//! frames_4k` (an optional phase filter: `reference`, `replay`, `memory`, `encode`).
//!
//! Frames are real renders: the reference render server (in this process, over gRPC on
//! loopback, as `octaneweb demo` runs it) renders the built-in scene at 3840×2160. Viewers are
//! real WebSocket clients of `/render/ws` on loopback, asking for JPEG quality 80 either at
//! 1440×810 (a laptop window) or at full size; each runs alone in its round, rounds of the two
//! interleaved, and medians of the rounds are reported.
//!
//! Phases:
//! - `reference`: the hub subscribed over gRPC to the reference server while a client moves
//!   the camera 30 times a second (an artist orbiting): every change makes the renderer
//!   publish a fresh preview as fast as it can, on the same two cores the gateway uses.
//! - `replay`: the renderer notifying at exactly 30 frames a second, with the 4K frames the
//!   reference phase captured published into a hub on a thread of their own, so the figure
//!   is the gateway's (scale, encode, send), not the path tracer's.
//! - `memory`: the replay with 1 and with 32 viewers at 1440×810: resident memory.
//! - `encode`: one full 4K frame through the JPEG encoder the gateway uses and through the
//!   encoder it used before (jpeg-encoder, one thread), and the area-average to 1440×810.
//!
//! `OCTANEWEB_BENCH_SECONDS` sets each round's length (default 5), `OCTANEWEB_BENCH_ROUNDS`
//! the rounds (default 3).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use octaneweb_gateway::upstream::{Upstream, UpstreamConfig};
use octaneweb_octane::encode::{encode_jpeg, view};
use octaneweb_octane::frame::{Pixels, RenderImage};
use octaneweb_octane::{EncodingKind, Frame, FrameHeader, FrameHub, FrameHubConfig, ViewRequest};
use octaneweb_proto::livelinkapi::camera_state::PosSet;
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::livelinkapi::{CameraState, Vec3};
use octaneweb_render_server::RenderServerConfig;
use octaneweb_schema::SchemaBuilder;
use tokio_tungstenite::tungstenite::Message;

#[path = "support/serve.rs"]
mod serve;
use serve::serve;

const WIDTH: u32 = 3840;
const HEIGHT: u32 = 2160;
const QUALITY: u8 = 80;
/// The laptop-window viewer's display size.
const SMALL: (u32, u32) = (1440, 810);

fn hub_config() -> FrameHubConfig {
    FrameHubConfig {
        default_encoding: EncodingKind::Jpeg,
        default_quality: QUALITY,
        ..FrameHubConfig::default()
    }
}

/// What one viewer saw in one round.
#[derive(Debug, Default, Clone)]
struct Round {
    frames: u64,
    bytes: u64,
    latencies_us: Vec<u64>,
    seconds: f64,
    /// Frames the hub received from upstream while the viewer counted.
    upstream_frames: u64,
}

impl Round {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.seconds
    }
    fn upstream_fps(&self) -> f64 {
        self.upstream_frames as f64 / self.seconds
    }
    fn bytes_per_frame(&self) -> f64 {
        self.bytes as f64 / self.frames.max(1) as f64
    }
    fn percentile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index] as f64 / 1000.0
    }
}

/// A `/render/ws` viewer asking for `size` (None: full frames) at JPEG quality 80; counts
/// frames for `seconds` after its first frame. Latency: the frame's arrival at the hub (its
/// header) to the whole message received here.
async fn viewer(
    addr: std::net::SocketAddr,
    hub: FrameHub,
    size: Option<(u32, u32)>,
    seconds: f64,
) -> Round {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/render/ws"))
        .await
        .expect("ws connects");
    let (w, h) = size.unwrap_or((0, 0));
    let config = format!(
        r#"{{"type":"config","encoding":"jpeg","quality":{QUALITY},"width":{w},"height":{h}}}"#
    );
    ws.send(Message::Text(config.into())).await.expect("config");
    let expected_width = size.map_or(WIDTH, |s| s.0);
    // Skip frames until one in the asked size arrives (the first may predate the config).
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => {
                let (header, _) = FrameHeader::parse(&data).expect("header");
                if header.width == expected_width {
                    break;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("viewer stream ended early: {other:?}"),
        }
    }
    let mut round = Round::default();
    let started = Instant::now();
    let upstream_before = frames_received(&hub);
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(end, ws.next()).await {
        if let Message::Binary(data) = message {
            let received = octaneweb_octane::frame::unix_micros_now();
            let (header, payload) = FrameHeader::parse(&data).expect("header");
            round.frames += 1;
            round.bytes += payload.len() as u64;
            round
                .latencies_us
                .push(received.saturating_sub(header.arrived_unix_micros));
        }
    }
    round.seconds = started.elapsed().as_secs_f64();
    round.upstream_frames = frames_received(&hub) - upstream_before;
    let _ = ws.close(None).await;
    round
}

fn frames_received(hub: &FrameHub) -> u64 {
    hub.status().metrics.frames_received
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Medians over rounds of one viewer kind, printed as a table row.
fn report(name: &str, rounds: &[Round]) {
    let pick = |f: &dyn Fn(&Round) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
        pick(&|r| r.upstream_fps()),
        pick(&|r| r.fps()),
        pick(&|r| r.percentile_ms(0.5)),
        pick(&|r| r.percentile_ms(0.99)),
        pick(&|r| r.bytes_per_frame()) / 1024.0,
    );
}

fn table_head(title: &str) {
    println!("\n== {title}");
    println!("| viewer | upstream frames/s | frames/s received | arrival → received p50 ms | p99 ms | KiB per frame |");
    println!("|---|---|---|---|---|---|");
}

/// Runs interleaved rounds of a small and a full-size viewer against `addr`.
async fn rounds(
    addr: std::net::SocketAddr,
    hub: &FrameHub,
    rounds: usize,
    seconds: f64,
) -> (Vec<Round>, Vec<Round>) {
    let (mut small, mut full) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for size in [Some(SMALL), None] {
            let round = viewer(addr, hub.clone(), size, seconds).await;
            match size {
                Some(_) => small.push(round),
                None => full.push(round),
            }
        }
    }
    (small, full)
}

/// The reference server at 4K, the camera moving 30 times a second. Returns up to 8 distinct
/// 4K frames the hub received, for the other phases.
async fn reference(rounds_n: usize, seconds: f64) -> Vec<Arc<Frame>> {
    let server = octaneweb_testkit::RenderServerHandle::start(RenderServerConfig {
        width: WIDTH,
        height: HEIGHT,
        ..RenderServerConfig::default()
    })
    .await;
    let schema = SchemaBuilder::new()
        .add_descriptor_set("octaneweb", octaneweb_proto::DESCRIPTOR_SET)
        .expect("descriptor set")
        .build()
        .expect("schema");
    let upstream =
        Upstream::new(UpstreamConfig::with_target(server.addr.to_string())).expect("upstream");
    let hub = FrameHub::start(upstream, &schema, hub_config());
    let addr = serve(hub.clone()).await;

    // The artist: orbit the camera, 30 changes a second, over gRPC like any LiveLink client.
    let stop = Arc::new(AtomicBool::new(false));
    let orbit = {
        let stop = stop.clone();
        let target = format!("http://{}", server.addr);
        tokio::spawn(async move {
            let mut client = LiveLinkServiceClient::connect(target)
                .await
                .expect("LiveLink connects");
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            let mut angle = 0.0f32;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                angle += 0.01;
                let position = Vec3 {
                    x: 8.0 * angle.sin(),
                    y: 2.5,
                    z: 8.0 * angle.cos(),
                };
                let _ = client
                    .set_camera(CameraState {
                        pos_set: Some(PosSet::Position(position)),
                        ..CameraState::default()
                    })
                    .await;
            }
        })
    };
    let (small, full) = rounds(addr, &hub, rounds_n, seconds).await;
    table_head(&format!(
        "reference render server at {WIDTH}×{HEIGHT}, camera moving 30/s, one viewer at a time, JPEG q{QUALITY}, medians of {rounds_n} rounds of {seconds} s"
    ));
    report(&format!("{}×{}", SMALL.0, SMALL.1), &small);
    report(&format!("{WIDTH}×{HEIGHT} (full)"), &full);

    // Keep a few distinct frames for the replay.
    let mut captured: Vec<Arc<Frame>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let _viewer = hub.viewer();
    while captured.len() < 8 && Instant::now() < deadline {
        if let Some(frame) = hub.latest() {
            if captured.last().is_none_or(|last| last.seq != frame.seq) && frame.width() == WIDTH {
                captured.push(frame);
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = orbit.await;
    hub.shutdown();
    server.stop().await;
    captured
}

/// A detached hub fed with `frames` at 30/s on its own thread until `stop`.
fn replay(
    hub: FrameHub,
    frames: Vec<Arc<Frame>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let interval = Duration::from_secs_f64(1.0 / 30.0);
        let mut next = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
            let source = &frames[(n as usize) % frames.len()];
            n += 1;
            let image = RenderImage {
                // A distinct frame each time: the hub drops exact repeats.
                fingerprint: source.image.fingerprint ^ n,
                tonemapped_samples_per_pixel: n as f32,
                ..source.image.clone()
            };
            hub.publish_image(image, 1, 0);
            next += interval;
        }
        n
    })
}

fn rgba_of(frame: &Frame) -> Vec<u8> {
    match &frame.image.pixels {
        Pixels::Rgba8(bytes) => bytes.to_vec(),
        Pixels::RgbaF32(_) => panic!("the reference server renders LDR by default"),
    }
}

fn encode_phase(frame: &Frame, rounds_n: usize) {
    let rgba = rgba_of(frame);
    let mpix = f64::from(WIDTH * HEIGHT) / 1e6;
    let time = |f: &mut dyn FnMut() -> usize| {
        let mut ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds_n.max(5) {
            let started = Instant::now();
            bytes = f();
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        (median(&mut ms), bytes)
    };
    let (gateway_ms, gateway_bytes) = time(&mut || {
        let mut out = Vec::new();
        encode_jpeg(&rgba, WIDTH, HEIGHT, QUALITY, &mut out).expect("encode");
        out.len()
    });
    let (before_ms, before_bytes) = time(&mut || {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, QUALITY)
            .encode(
                &rgba,
                WIDTH as u16,
                HEIGHT as u16,
                jpeg_encoder::ColorType::Rgba,
            )
            .expect("encode");
        out.len()
    });
    let small = ViewRequest {
        fit: Some(SMALL),
        crop: None,
    }
    .resolve(WIDTH, HEIGHT);
    let (scale_ms, _) = time(&mut || view::apply(&rgba, &small).expect("scale").len());
    println!(
        "\n== one {WIDTH}×{HEIGHT} render, JPEG q{QUALITY}, median of {} encodes",
        rounds_n.max(5)
    );
    println!("| step | ms | Mpixel/s | bytes |");
    println!("|---|---|---|---|");
    println!(
        "| JPEG, the gateway's encoder | {gateway_ms:.1} | {:.0} | {gateway_bytes} |",
        mpix / gateway_ms * 1000.0
    );
    println!(
        "| JPEG, before: jpeg-encoder on one thread | {before_ms:.1} | {:.0} | {before_bytes} |",
        mpix / before_ms * 1000.0
    );
    println!(
        "| area average to {}×{} | {scale_ms:.1} | {:.0} | |",
        SMALL.0,
        SMALL.1,
        mpix / scale_ms * 1000.0
    );
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let run = |phase: &str| filter.as_deref().is_none_or(|f| phase.contains(f));
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    // `cargo test --benches` smoke-runs with short rounds.
    let seconds = env("OCTANEWEB_BENCH_SECONDS", if benching { 5.0 } else { 1.0 });
    let rounds_n = env("OCTANEWEB_BENCH_ROUNDS", if benching { 3.0 } else { 1.0 }) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "(machine: {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The reference phase always runs: it renders the frames the others use.
    let frames = runtime.block_on(reference(
        if run("reference") { rounds_n } else { 1 },
        seconds,
    ));
    assert!(!frames.is_empty(), "the reference server gave no 4K frame");
    println!(
        "({} distinct 4K frames captured for the replay)",
        frames.len()
    );

    if run("replay") {
        runtime.block_on(async {
            let hub = FrameHub::detached(hub_config());
            let addr = serve(hub.clone()).await;
            let stop = Arc::new(AtomicBool::new(false));
            let publisher = replay(hub.clone(), frames.clone(), stop.clone());
            let (small, full) = rounds(addr, &hub, rounds_n, seconds).await;
            stop.store(true, Ordering::Relaxed);
            let _ = publisher.join();
            table_head(&format!(
                "renderer notifying at 30/s ({} real {WIDTH}×{HEIGHT} frames replayed), one viewer at a time, JPEG q{QUALITY}, medians of {rounds_n} rounds of {seconds} s",
                frames.len()
            ));
            report(&format!("{}×{}", SMALL.0, SMALL.1), &small);
            report(&format!("{WIDTH}×{HEIGHT} (full)"), &full);
        });
    }

    if run("memory") {
        runtime.block_on(async {
            let hub = FrameHub::detached(hub_config());
            let addr = serve(hub.clone()).await;
            let stop = Arc::new(AtomicBool::new(false));
            let publisher = replay(hub.clone(), frames.clone(), stop.clone());
            println!(
                "\n== resident memory with viewers at {}×{}, 30 frames/s replayed",
                SMALL.0, SMALL.1
            );
            println!("| viewers | RSS MiB at the end | frames/s per viewer (mean) | JPEG encodes per frame published |");
            println!("|---|---|---|---|");
            for count in [1usize, 32] {
                let jpeg = octaneweb_octane::encode::Format::image(EncodingKind::Jpeg, QUALITY);
                let (encodes, published) = (hub.metrics().encodes(jpeg), frames_received(&hub));
                let tasks: Vec<_> = (0..count)
                    .map(|_| tokio::spawn(viewer(addr, hub.clone(), Some(SMALL), seconds)))
                    .collect();
                let mut fps = 0.0;
                for task in tasks {
                    fps += task.await.expect("viewer").fps();
                }
                let per_frame = (hub.metrics().encodes(jpeg) - encodes) as f64
                    / (frames_received(&hub) - published).max(1) as f64;
                println!(
                    "| {count} | {:.0} | {:.1} | {per_frame:.2} |",
                    (serve::rss_bytes() as f64 / (1024.0 * 1024.0)),
                    fps / count as f64
                );
            }
            stop.store(true, Ordering::Relaxed);
            let _ = publisher.join();
        });
    }

    if run("encode") {
        encode_phase(&frames[0], rounds_n);
    }
}
