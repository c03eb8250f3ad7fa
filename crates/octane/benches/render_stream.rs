//! Render stream benchmarks (a plain harness; `cargo bench -p octaneweb-octane`).
//!
//! Frames come from a "synthetic upstream": a thread publishing 1024x512 RGBA8 frames (2 MiB)
//! into a detached `FrameHub` at a fixed rate, so the numbers measure the hub, the encodings
//! and the transport, not the path tracer. Viewers are real clients on loopback sockets in the
//! same process.
//!
//! Phases (each reports its baseline from the same run):
//! 1. one viewer, frames offered at 1000/s: WebSocket raw RGBA8 vs the original proxy's way,
//!    base64 JSON over SSE (the client parses the JSON and decodes base64, as a browser must).
//!    GB/s of pixels delivered and arrival -> received latency p50/p99.
//! 2. 100 viewers, frames offered at 30/s: WebSocket JPEG vs SSE base64. Whether the upstream
//!    was slowed (publisher lateness), frames per viewer, peak RSS growth.
//! 3. HDR -> RGBA8 tonemap on one core vs a straightforward per-pixel `powf` loop.
//! 4. `encode-4k`: a real 3840x2160 render (path-traced once, cached under the target
//!    directory) published into the hub, then `GET /render/frame.jpg?quality=80..84`, five
//!    fresh encodes per round through the hub's own path (encoding cache, blocking pool, HTTP
//!    response), beside the same encoder called directly and the encoder the hub used
//!    before, `jpeg-encoder` on one thread, on the same pixels in the same rounds; once on an otherwise idle process and once while the
//!    path tracer keeps rayon's global pool busy, as in `octaneweb demo`.
//!
//! `OCTANEWEB_BENCH_SECONDS` sets the length of each streaming phase (default 4).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use octaneweb_octane::encode::ToneCurve;
use octaneweb_octane::frame::{unix_micros_now, Pixels, RenderImage};
use octaneweb_octane::{EncodingKind, FrameHeader, FrameHub, FrameHubConfig, Tonemap};
use tokio_tungstenite::tungstenite::Message;

#[path = "support/render.rs"]
mod render;
#[path = "support/serve.rs"]
mod serve;
use serve::{rss_bytes, serve};

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 512;
const PIXEL_BYTES: usize = (WIDTH * HEIGHT * 4) as usize;

fn synthetic_rgba() -> Bytes {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(PIXEL_BYTES);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed & 0x1F) as u8;
            data.extend_from_slice(&[
                (x / 4) as u8 ^ noise,
                (y / 2) as u8,
                ((x ^ y) & 0xFF) as u8 / 2 + noise,
                255,
            ]);
        }
    }
    Bytes::from(data)
}

fn image(pixels: &Bytes, n: u64) -> RenderImage {
    RenderImage {
        width: WIDTH,
        height: HEIGHT,
        pixels: Pixels::Rgba8(pixels.clone()),
        image_type: 0,
        color_space: 1,
        is_linear: false,
        render_pass_id: 0,
        tonemapped_samples_per_pixel: n as f32,
        calculated_samples_per_pixel: n as f32,
        samples_per_second: 1e6,
        render_time: n as f32 / 100.0,
        change_level: 1,
        has_pending_updates: false,
        has_alpha: true,
        fingerprint: n,
    }
}

#[derive(Debug, Default)]
struct PublishStats {
    frames: u64,
    /// Longest single publish call.
    max_publish: Duration,
    /// Worst delay of a publish behind its schedule.
    max_lateness: Duration,
    elapsed: Duration,
}

/// Publishes frames at `rate` per second on its own thread until `stop`.
fn start_publisher(
    hub: FrameHub,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<PublishStats> {
    std::thread::spawn(move || {
        let pixels = synthetic_rgba();
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let mut next = start;
        let mut stats = PublishStats::default();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
            let now = Instant::now();
            stats.max_lateness = stats.max_lateness.max(now.saturating_duration_since(next));
            n += 1;
            let began = Instant::now();
            hub.publish_image(image(&pixels, n), 1, 0);
            stats.max_publish = stats.max_publish.max(began.elapsed());
            stats.frames += 1;
            next = (next + interval).max(now);
        }
        stats.elapsed = start.elapsed();
        stats
    })
}

