//! A simulated perception frame loop that feeds a tap like the executor will: 8 cameras at
//! 36 fps on a virtual clock, with latencies, deadline misses, skips, variant switches,
//! throttling, a failover, champion detections with confidences, input statistics and
//! shadow comparisons. It counts its own ground truth per window, independently of the
//! aggregator, so tests can compare what the fleet collects with what really happened.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};

use crate::event::{Event, confidence_e4};
use crate::metrics::{Layout, confidence_bucket, latency_bucket, luma_bucket, shift_bucket};
use crate::shadow::{ShadowCompare, ShadowDet};
use crate::tap::MetricsTap;

/// Simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Cameras.
    pub cameras: u8,
    /// Frames per second per camera.
    pub fps: u32,
    /// Simulated seconds.
    pub seconds: u32,
    /// Virtual start time (ns).
    pub start_ns: u64,
    /// Per-frame deadline (µs).
    pub deadline_us: u32,
    /// Probability a frame is skipped.
    pub skip_rate: f64,
    /// One frame in this many also runs the challenger in shadow.
    pub shadow_every: u32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { cameras: 8, fps: 36, seconds: 10, start_ns: 0, deadline_us: 27_000, skip_rate: 0.01, shadow_every: 10, seed: 7 }
    }
}

/// Ground truth: the measurement vector each window should produce (before clipping/noise).
pub type GroundTruth = BTreeMap<u64, Vec<u64>>;

/// The simulated loop.
pub struct SimFrameLoop {
    cfg: SimConfig,
    rng: rand::rngs::StdRng,
    dets_a: Vec<ShadowDet>,
    dets_b: Vec<ShadowDet>,
}

impl SimFrameLoop {
    /// A loop with `cfg`.
    pub fn new(cfg: SimConfig) -> Self {
        let rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        Self { cfg, rng, dets_a: Vec::with_capacity(16), dets_b: Vec::with_capacity(16) }
    }

    /// Frames the run will produce (all cameras).
    pub fn total_frames(&self) -> u64 {
        self.cfg.cameras as u64 * self.cfg.fps as u64 * self.cfg.seconds as u64
    }

    /// Runs every frame, recording into `tap`; `window_ns` splits the ground truth.
    /// When `pace` is set the loop waits for ring space instead of letting the tap drop
    /// (the simulation runs far faster than real time).
    pub fn run(&mut self, tap: &mut MetricsTap, window_ns: u64, pace: bool) -> GroundTruth {
        let mut truth = GroundTruth::new();
        let period_ns = 1_000_000_000 / self.cfg.fps as u64;
        let frames_per_cam = self.cfg.fps as u64 * self.cfg.seconds as u64;
        for f in 0..frames_per_cam {
            for cam in 0..self.cfg.cameras {
                // Cameras are phase-shifted inside the frame period.
                let t = self.cfg.start_ns + f * period_ns + cam as u64 * (period_ns / self.cfg.cameras as u64);
                self.frame(tap, &mut truth, window_ns, t, cam, f, pace);
            }
        }
        truth
    }

    #[allow(clippy::too_many_arguments)]
    fn frame(&mut self, tap: &mut MetricsTap, truth: &mut GroundTruth, window_ns: u64, t: u64, cam: u8, f: u64, pace: bool) {
        let v = truth.entry(t / window_ns).or_insert_with(|| vec![0; Layout::LEN]);
        let emit = |tap: &mut MetricsTap, e: Event| {
            while pace && tap.free_slots() == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            tap.record(e);
        };
        let rng = &mut self.rng;
        if rng.random_bool(self.cfg.skip_rate) {
            emit(tap, Event::frame_skip(t, cam));
            v[2] += 1;
            return;
        }
        // Variant: full (0) most of the time; rear cameras (6, 7) run lite (1) when throttled.
        let variant = if cam >= 6 && f % 720 >= 600 { 1 } else { 0 };
        if cam >= 6 && (f % 720 == 600 || f.is_multiple_of(720)) && f > 0 {
            emit(tap, Event::variant_switch(t, cam, 1 - variant, variant));
            v[3] += 1;
        }
        if cam == 0 && f % 720 == 599 {
            emit(tap, Event::throttle(t, 1));
            v[5] += 1;
        }
        if cam == 0 && f == 1000 {
            emit(tap, Event::failover(t, 0, 2));
            v[4] += 1;
        }
        // Latency: ~18 ms with a long right tail; lite is faster.
        let base = if variant == 0 { 17_000.0 } else { 9_000.0 };
        let tail: f64 = -(1.0 - rng.random::<f64>()).ln() * 2_500.0;
        let lat = (base + rng.random_range(-2_000.0..2_000.0) + tail) as u32;
        emit(tap, Event::frame_latency(t, cam, variant, lat));
        v[0] += 1;
        v[Layout::LATENCY + latency_bucket(lat as i64)] += 1;
        if lat > self.cfg.deadline_us {
            emit(tap, Event::deadline_miss(t, cam, variant, lat - self.cfg.deadline_us));
            v[1] += 1;
        }
        let luma: u8 = (110.0 + 60.0 * ((f as f64 / 500.0) + cam as f64).sin() + rng.random_range(-20.0..20.0)).clamp(0.0, 255.0) as u8;
        emit(tap, Event::input_stat(t, cam, luma));
        v[Layout::LUMA + luma_bucket(luma as i64)] += 1;
        let n = rng.random_range(0..6usize);
        self.dets_a.clear();
        for i in 0..n {
            let conf: f32 = 0.3 + 0.7 * rng.random::<f32>().powf(0.7);
            let x = i as f32 * 40.0 + rng.random_range(0.0..5.0);
            let d = ShadowDet { class: (i % 3) as u16, confidence: conf, bbox: [x, 10.0, x + 30.0, 50.0] };
            self.dets_a.push(d);
            emit(tap, Event::detection(t, cam, variant, d.class, conf));
            v[Layout::CONFIDENCE + confidence_bucket(confidence_e4(conf) as i64)] += 1;
        }
        if self.cfg.shadow_every > 0 && f.is_multiple_of(self.cfg.shadow_every as u64) {
            // Challenger: same boxes jittered, slightly more confident, drops the last one.
            self.dets_b.clear();
            for d in self.dets_a.iter().take(n.saturating_sub(1)) {
                let j = rng.random_range(-3.0..3.0);
                self.dets_b.push(ShadowDet {
                    class: d.class,
                    confidence: (d.confidence + 0.05).min(1.0),
                    bbox: [d.bbox[0] + j, d.bbox[1], d.bbox[2] + j, d.bbox[3]],
                });
            }
            let r = ShadowCompare::default().compare(&self.dets_a, &self.dets_b);
            v[7] += 1;
            v[8] += r.disagreements as u64;
            if let Some(s) = r.mean_shift_e4 {
                v[Layout::SHIFT + shift_bucket(s as i64)] += 1;
            }
            for e in r.events(t, cam, 1) {
                emit(tap, e);
            }
        }
    }
}
