//! Renderer throughput at the default 1024x512 (a plain harness, not a test).
//!
//! `cargo bench -p octaneweb-pathtracer --bench samples` prints, as medians over rounds:
//! - samples (pixels) per second of `Renderer::render_sample` on all cores, against the same
//!   work on a one-thread pool measured in the same run (the parallel speed-up);
//! - `Film::to_srgb8` against a plain copy of the same number of floats (memcpy baseline).

use std::sync::Arc;
use std::time::Instant;

use octaneweb_pathtracer::{Renderer, Scene};

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 512;
const ROUNDS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Seconds per `render_sample` call, median over rounds of `samples` calls.
fn time_samples(renderer: &mut Renderer, samples: u32) -> f64 {
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..samples {
            renderer.render_sample();
        }
        rounds.push(start.elapsed().as_secs_f64() / f64::from(samples));
    }
    median(rounds)
}

fn main() {
    let scene = Arc::new(Scene::builtin());
    let camera = scene.default_camera();
    let pixels = f64::from(WIDTH * HEIGHT);

    let mut renderer = Renderer::new(Arc::clone(&scene), camera, WIDTH, HEIGHT).expect("renderer");
    renderer.render_sample(); // warm-up
    let parallel = time_samples(&mut renderer, 3);

    let single_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one-thread pool");
    let mut single_renderer =
        Renderer::new(Arc::clone(&scene), camera, WIDTH, HEIGHT).expect("renderer");
    let single = single_pool.install(|| time_samples(&mut single_renderer, 1));

    println!(
        "render_sample {WIDTH}x{HEIGHT}: {:.2} Msamples/s on {} threads, {:.2} Msamples/s on 1 thread: speed-up {:.2}x",
        pixels / parallel / 1e6,
        rayon::current_num_threads(),
        pixels / single / 1e6,
        single / parallel
    );

    // Tonemap of the accumulated film, per published frame, against copying the same floats.
    let film = renderer.film();
    let floats = vec![0.5f32; (WIDTH * HEIGHT * 4) as usize];
    let mut to_srgb = Vec::new();
    let mut copy = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let bytes = film.to_srgb8();
        to_srgb.push(start.elapsed().as_secs_f64());
        std::hint::black_box(bytes);
        let start = Instant::now();
        let copied = floats.clone();
        copy.push(start.elapsed().as_secs_f64());
        std::hint::black_box(copied);
    }
    let (to_srgb, copy) = (median(to_srgb), median(copy));
    println!(
        "Film::to_srgb8 {WIDTH}x{HEIGHT}: {:.2} ms ({:.0} Mpixel/s); memcpy of the same floats {:.2} ms: {:.1}x the copy time",
        to_srgb * 1e3,
        pixels / to_srgb / 1e6,
        copy * 1e3,
        to_srgb / copy
    );
}
