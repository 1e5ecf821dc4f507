//! Execution-time estimates: what the admission controller believes a job will cost.
//!
//! [`ExecTimeModel`] is the seam: the live executor learns from measurements
//! ([`OnlineEstimator`]: a fixed window per variant and its 95th percentile, never a
//! mean), while deterministic replay uses a fixed table ([`ModelledTimes`]) and advances
//! a [`crate::VirtualClock`] by the modelled cost, so decisions do not depend on how fast
//! the replaying machine is.

use crate::clock::Duration;
use crate::{CameraId, VariantId};

/// Predicts how long a job of `variant` on `camera` will take, and learns from outcomes.
pub trait ExecTimeModel {
    /// The execution time admission control should plan with.
    fn predict(&self, camera: CameraId, variant: VariantId) -> Duration;
    /// A job finished (or was stopped by the watchdog) after `took`.
    fn observe(&mut self, camera: CameraId, variant: VariantId, took: Duration);
}

/// Samples kept per variant.
pub const WINDOW: usize = 64;

/// A sliding window of the last [`WINDOW`] samples with order statistics, no allocation.
///
/// The samples are kept twice: in arrival order (to know which one leaves) and sorted
/// (so a percentile is one index). A push is two binary searches and two short moves.
#[derive(Clone, Debug)]
pub struct Window {
    samples: [u64; WINDOW],
    sorted: [u64; WINDOW],
    len: usize,
    next: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window { samples: [0; WINDOW], sorted: [0; WINDOW], len: 0, next: 0 }
    }
}

impl Window {
    /// Adds a sample, evicting the oldest once full.
    pub fn push(&mut self, v: u64) {
        if self.len == WINDOW {
            let old = self.samples[self.next];
            // Present by construction; any copy of an equal value will do.
            if let Ok(i) = self.sorted[..self.len].binary_search(&old) {
                self.sorted.copy_within(i + 1..self.len, i);
                self.len -= 1;
            }
        }
        self.samples[self.next] = v;
        self.next = (self.next + 1) % WINDOW;
        let pos = self.sorted[..self.len].partition_point(|x| *x <= v);
        self.sorted.copy_within(pos..self.len, pos + 1);
        self.sorted[pos] = v;
        self.len += 1;
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no sample was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nearest-rank percentile `p` in `0.0..=1.0` (the smallest sample with at least
    /// `p` of the samples at or below it); `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let rank = (p.clamp(0.0, 1.0) * self.len as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, self.len) - 1])
    }
}

/// Online per-variant estimates: the p95 of the last [`WINDOW`] measured times.
///
/// Until `warmup` samples exist for a variant, the configured prior is used (and the
/// larger of prior and measurement afterwards while the window is still short, so early
/// lucky samples do not admit jobs that will miss).
#[derive(Clone, Debug)]
pub struct OnlineEstimator {
    windows: Box<[Window]>,
    p95: Box<[u64]>,
    prior: Box<[u64]>,
    warmup: usize,
}

impl OnlineEstimator {
    /// One window per variant, with a prior per variant (largest variant first).
    pub fn new(prior: &[Duration]) -> Self {
        OnlineEstimator {
            windows: vec![Window::default(); prior.len()].into_boxed_slice(),
            p95: prior.iter().map(|d| d.ticks()).collect(),
            prior: prior.iter().map(|d| d.ticks()).collect(),
            warmup: 8,
        }
    }

    /// The current p95 of `variant` (or its prior).
    pub fn p95(&self, variant: VariantId) -> Duration {
        Duration::from_ticks(self.p95.get(usize::from(variant.0)).copied().unwrap_or(u64::MAX / 4))
    }

    /// The window of `variant`.
    pub fn window(&self, variant: VariantId) -> Option<&Window> {
        self.windows.get(usize::from(variant.0))
    }
}

impl ExecTimeModel for OnlineEstimator {
    fn predict(&self, _camera: CameraId, variant: VariantId) -> Duration {
        self.p95(variant)
    }

