//! The accumulation buffer and its conversions to displayable pixels.

use std::sync::OnceLock;

use rayon::prelude::*;

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

    /// The displayable image: RGBA8, sRGB-encoded, alpha 255, `width * height * 4` bytes.
    ///
    /// Tone mapping: the mean radiance is multiplied by [`EXPOSURE`], mapped through a filmic
    /// curve (Narkowicz's fit of the ACES reference tone curve, which rolls highlights off
    /// smoothly instead of clipping) and sRGB-encoded via a lookup table. Runs in parallel; an
    /// empty film (0 samples) is black.
    pub fn to_srgb8(&self) -> Vec<u8> {
        let scale = self.mean_scale() * EXPOSURE;
        let lut = srgb_lut();
        let mut out = vec![0u8; self.sums.len() / 3 * 4];
        out.par_chunks_mut(PIXELS_PER_TASK * 4)
            .zip(self.sums.par_chunks(PIXELS_PER_TASK * 3))
            .for_each(|(dst, src)| {
                // Two passes per block: the curve over plain floats (branch-free, so the
                // compiler vectorises it), then table look-ups and the RGBA interleave.
                let mut indices = [0u32; BLOCK_PIXELS * 3];
                for (dst, src) in dst
                    .chunks_mut(BLOCK_PIXELS * 4)
                    .zip(src.chunks(BLOCK_PIXELS * 3))
                {
                    for (index, &sum) in indices.iter_mut().zip(src) {
                        *index = lut_index(sum * scale);
                    }
                    for (d, i) in dst.chunks_exact_mut(4).zip(indices.chunks_exact(3)) {
                        if let ([r, g, b, a], [ir, ig, ib]) = (d, i) {
                            *r = lut.get(*ir as usize).copied().unwrap_or(255);
                            *g = lut.get(*ig as usize).copied().unwrap_or(255);
                            *b = lut.get(*ib as usize).copied().unwrap_or(255);
                            *a = 255;
                        }
                    }
                }
            });
        out
    }

    /// RGBA linear float pixels (mean radiance, no tone mapping, alpha 1.0),
    /// `width * height * 4` floats. An empty film (0 samples) is black.
    pub fn to_linear_f32(&self) -> Vec<f32> {
        let scale = self.mean_scale();
        let mut out = Vec::with_capacity(self.sums.len() / 3 * 4);
        for px in self.sums.chunks_exact(3) {
            for &c in px {
                out.push(c * scale);
            }
            out.push(1.0);
        }
        out
    }

    /// The image in the requested format: [`Pixels::Rgba8`] from [`Film::to_srgb8`] or
    /// [`Pixels::RgbaF32`] from [`Film::to_linear_f32`].
    pub fn to_pixels(&self, linear_float: bool) -> Pixels {
        if linear_float {
            Pixels::RgbaF32(self.to_linear_f32())
        } else {
            Pixels::Rgba8(self.to_srgb8())
        }
    }

    fn mean_scale(&self) -> f32 {
        if self.samples == 0 {
            0.0
        } else {
            1.0 / self.samples as f32
        }
    }
}

/// Scale applied to mean radiance before tone mapping in [`Film::to_srgb8`].
pub const EXPOSURE: f32 = 1.0;

const LUT_SIZE: usize = 8192;

/// Maps a tone-mapped value in [0, 1] (quantised to LUT_SIZE steps) to its sRGB byte.
fn srgb_lut() -> &'static [u8; LUT_SIZE] {
    static LUT: OnceLock<Box<[u8; LUT_SIZE]>> = OnceLock::new();
    LUT.get_or_init(|| {
        let mut lut = Box::new([0u8; LUT_SIZE]);
        for (i, v) in lut.iter_mut().enumerate() {
            let linear = i as f32 / (LUT_SIZE - 1) as f32;
            let srgb = if linear <= 0.003_130_8 {
                linear * 12.92
            } else {
                1.055 * linear.powf(1.0 / 2.4) - 0.055
            };
            *v = (srgb * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
        lut
    })
}

/// Pixels per parallel task of [`Film::to_srgb8`].
const PIXELS_PER_TASK: usize = 8192;
/// Pixels per inner block (the index buffer lives on the stack).
const BLOCK_PIXELS: usize = 256;

/// Filmic curve of one linear channel value, as an index into the sRGB table.
#[inline(always)]
fn lut_index(x: f32) -> u32 {
    let x = x.max(0.0); // also maps NaN to 0
    let mapped = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14);
    // The curve tends to 1.03 for huge x (and is NaN for x = inf); clamp before converting.
    let scaled = (mapped * (LUT_SIZE - 1) as f32 + 0.5).min((LUT_SIZE - 1) as f32);
    if scaled >= 0.0 {
        scaled as u32
    } else {
        (LUT_SIZE - 1) as u32 // NaN from an infinite sum: the brightest value
    }
}
