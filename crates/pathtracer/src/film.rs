//! The accumulation buffer and its conversions to displayable pixels.

/// Pixel data in one of the two formats the film can produce.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// RGBA, 8 bits per channel, sRGB-encoded.
    Rgba8(Vec<u8>),
    /// RGBA, linear 32-bit float per channel.
    RgbaF32(Vec<f32>),
}

/// Accumulated radiance sums for a `width x height` image, rows top to bottom.
#[derive(Clone, Debug)]
pub struct Film {
    width: u32,
    height: u32,
    samples: u32,
    /// RGB radiance sums, 3 floats per pixel.
    sums: Vec<f32>,
}

impl Film {
    pub(crate) fn new(width: u32, height: u32) -> Film {
        let len = width as usize * height as usize * 3;
        Film {
            width,
            height,
            samples: 0,
            sums: vec![0.0; len],
        }
    }

    /// Image width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Image height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of samples accumulated in every pixel.
    pub fn samples_per_pixel(&self) -> u32 {
        self.samples
    }

    pub(crate) fn clear(&mut self) {
        self.samples = 0;
        self.sums.fill(0.0);
    }

    pub(crate) fn sums_mut(&mut self) -> &mut [f32] {
        &mut self.sums
    }

    pub(crate) fn finish_sample(&mut self) {
        self.samples = self.samples.saturating_add(1);
    }

    /// RGBA8 sRGB pixels (alpha 255), `width * height * 4` bytes.
    pub fn to_srgb8(&self) -> Vec<u8> {
        let scale = if self.samples == 0 {
            0.0
        } else {
            1.0 / self.samples as f32
        };
        let mut out = Vec::with_capacity(self.sums.len() / 3 * 4);
        for px in self.sums.chunks_exact(3) {
            for &c in px {
                out.push(((c * scale).clamp(0.0, 1.0) * 255.0) as u8);
            }
            out.push(255);
        }
        out
    }

    /// RGBA linear float pixels (mean radiance, alpha 1.0), `width * height * 4` floats.
    pub fn to_linear_f32(&self) -> Vec<f32> {
        let scale = if self.samples == 0 {
            0.0
        } else {
            1.0 / self.samples as f32
        };
        let mut out = Vec::with_capacity(self.sums.len() / 3 * 4);
        for px in self.sums.chunks_exact(3) {
            for &c in px {
                out.push(c * scale);
            }
            out.push(1.0);
        }
        out
    }
}