    fn observe(&mut self, _camera: CameraId, variant: VariantId, took: Duration) {
        let v = usize::from(variant.0);
        let Some(w) = self.windows.get_mut(v) else { return };
        w.push(took.ticks());
        let measured = w.percentile(0.95).unwrap_or(self.prior[v]);
        self.p95[v] = if w.len() < self.warmup { measured.max(self.prior[v]) } else { measured };
    }
}

/// Fixed, modelled execution times per variant, for deterministic replay and tests.
#[derive(Clone, Debug)]
pub struct ModelledTimes {
    cost: Box<[Duration]>,
}

impl ModelledTimes {
    /// The modelled cost per variant (largest variant first).
    pub fn new(cost: &[Duration]) -> Self {
        ModelledTimes { cost: cost.into() }
    }

    /// The cost replay should advance the virtual clock by after running `variant`.
    pub fn cost(&self, variant: VariantId) -> Duration {
        self.cost.get(usize::from(variant.0)).copied().unwrap_or(Duration::from_ticks(u64::MAX / 4))
    }
}

impl ExecTimeModel for ModelledTimes {
    fn predict(&self, _camera: CameraId, variant: VariantId) -> Duration {
        self.cost(variant)
    }

    fn observe(&mut self, _camera: CameraId, _variant: VariantId, _took: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{micros, millis};

    #[test]
    fn nearest_rank_percentiles() {
        let mut w = Window::default();
        assert_eq!(w.percentile(0.95), None);
        for v in 1..=20u64 {
            w.push(v * 10);
        }
        // 20 samples: p95 rank = ceil(19.0) = 19 -> 190; p50 rank 10 -> 100; p100 -> 200.
        assert_eq!(w.percentile(0.95), Some(190));
        assert_eq!(w.percentile(0.5), Some(100));
        assert_eq!(w.percentile(1.0), Some(200));
        assert_eq!(w.percentile(0.0), Some(10));
    }

    #[test]
    fn sorted_window_matches_a_sort_of_the_last_samples() {
        let mut w = Window::default();
        let mut all = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..1_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 5 == 0 { 42 } else { x % 1_000 }; // with repeated values
            w.push(v);
            all.push(v);
            let mut last: Vec<u64> = all[all.len().saturating_sub(WINDOW)..].to_vec();
            last.sort_unstable();
            for p in [0.0, 0.5, 0.95, 0.99, 1.0] {
                let rank = ((p * last.len() as f64).ceil() as usize).clamp(1, last.len());
                assert_eq!(w.percentile(p), Some(last[rank - 1]), "after {i} pushes, p{p}");
            }
        }
    }

    #[test]
    fn window_forgets_old_samples() {
        let mut w = Window::default();
        for _ in 0..WINDOW {
            w.push(1_000);
        }
        assert_eq!(w.percentile(0.95), Some(1_000));
        for _ in 0..WINDOW {
            w.push(10);
        }
        assert_eq!(w.len(), WINDOW);
        assert_eq!(w.percentile(1.0), Some(10), "old slow samples must have left the window");
    }

    #[test]
    fn p95_ignores_the_mean_and_tracks_the_tail() {
        let mut e = OnlineEstimator::new(&[millis(10), millis(4)]);
        assert_eq!(e.predict(0, VariantId(0)), millis(10), "prior before any sample");
        // 60 fast samples and 4 slow ones out of 64: p95 (rank 61) lands on a slow one.
        for i in 0..64u64 {
            let t = if i % 16 == 0 { millis(9) } else { millis(5) };
            e.observe(0, VariantId(0), t);
        }
        assert_eq!(e.predict(0, VariantId(0)), millis(9));
        // Variant 1 untouched.
        assert_eq!(e.predict(3, VariantId(1)), millis(4));
    }

    #[test]
    fn warmup_keeps_the_prior_as_a_floor() {
        let mut e = OnlineEstimator::new(&[millis(10)]);
        e.observe(0, VariantId(0), micros(100));
        assert_eq!(e.predict(0, VariantId(0)), millis(10));
        for _ in 0..8 {
            e.observe(0, VariantId(0), micros(100));
        }
        assert_eq!(e.predict(0, VariantId(0)), micros(100));
    }
}
