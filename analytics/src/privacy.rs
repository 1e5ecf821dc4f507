//! Differential privacy on the vehicle: contribution clipping, discrete Laplace noise
//! from `prio`'s exact sampler, and a persisted per-vehicle budget in epsilon per day.
//!
//! * **Clipping.** A window's vector is scaled down (floor, proportionally) until its L1
//!   norm is at most `l1_clip`. Two vehicles' vectors then differ by at most `2 * l1_clip`
//!   in L1 (substitution neighbours), the sensitivity the noise is calibrated to.
//! * **Noise.** Each coordinate gets an independent discrete Laplace sample of scale
//!   `2 * l1_clip / epsilon_per_report`, drawn by `prio::dp::distributions::DiscreteLaplace`
//!   (Canonne–Kamath–Steinke, exact big-rational arithmetic: no floating-point Laplace and its
//!   known attacks). Epsilon is held as an integer number of micro-epsilons, so accounting is
//!   exact too.
//! * **Encoding.** Prio3 measurements are unsigned, so the noisy value is shifted by
//!   `2^(bits-1)` and clamped into `[0, 2^bits)` (post-processing); the collector subtracts
//!   `reports * 2^(bits-1)`.
//! * **Budget.** Releasing a window spends `epsilon_per_report` from the UTC day's
//!   `epsilon_per_day`; the spend is written (temp + fsync + rename) *before* the noisy
//!   vector exists, and a release that would overspend is refused.

use std::path::{Path, PathBuf};

use num_bigint::BigUint;
use num_rational::Ratio;
use prio::dp::distributions::DiscreteLaplace;
use rand08::distributions::Distribution;
use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::fsutil::write_atomic;

/// One epsilon in the integer unit the budget is kept in.
pub const MICRO: u64 = 1_000_000;

/// Privacy parameters of the released vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivacyParams {
    /// Epsilon spent per released window, in micro-epsilon.
    pub epsilon_per_report_micro: u64,
    /// Epsilon a vehicle may spend per UTC day, in micro-epsilon.
    pub epsilon_per_day_micro: u64,
    /// L1 bound of one window's vector.
    pub l1_clip: u64,
    /// Bits per Prio3 coordinate (the offset is `2^(bits-1)`).
    pub bits: u32,
    /// No noise at all. Only for tests that check the pipeline bit-exactly; never in a
    /// deployment (the config loader refuses it unless spelled out).
    pub dangerous_disable_noise: bool,
}

impl PrivacyParams {
    /// Offset added to every coordinate before encoding.
    pub fn offset(&self) -> u64 {
        1u64 << (self.bits - 1)
    }

    /// Largest encodable coordinate.
    pub fn max_value(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// L1 sensitivity of one vehicle's clipped vector (substitution neighbours).
    pub fn sensitivity(&self) -> u64 {
        2 * self.l1_clip
    }

    /// Discrete Laplace scale `sensitivity / epsilon` as an exact rational.
    pub fn scale(&self) -> Ratio<BigUint> {
        Ratio::new(BigUint::from(self.sensitivity()) * BigUint::from(MICRO), BigUint::from(self.epsilon_per_report_micro.max(1)))
    }

    /// Standard deviation of the noise on one coordinate of one report
    /// (discrete Laplace with scale `t`: variance `2 e^{-1/t} / (1 - e^{-1/t})^2`).
    pub fn noise_std(&self) -> f64 {
        if self.dangerous_disable_noise {
            return 0.0;
        }
        let t = self.sensitivity() as f64 * MICRO as f64 / self.epsilon_per_report_micro.max(1) as f64;
        let q = (-1.0 / t).exp();
        (2.0 * q).sqrt() / (1.0 - q)
    }

    /// Checks the parameters; names the offending field.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let bad = |field: &str, why: &str| Err(AnalyticsError::Config { field: field.into(), reason: why.into() });
        if self.epsilon_per_report_micro == 0 {
            return bad("privacy.epsilon_per_report", "must be > 0");
        }
        if self.epsilon_per_report_micro > self.epsilon_per_day_micro {
            return bad("privacy.epsilon_per_report", "exceeds privacy.epsilon_per_day: nothing could ever be released");
        }
        if self.l1_clip == 0 {
            return bad("privacy.l1_clip", "must be > 0");
        }
        if !(8..=62).contains(&self.bits) {
            return bad("privacy.bits", "must be in 8..=62");
        }
        if self.l1_clip >= self.offset() {
            return bad("privacy.l1_clip", "must be below 2^(bits-1)");
        }
        Ok(())
    }
}

