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
///
/// Usually every pixel holds the same number of samples. Rendering a region gives pixels
/// their own counts (kept in `counts` from then until the film is cleared). A preview
/// (sub-sampled pass) holds one sample per block of pixels and is replaced, not added to, by
/// the next full pass.
#[derive(Clone, Debug)]
pub struct Film {
    width: u32,
    height: u32,
    /// Samples of every pixel (uniform film) or the largest per-pixel count.
    samples: u32,
    /// RGB radiance sums, 3 floats per pixel.
    sums: Vec<f32>,
    /// Per-pixel sample counts once pixels differ (region rendering).
    counts: Option<Vec<u32>>,
    /// Block side of the preview the film holds (each sum is one sample); 0: no preview.
    preview: u32,
}

impl Film {
    pub(crate) fn new(width: u32, height: u32) -> Film {
        let len = width as usize * height as usize * 3;
        Film {
            width,
            height,
            samples: 0,
            sums: vec![0.0; len],
            counts: None,
            preview: 0,
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

    /// Number of full-resolution samples accumulated in every pixel (in the most refined
    /// pixels when a region was rendered); 0 while the film holds only a preview.
    pub fn samples_per_pixel(&self) -> u32 {
        self.samples
    }

    /// Side of the pixel blocks of the preview the film shows (2 or 4), or 1 when it shows
    /// full-resolution samples (or nothing).
    pub fn subsampled(&self) -> u32 {
        self.preview.max(1)
    }

    /// Samples of pixel (`x`, `y`) (0 outside the image).
    pub fn pixel_samples(&self, x: u32, y: u32) -> u32 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        match &self.counts {
            Some(counts) => counts
                .get(y as usize * self.width as usize + x as usize)
                .copied()
                .unwrap_or(0),
            None => self.samples,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.samples = 0;
        self.sums.fill(0.0);
        self.counts = None;
        self.preview = 0;
    }

    pub(crate) fn sums_mut(&mut self) -> &mut [f32] {
        &mut self.sums
    }

    /// Sums and per-pixel counts (`None`: all pixels have `samples_per_pixel`) to add a
    /// region's samples to; the counts are created on first use.
    pub(crate) fn sums_and_counts_mut(&mut self) -> (&mut [f32], &mut [u32]) {
        let pixels = self.width as usize * self.height as usize;
        let samples = self.samples;
        let counts = self.counts.get_or_insert_with(|| vec![samples; pixels]);
        (&mut self.sums, counts)
    }

    /// True when every pixel has `samples_per_pixel` samples (no region was rendered).
    pub(crate) fn has_uniform_counts(&self) -> bool {
        self.counts.is_none()
    }

    /// True while the film holds a preview that the next full pass replaces.
    pub(crate) fn holds_preview(&self) -> bool {
        self.preview != 0
    }

    /// Records a full pass over every pixel (which replaced a preview, if any).
    pub(crate) fn finish_sample(&mut self) {
        self.preview = 0;
        self.samples = self.samples.saturating_add(1);
        if let Some(counts) = &mut self.counts {
            for count in counts.iter_mut() {
                *count = count.saturating_add(1);
            }
        }
    }

    /// Records a region pass: the per-pixel counts were updated by the caller.
    pub(crate) fn finish_region_sample(&mut self) {
        if let Some(counts) = &self.counts {
            self.samples = counts.iter().copied().max().unwrap_or(0);
        }
    }

    /// Records a preview in blocks of `block` pixels (the sums hold one sample each).
    pub(crate) fn finish_preview(&mut self, block: u32) {
        self.samples = 0;
        self.counts = None;
        self.preview = block.max(1);
    }

    /// Mean radiance sums for the conversions: the sums themselves with the scale to apply,
    /// or (pixels with their own counts) per-pixel means with scale 1.
    fn means(&self) -> (std::borrow::Cow<'_, [f32]>, f32) {
        if self.preview != 0 {
            return (std::borrow::Cow::Borrowed(&self.sums), 1.0);
        }
        match &self.counts {
            None => (std::borrow::Cow::Borrowed(&self.sums), self.mean_scale()),
            Some(counts) => {
                let mut means = self.sums.clone();
                means
                    .par_chunks_mut(3)
                    .zip(counts.par_iter())
                    .for_each(|(px, &count)| {
                        let scale = if count == 0 { 0.0 } else { 1.0 / count as f32 };
                        for c in px {
                            *c *= scale;
                        }
                    });
                (std::borrow::Cow::Owned(means), 1.0)
            }
        }
    }

    /// The displayable image: RGBA8, sRGB-encoded, alpha 255, `width * height * 4` bytes.
    ///
    /// Tone mapping: the mean radiance is multiplied by [`EXPOSURE`], mapped through a filmic
    /// curve (Narkowicz's fit of the ACES reference tone curve, which rolls highlights off
    /// smoothly instead of clipping) and sRGB-encoded via a lookup table. Runs in parallel; an
    /// empty film (0 samples) is black.
    pub fn to_srgb8(&self) -> Vec<u8> {
        let (sums, scale) = self.means();
        let scale = scale * EXPOSURE;
        let lut = srgb_lut();
        let mut out = vec![0u8; sums.len() / 3 * 4];
        out.par_chunks_mut(PIXELS_PER_TASK * 4)
            .zip(sums.par_chunks(PIXELS_PER_TASK * 3))
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
        let (sums, scale) = self.means();
        let mut out = Vec::with_capacity(sums.len() / 3 * 4);
        for px in sums.chunks_exact(3) {
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
