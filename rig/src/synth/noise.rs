//! Integer hashing and value noise: stateless, so every pixel's texture is a pure function of
//! the seed and its world position (this is what makes rendering independent of thread count).

/// A 32-bit avalanche mix (xorshift-multiply rounds).
#[inline]
pub(crate) fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x21f0_aaad);
    x ^= x >> 15;
    x = x.wrapping_mul(0x735a_2d97);
    x ^= x >> 15;
    x
}

/// Hash of three words.
#[inline]
pub(crate) fn hash3(a: u32, b: u32, c: u32) -> u32 {
    mix(mix(mix(a ^ 0x9e37_79b9).wrapping_add(b) ^ 0x85eb_ca6b).wrapping_add(c))
}

/// Maps a hash to `[0, 1)`.
#[inline]
pub(crate) fn unit(h: u32) -> f32 {
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Bilinear value noise in `[0, 1)` on an integer lattice; `x`, `y` in lattice units, `ox`, `oy`
/// integer lattice offsets (kept separate so large world coordinates keep their precision).
#[inline]
pub(crate) fn value_noise(seed: u32, x: f32, y: f32, ox: i32, oy: i32) -> f32 {
    let fx = x.floor();
    let fy = y.floor();
    let (tx, ty) = (x - fx, y - fy);
    let (ix, iy) = ((fx as i32).wrapping_add(ox) as u32, (fy as i32).wrapping_add(oy) as u32);
    let h = |dx: u32, dy: u32| unit(hash3(seed, ix.wrapping_add(dx), iy.wrapping_add(dy)));
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let top = h(0, 0) + (h(1, 0) - h(0, 0)) * sx;
    let bottom = h(0, 1) + (h(1, 1) - h(0, 1)) * sx;
    top + (bottom - top) * sy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_in_range_and_spreads() {
        let mut sum = 0.0f64;
        for i in 0..10_000u32 {
            let u = unit(hash3(7, i, 3));
            assert!((0.0..1.0).contains(&u));
            sum += f64::from(u);
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
    }

    #[test]
    fn value_noise_is_continuous_across_cells() {
        let a = value_noise(1, 2.999_99, 5.5, 0, 0);
        let b = value_noise(1, 3.000_01, 5.5, 0, 0);
        assert!((a - b).abs() < 1e-3);
        // Offsets shift the lattice exactly.
        assert_eq!(value_noise(1, 0.25, 0.5, 10, 0), value_noise(1, 10.25, 0.5, 0, 0));
    }
}
