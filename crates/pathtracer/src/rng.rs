//! Deterministic per-path random numbers (PCG32), seeded from pixel and sample index.

/// A PCG32 generator (64-bit state, XSH-RR output); no global state.
pub(crate) struct Rng {
    state: u64,
}

const PCG_MULTIPLIER: u64 = 6364136223846793005;
const PCG_INCREMENT: u64 = 1442695040888963407;

/// SplitMix64 finaliser: spreads nearby keys over the whole state space.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator for one pixel's `sample`-th sample; same inputs, same sequence.
    pub fn for_pixel(pixel_index: u32, sample: u32) -> Rng {
        let key = (u64::from(sample) << 32) | u64::from(pixel_index);
        let mut rng = Rng {
            state: splitmix64(key),
        };
        rng.next_u32();
        rng
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(PCG_MULTIPLIER).wrapping_add(PCG_INCREMENT);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        // 24 random mantissa bits give an exactly representable value below 1.0.
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence_and_values_in_unit_interval() {
        let mut a = Rng::for_pixel(17, 3);
        let mut b = Rng::for_pixel(17, 3);
        let mut c = Rng::for_pixel(17, 4);
        let mut differs = false;
        for _ in 0..1000 {
            let x = a.next_f32();
            assert_eq!(x, b.next_f32());
            assert!((0.0..1.0).contains(&x));
            differs |= x != c.next_f32();
        }
        assert!(differs);
    }
}
