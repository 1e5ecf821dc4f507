//! Fixed-point requantisation: the integer contract every backend implements bit for bit.
//!
//! This is the gemmlowp / TFLite scheme. A real multiplier `M` in `(0, 2^31)` is stored as
//! `multiplier * 2^(shift - 31)` with `multiplier` in `[2^30, 2^31)` (or 0 when `M == 0`).
//! Applying it to an i32 accumulator `x`:
//!
//! 1. `left = max(shift, 0)`, `right = max(-shift, 0)`;
//! 2. `x' = x.saturating_mul(1 << left)` (saturating: the spec defines what C++ leaves undefined);
//! 3. `y = saturating_rounding_doubling_high_mul(x', multiplier)`;
//! 4. `z = rounding_divide_by_pot(y, right)` (round half away from zero).

/// A fixed-point multiplier: `real ≈ multiplier * 2^(shift - 31)`.
///
/// `#[repr(C)]` (two little-endian i32) so plans store arrays of it in their constant blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
#[repr(C)]
pub struct Requant {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0.
    pub multiplier: i32,
    /// Power-of-two exponent; positive shifts left, negative shifts right. Range `-31..=30`.
    pub shift: i32,
}

impl Requant {
    /// Quantises a positive real multiplier. Values below `2^-31` become zero.
    pub fn from_real(real: f64) -> Requant {
        assert!(real.is_finite() && real >= 0.0, "requant multiplier must be finite and >= 0, got {real}");
        if real == 0.0 {
            return Requant::default();
        }
        let mut shift = 0i32;
        let mut m = real;
        while m >= 1.0 {
            m /= 2.0;
            shift += 1;
        }
        while m < 0.5 {
            m *= 2.0;
            shift -= 1;
        }
        let mut q = (m * (1i64 << 31) as f64).round() as i64;
        if q == 1i64 << 31 {
            q /= 2;
            shift += 1;
        }
        if shift < -31 {
            return Requant::default();
        }
        Requant { multiplier: q as i32, shift: shift.min(30) }
    }

    /// Applies the multiplier to an accumulator (steps 1–4 of the module docs).
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        let left = self.shift.max(0);
        let right = (-self.shift).max(0);
        let x = x.saturating_mul(1i32 << left);
        rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, self.multiplier), right)
    }
}

/// `round(a * b / 2^31)` with round-half-away-from-zero; saturates the single overflow case
/// `a == b == i32::MIN`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Division truncates toward zero, as in gemmlowp.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded half away from zero, `exponent` in `0..=31`.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask: i32 = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srdhm_matches_exact_rounding() {
        // 0.5 * 0.5 in Q31 = 0.25.
        let half = 1i32 << 30;
        assert_eq!(saturating_rounding_doubling_high_mul(half, half), 1 << 29);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(-half, half), -(1 << 29));
    }

    #[test]
    fn rounding_divide_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(7, 2), 2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    }

    #[test]
    fn requant_tracks_the_real_multiplier() {
        for &real in &[0.000_123, 0.0417, 0.5, 0.999_999, 1.0, 3.75, 1234.5] {
            let r = Requant::from_real(real);
            for &x in &[-100_000i32, -777, -1, 0, 1, 999, 65_535] {
                let exact = x as f64 * real;
                let got = r.apply(x) as f64;
                assert!((got - exact).abs() <= 1.0 + exact.abs() * 1e-6, "real {real} x {x}: {got} vs {exact}");
            }
        }
    }
}
