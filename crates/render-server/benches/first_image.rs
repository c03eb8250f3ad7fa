//! Change to first published image at the default 1024x512 (a plain harness, not a test).
//!
//! `cargo bench -p octaneweb-render-server --bench first_image` starts the render loop, moves
//! the camera `CHANGES` times (through `Engine::apply`, as the node graph does), each time
//! while a pass is in progress, and times the change until the first frame of that change is
//! published. It prints p50 and p99 with the sub-sampled first pass (the default) against
//! full-resolution first passes measured in the same run.

use std::time::Duration;

use octaneweb_render_server::bench_support::LatencyProbe;
use octaneweb_render_server::RenderServerConfig;

const CHANGES: usize = 50;
const WARM_UP: usize = 3;
/// Rendering time between a first frame and the next change, so changes land mid-pass.
const BETWEEN: Duration = Duration::from_millis(37);
const TIMEOUT: Duration = Duration::from_secs(30);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn measure(reduced_first_pass: bool) -> (Vec<Duration>, u32) {
    let config = RenderServerConfig::default(); // 1024x512, 30 callbacks/s
    let mut probe = LatencyProbe::start(config, reduced_first_pass).expect("engine starts");
    let mut latencies = Vec::with_capacity(CHANGES);
    let mut block = 0;
    for i in 0..WARM_UP + CHANGES {
        tokio::time::sleep(BETWEEN).await;
        let step = if i % 2 == 0 { 0.05 } else { -0.05 };
        let first = probe
            .move_camera(step, TIMEOUT)
            .await
            .expect("a frame for the change");
        if i >= WARM_UP {
            latencies.push(first.latency);
            block = first.subsampled;
        }
    }
    latencies.sort();
    (latencies, block)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    for (name, reduced) in [
        ("sub-sampled first pass", true),
        ("full-resolution first pass", false),
    ] {
        let (latencies, block) = runtime.block_on(measure(reduced));
        println!(
            "change -> first image, 1024x512, {name} (frames {block}x{block}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {CHANGES} camera changes",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}