/// Epsilon (float, from config) to micro-epsilon.
pub fn to_micro(epsilon: f64) -> u64 {
    if epsilon.is_finite() && epsilon > 0.0 { (epsilon * MICRO as f64).round() as u64 } else { 0 }
}

/// Scales `v` down proportionally (floor) so that its L1 norm is at most `bound`.
/// Returns whether anything was clipped.
pub fn clip_l1(v: &mut [u64], bound: u64) -> bool {
    let sum: u128 = v.iter().map(|&x| x as u128).sum();
    if sum <= bound as u128 {
        return false;
    }
    for x in v.iter_mut() {
        *x = ((*x as u128 * bound as u128) / sum) as u64;
    }
    true
}

/// Adds noise to a clipped vector and encodes it for Prio3 (offset + clamp).
pub fn noise_and_encode<R: rand08::RngCore + rand08::CryptoRng>(v: &[u64], p: &PrivacyParams, rng: &mut R) -> Result<Vec<u64>, AnalyticsError> {
    let offset = p.offset() as i128;
    let max = p.max_value() as i128;
    if p.dangerous_disable_noise {
        return Ok(v.iter().map(|&x| (x as i128 + offset).clamp(0, max) as u64).collect());
    }
    let lap = DiscreteLaplace::new(p.scale()).map_err(|e| AnalyticsError::Privacy(e.to_string()))?;
    v.iter()
        .map(|&x| {
            let n = lap.sample(rng);
            // A sample beyond i64 is astronomically unlikely; saturate rather than fail.
            let n = i64::try_from(&n).unwrap_or(if n.sign() == num_bigint::Sign::Minus { i64::MIN } else { i64::MAX });
            Ok((x as i128 + n as i128 + offset).clamp(0, max) as u64)
        })
        .collect()
}

/// Turns the collector's sum of `reports` encoded vectors back into signed noisy sums.
pub fn decode_aggregate(sum: &[u128], reports: u64, p: &PrivacyParams) -> Vec<i128> {
    let off = reports as i128 * p.offset() as i128;
    sum.iter().map(|&s| s as i128 - off).collect()
}

/// Persisted budget state.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BudgetState {
    /// UTC day number (seconds since the epoch / 86400) the spend belongs to.
    pub day: u64,
    /// Micro-epsilon spent on that day.
    pub spent_micro: u64,
    /// Releases refused since the file was created.
    pub refused_total: u64,
}

/// The per-vehicle privacy budget, persisted in `budget.json`.
pub struct Budget {
    path: PathBuf,
    per_day_micro: u64,
    state: BudgetState,
}

impl Budget {
    /// File name inside the state directory.
    pub const FILE: &'static str = "budget.json";

    /// Opens (or creates) the budget under `dir`.
    pub fn open(dir: &Path, per_day_micro: u64) -> Result<Self, AnalyticsError> {
        let path = dir.join(Self::FILE);
        let state = Self::read(&path)?.unwrap_or_default();
        Ok(Self { path, per_day_micro, state })
    }

