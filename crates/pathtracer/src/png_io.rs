//! PNG encoding of RGBA8 images.

use std::io::{self, Write};
use std::path::Path;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn encode_into<W: Write>(out: W, width: u32, height: u32, rgba8: &[u8]) -> io::Result<()> {
    if width == 0 || height == 0 {
        return Err(invalid(format!("invalid PNG size {width}x{height}")));
    }
    let expected = (width as u64) * (height as u64) * 4;
    if rgba8.len() as u64 != expected {
        return Err(invalid(format!(
            "RGBA8 buffer has {} bytes, a {width}x{height} image needs {expected}",
            rgba8.len()
        )));
    }
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(rgba8).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)?;
    Ok(())
}

/// Encodes an RGBA8 (sRGB) image of `width x height` as PNG bytes.
pub fn encode_png(width: u32, height: u32, rgba8: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(&mut out, width, height, rgba8)?;
    Ok(out)
}

/// Writes an RGBA8 (sRGB) image of `width x height` to a PNG file.
pub fn write_png(path: &Path, width: u32, height: u32, rgba8: &[u8]) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut buf = io::BufWriter::new(file);
    encode_into(&mut buf, width, height, rgba8)?;
    buf.flush()
}
