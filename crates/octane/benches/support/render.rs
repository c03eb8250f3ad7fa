//! Real path-traced frames for the encode benchmarks, rendered once and cached as PNG beside
//! the build (`<target>/octaneweb-bench/`), so reruns start at once.

use std::path::PathBuf;

/// Where rendered frames are cached: `<target>/octaneweb-bench`, found from this benchmark's
/// own path (`<target>/release/deps/NAME`), else the system's temporary directory.
fn cache_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(std::env::temp_dir)
        .join("octaneweb-bench")
}

/// The built-in scene at `width` x `height` with `spp` samples per pixel, as RGBA8 rows
/// top to bottom. Few samples leave the path tracer's noise in, as in a live frame.
pub fn rendered_rgba(width: u32, height: u32, spp: u32) -> Result<Vec<u8>, String> {
    let dir = cache_dir();
    let path = dir.join(format!("render-{width}x{height}-{spp}spp.png"));
    if !path.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        eprintln!(
            "rendering {width}x{height} at {spp} spp into {}",
            path.display()
        );
        let config = octaneweb_render_server::RenderServerConfig {
            width,
            height,
            ..Default::default()
        };
        // Render to a temporary name first, so an interrupted run leaves no half file.
        let partial = path.with_extension("partial.png");
        octaneweb_render_server::snapshot(&config, spp, &partial).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &path).map_err(|e| e.to_string())?;
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| e.to_string())?;
    let size = reader.output_buffer_size().ok_or("PNG too large")?;
    let mut pixels = vec![0; size];
    let info = reader.next_frame(&mut pixels).map_err(|e| e.to_string())?;
    let expected = (png::ColorType::Rgba, png::BitDepth::Eight, width, height);
    if (info.color_type, info.bit_depth, info.width, info.height) != expected {
        return Err(format!(
            "{} is not a {width}x{height} RGBA8 PNG",
            path.display()
        ));
    }
    pixels.truncate(info.buffer_size());
    Ok(pixels)
}
