//! Renders the built-in scene to a PNG.
//!
//! Usage: `cargo run --release -p octaneweb-pathtracer --example render_png -- [out.png] [spp] [width] [height]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use octaneweb_pathtracer::{write_png, Renderer, Scene};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "render.png".into()));
    let spp: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let width: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let height: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(512);
    let scene = Arc::new(Scene::builtin());
    let camera = scene.default_camera();
    let mut renderer = Renderer::new(scene, camera, width, height)?;
    let start = Instant::now();
    for _ in 0..spp {
        renderer.render_sample();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let samples = f64::from(width) * f64::from(height) * f64::from(spp);
    println!(
        "{width}x{height} at {spp} spp in {elapsed:.2} s: {:.2} M samples/s",
        samples / elapsed / 1e6
    );
    let film = renderer.film();
    write_png(&out, film.width(), film.height(), &film.to_srgb8())?;
    println!("wrote {}", out.display());
    Ok(())
}