#[derive(Debug, Default)]
struct ViewerStats {
    frames: u64,
    pixel_bytes: u64,
    wire_bytes: u64,
    latencies_us: Vec<u64>,
}

/// A WebSocket viewer reading until `end`.
async fn ws_viewer(
    addr: std::net::SocketAddr,
    end: tokio::time::Instant,
    ready: Arc<AtomicU64>,
) -> ViewerStats {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/render/ws"))
        .await
        .expect("ws connects");
    ready.fetch_add(1, Ordering::Relaxed);
    let mut stats = ViewerStats::default();
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(end, ws.next()).await {
        if let Message::Binary(data) = message {
            let received = unix_micros_now();
            let (header, _) = FrameHeader::parse(&data).expect("header");
            stats.frames += 1;
            stats.wire_bytes += data.len() as u64;
            stats.pixel_bytes += u64::from(header.width) * u64::from(header.height) * 4;
            stats
                .latencies_us
                .push(received.saturating_sub(header.arrived_unix_micros));
        }
    }
    let _ = ws.close(None).await;
    stats
}

/// An SSE viewer of `/render/stream`; with `decode`, parses each event's JSON and decodes its
/// base64 buffer (what the original browser viewer does).
async fn sse_viewer(
    addr: std::net::SocketAddr,
    end: tokio::time::Instant,
    decode: bool,
    ready: Arc<AtomicU64>,
) -> ViewerStats {
    let response = reqwest::get(format!("http://{addr}/render/stream"))
        .await
        .expect("stream");
    ready.fetch_add(1, Ordering::Relaxed);
    let mut body = response.bytes_stream();
    if !decode {
        return count_sse_events(&mut body, end).await;
    }
    let mut buffer: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut scanned = 0usize;
    let mut stats = ViewerStats::default();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(end, body.next()).await {
        stats.wire_bytes += chunk.len() as u64;
        buffer.extend_from_slice(&chunk);
        loop {
            let from = scanned.saturating_sub(1);
            let Some(pos) = buffer[from..].windows(2).position(|w| w == b"\n\n") else {
                scanned = buffer.len();
                break;
            };
            let end_of_event = from + pos + 2;
            let received = unix_micros_now();
            let event = &buffer[..end_of_event];
            let is_image = event.len() > 4096;
            if is_image {
                stats.frames += 1;
                if decode {
                    let json: serde_json::Value =
                        serde_json::from_slice(&event[6..event.len() - 2]).expect("JSON");
                    let data = json["render_images"]["data"][0]["buffer"]["data"]
                        .as_str()
                        .expect("buffer");
                    let pixels = base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .expect("base64");
                    stats.pixel_bytes += pixels.len() as u64;
                    let arrived = json["timestamp"].as_f64().unwrap_or(0.0);
                    stats
                        .latencies_us
                        .push(received.saturating_sub((arrived * 1e6) as u64));
                } else {
                    stats.pixel_bytes += PIXEL_BYTES as u64;
                }
            }
            buffer.drain(..end_of_event);
            scanned = 0;
        }
    }
    stats
}

