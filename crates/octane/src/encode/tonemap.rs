//! HDR (linear float RGBA) to sRGB RGBA8.
//!
//! Colour channels: `linear * 2^exposure`, raised to `2.2 / gamma`, clamped to [0, 1], then
//! encoded with the sRGB transfer curve. With the defaults (exposure 0, gamma 2.2) that is the
//! plain sRGB encoding of the linear value. Alpha is clamped and scaled, never curved.
//!
//! The curve is a lookup table indexed by the scaled linear value, so the inner loop is one
//! multiply, one clamp, one conversion and one load per channel, with no branches.

/// Tonemapping settings for HDR frames (LDR frames are never tonemapped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tonemap {
    /// Exposure in stops: the linear value is multiplied by `2^exposure`.
    pub exposure: f32,
    /// Display gamma; 2.2 gives the standard sRGB curve.
    pub gamma: f32,
}

impl Default for Tonemap {
    fn default() -> Self {
        Tonemap {
            exposure: 0.0,
            gamma: 2.2,
        }
    }
}

/// Allowed exposure range, in stops.
pub const EXPOSURE_RANGE: std::ops::RangeInclusive<f32> = -20.0..=20.0;
/// Allowed gamma range.
pub const GAMMA_RANGE: std::ops::RangeInclusive<f32> = 0.1..=10.0;

/// A tonemap setting outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TonemapError {
    /// Exposure not finite or outside [-20, 20].
    #[error("exposure {0} is out of range (-20 to 20 stops)")]
    Exposure(f32),
    /// Gamma not finite or outside [0.1, 10].
    #[error("gamma {0} is out of range (0.1 to 10)")]
    Gamma(f32),
}

impl Tonemap {
    /// Checks both settings are finite and in range.
    pub fn validate(self) -> Result<Tonemap, TonemapError> {
        if !EXPOSURE_RANGE.contains(&self.exposure) {
            return Err(TonemapError::Exposure(self.exposure));
        }
        if !GAMMA_RANGE.contains(&self.gamma) {
            return Err(TonemapError::Gamma(self.gamma));
        }
        Ok(self)
    }

    /// A hashable identity of the settings (bit patterns).
    pub fn key(self) -> (u32, u32) {
        (self.exposure.to_bits(), self.gamma.to_bits())
    }
}

/// Entries in the curve table; a power of two so masking keeps every index in bounds.
const LUT_SIZE: usize = 1 << 13;
const LUT_MAX: f32 = (LUT_SIZE - 1) as f32;

/// A prepared tone curve: build once per setting, apply to many pixels.
pub struct ToneCurve {
    lut: Box<[u8; LUT_SIZE]>,
    /// Linear value -> table index, with the exposure folded in.
    index_scale: f32,
}

impl ToneCurve {
    /// Builds the table for `settings` (values are clamped into range first).
    pub fn new(settings: Tonemap) -> ToneCurve {
        let exposure = settings
            .exposure
            .clamp(*EXPOSURE_RANGE.start(), *EXPOSURE_RANGE.end());
        let gamma = if settings.gamma.is_finite() {
            settings
                .gamma
                .clamp(*GAMMA_RANGE.start(), *GAMMA_RANGE.end())
        } else {
            2.2
        };
        let bend = 2.2 / gamma;
        let mut lut = Box::new([0u8; LUT_SIZE]);
        for (i, entry) in lut.iter_mut().enumerate() {
            let linear = (i as f32 / LUT_MAX).powf(bend);
            *entry = (srgb_encode(linear) * 255.0 + 0.5) as u8;
        }
        let index_scale = 2f32.powf(exposure) * LUT_MAX;
        ToneCurve { lut, index_scale }
    }

