//! HDR (linear float RGBA) to sRGB RGBA8.
//!
//! Colour channels: `linear * 2^exposure`, raised to `2.2 / gamma`, clamped to [0, 1], then
//! encoded with the sRGB transfer curve. With the defaults (exposure 0, gamma 2.2) that is the
//! plain sRGB encoding of the linear value. Alpha is clamped and scaled, never curved.
//!
//! The curve is a lookup table indexed by the top bits of the f32 bit pattern of the exposed,
//! clamped value, so the inner loop is one multiply, one clamp, one shift and one load per
//! channel, with no branches. Tables depend only on gamma (exposure is applied before the
//! look-up) and are cached.

use std::sync::{Arc, Mutex};

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

/// Table length; indices are `u16`, so every look-up is in bounds without a check.
const LUT_LEN: usize = 1 << 16;
/// Pixels per step of the inner loop: 8 pixels (32 lanes) keep the vector units busy between
/// the scalar table loads.
const BLOCK_LANES: usize = 32;
/// Prepared tables kept for reuse; frames are tonemapped with few distinct gammas.
const CACHED_TABLES: usize = 8;

/// A prepared table for one gamma (exposure is applied before the look-up, so it is shared).
#[derive(Clone)]
struct CurveTable {
    /// Exactly [`LUT_LEN`] entries: the colour curve, then the alpha ramp.
    lut: Arc<[u8]>,
    /// Mantissa bits dropped from the f32 pattern to form an index.
    shift: u32,
    /// Per lane (R, G, B, A): values below this are raised to it (it maps to 0).
    floor: [f32; 4],
    /// Per lane: subtracted from `bits >> shift`, placing the lane's floor at its first entry.
    base: [u32; 4],
}

/// Recently built tables, most recent last, keyed by the clamped gamma's bit pattern.
static TABLE_CACHE: Mutex<Vec<(u32, CurveTable)>> = Mutex::new(Vec::new());

/// A prepared tone curve: build once per setting, apply to many pixels.
///
/// The table is indexed by the top bits of the f32 bit pattern of the exposed, clamped value
/// (exponent plus the leading mantissa bits), so it is fine near black, where the curve is
/// steep, and every lane (alpha included) runs the same branch-free arithmetic.
pub struct ToneCurve {
    table: CurveTable,
    /// Per lane: `2^exposure` for colour, 1 for alpha.
    scale: [f32; 4],
}

impl ToneCurve {
    /// Builds (or reuses) the table for `settings` (values are clamped into range first).
    pub fn new(settings: Tonemap) -> ToneCurve {
        let exposure = if settings.exposure.is_finite() {
            settings
                .exposure
                .clamp(*EXPOSURE_RANGE.start(), *EXPOSURE_RANGE.end())
        } else {
            0.0
        };
        let gamma = if settings.gamma.is_finite() {
            settings
                .gamma
                .clamp(*GAMMA_RANGE.start(), *GAMMA_RANGE.end())
        } else {
            2.2
        };
        let exposure_scale = 2f32.powf(exposure);
        ToneCurve {
            table: cached_table(gamma),
            scale: [exposure_scale, exposure_scale, exposure_scale, 1.0],
        }
    }