/// Counts image events without keeping them (so the client's memory stays out of the
/// server's RSS figure): an event ends at "\n\n"; image events are the long ones.
async fn count_sse_events(
    body: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    end: tokio::time::Instant,
) -> ViewerStats {
    let mut stats = ViewerStats::default();
    let mut previous = 0u8;
    let mut event_len = 0usize;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(end, body.next()).await {
        stats.wire_bytes += chunk.len() as u64;
        for &byte in chunk.iter() {
            event_len += 1;
            if byte == b'\n' && previous == b'\n' {
                if event_len > 4096 {
                    stats.frames += 1;
                    stats.pixel_bytes += PIXEL_BYTES as u64;
                }
                event_len = 0;
            }
            previous = byte;
        }
    }
    stats
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

#[derive(Debug)]
struct SingleResult {
    gbps: f64,
    fps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Ws,
    Sse,
}

async fn single_viewer(transport: Transport, seconds: f64) -> SingleResult {
    let hub = FrameHub::detached(FrameHubConfig {
        default_encoding: EncodingKind::Raw,
        ..FrameHubConfig::default()
    });
    let addr = serve(hub.clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = start_publisher(hub.clone(), 1000.0, stop.clone());
    // Warm-up, then measure.
    let ready = Arc::new(AtomicU64::new(0));
    let warm = tokio::time::Instant::now() + Duration::from_millis(500);
    match transport {
        Transport::Ws => ws_viewer(addr, warm, ready.clone()).await,
        Transport::Sse => sse_viewer(addr, warm, true, ready.clone()).await,
    };
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut stats = match transport {
        Transport::Ws => ws_viewer(addr, end, ready).await,
        Transport::Sse => sse_viewer(addr, end, true, ready).await,
    };
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.join();
    stats.latencies_us.sort_unstable();
    SingleResult {
        gbps: stats.pixel_bytes as f64 / elapsed / 1e9,
        fps: stats.frames as f64 / elapsed,
        p50_ms: percentile(&stats.latencies_us, 0.50),
        p99_ms: percentile(&stats.latencies_us, 0.99),
    }
}

#[derive(Debug)]
struct ManyResult {
    published_fps: f64,
    max_publish_ms: f64,
    max_lateness_ms: f64,
    viewer_fps_mean: f64,
    viewer_fps_min: f64,
    peak_rss_growth_mib: f64,
}

async fn many_viewers(transport: Transport, viewers: usize, seconds: f64) -> ManyResult {
    let hub = FrameHub::detached(FrameHubConfig {
        default_encoding: EncodingKind::Jpeg,
        default_quality: 85,
        ..FrameHubConfig::default()
    });
    let addr = serve(hub.clone()).await;
    let rss_before = rss_bytes();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let ready = Arc::new(AtomicU64::new(0));
    let connect_by = tokio::time::Instant::now() + Duration::from_secs(10);
    let end = connect_by + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            match transport {
                Transport::Ws => ws_viewer(addr, end, ready).await,
                Transport::Sse => sse_viewer(addr, end, false, ready).await,
            }
        }));
    }
    while ready.load(Ordering::Relaxed) < viewers as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = start_publisher(hub.clone(), 30.0, stop.clone());
    let started = tokio::time::Instant::now();
    let mut per_viewer = Vec::new();
    for task in tasks {
        per_viewer.push(task.await.expect("viewer"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().unwrap_or_default();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let fps: Vec<f64> = per_viewer
        .iter()
        .map(|s| s.frames as f64 / elapsed)
        .collect();
    ManyResult {
        published_fps: published.frames as f64 / published.elapsed.as_secs_f64(),
        max_publish_ms: published.max_publish.as_secs_f64() * 1000.0,
        max_lateness_ms: published.max_lateness.as_secs_f64() * 1000.0,
        viewer_fps_mean: fps.iter().sum::<f64>() / fps.len().max(1) as f64,
        viewer_fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
        peak_rss_growth_mib: peak.load(Ordering::Relaxed).saturating_sub(rss_before) as f64
            / (1024.0 * 1024.0),
    }
}

/// The obvious tonemap: per channel `powf` and the sRGB curve, no table.
fn naive_tonemap(src: &[f32], dst: &mut [u8], settings: Tonemap) {
    let scale = 2f32.powf(settings.exposure);
    let bend = 2.2 / settings.gamma;
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
        for c in 0..3 {
            let linear = (s[c] * scale).clamp(0.0, 1.0).powf(bend);
            d[c] = (octaneweb_octane::encode::tonemap::srgb_encode(linear) * 255.0 + 0.5) as u8;
        }
        d[3] = (s[3].clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    }
}

fn bench_tonemap() -> (f64, f64) {
    let pixels = (WIDTH * HEIGHT) as usize;
    let src: Vec<f32> = (0..pixels * 4)
        .map(|i| ((i * 7919) % 4096) as f32 / 1024.0)
        .collect();
    let mut dst = vec![0u8; pixels * 4];
    let settings = Tonemap::default();
    let curve = ToneCurve::new(settings);
    let time = |f: &mut dyn FnMut()| {
        f();
        let start = Instant::now();
        let mut runs = 0;
        while start.elapsed() < Duration::from_secs(1) {
            f();
            runs += 1;
        }
        runs as f64 * pixels as f64 / start.elapsed().as_secs_f64() / 1e6
    };
    let fast = time(&mut || curve.apply(std::hint::black_box(&src), &mut dst));
    let naive = time(&mut || naive_tonemap(std::hint::black_box(&src), &mut dst, settings));
    (fast, naive)
}

/// The 4K frame as the `n`th hub image (a new fingerprint each, so none is a duplicate).
fn image_4k(pixels: &Bytes, width: u32, height: u32, n: u64) -> RenderImage {
    RenderImage {
        width,
        height,
        ..image(pixels, n)
    }
}

/// Keeps rayon's global pool rendering the built-in scene until `stop`, as the embedded
/// render server does in `octaneweb demo`.
fn start_render_load(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let scene = Arc::new(octaneweb_pathtracer::Scene::builtin());
        let camera = scene.default_camera();
        let Ok(mut renderer) = octaneweb_pathtracer::Renderer::new(scene, camera, 1024, 512) else {
            return;
        };
        while !stop.load(Ordering::Relaxed) {
            renderer.render_sample();
        }
    })
}