    /// Tonemaps linear RGBA floats into RGBA8. Stops at the shorter of the two buffers
    /// (`dst` should hold `src.len()` bytes).
    pub fn apply(&self, src: &[f32], dst: &mut [u8]) {
        let lut: &[u8; LUT_SIZE] = &self.lut;
        let scale = self.index_scale;
        // Alpha goes through the same arithmetic with its own scale, so all four lanes share
        // one branch-free sequence the compiler can vectorise; only the table loads are scalar.
        let scales = [scale, scale, scale, 255.0];
        let tops = [LUT_MAX, LUT_MAX, LUT_MAX, 255.0];
        for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
            let mut lanes = [0u32; 4];
            for c in 0..4 {
                // max() maps NaN to 0; after min() the value is in range, so the cast is exact.
                lanes[c] = (s[c] * scales[c] + 0.5).max(0.0).min(tops[c]) as u32;
            }
            d[0] = lut[lanes[0] as usize & (LUT_SIZE - 1)];
            d[1] = lut[lanes[1] as usize & (LUT_SIZE - 1)];
            d[2] = lut[lanes[2] as usize & (LUT_SIZE - 1)];
            d[3] = lanes[3] as u8;
        }
    }

    /// Tonemaps a whole frame into a new buffer, splitting large frames across the rayon pool.
    pub fn apply_to_vec(&self, src: &[f32]) -> Vec<u8> {
        use rayon::prelude::*;
        let mut out = vec![0u8; src.len()];
        // 64 Ki pixels per task: big enough that scheduling is noise.
        const CHUNK_PIXELS: usize = 1 << 16;
        if src.len() <= CHUNK_PIXELS * 4 {
            self.apply(src, &mut out);
        } else {
            out.par_chunks_mut(CHUNK_PIXELS * 4)
                .zip(src.par_chunks(CHUNK_PIXELS * 4))
                .for_each(|(d, s)| self.apply(s, d));
        }
        out
    }
}

/// The sRGB transfer function (linear [0, 1] -> encoded [0, 1]).
pub fn srgb_encode(linear: f32) -> f32 {
    let x = linear.clamp(0.0, 1.0);
    if x <= 0.003_130_8 {
        x * 12.92
    } else {
        1.055 * x.powf(1.0 / 2.4) - 0.055
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_srgb_curve() {
        let curve = ToneCurve::new(Tonemap::default());
        let src = [0.0, 0.5, 1.0, 1.0, 0.2140, 2.0, -1.0, 0.5];
        let mut dst = [0u8; 8];
        curve.apply(&src, &mut dst);
        assert_eq!(dst[0], 0);
        assert_eq!(dst[1], 188); // sRGB(0.5) = 0.7354
        assert_eq!(dst[2], 255);
        assert_eq!(dst[3], 255);
        assert!((dst[4] as i32 - 128).abs() <= 1, "{}", dst[4]); // sRGB(0.214) ~ 0.5
        assert_eq!(dst[5], 255); // over-range clamps
        assert_eq!(dst[6], 0); // negative clamps
        assert_eq!(dst[7], 128); // alpha is linear
    }

    #[test]
    fn exposure_is_in_stops() {
        let plus_one = ToneCurve::new(Tonemap {
            exposure: 1.0,
            gamma: 2.2,
        });
        let plain = ToneCurve::new(Tonemap::default());
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        plus_one.apply(&[0.25, 0.25, 0.25, 1.0], &mut a);
        plain.apply(&[0.5, 0.5, 0.5, 1.0], &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn gamma_bends_the_curve_and_nan_is_black() {
        let bright = ToneCurve::new(Tonemap {
            exposure: 0.0,
            gamma: 4.0,
        });
        let plain = ToneCurve::new(Tonemap::default());
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        bright.apply(&[0.2, f32::NAN, f32::INFINITY, f32::NAN], &mut a);
        plain.apply(&[0.2, 0.0, 1.0, 0.0], &mut b);
        assert!(a[0] > b[0]);
        assert_eq!(a[1], 0);
        assert_eq!(a[2], 255);
        assert_eq!(a[3], 0);
    }

    #[test]
    fn validation_names_the_bad_setting() {
        assert!(Tonemap::default().validate().is_ok());
        let bad = Tonemap {
            exposure: f32::NAN,
            gamma: 2.2,
        };
        assert!(matches!(bad.validate(), Err(TonemapError::Exposure(_))));
        let bad = Tonemap {
            exposure: 0.0,
            gamma: 0.0,
        };
        assert_eq!(bad.validate(), Err(TonemapError::Gamma(0.0)));
    }

    #[test]
    fn parallel_and_serial_agree() {
        let curve = ToneCurve::new(Tonemap::default());
        let src: Vec<f32> = (0..(1 << 18) * 4)
            .map(|i| (i % 997) as f32 / 997.0)
            .collect();
        let mut serial = vec![0u8; src.len()];
        curve.apply(&src, &mut serial);
        assert_eq!(curve.apply_to_vec(&src), serial);
    }
}