    /// Tonemaps linear RGBA floats into RGBA8. Stops at the shorter of the two buffers
    /// (`dst` should hold `src.len()` bytes).
    pub fn apply(&self, src: &[f32], dst: &mut [u8]) {
        // Always succeeds (tables are built with LUT_LEN entries); the fixed length lets the
        // u16 indices below go without bounds checks.
        let Ok(lut) = <&[u8; LUT_LEN]>::try_from(&self.table.lut[..]) else {
            return;
        };
        let shift = self.table.shift;
        let scale: [f32; BLOCK_LANES] = std::array::from_fn(|k| self.scale[k % 4]);
        let floor: [f32; BLOCK_LANES] = std::array::from_fn(|k| self.table.floor[k % 4]);
        let base: [u32; BLOCK_LANES] = std::array::from_fn(|k| self.table.base[k % 4]);
        let mut src_blocks = src.chunks_exact(BLOCK_LANES);
        let mut dst_blocks = dst.chunks_exact_mut(BLOCK_LANES);
        for (s, d) in (&mut src_blocks).zip(&mut dst_blocks) {
            // Index arithmetic for all lanes first (vectorised), then the loads.
            let mut index = [0u16; BLOCK_LANES];
            for k in 0..BLOCK_LANES {
                index[k] = lane_index(s[k], scale[k], floor[k], shift, base[k]);
            }
            for k in 0..BLOCK_LANES {
                d[k] = lut[usize::from(index[k])];
            }
        }
        let tail = src_blocks.remainder();
        for (k, (s, d)) in tail.iter().zip(dst_blocks.into_remainder()).enumerate() {
            *d = lut[usize::from(lane_index(*s, scale[k], floor[k], shift, base[k]))];
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

/// Table index of one lane: exposed, raised to the lane's floor (NaN fails the comparison and
/// becomes the floor too), capped at 1, then the top bits of its pattern.
#[inline(always)]
fn lane_index(value: f32, scale: f32, floor: f32, shift: u32, base: u32) -> u16 {
    let x = value * scale;
    // Written as comparisons (not `max`/`min`) so they lower to single vector instructions.
    let x = if x > floor { x } else { floor };
    let x = if x < 1.0 { x } else { 1.0 };
    // Truncation to u16 is the table bound; in-range values never exceed it.
    (x.to_bits() >> shift).wrapping_sub(base) as u16
}

/// The exact colour curve for a value already exposed: clamp, bend, sRGB-encode, in [0, 255].
fn curve_255(exposed: f32, bend: f32) -> f32 {
    srgb_encode(exposed.clamp(0.0, 1.0).powf(bend)) * 255.0
}

/// The exact alpha ramp, in [0, 255].
fn alpha_255(alpha: f32) -> f32 {
    alpha.clamp(0.0, 1.0) * 255.0
}

/// The table for `gamma`, from the cache or built (and cached).
fn cached_table(gamma: f32) -> CurveTable {
    let key = gamma.to_bits();
    {
        // A poisoned lock only means another thread panicked mid-update; the list is valid.
        let mut cache = TABLE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = cache.iter().position(|(k, _)| *k == key) {
            let entry = cache.remove(pos);
            let table = entry.1.clone();
            cache.push(entry);
            return table;
        }
    }
    let table = build_table(2.2 / gamma);
    let mut cache = TABLE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHED_TABLES {
        cache.remove(0);
    }
    cache.push((key, table.clone()));
    table
}

/// Largest power of two (down to 2^-126) whose curve value is below a quarter step: everything
/// under it rounds to 0, so it can stand in for them.
fn black_floor(curve: impl Fn(f32) -> f32) -> f32 {
    let mut floor = 0.5f32;
    while curve(floor) >= 0.25 && floor > f32::MIN_POSITIVE {
        floor *= 0.5;
    }
    floor
}

/// Fills `entries` for the values from `floor` up to 1: each entry covers the values sharing
/// the index, and holds the rounded middle of `curve` over them.
fn fill(entries: &mut [u8], floor: f32, shift: u32, curve: impl Fn(f32) -> f32) {
    let first = floor.to_bits() >> shift;
    let mut low = curve(floor);
    for (i, entry) in (first..).zip(entries.iter_mut()) {
        let high = curve(f32::from_bits((i + 1) << shift));
        *entry = ((low + high) * 0.5 + 0.5) as u8;
        low = high;
    }
}

/// Builds the table for exponent `bend` (`2.2 / gamma`).
///
/// An entry covers values within a relative `2^-(23 - shift)` of each other. The colour
/// curve's slope in output steps per unit of relative change is at most about `106 * bend`
/// (the alpha ramp's 255), so the shift keeps an entry's spread under one step either way:
/// every entry is within 1 LSB of the exact mapping of every value it covers.
fn build_table(bend: f32) -> CurveTable {
    let colour_bits = ((106.0 / 0.9 * bend).log2().ceil() - 1.0).max(0.0) as u32;
    let mut shift = 23u32.saturating_sub(colour_bits.max(9));
    let colour_floor = black_floor(|x| curve_255(x, bend));
    let alpha_floor = black_floor(alpha_255);
    let top = 1.0f32.to_bits();
    let span = |floor: f32, shift: u32| ((top - floor.to_bits()) >> shift) as usize + 1;
    // Never reached for gammas in range (at most ~37k entries); keeps the table in bounds.
    while span(colour_floor, shift) + span(alpha_floor, shift) > LUT_LEN && shift < 23 {
        shift += 1;
    }
    let colour_len = span(colour_floor, shift);
    let mut lut = vec![0u8; LUT_LEN];
    let (colour, alpha) = lut.split_at_mut(colour_len);
    fill(colour, colour_floor, shift, |x| curve_255(x, bend));
    let alpha_len = span(alpha_floor, shift).min(alpha.len());
    fill(&mut alpha[..alpha_len], alpha_floor, shift, alpha_255);
    let colour_base = colour_floor.to_bits() >> shift;
    let alpha_base = (alpha_floor.to_bits() >> shift).wrapping_sub(colour_len as u32);
    CurveTable {
        lut: lut.into(),
        shift,
        floor: [colour_floor, colour_floor, colour_floor, alpha_floor],
        base: [colour_base, colour_base, colour_base, alpha_base],
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

    /// The documented mapping, computed directly in f64 (NaN counts as 0).
    fn exact(value: f32, lane: usize, settings: Tonemap) -> u8 {
        let v = if value.is_nan() {
            0.0
        } else {
            f64::from(value)
        };
        if lane == 3 {
            return (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        }
        let x = (v * 2f64.powf(f64::from(settings.exposure))).clamp(0.0, 1.0);
        let linear = x.powf(2.2 / f64::from(settings.gamma));
        let encoded = if linear <= 0.003_130_8 {
            linear * 12.92
        } else {
            1.055 * linear.powf(1.0 / 2.4) - 0.055
        };
        (encoded * 255.0 + 0.5) as u8
    }

    #[test]
    fn fast_path_is_within_one_step_of_the_exact_mapping() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let edges = [
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            1e-40,
            -1e-40,
            1e-20,
            1e-6,
            0.003_130_8,
            0.0031,
            0.0032,
            0.2140,
            0.5,
            1.0 - f32::EPSILON,
            1.0,
            1.0 + f32::EPSILON,
            1.5,
            1e30,
            f32::MAX,
            -1.0,
            -f32::MAX,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let mut src: Vec<f32> = edges.iter().flat_map(|&e| [e, e, e, e]).collect();
        for _ in 0..3000 {
            let r = next();
            // Any bit pattern (NaN, inf, negative, denormal, huge) ...
            src.push(f32::from_bits(r as u32));
            // ... values in [0, 2) ...
            src.push((r >> 40) as f32 / (1u64 << 23) as f32);
            // ... and values spread over many octaves below 1.
            src.push(((r >> 8) as u32 as f32 / u32::MAX as f32).powi(((r >> 3) % 24) as i32));
            src.push(((r >> 20) & 0xFFFF) as f32 / 65535.0);
        }
        // An odd pixel count exercises the tail after the 8-pixel blocks.
        src.truncate(src.len() / 4 * 4 - 12);
        let mut dst = vec![0u8; src.len()];
        for exposure in [-20.0, -3.5, 0.0, 1.0, 2.7, 20.0] {
            for gamma in [0.1, 0.25, 0.5, 1.0, 1.7, 2.2, 4.0, 10.0] {
                let settings = Tonemap { exposure, gamma };
                ToneCurve::new(settings).apply(&src, &mut dst);
                for (i, (&value, &got)) in src.iter().zip(&dst).enumerate() {
                    let want = exact(value, i % 4, settings);
                    assert!(
                        (i32::from(got) - i32::from(want)).abs() <= 1,
                        "{settings:?} lane {}: {value:e} gave {got}, exact {want}",
                        i % 4
                    );
                }
            }
        }
    }

    #[test]
    fn tables_are_cached_per_gamma() {
        // Other tests fill the shared cache concurrently and may evict between two calls, so a
        // few attempts are allowed; without caching every attempt builds a fresh table.
        let shared = (0..5).any(|_| {
            let a = ToneCurve::new(Tonemap {
                exposure: 1.0,
                gamma: 1.3,
            });
            let b = ToneCurve::new(Tonemap {
                exposure: -2.0,
                gamma: 1.3,
            });
            Arc::ptr_eq(&a.table.lut, &b.table.lut)
        });
        assert!(shared);
    }
}