#[derive(Debug, Default)]
struct EncodeTimes {
    hub_ms: Vec<f64>,
    /// The hub's encoder called directly on the same pixels: the hub path's own cost is the
    /// difference.
    direct_ms: Vec<f64>,
    baseline_ms: Vec<f64>,
    bytes: usize,
}

/// Five fresh 4K JPEG encodes through `GET /render/frame.jpg` per round, each beside one
/// encode of the same pixels by the previous encoder.
async fn encode_4k(rounds: usize, under_render_load: bool) -> Result<EncodeTimes, String> {
    const WIDTH_4K: u32 = 3840;
    const HEIGHT_4K: u32 = 2160;
    let pixels = Bytes::from(render::rendered_rgba(WIDTH_4K, HEIGHT_4K, 4)?);
    let hub = FrameHub::detached(FrameHubConfig::default());
    let addr = serve(hub.clone()).await;
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let load = under_render_load.then(|| start_render_load(stop.clone()));
    let mut times = EncodeTimes::default();
    // Round 0 warms up; each round publishes a new frame, so every quality is a fresh encode.
    for round in 0..=rounds {
        hub.publish_image(
            image_4k(&pixels, WIDTH_4K, HEIGHT_4K, round as u64 + 1),
            1,
            0,
        );
        for quality in 80..85 {
            let url = format!("http://{addr}/render/frame.jpg?quality={quality}");
            let started = Instant::now();
            let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            let hub_ms = started.elapsed().as_secs_f64() * 1e3;
            if body.get(..2) != Some(&[0xFF, 0xD8][..]) {
                return Err(format!("{url} did not answer a JPEG"));
            }
            let started = Instant::now();
            let mut baseline = Vec::new();
            jpeg_encoder::Encoder::new(&mut baseline, quality)
                .encode(
                    &pixels,
                    WIDTH_4K as u16,
                    HEIGHT_4K as u16,
                    jpeg_encoder::ColorType::Rgba,
                )
                .map_err(|e| e.to_string())?;
            let baseline_ms = started.elapsed().as_secs_f64() * 1e3;
            let started = Instant::now();
            let mut direct = Vec::new();
            octaneweb_octane::encode::encode_jpeg(
                &pixels,
                WIDTH_4K,
                HEIGHT_4K,
                quality,
                &mut direct,
            )
            .map_err(|e| e.to_string())?;
            let direct_ms = started.elapsed().as_secs_f64() * 1e3;
            if round > 0 {
                times.direct_ms.push(direct_ms);
                times.hub_ms.push(hub_ms);
                times.baseline_ms.push(baseline_ms);
                times.bytes = body.len();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(load) = load {
        let _ = load.join();
    }
    Ok(times)
}

fn median_ms(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then just smoke-run.
    let benching = std::env::args().any(|a| a == "--bench");
    // An optional filter argument runs only the phases whose name contains it:
    // "tonemap", "one-viewer", "many-viewers", "encode-4k".
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let run = |phase: &str| filter.as_deref().is_none_or(|f| phase.contains(f));
    let seconds: f64 = std::env::var("OCTANEWEB_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 4.0 } else { 0.5 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    if run("tonemap") {
        let (tonemap_fast, tonemap_naive) = bench_tonemap();
        println!("== HDR -> RGBA8 tonemap, one core, {WIDTH}x{HEIGHT}");
        println!("  lookup-table tonemap: {tonemap_fast:8.1} Mpixel/s");
        println!("  baseline powf loop:   {tonemap_naive:8.1} Mpixel/s");
        println!(
            "  ratio:                {:8.2}x",
            tonemap_fast / tonemap_naive
        );
    }

    runtime.block_on(async {
        if !run("one-viewer") {
            return;
        }
        let ws = single_viewer(Transport::Ws, seconds).await;
        let sse = single_viewer(Transport::Sse, seconds).await;
        println!("== one viewer, {WIDTH}x{HEIGHT} RGBA8 (2 MiB) frames offered at 1000/s, loopback");
        println!(
            "  WebSocket raw:        {:6.3} GB/s  {:7.1} frames/s  latency p50 {:7.2} ms  p99 {:7.2} ms",
            ws.gbps, ws.fps, ws.p50_ms, ws.p99_ms
        );
        println!(
            "  baseline SSE base64:  {:6.3} GB/s  {:7.1} frames/s  latency p50 {:7.2} ms  p99 {:7.2} ms",
            sse.gbps, sse.fps, sse.p50_ms, sse.p99_ms
        );
        println!(
            "  ratio:                {:6.2}x throughput, p99 latency {:.2}x lower",
            ws.gbps / sse.gbps,
            sse.p99_ms / ws.p99_ms
        );

    });
    runtime.block_on(async {
        if !run("many-viewers") {
            return;
        }
        let viewers = 100;
        let ws = many_viewers(Transport::Ws, viewers, seconds).await;
        let sse = many_viewers(Transport::Sse, viewers, seconds).await;
        println!("== {viewers} viewers, frames offered at 30/s");
        for (name, r) in [("WebSocket JPEG q85:", &ws), ("baseline SSE base64:", &sse)] {
            println!(
                "  {name:21} upstream {:5.1} frames/s (publish max {:6.3} ms, late max {:6.2} ms)  per viewer mean {:5.1} min {:5.1} frames/s  peak RSS +{:6.1} MiB",
                r.published_fps, r.max_publish_ms, r.max_lateness_ms, r.viewer_fps_mean, r.viewer_fps_min, r.peak_rss_growth_mib
            );
        }
        println!(
            "  ratio:                {:6.2}x frames per viewer, {:.2}x peak RSS growth",
            ws.viewer_fps_mean / sse.viewer_fps_mean,
            ws.peak_rss_growth_mib / sse.peak_rss_growth_mib.max(0.1)
        );
    });
    runtime.block_on(async {
        if !run("encode-4k") {
            return;
        }
        let rounds = if benching { 5 } else { 1 };
        for under_load in [false, true] {
            let times = match encode_4k(rounds, under_load).await {
                Ok(times) => times,
                Err(e) => {
                    println!("== 4K JPEG encode: failed: {e}");
                    return;
                }
            };
            let (hub, baseline) = (median_ms(&times.hub_ms), median_ms(&times.baseline_ms));
            let mpixels = 3840.0 * 2160.0 / 1e6;
            println!(
                "== 4K JPEG q80..84 through GET /render/frame.jpg, {} fresh encodes{}",
                times.hub_ms.len(),
                if under_load {
                    ", path tracer busy on rayon's global pool"
                } else {
                    ""
                }
            );
            println!(
                "  hub, new encoder:              {hub:7.1} ms median  {:6.0} Mpixel/s  {} bytes",
                mpixels / hub * 1e3,
                times.bytes
            );
            let direct = median_ms(&times.direct_ms);
            println!(
                "  new encoder called directly:    {direct:7.1} ms median  {:6.0} Mpixel/s",
                mpixels / direct * 1e3
            );
            println!(
                "  baseline jpeg-encoder 1 thread: {baseline:7.1} ms median  {:6.0} Mpixel/s",
                mpixels / baseline * 1e3
            );
            println!("  ratio:                          {:7.2}x", baseline / hub);
        }
    });
}