    /// Reads the state file, if any (for `vigil analytics status`).
    pub fn read(path: &Path) -> Result<Option<BudgetState>, AnalyticsError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AnalyticsError::Corrupt { path: path.to_path_buf(), reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AnalyticsError::io(path, e)),
        }
    }

    /// Micro-epsilon left on the UTC day of `now_secs`.
    pub fn left_micro(&self, now_secs: u64) -> u64 {
        let day = now_secs / 86_400;
        let spent = if self.state.day == day { self.state.spent_micro } else { 0 };
        self.per_day_micro.saturating_sub(spent)
    }

    /// Spends `amount_micro` on the day of `now_secs`, persisting before returning.
    /// Refuses (and counts the refusal) when the day's budget cannot cover it.
    pub fn try_spend(&mut self, now_secs: u64, amount_micro: u64) -> Result<(), AnalyticsError> {
        let day = now_secs / 86_400;
        let mut next = self.state;
        if next.day != day {
            next.day = day;
            next.spent_micro = 0;
        }
        if next.spent_micro.saturating_add(amount_micro) > self.per_day_micro {
            self.state.refused_total += 1;
            let _ = self.persist(self.state);
            return Err(AnalyticsError::BudgetExhausted { left_micro: self.left_micro(now_secs), needed_micro: amount_micro });
        }
        next.spent_micro += amount_micro;
        self.persist(next)?;
        self.state = next;
        Ok(())
    }

    /// Current state.
    pub fn state(&self) -> BudgetState {
        self.state
    }

    fn persist(&self, s: BudgetState) -> Result<(), AnalyticsError> {
        let bytes = serde_json::to_vec_pretty(&s).map_err(|e| AnalyticsError::Privacy(e.to_string()))?;
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(eps: f64) -> PrivacyParams {
        PrivacyParams { epsilon_per_report_micro: to_micro(eps), epsilon_per_day_micro: to_micro(1.0), l1_clip: 1000, bits: 24, dangerous_disable_noise: false }
    }

    #[test]
    fn clipping_bounds_l1_and_keeps_small_vectors() {
        let mut v = vec![600, 300, 100];
        assert!(!clip_l1(&mut v, 1000));
        assert_eq!(v, [600, 300, 100]);
        let mut v = vec![6000, 3000, 1000];
        assert!(clip_l1(&mut v, 1000));
        assert_eq!(v, [600, 300, 100]);
        let mut v = vec![u64::MAX / 2, u64::MAX / 2, 7];
        clip_l1(&mut v, 1000);
        assert!(v.iter().sum::<u64>() <= 1000);
    }

    #[test]
    fn budget_refuses_once_spent_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let day = 20_000 * 86_400;
        let mut b = Budget::open(dir.path(), to_micro(1.0)).unwrap();
        for _ in 0..4 {
            b.try_spend(day + 10, to_micro(0.25)).unwrap();
        }
        assert!(matches!(b.try_spend(day + 20, to_micro(0.25)), Err(AnalyticsError::BudgetExhausted { .. })));
        // Persisted: a restarted process sees the spend.
        let mut b = Budget::open(dir.path(), to_micro(1.0)).unwrap();
        assert_eq!(b.left_micro(day + 30), 0);
        assert!(b.try_spend(day + 30, 1).is_err());
        assert_eq!(b.state().refused_total, 2);
        // Next UTC day: fresh budget.
        b.try_spend(day + 86_400, to_micro(0.25)).unwrap();
        assert_eq!(b.left_micro(day + 86_400), to_micro(0.75));
    }

    #[test]
    fn noise_is_centred_with_the_calibrated_spread() {
        let p = params(0.5);
        let mut rng = rand08::rngs::OsRng;
        let n = 4000;
        let v = vec![100u64; 1];
        let samples: Vec<f64> = (0..n)
            .map(|_| noise_and_encode(&v, &p, &mut rng).unwrap()[0] as f64 - p.offset() as f64 - 100.0)
            .collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let std = p.noise_std();
        // scale 4000: std ~5657; mean within 5 standard errors, std within 10%.
        assert!(mean.abs() < 5.0 * std / (n as f64).sqrt(), "mean {mean} std {std}");
        assert!((var.sqrt() / std - 1.0).abs() < 0.1, "sample std {} vs {std}", var.sqrt());
    }

    #[test]
    fn encoding_round_trips_without_noise() {
        let mut p = params(1.0);
        p.dangerous_disable_noise = true;
        let enc = noise_and_encode(&[5, 0, 1000], &p, &mut rand08::rngs::OsRng).unwrap();
        let sum: Vec<u128> = enc.iter().map(|&x| 2 * x as u128).collect();
        assert_eq!(decode_aggregate(&sum, 2, &p), [10, 0, 2000]);
    }

    #[test]
    fn validation_names_the_field() {
        let mut p = params(2.0);
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("privacy.epsilon_per_report"), "{e}");
        p = params(0.5);
        p.l1_clip = 1 << 30;
        assert!(p.validate().unwrap_err().to_string().contains("privacy.l1_clip"));
    }
}
